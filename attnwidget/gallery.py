"""The pictures of `run_many`: a dataset in batches through the model, counted by the batched
statistics of `head_statistics_over`, with a sample of its pictures kept for `image_index` to browse.

Every readable picture counts towards the statistics. A seeded uniform sample of at most `sample`
of them (reservoir sampling, so that a dataset of unknown length is sampled too) is kept: where each
picture lies in the dataset (it is read again when shown), its predictions and, while they fit in the
grid's `cache_budget` together, its attention, captured by the batch's forward. A kept picture's view
is built when it is shown, from that attention without running the model; one whose attention did
not fit runs the model once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from .contract import HIGH_NORM_FACTOR
from .dataset_reading import as_sequence, picture_of, read_batches
from .dataset_statistics import (
    CONFIDENCE,
    Statistic,
    Updates,
    batched_source,
    count_batches,
    statistics_frame,
)
from .images import IMAGE_SUFFIXES, load_image
from .methods import HeadStatistics
from .session import RunInput
from .source import Picture, SourceInput
from .streaming import input_traits

if TYPE_CHECKING:
    import pandas

    from .widget import AttentionGrid

DEFAULT_SAMPLE = 64
"""Pictures `run_many` keeps for browsing unless told otherwise."""

Reader = Callable[[int, torch.Tensor], Callable[[], SourceInput]]
"""(position in the dataset, the picture's model input [C, H, W]) -> what prepares it again when shown."""


@dataclass
class Kept:
    """A picture kept for browsing: its position, how to prepare it again, its predictions, and its
    attention (every layer [heads, tokens, tokens], float32 on the CPU) unless it did not fit."""

    position: int
    read: Callable[[], SourceInput]
    predictions: list[dict[str, Any]]
    attention: list[torch.Tensor] | None = None

    @property
    def bytes(self) -> int:
        return sum(layer.numel() * layer.element_size() for layer in self.attention or [])


def reservoir_slot(seen: int, size: int, rng: random.Random) -> int | None:
    """The slot of a uniform sample of `size` that the `seen`-th picture (from 0) takes, or None
    (Algorithm R: every picture ends up in the sample with the same probability)."""
    if seen < size:
        return seen
    slot = rng.randrange(seen + 1)
    return slot if slot < size else None


@dataclass
class Sample:
    """A `dataset_statistics.Watcher`: keeps a sample of the pictures counted, and their attention
    while it fits in `budget` bytes."""

    source: Any
    size: int
    budget: int
    reader: Reader
    slots: dict[int, Kept] = field(default_factory=dict)
    seen: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def __call__(self, group: torch.Tensor, positions: list[int]) -> GroupKeeper | None:
        chosen: dict[int, int] = {}  # row of the group -> its slot
        for row in range(len(group)):
            slot = reservoir_slot(self.seen, self.size, self.rng)
            self.seen += 1
            if slot is not None:
                chosen[row] = slot
        if not chosen:
            return None
        tokens = self.source.layout(group).token_count
        need = self.source.layer_count * self.source.head_count * tokens * tokens * 4
        replaced = set(chosen.values())
        free = self.budget - sum(kept.bytes for slot, kept in self.slots.items() if slot not in replaced)
        with_attention = set(sorted(chosen)[: max(0, free // need)] if need else chosen)
        readers = {row: self.reader(positions[row], group[row]) for row in chosen}
        return GroupKeeper(self, chosen, positions, readers, {row: [] for row in with_attention})

    def kept(self) -> list[Kept]:
        """The pictures kept, in the dataset's order."""
        return sorted(self.slots.values(), key=lambda kept: kept.position)


@dataclass
class GroupKeeper:
    """A `dataset_statistics.Watch` for one group: copies the chosen pictures' attention as each layer
    finishes (the next layer is computed into the same memory), and keeps the pictures once the
    group has been counted."""

    sample: Sample
    chosen: dict[int, int]
    positions: list[int]
    readers: dict[int, Callable[[], SourceInput]]
    attention: dict[int, list[torch.Tensor]]

    def layer(self, layer: int, attention: torch.Tensor) -> None:
        for row, layers in self.attention.items():
            layers.append(attention[row].to("cpu", torch.float32, copy=True))

    def done(self, outputs: Any) -> None:
        for row, slot in self.chosen.items():
            predictions = self.sample.source.predictions(row_outputs(outputs, row))
            self.sample.slots[slot] = Kept(
                self.positions[row],
                self.readers[row],
                [{"label": p.label, "probability": p.probability} for p in predictions],
                self.attention.get(row),
            )


def row_outputs(outputs: Any, row: int) -> Any:
    """One picture's outputs of a batch's (logits [B, classes], alone or as `.logits`), as a batch of one."""
    if isinstance(outputs, torch.Tensor):
        return outputs[row : row + 1]
    logits = getattr(outputs, "logits", None)
    return SimpleNamespace(logits=logits[row : row + 1]) if isinstance(logits, torch.Tensor) else None


class Gallery:
    """The pictures kept by the last `run_many` of a grid and its dataset statistics (none after a
    single run)."""

    def __init__(self) -> None:
        self.kept: list[Kept] = []
        self.frame: pandas.DataFrame | None = None
        self.mean_statistics: HeadStatistics | None = None
        self.shown: int | None = None

    def __len__(self) -> int:
        return len(self.kept)

    def clear(self) -> None:
        self.kept, self.frame, self.mean_statistics, self.shown = [], None, None, None

    def run_many(
        self,
        grid: AttentionGrid,
        images: Any,
        *,
        sample: int,
        batch_size: int,
        num_workers: int,
        statistics: Mapping[str, Statistic] | None,
        progress: bool,
        on_update: Callable[[pandas.DataFrame], None] | None,
    ) -> None:
        """Count every picture of `images` in batches and keep a sample of them (see `run_many`)."""
        if sample < 1 or batch_size < 1:
            raise ValueError(f"sample and batch_size must be at least 1, got {sample} and {batch_size}")
        source = batched_source(grid.source)
        data, reader = readable(source, images, batch_size)
        batches, total = read_batches(data, source.picture_transform(), batch_size, num_workers)
        kept = Sample(source, sample, grid._session.cache_budget, reader)
        updates = Updates(on_update, CONFIDENCE)
        statistics = dict(statistics or {})
        tally = count_batches(source, batches, total, statistics, HIGH_NORM_FACTOR, progress, updates, kept)
        updates(tally, final=True)
        self.publish(grid, statistics_frame(tally), kept.kept())

    def publish(self, grid: AttentionGrid, frame: pandas.DataFrame, kept: list[Kept]) -> None:
        """Make `frame` the grid's dataset statistics and show the last of the pictures kept with their
        attention (no model run), or the last one."""
        heads = int(frame["head"].max())
        self.clear()
        self.frame = frame
        self.mean_statistics = HeadStatistics(
            frame["distance"].to_numpy().reshape(-1, heads), frame["entropy"].to_numpy().reshape(-1, heads)
        )
        shown = max(
            (i for i, picture in enumerate(kept) if picture.attention is not None), default=len(kept) - 1
        )
        with grid.hold_sync():  # set before the pictures: no picture is shown twice
            grid.image_count = len(kept)  # listeners (the statistics panel) see the new set
            grid.image_index = shown
        self.kept = kept
        self.show(grid, shown, shown)
        notes = run_notes(frame)
        if notes and not grid.message.startswith("error:"):
            grid.message = notes

    def show(self, grid: AttentionGrid, index: int, previous: int) -> None:
        """Show kept picture `index` in `grid`: from its attention, or by running the model on it."""
        if index == self.shown:  # already shown (`image_index` set back after a bad index)
            return
        if not 0 <= index < len(self.kept):
            grid.message = f"error: picture {index} is out of range: there are {len(self.kept)}"
            grid.image_index = previous
            return
        kept = self.kept[index]
        try:
            prepared = kept.read()
        except Exception as error:  # the file was moved since, say: the grid keeps its picture
            grid.message = f"error: picture {index + 1} of the sample cannot be read again: {error}"
            grid.image_index = previous
            return
        query = grid.query
        try:
            prepared.layout.check_query(query)
        except ValueError:
            query = prepared.layout.default_query
        state = {**input_traits(prepared), "predictions": kept.predictions}
        grid._session.cache, grid._session.kept = kept.attention, None
        grid._compute(RunInput(prepared, query), rerun=kept.attention is None, input_state=state)
        self.shown = index


def run_notes(frame: pandas.DataFrame) -> str:
    """What the grid says about a dataset run beyond its pictures: skipped ones, an interruption."""
    attrs, notes = frame.attrs, []
    if attrs.get("skipped"):
        notes.append(
            f"{len(attrs['skipped'])} pictures could not be read and were skipped "
            "(grid.dataset_statistics.attrs['skipped'] names them)"
        )
    if attrs.get("interrupted"):
        notes.append(f"interrupted: statistics over the {attrs['pictures']} pictures counted")
    return "; ".join(notes)


def readable(source: Any, images: Any, batch_size: int) -> tuple[Any, Reader]:
    """What `read_batches` reads for `images`, and how a kept picture is prepared again: read again
    from a sequence, remembered from an iterable, or from its model input for a DataLoader."""
    if isinstance(images, torch.utils.data.DataLoader):
        return images, lambda _, model_input: partial(input_picture, source, model_input.clone())
    items = as_sequence(checked(images))
    if items is not None:
        if not len(items):
            raise ValueError(
                f"{images} holds no image files ({', '.join(IMAGE_SUFFIXES)})"
                if isinstance(images, (str, Path))
                else "no pictures to run: give a non-empty list, iterable or folder of images"
            )
        return items, lambda position, _: partial(prepare_item, source, items, position)
    recorded = Recorded(images, batch_size)
    return recorded, lambda position, _: partial(prepare_picture, source, recorded.items[position])


def checked(images: Any) -> Any:
    """`images`, refused when it is one picture rather than several."""
    if isinstance(images, (Image.Image, np.ndarray, torch.Tensor)):
        raise ValueError("give several pictures as a list (or a folder); run(image) takes a single one")
    return images


class Recorded:
    """An iterable of pictures read once, whose last `keep` items are remembered by position."""

    def __init__(self, images: Iterable[Any], keep: int):
        self.images, self.keep = images, keep
        self.items: dict[int, Any] = {}

    def __iter__(self) -> Iterator[Any]:
        for position, item in enumerate(self.images):
            self.items[position] = item
            self.items.pop(position - self.keep, None)
            yield item


def prepare_item(source: Any, items: Any, position: int) -> SourceInput:
    return prepare_picture(source, items[position])


def prepare_picture(source: Any, item: Any) -> SourceInput:
    return source.prepare_input(picture_of(item))


def input_picture(source: Any, model_input: torch.Tensor) -> SourceInput:
    """A model input [C, H, W] with itself as its picture (a DataLoader hands over no picture):
    its values scaled to 0..1, the patches over all of it."""
    values = model_input.detach().float().cpu()
    low, high = values.min(), values.max()
    scaled = (values - low) / (high - low) if high > low else torch.zeros_like(values)
    image = load_image(scaled.permute(1, 2, 0).numpy())
    parameter = next(source.model.parameters())
    batch = model_input[None].to(device=parameter.device, dtype=parameter.dtype)
    layout = source.layout(batch)
    size = (int(batch.shape[-2]), int(batch.shape[-1]))
    patch = (size[0] // layout.grid[0], size[1] // layout.grid[1])
    return SourceInput(batch, layout, Picture(image, (0.0, 0.0, 1.0, 1.0), size, patch))
