"""Streaming a generation into the grid: the transcript (`query_labels`) and the shares
(`query_shares`) grow token by token and the maps show the current query (the latest token, until
the user picks others). When the generation ends, the finished input replaces the prompt and runs
through the ordinary `stream_run`, so the cache, new queries, exact heads and exports work as for
every grid."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..encode import encode_rows, float32_bytes
from ..session import RunCancelled, RunInput
from ..source import GeneratingSource, RowsOf, SourceInput
from ..streaming import input_traits, placement_notice, stream_run

if TYPE_CHECKING:
    from ..widget import AttentionGrid


#: What a generation changes while it streams, put back when it fails.
SHOWN_TRAITS = (
    "grid",
    "special_tokens",
    "token_count",
    "query",
    "query_labels",
    "query_shares",
    "token_labels",
    "causal",
    "maps",
    "maps_range",
    "specials",
    "layers_done",
    "image",
    "image_size",
    "crop_box",
    "input_size",
    "patch_size",
)


def encoded_maps(rows: torch.Tensor, layers: list[int], heads: list[int], special: int) -> dict[str, bytes]:
    """The `maps`, `maps_range` and `specials` traits of query rows [layers, heads, special + cells]."""
    chosen = rows[layers][:, heads].flatten(0, 1)  # layer after layer, as the grid's rows
    data, ranges = encode_rows(chosen[:, special:])  # each row encoded alone: the same as layer by layer
    return {"maps": data, "maps_range": ranges, "specials": float32_bytes(chosen[:, :special].contiguous())}


def generate_into(grid: AttentionGrid, prepared: SourceInput, query: list[int] | None, ticket: int) -> None:
    """Generate from `prepared` (a prompt of a `GeneratingSource`), streaming each token into `grid`,
    then publish the finished grid. `query`: the generated tokens to show (None: follow the latest)."""
    source = grid.source
    assert isinstance(source, GeneratingSource)
    prompt = prepared.model_input
    session = grid._session
    labels: list[str] = []
    shares: list[bytes] = []
    state = input_traits(prepared)
    shown_before = {name: getattr(grid, name) for name in SHOWN_TRAITS}
    with grid.hold_sync():
        grid.run_id, grid.status, grid.layers_done = grid.run_id + 1, "running", 0
        grid.message = placement_notice(RunInput(prepared, []))
        grid.grid, grid.special_tokens = list(prepared.layout.grid), list(prepared.layout.special_tokens)
        grid.token_count = prepared.layout.token_count
        for name, value in state.items():
            setattr(grid, name, value)
        grid.query_shares = b""
    shown: list[int] = []
    pinned = list(query) if query is not None else None  # the user's pick; None: the latest token

    def on_token(index: int, label: str, rows_of: RowsOf, token_shares: torch.Tensor) -> None:
        nonlocal pinned
        if session._newest_ticket != ticket:
            raise RunCancelled
        if shown and grid.query != shown:  # picked in the front-end (or from Python) meanwhile
            pinned = list(grid.query)
        labels.append(label)
        shares.append(float32_bytes(token_shares.mean(1)))  # its `query_shares` entry: [layers, 3]
        wanted = [token for token in pinned or [] if token <= index] or [index]
        averaged = rows_of(wanted)
        layers, heads = [layer - 1 for layer in grid.layers], [head - 1 for head in grid.heads]
        with grid.hold_sync():
            grid.query_labels = list(labels)
            grid.query_shares = b"".join(shares)
            grid.query = wanted
            for name, value in encoded_maps(averaged, layers, heads, prepared.layout.special_count).items():
                setattr(grid, name, value)
            grid.layers_done = len(layers)  # every layer shown is there at once
        shown[:] = wanted

    session.busy = True
    try:
        generation = source.generate(prompt, on_token)
    except RunCancelled:
        return
    except Exception as error:  # the last good grid shows again, whole
        with grid.hold_sync():
            for name, value in shown_before.items():
                setattr(grid, name, value)
            grid.status = "done" if session.input is not None else "error"
            grid.message = f"error: {error}"
        raise
    finally:
        session.busy = False
    finished = source.finished_input(generation)
    if shown and grid.query != shown:
        pinned = list(grid.query)
    final_query = [token for token in pinned or [] if token < len(generation.labels)]
    final_query = final_query or finished.layout.default_query
    input_state: dict[str, Any] = {**input_traits(finished), "query_shares": b"".join(shares)}
    stream_run(grid, RunInput(finished, final_query), ticket, True, input_state)
