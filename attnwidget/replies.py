"""Replies to the front-end's requests: exact values of an opened head, and regions of its matrix
(the custom messages of docs/architecture.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .contract import FULL_MATRIX_LIMIT, HeadMessage, RegionMessage
from .encode import float32_bytes

if TYPE_CHECKING:
    from .widget import AttentionGrid


def handle_message(grid: AttentionGrid, content: dict[str, Any]) -> None:
    """Answer one message from the front-end; a bad request is reported in `grid.message`, never raised."""
    try:
        if content.get("type") == "request_head":
            send_head(grid, int(content["layer"]), int(content["head"]))
        elif content.get("type") == "request_region":
            send_region(grid, content)
    except Exception as error:  # a bad request must not break the kernel or the widget
        grid.message = f"error: {error}"


def send_head(grid: AttentionGrid, layer: int, head: int) -> None:
    """Exact query map and matrix (pooled beyond `FULL_MATRIX_LIMIT` tokens) of one head."""
    run = grid._current()
    layout = run.layout
    size = min(max(layout.token_count, layout.query_count), FULL_MATRIX_LIMIT)
    reductions = grid._head_reductions(layer, head, size)
    exact_map = reductions.query_rows()[0, layout.special_count :]
    matrix = reductions.matrices()[0]
    height, width = matrix.shape
    reply = HeadMessage(
        type="head",
        run_id=grid.run_id,
        layer=layer,
        head=head,
        height=height,
        width=width,
        query=list(run.query),
    )
    grid.send(reply, buffers=[float32_bytes(exact_map), float32_bytes(matrix)])


def send_region(grid: AttentionGrid, request: dict[str, Any]) -> None:
    """A region of one head's matrix: exact up to `FULL_MATRIX_LIMIT` tokens a side, pooled beyond."""
    layer, head = int(request["layer"]), int(request["head"])
    rows = (int(request["rows"][0]), int(request["rows"][1]))
    columns = (int(request["columns"][0]), int(request["columns"][1]))
    region = grid.head_region(layer, head, rows, columns, FULL_MATRIX_LIMIT)
    height, width = region.shape
    reply = RegionMessage(
        type="region",
        run_id=grid.run_id,
        layer=layer,
        head=head,
        rows=rows,
        columns=columns,
        height=height,
        width=width,
    )
    grid.send(reply, buffers=[float32_bytes(region)])
