"""Per-head statistics on Ray Data: a pool of model replicas (one per GPU, or per group of CPUs) reads
and runs the dataset in batches, and the driver sums each batch's moments exactly.

    frame = attnwidget.head_statistics_over(model, "pictures/", engine="ray", replica_gpus=1)

It runs on the Ray cluster this process is connected to (`ray.init(address=...)` or `RAY_ADDRESS`),
or starts a local one. A replica that dies is restarted and its batch run again once; a batch that
fails twice is reported (`frame.attrs["failed"]` names its pictures), never dropped silently. An
error raised by the statistics themselves (a statistic of one's own returning the wrong shape) stops
the run with its message, as on one machine. Ray is an optional extra: `pip install "attnwidget[ray]"`.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from transformers import PreTrainedModel

from .capture import Workspace
from .dataset_reading import PictureDataset, as_sequence, collate, picture_of, read_item
from .dataset_statistics import Statistic, Tally, batch_statistics
from .moments import Moments

FAILED_TWICE = (
    "its batch failed twice: the replica running it died (out of memory, a crash) or could not start"
)


@dataclass
class TransformersWeights:
    """A transformers model sent to the replicas as its class, config and weights: a model that has
    run holds hooks transformers installed, which do not pickle."""

    model_class: type
    config: Any
    weights: dict[str, Any]

    def build(self) -> Any:
        model = self.model_class(self.config)
        model.load_state_dict(self.weights)
        return model.eval()


@dataclass
class BatchResult:
    """What one replica counted in one batch: moments, the pictures skipped, how many rows it read
    and, for a sequence every replica holds, which of its items."""

    moments: Moments = field(default_factory=Moments)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    rows: int = 0
    items: list[int] = field(default_factory=list)
    error: BaseException | None = None


class StatisticsReplica:
    """One model replica in Ray's actor pool: reads the items of a batch and counts their statistics."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        items: Any,
        statistics: dict[str, Statistic],
        high_norm_factor: float,
    ):
        import ray
        import torch

        from .loading import as_source

        model, processor, items = (
            ray.get(each) if isinstance(each, ray.ObjectRef) else each for each in (model, processor, items)
        )
        self.source = as_source(model.build() if isinstance(model, TransformersWeights) else model, processor)
        if ray.get_gpu_ids() and torch.cuda.is_available():
            self.source.model.to("cuda")
        self.transform = self.source.picture_transform()
        # Rows are indices into a sequence every replica holds, read as the local engine reads it.
        self.pictures = PictureDataset(items, self.transform) if items is not None else None
        self.statistics, self.high_norm_factor = statistics, high_norm_factor
        self.workspace = Workspace()  # every batch of this replica computes its weights there

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = BatchResult(rows=len(next(iter(batch.values()))))
        if self.pictures is not None:
            result.items = [int(index) for index in batch["item"]]
        try:
            groups, result.skipped, _ = collate([self._read(row, batch) for row in range(result.rows)])
            for group in groups:
                result.moments.add(
                    batch_statistics(
                        self.source, group, self.statistics, self.high_norm_factor, self.workspace
                    )
                )
        except Exception as error:  # raised by the statistics: sent to the driver, which raises it
            result.error = error
        return {"result": np.array([pickle.dumps(result)], dtype=object)}

    def _read(self, row: int, batch: dict[str, np.ndarray]) -> tuple[str, Any, str]:
        if self.pictures is not None:
            return self.pictures[int(batch["item"][row])]
        # A row of the user's Ray dataset: its columns are the item ("image", and "path" to name it).
        item = {name: column[row] for name, column in batch.items()}
        _, tensor, reason = read_item(row, item, self.transform)
        return (str(item["path"]) if "path" in item else "a row of the Ray dataset"), tensor, reason


