"""Per-head statistics over a dataset: pictures in batches through the model, statistics reduced as
each layer finishes, summed exactly (`moments.Moments`) and returned with their intervals.

    frame = attnwidget.head_statistics_over(model, "pictures/", batch_size=64, num_workers=4)
    frame = attnwidget.head_statistics_over(model, "pictures/", engine="ray", replica_gpus=1)

Pictures are read and put through the model's own processor or transform in loader workers
(`dataset_reading`); a picture that cannot be read is skipped, counted and named. Ctrl-C
(or the notebook's interrupt) ends the run after the batch in flight and returns what it counted.
`engine="ray"` runs the same count on Ray Data, over a pool of model replicas (`dataset_ray`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from . import masks
from .capture import Workspace, removed_after
from .contract import HIGH_NORM_FACTOR
from .dataset_reading import Batch, read_batches
from .methods import attention_entropy, mean_attention_distance
from .moments import Moments
from .source import TokenLayout

if TYPE_CHECKING:
    import pandas

#: The confidence of the statistics' intervals unless told otherwise.
CONFIDENCE = 0.95
Statistic = Callable[[torch.Tensor, TokenLayout], torch.Tensor]
"""A statistic of one layer: `(attention [pictures, heads, queries, keys], layout) -> [pictures, heads]`.
The attention is valid during the call only (the next layer is computed into the same memory)."""

BUILT_IN = ("distance", "entropy", "special_mass", "high_norm_mass")
"""Mean attention distance (pixels), entropy (nats), attention of the patches to the prefix tokens
(CLS, registers), and to the patches whose output norm is over `high_norm_factor` x the median."""


@dataclass
class Tally:
    """What a run counted: the moments of every statistic, the pictures skipped and why, and those
    whose batch could not be run (a Ray replica that died twice)."""

    moments: Moments = field(default_factory=Moments)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False
    failed: list[tuple[str, str]] = field(default_factory=list)


def head_statistics_over(
    model: Any,
    images: Iterable[Any] | str | Path,
    *,
    processor: Any = None,
    batch_size: int = 32,
    num_workers: int = 0,
    statistics: Mapping[str, Statistic] | None = None,
    high_norm_factor: float = HIGH_NORM_FACTOR,
    confidence: float = CONFIDENCE,
    progress: bool = True,
    engine: Literal["local", "ray"] = "local",
    replicas: int | None = None,
    replica_cpus: float = 1,
    replica_gpus: float = 0,
    on_update: Callable[[pandas.DataFrame], None] | None = None,
) -> pandas.DataFrame:
    """Per-head statistics of `model` over every picture of `images`, one row per layer and head.

    `model`: anything `AttentionGrid` takes for pictures (a vision model, hub id, directory, timm
    model, source). `images`: a folder, a list or iterable of pictures (paths, PIL images, arrays), a
    torch `Dataset` or a Hugging Face `datasets.Dataset` (items that are pictures, tuples with the
    picture first, or dicts with an "image" / "img" entry), or a `DataLoader` of such items or of
    ready input batches [B, C, H, W]. `statistics` adds statistics of your own (see `Statistic`).

    `engine="ray"` (or a Ray dataset as `images`, with an "image" column and optionally "path") runs
    on Ray Data: `replicas` model replicas (default: as many as fit), each with `replica_cpus` CPUs and
    `replica_gpus` GPUs; the sums merge exactly, so the result is the one-process result.

    `on_update(frame)` receives the frame so far as batches are counted (at most twice a second, and
    once at the end): `DatasetStatisticsPanel.update` draws it live.

    Columns: `layer`, `head` (from 1), `pictures`, and per statistic its mean, `_std`, and `_low` /
    `_high`, the Student's t interval of the mean at `confidence`. `frame.attrs` holds `pictures`,
    `skipped` ([(name, reason)]), `failed` ([(name, reason)], Ray only), `interrupted` and `confidence`.
    """
    from .dataset_ray import is_ray_dataset, ray_tally

    if engine not in ("local", "ray"):
        raise ValueError(f'engine must be "local" or "ray", got {engine!r}')
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    updates = Updates(on_update, confidence)
    statistics = dict(statistics or {})
    if engine == "ray" or is_ray_dataset(images):
        tally = ray_tally(
            model,
            processor,
            images,
            batch_size=batch_size,
            statistics=statistics,
            high_norm_factor=high_norm_factor,
            replicas=replicas,
            replica_cpus=replica_cpus,
            replica_gpus=replica_gpus,
            progress=progress,
            on_batch=updates,
        )
        updates(tally, final=True)
        return statistics_frame(tally, confidence)
    source = batched_source(model, processor)
    batches, total = read_batches(images, source.picture_transform(), batch_size, num_workers)
    tally = count_batches(source, batches, total, statistics, high_norm_factor, progress, updates)
    updates(tally, final=True)
    return statistics_frame(tally, confidence)


def batched_source(model: Any, processor: Any = None) -> Any:
    """`model` as a source that runs batches of pictures; a TypeError for another kind of source."""
    from .loading import as_source

    source = as_source(model, processor)
    if not (hasattr(source, "capture_batch") and hasattr(source, "picture_transform")):
        raise TypeError(f"{source.name} is not a vision model: dataset statistics are per picture")
    return source


class Watch(Protocol):
    """What else a run does with one group of pictures: see each layer's attention (valid during the
    call only: copy what is kept), then the outputs."""

    def layer(self, layer: int, attention: torch.Tensor) -> None: ...

    def done(self, outputs: Any) -> None: ...


Watcher = Callable[[torch.Tensor, list[int]], "Watch | None"]
"""Called with each group of model inputs [B, C, H, W] and their positions in the dataset's reading
order (readable or not, from 0); returns a `Watch` for the group, or None."""


def count_batches(
    source: Any,
    batches: Iterable[Batch],
    total: int | None,
    statistics: dict[str, Statistic],
    high_norm_factor: float,
    progress: bool,
    updates: Updates,
    watcher: Watcher | None = None,
) -> Tally:
    """Count every batch's statistics, with a progress bar (tqdm); Ctrl-C ends the run after the group
    in flight and keeps what was counted (`Tally.interrupted`)."""
    from tqdm.auto import tqdm

    tally = Tally()
    workspace = Workspace()
    bar = tqdm(total=total, desc="attnwidget", unit="picture", disable=not progress)
    seen = 0
    try:
        for groups, skipped, positions in batches:
            tally.skipped += skipped
            for group, rows in zip(groups, positions, strict=True):
                watch = watcher(group, [seen + row for row in rows]) if watcher else None
                values, outputs = batch_run(
                    source, group, statistics, high_norm_factor, watch.layer if watch else None, workspace
                )
                tally.moments.add(values)
                if watch:
                    watch.done(outputs)
            read = sum(len(group) for group in groups) + len(skipped)
            seen += read
            bar.update(read)
            updates(tally)
    except KeyboardInterrupt:
        tally.interrupted = True
    finally:
        bar.close()
    return tally


class Updates:
    """Calls `on_update(frame so far)` after a batch, at most every `every` seconds, and at the end."""

    def __init__(
        self, on_update: Callable[[pandas.DataFrame], None] | None, confidence: float, every: float = 0.5
    ):
        self.on_update, self.confidence, self.every = on_update, confidence, every
        self.last = -math.inf

    def __call__(self, tally: Tally, final: bool = False) -> None:
        now = time.monotonic()
        if self.on_update is None or not tally.moments.count or (not final and now - self.last < self.every):
            return
        self.last = now
        self.on_update(statistics_frame(tally, self.confidence))


def batch_statistics(
    source: Any,
    pixel_values: torch.Tensor,
    statistics: dict[str, Statistic],
    high_norm_factor: float = HIGH_NORM_FACTOR,
    workspace: Workspace | None = None,
) -> dict[str, np.ndarray]:
    """Every statistic of one batch of model inputs [B, C, H, W]: name -> [B, layers, heads]; each
    layer's attention computed into `workspace` where the source can (`capture.Workspace`)."""
    return batch_run(source, pixel_values, statistics, high_norm_factor, workspace=workspace)[0]


