"""Streaming a run into the grid: finished rows go to the front-end as `layers` messages while the
source runs (docs/architecture.md), then the final state is published in one update."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import sizing
from .contract import LayersMessage
from .explanations import update_explanation
from .images import encode_jpeg
from .session import RunCancelled, RunInput
from .source import SourceInput

if TYPE_CHECKING:
    from .widget import AttentionGrid

#: Streamed layers finishing closer together than this are sent in one message.
STREAM_INTERVAL_S = 0.02

Send = Callable[..., None]
"""The widget's `send(content, buffers=...)`."""


class LayerStream:
    """Sends finished grid rows to the front-end, coalescing rows that finish close together, so the
    messages stay far below the server's message-rate limit."""

    def __init__(self, send: Send, run_id: int):
        self.send, self.run_id = send, run_id
        self.sent = 0
        self.pending: list[tuple[tuple[bytes, bytes], bytes]] = []
        self.last_send = 0.0

    def add(self, maps: tuple[bytes, bytes], specials: bytes) -> None:
        """One finished grid row: its encoded maps (data, ranges) and its specials."""
        self.pending.append((maps, specials))
        if time.perf_counter() - self.last_send >= STREAM_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Send the rows not sent yet."""
        if not self.pending:
            return
        buffers = [
            b"".join(maps[0] for maps, _ in self.pending),
            b"".join(maps[1] for maps, _ in self.pending),
            b"".join(specials for _, specials in self.pending),
        ]
        message = LayersMessage(type="layers", run_id=self.run_id, first=self.sent, count=len(self.pending))
        self.send(message, buffers=buffers)
        self.sent += len(self.pending)
        self.pending.clear()
        self.last_send = time.perf_counter()


def placement_notice(run: RunInput) -> str:
    """Says that the maps are spread over the whole picture when where the input lies in it is unknown."""
    picture = run.prepared.picture
    if picture is None or picture.placed:
        return ""
    return (
        "where the model's input lies in the picture is unknown (its processor pads, tiles or warps): "
        "the maps are spread over the whole picture, which may not be where the model looked"
    )


def stream_run(
    grid: AttentionGrid, run: RunInput, ticket: int, rerun: bool, input_state: dict[str, Any]
) -> None:
    """Reduce every selected layer of `run` into `grid`, streaming rows as layers finish, then publish
    the final state in one update (with `input_state`, the new input's traits) and the explanation.

    A run cancelled by a newer one publishes nothing; a failed one shows the last good grid again.
    """
    layout = run.layout
    rows, heads = [layer - 1 for layer in grid.layers], [head - 1 for head in grid.heads]
    tiles = len(rows) * len(heads)
    size = sizing.matrix_side(grid.saved_detail, layout, tiles, grid._matrix_budget)
    stream = LayerStream(grid.send, grid.run_id + 1)
    previous_layout = (grid.grid, grid.special_tokens, grid.token_count)
    with grid.hold_sync():
        grid.run_id, grid.status, grid.layers_done = stream.run_id, "running", 0
        notices = [sizing.pooled_notice(grid.saved_detail, layout, tiles, size), placement_notice(run)]
        grid.message = "; ".join(notice for notice in notices if notice)
        grid.grid, grid.special_tokens = list(layout.grid), list(layout.special_tokens)
        grid.token_count = layout.token_count
    try:
        reduced, outputs = grid._session.reduce(
            run, rows, heads, size, rerun=rerun, ticket=ticket, on_layer=stream.add
        )
        if rerun:
            top = grid.source.predictions(outputs)
            input_state = {
                **input_state,
                "predictions": [{"label": p.label, "probability": p.probability} for p in top],
            }
        stream.flush()
    except RunCancelled:
        return  # the newer run, waiting for this one, publishes its own state
    except Exception as error:
        _restore_after_failure(grid, previous_layout, error)
        raise
    with grid.hold_sync():
        grid.query = run.query
        grid.matrix_size = size
        for name, value in reduced.traits().items():
            setattr(grid, name, value)
        grid.layers_done = len(rows)
        for name, value in input_state.items():
            setattr(grid, name, value)
        grid.saved_bytes = sizing.saved_size(grid.get_state())
        grid.status = "done"  # last: observers of the status see the whole new state
    update_explanation(grid)


def input_traits(prepared: SourceInput) -> dict[str, Any]:
    """The traits of a new input: its picture (or none) and its tokens."""
    picture, layout = prepared.picture, prepared.layout
    state: dict[str, Any] = {
        "image": b"",
        "image_size": [0, 0],
        "crop_box": [0.0, 0.0, 1.0, 1.0],
        "input_size": [0, 0],
        "patch_size": 0,
    }
    if picture is not None:
        state = {
            "image": encode_jpeg(picture.image),
            "image_size": list(picture.image.size),
            "crop_box": list(picture.crop_box),
            "input_size": list(picture.input_size),
            "patch_size": picture.patch_size[0],
        }
    return {
        **state,
        "token_labels": list(layout.labels),
        "query_labels": list(layout.query_labels),
        "causal": layout.causal,
    }


def _restore_after_failure(grid: AttentionGrid, layout: tuple, error: Exception) -> None:
    """Show the last good grid again: the front-end has hidden it behind the failed run's rows, and
    takes the data traits (unchanged) as current again once the status is "done"."""
    shown = grid._session.input is not None
    with grid.hold_sync():
        grid.grid, grid.special_tokens, grid.token_count = layout
        grid.status = "done" if shown else "error"
        grid.layers_done = len(grid.layers) if shown else 0
        grid.message = f"error: {error}"
