"""The pictures of `run_many`: each picture's grid is kept, so `image_index` browses them without
running the model again, and per-head statistics are averaged over them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .explanations import update_explanation
from .images import ImageLike, image_sources
from .methods import HeadStatistics
from .session import RunInput

if TYPE_CHECKING:
    from .widget import AttentionGrid

#: Traits that make up one picture's view: what the gallery keeps per picture.
PICTURE_TRAITS = (
    "maps",
    "maps_range",
    "specials",
    "matrix_size",
    "matrices",
    "matrices_range",
    "query",
    "grid",
    "special_tokens",
    "token_count",
    "image",
    "image_size",
    "crop_box",
    "input_size",
    "predictions",
    "token_labels",
    "query_labels",
    "causal",
)


@dataclass
class Snapshot:
    """One picture's traits, its input and the layers and heads they were computed for."""

    traits: dict[str, Any]
    input: RunInput
    selection: tuple[list[int], list[int]]

    @classmethod
    def of(cls, grid: AttentionGrid) -> Snapshot:
        return cls(
            traits={name: getattr(grid, name) for name in PICTURE_TRAITS},
            input=grid._session.input,
            selection=(list(grid.layers), list(grid.heads)),
        )


class Gallery:
    """The pictures of the last `run_many` of a grid (none after a single run)."""

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.mean_statistics: HeadStatistics | None = None

    def __len__(self) -> int:
        return len(self.snapshots)

    def clear(self) -> None:
        self.snapshots, self.mean_statistics = [], None

    def run_many(self, grid: AttentionGrid, images: Iterable[ImageLike] | str | Path, progress: bool) -> None:
        """Run `grid` on every picture, keeping each one's grid and statistics (see `run_many`)."""
        from tqdm.auto import tqdm

        sources = image_sources(images)
        snapshots: list[Snapshot] = []
        statistics: list[HeadStatistics] = []
        for source in tqdm(sources, desc="attnwidget", unit="picture", disable=not progress):
            grid.run(source)
            snapshots.append(Snapshot.of(grid))
            statistics.append(grid.head_statistics())
        if not snapshots:
            raise ValueError("no pictures to run: give a non-empty list, iterable or folder of images")
        self.mean_statistics = HeadStatistics.mean(statistics)
        with grid.hold_sync():
            grid.image_count = len(snapshots)  # listeners (the statistics panel) see the new set
            grid.image_index = len(snapshots) - 1  # the picture on screen (set before the gallery: no redraw)
        self.snapshots = snapshots

    def show(self, grid: AttentionGrid, index: int, previous: int) -> None:
        """Show picture `index` in `grid`: its kept traits, or recomputed when the selection changed."""
        if not 0 <= index < len(self.snapshots):
            grid.message = f"error: picture {index} is out of range: there are {len(self.snapshots)}"
            grid.image_index = previous
            return
        snapshot = self.snapshots[index]
        session = grid._session
        session.input, session.cache = snapshot.input, None  # exact values are recomputed on request
        if snapshot.selection != (grid.layers, grid.heads) or snapshot.input.query != grid.query:
            grid._compute(snapshot.input, rerun=True)  # the selection changed since: recompute
            self.snapshots[index] = Snapshot.of(grid)
            return
        # As for a run: the front-end takes every data trait as current once the status is "done",
        # also those equal to the previous picture's (no change is sent for them).
        grid.status = "running"
        with grid.hold_sync():
            grid.run_id += 1
            for name, value in snapshot.traits.items():
                setattr(grid, name, value)
            grid.status = "done"
        update_explanation(grid)