def batch_run(
    source: Any,
    pixel_values: torch.Tensor,
    statistics: dict[str, Statistic],
    high_norm_factor: float = HIGH_NORM_FACTOR,
    on_layer: Callable[[int, torch.Tensor], None] | None = None,
    workspace: Workspace | None = None,
) -> tuple[dict[str, np.ndarray], Any]:
    """`batch_statistics` and the model's outputs; `on_layer(layer, attention [B, H, N, N])` also sees
    each layer's attention as it finishes (valid during the call only)."""
    parameter = next(source.model.parameters())
    pixel_values = pixel_values.to(device=parameter.device, dtype=parameter.dtype)
    layout = source.layout(pixel_values)
    special, grid = layout.special_count, layout.grid
    patch = (pixel_values.shape[-2] // grid[0], pixel_values.shape[-1] // grid[1])
    values: dict[str, list[torch.Tensor]] = {}
    key_mass: list[torch.Tensor] = []

    def keep(name: str, value: torch.Tensor) -> None:  # a copy: a view of the attention would not last
        values.setdefault(name, []).append(value.detach().to(torch.float32, copy=True))

    def on_statistics_layer(layer: int, attention: torch.Tensor) -> None:
        attention = attention.float()
        scratch = (
            None if workspace is None else workspace.buffer(attention.numel(), attention.device, "scratch")
        )
        keep("distance", mean_attention_distance(attention, special, grid, patch, scratch))
        keep("entropy", attention_entropy(attention, scratch))
        from_patches = attention[..., special:, :].mean(dim=-2)  # [B, H, keys]
        if special:
            keep("special_mass", from_patches[..., :special].sum(dim=-1))
        key_mass.append(from_patches[..., special:])
        for name, statistic in statistics.items():
            value = statistic(attention, layout)
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(attention.shape[:2]):
                shape = tuple(getattr(value, "shape", ()))
                raise ValueError(
                    f"statistic {name!r} returned {type(value).__name__} {shape}; it must return a tensor "
                    f"[pictures, heads] = {tuple(attention.shape[:2])}"
                )
            keep(name, value)
        if on_layer is not None:
            on_layer(layer, attention)

    norms: list[torch.Tensor] = []
    block = _last_block(source)
    with removed_after(
        [block.register_forward_hook(lambda _m, _a, output: norms.append(_first_tensor(output)))]
    ):
        outputs = source.capture_batch(pixel_values, on_statistics_layer, workspace)
    if norms and norms[-1].ndim == 3 and norms[-1].shape[1] == layout.token_count:
        patch_norms = norms[-1][:, special:].float().norm(dim=-1).cpu().double().numpy()
        flagged = torch.from_numpy(
            np.stack([masks.high_norm_mask(picture, high_norm_factor) for picture in patch_norms])
        ).to(parameter.device)  # [B, patches]
        for mass in key_mass:
            keep("high_norm_mass", (mass * flagged[:, None, :]).sum(dim=-1))
    return {name: torch.stack(layers, dim=1).cpu().numpy() for name, layers in values.items()}, outputs


def statistics_frame(tally: Tally, confidence: float = CONFIDENCE) -> pandas.DataFrame:
    """The tally as a DataFrame: one row per layer and head, a mean, spread and interval per statistic."""
    import pandas

    moments = tally.moments
    if not moments.count:
        reasons = "; ".join(f"{name}: {why}" for name, why in tally.skipped[:3])
        raise ValueError(
            "no picture was counted"
            + (" (interrupted before the first batch)" if tally.interrupted else "")
            + (f": all {len(tally.skipped)} were skipped ({reasons})" if tally.skipped else "")
        )
    layers, heads = next(iter(moments.sums.values())).shape
    columns: dict[str, Any] = {
        "layer": np.repeat(np.arange(1, layers + 1), heads),
        "head": np.tile(np.arange(1, heads + 1), layers),
        "pictures": np.full(layers * heads, moments.count),
    }
    for name in moments.sums:
        low, high = moments.interval(name, confidence)
        columns[name] = moments.mean(name).ravel()
        columns[f"{name}_std"] = moments.std(name).ravel()
        columns[f"{name}_low"], columns[f"{name}_high"] = low.ravel(), high.ravel()
    frame = pandas.DataFrame(columns)
    frame.attrs.update(
        pictures=moments.count,
        skipped=list(tally.skipped),
        failed=list(tally.failed),
        interrupted=tally.interrupted,
        confidence=confidence,
    )
    return frame


def _last_block(source: Any) -> nn.Module:
    """The layer holding the last attention module (the nearest numbered module above it), whose
    output is the residual stream after the last layer."""
    root = getattr(source, "forward_module", None) or source.model
    last = source.attention_modules[-1]
    names = {id(module): name for name, module in root.named_modules()}
    path = names[id(last)]
    while path and not re.search(r"(^|\.)\d+$", path):
        path = path.rpartition(".")[0]
    return root.get_submodule(path) if path else last


def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output.detach()
    first = output[0] if isinstance(output, (tuple, list)) else getattr(output, "last_hidden_state", None)
    return first.detach() if isinstance(first, torch.Tensor) else torch.empty(0)