def ray_tally(
    model: Any,
    processor: Any,
    images: Any,
    *,
    batch_size: int,
    statistics: dict[str, Statistic],
    high_norm_factor: float,
    replicas: int | None,
    replica_cpus: float,
    replica_gpus: float,
    progress: bool,
    on_batch: Callable[[Tally], None],
) -> Tally:
    """Count the statistics of every picture of `images` on Ray Data (see the module's docstring)."""
    ray = import_ray()
    from tqdm.auto import tqdm

    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    pool = replicas or _replicas_that_fit(ray, replica_cpus, replica_gpus)
    dataset, items, total = _ray_dataset(ray, images, blocks=pool * 4, batch_size=batch_size)
    model, processor = portable(model, processor)
    with warnings.catch_warnings():
        # Ray Data names no parameter for an actor's restarts yet: they go as remote arguments, which
        # Ray 2.60 to 2.63 take with a deprecation warning.
        warnings.simplefilter("ignore", DeprecationWarning)
        mapped = dataset.map_batches(
            StatisticsReplica,
            fn_constructor_kwargs={
                "model": _shared(ray, model),
                "processor": _shared(ray, processor),
                "items": _shared(ray, items),
                "statistics": statistics,
                "high_norm_factor": high_norm_factor,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=pool),
            num_cpus=replica_cpus,
            num_gpus=replica_gpus,
            max_restarts=1,  # a replica that dies comes back once ...
            max_task_retries=1,  # ... and runs its batch again
        )
    # The run goes on past a batch that failed twice: its pictures are named in the result.
    mapped.context.max_errored_blocks = -1
    tally, seen, rows = Tally(), set(), 0
    bar = tqdm(total=total, desc="attnwidget (ray)", unit="picture", disable=not progress)
    try:
        for result in _results(mapped):
            if result.error is not None:
                raise result.error
            tally.moments = tally.moments.merge(result.moments)
            tally.skipped += result.skipped
            seen.update(result.items)
            rows += result.rows
            bar.update(result.rows)
            on_batch(tally)
    except KeyboardInterrupt:
        tally.interrupted = True
    finally:
        bar.close()
    if not tally.interrupted and total is not None:
        if items is not None:
            tally.failed = [
                (_name(items, index), FAILED_TWICE) for index in range(total) if index not in seen
            ]
        elif rows < total:
            tally.failed = [(f"{total - rows} rows of the Ray dataset", FAILED_TWICE)]
    return tally


def portable(model: Any, processor: Any) -> tuple[Any, Any]:
    """(model, processor) as they travel to the replicas: a source's own model and processor (or
    transform), a transformers model as its class, config and weights; a hub id or folder as it is
    (each replica loads it)."""
    if hasattr(model, "capture_batch") and isinstance(getattr(model, "model", None), nn.Module):
        if processor is None:
            processor = getattr(model, "processor", None) or getattr(model, "transform", None)
        model = model.model
    if isinstance(model, PreTrainedModel):
        model = TransformersWeights(type(model), model.config, model.state_dict())
    return model, processor


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise ImportError(
            'engine="ray" needs Ray Data: pip install "attnwidget[ray]" (or pip install "ray[data]")'
        ) from error
    return ray


def is_ray_dataset(images: Any) -> bool:
    """Whether `images` is a Ray dataset (without importing Ray where it is not loaded)."""
    return type(images).__module__.startswith("ray.data") and hasattr(images, "map_batches")


def _ray_dataset(
    ray: Any, images: Any, blocks: int, batch_size: int
) -> tuple[Any, Sequence[Any] | None, int | None]:
    """(Ray dataset, the sequence it indexes, the picture count). A folder, list or dataset becomes a
    column "item" of indices into it, in up to `blocks` blocks (whole batches each) so every replica
    gets work; the user's own Ray dataset goes as it is (its rows are the pictures)."""
    if is_ray_dataset(images):
        return images, None, images.count()
    items = as_sequence(images)
    if items is None:
        raise TypeError(
            'engine="ray" reads pictures by index: give a folder, a list, a torch or Hugging Face dataset or '
            f"a Ray dataset, not {type(images).__name__}"
        )
    return _numbered(len(items), blocks, batch_size), items, len(items)


def _numbered(count: int, blocks: int, batch_size: int) -> Any:
    """A dataset of one column "item": 0 .. count - 1, held in memory (no read task takes a CPU from
    the replicas), in at most `blocks` blocks."""
    import pyarrow
    import ray.data

    blocks = max(1, min(blocks, math.ceil(count / batch_size)))
    return ray.data.from_arrow(pyarrow.table({"item": np.arange(count)}), override_num_blocks=blocks)


def _results(mapped: Any) -> Iterator[BatchResult]:
    for batch in mapped.iter_batches(batch_size=None, batch_format="numpy"):
        for blob in batch["result"]:
            yield pickle.loads(blob)


def _replicas_that_fit(ray: Any, cpus: float, gpus: float) -> int:
    """As many replicas as the cluster has GPUs for, or CPUs but one (left to read the pictures), at
    least one."""
    resources = ray.cluster_resources()
    if gpus:
        return max(1, int(resources.get("GPU", 0) // gpus))
    return max(1, int((resources.get("CPU", 1) - 1) // max(cpus, 1e-9)))


def _shared(ray: Any, value: Any) -> Any:
    """Large objects (a model) go to the object store once, not once per replica."""
    return value if value is None or isinstance(value, (str, int, float)) else ray.put(value)


def _name(items: Sequence[Any], index: int) -> str:
    """A picture's path where the items are a list holding paths, else "item N" (reading a dataset's
    item on the driver, only to name it, could cost as much as the run)."""
    picture = None
    if isinstance(items, list):
        with contextlib.suppress(Exception):
            picture = picture_of(list.__getitem__(items, index))
    return str(picture) if isinstance(picture, (str, Path)) else f"item {index}"
