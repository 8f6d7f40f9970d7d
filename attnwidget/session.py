"""Run sessions: a source's current input and its attention, one run at a time.

`RunSession` runs the source (`capture`), reduces the chosen layers and heads as their weights arrive
(`reduce.LayerBlocks`, `encode.encode_rows`), keeps a float32 CPU cache of the whole attention when it
fits in `cache_budget`, and answers later questions (a head's exact values, a region, a layer) from
that cache or by running the source again until it has what it needs. A run asked for while another
streams cancels it: the earlier one stops at its next layer and publishes nothing.

A source with `replays` (a vision-language model's finished generation) holds its attention in its
input already: `capture` replays it, and no cache is kept beside it.

A source with `query_selection` (a model captured beside its own sdpa attention) is asked for only the
query tokens' rows when the grid needs nothing else (no matrices, no cache): `capture(..., rows=)`.
Where the cache does not fit, such a run keeps every layer's query and key instead, within the same
`cache_budget` (`fast_attention.KeptQueriesKeys`): later questions compute the layer asked for from
them, exactly, without running the model again.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .capture import StopCapture
from .encode import encode_rows, float32_bytes
from .fast_attention import KeptQueriesKeys, keeping
from .reduce import LayerBlocks, pool_columns, pool_rows
from .score_blocks import accepting_scores
from .source import AttentionCallback, Source, SourceInput, TokenLayout


class RunCancelled(Exception):
    """A newer run was asked for: this one stops where it is."""


@dataclass(frozen=True)
class RunInput:
    """A prepared input and the query whose attention rows the grid shows."""

    prepared: SourceInput
    query: list[int]

    @property
    def model_input(self) -> Any:
        return self.prepared.model_input

    @property
    def layout(self) -> TokenLayout:
        return self.prepared.layout


@dataclass
class ReducedGrid:
    """The encoded rows of every selected layer of one run, in grid order."""

    maps: list[tuple[bytes, bytes]] = field(default_factory=list)
    specials: list[bytes] = field(default_factory=list)
    matrices: list[tuple[bytes, bytes]] = field(default_factory=list)

    def traits(self) -> dict[str, bytes]:
        """The widget's data traits holding these rows."""
        return {
            "maps": b"".join(data for data, _ in self.maps),
            "maps_range": b"".join(ranges for _, ranges in self.maps),
            "specials": b"".join(self.specials),
            "matrices": b"".join(data for data, _ in self.matrices),
            "matrices_range": b"".join(ranges for _, ranges in self.matrices),
        }


class RunSession:
    """The source's current input and its attention (cached when it fits), one run at a time."""

    def __init__(self, source: Source, *, pooling: str, cache_budget: int, block_bytes: int):
        self.source = source
        self.pooling = pooling
        self.cache_budget = cache_budget
        self.block_bytes = block_bytes
        self.input: RunInput | None = None
        self.cache: list[torch.Tensor] | None = None
        """Every layer's attention [heads, queries, keys] of `input`, float32 on the CPU, or None."""
        self.kept: KeptQueriesKeys | None = None
        """Every layer's query and key of `input` (a fast capture, no `cache`), or None."""
        self.busy = False
        self._lock = threading.RLock()
        self._tickets = itertools.count(1)
        self._newest_ticket = 0

    @property
    def kept_bytes(self) -> int:
        """Bytes held for exact answers about the current input: the cache or the kept queries and
        keys (within `cache_budget`)."""
        if self.cache is not None:
            return sum(attention.nbytes for attention in self.cache)
        return self.kept.nbytes if self.kept is not None else 0

    def current(self) -> RunInput:
        """The current input; a RuntimeError before the first run."""
        if self.input is None:
            raise RuntimeError("run the widget first: widget.run(...)")
        return self.input

    def exclusive(self, work: Callable[[int], None]) -> None:
        """Call `work(ticket)` once the runs before it are done, unless a newer call came meanwhile.
        `reduce` raises `RunCancelled` when its ticket is no longer the newest."""
        ticket = next(self._tickets)
        self._newest_ticket = ticket
        with self._lock:
            if ticket == self._newest_ticket:  # else a newer run came while this one waited
                work(ticket)

    def in_blocks(self, layout: TokenLayout) -> bool:
        """Whether a layer of this input is captured a block of queries at a time."""
        return self.source.query_blocks and self._layer_bytes(layout) > self.block_bytes

    def reduce(
        self,
        run: RunInput,
        rows: Sequence[int],
        heads: Sequence[int],
        size: int,
        *,
        rerun: bool,
        ticket: int,
        on_layer: Callable[[tuple[bytes, bytes], bytes], None],
    ) -> tuple[ReducedGrid, Any]:
        """Reduce layers `rows` and `heads` (0-based) of `run`: the query rows and matrices pooled to
        `size` (0: none), handing each finished layer's encoded maps and specials to `on_layer`.

        With `rerun` the source runs (and its cache is refilled); otherwise the cache is replayed.
        Returns the rows and the source's outputs (None when replayed); `run` becomes the current input.
        """
        layout = run.layout
        head_index = torch.tensor(list(heads))
        every_head = len(heads) == self.source.head_count  # the heads are sorted: no copy needed
        keep_cache = (
            not getattr(self.source, "replays", False)  # its inputs hold their attention already
            and not self.in_blocks(layout)
            and self._cache_bytes(layout) <= self.cache_budget
        )
        wanted = None  # every query row
        query, queries = run.query, layout.query_count
        if rerun and not size and not keep_cache and getattr(self.source, "query_selection", False):
            wanted = tuple(sorted(set(run.query)))  # only the query tokens' rows, numbered among them
            query, queries = range(len(wanted)), len(wanted)
        reduced = ReducedGrid()
        cache: dict[int, list[torch.Tensor]] = {}
        layer_blocks: dict[int, LayerBlocks] = {}
        finished: set[int] = set()

        def on_block(layer: int, first_query: int, weights: torch.Tensor) -> None:
            if self._newest_ticket != ticket:
                raise RunCancelled
            if layer in finished:
                raise RuntimeError(
                    f"{self.source.name} ran the attention of layer {layer + 1} again after handing it "
                    "over whole (a looped or recurrent model, such as HRM): a grid of one map per layer is "
                    "not drawn"
                )
            if rerun and keep_cache:
                cache.setdefault(layer, []).append(weights.float().cpu())
            if layer not in rows:
                return
            selected = weights if every_head else weights.index_select(0, head_index.to(weights.device))
            blocks = layer_blocks.setdefault(layer, LayerBlocks(query, size, self.pooling, queries=queries))
            blocks.add(first_query, selected)
            if not blocks.complete:
                return
            del layer_blocks[layer]
            finished.add(layer)
            query_rows = blocks.query_rows()
            maps = encode_rows(query_rows[:, layout.special_count :])
            specials = float32_bytes(query_rows[:, : layout.special_count])
            reduced.maps.append(maps)
            reduced.specials.append(specials)
            if size:
                reduced.matrices.append(encode_rows(blocks.matrices().flatten(0, 1)))
            on_layer(maps, specials)

        self.busy = True
        try:
            if rerun:
                kept = None if keep_cache else KeptQueriesKeys(self.cache_budget, self.source.layer_count)
                # max-pooled blocks come from scores and sdpa's log-sum-exp where it keeps them
                scores = bool(size) and self.pooling == "max" and not keep_cache
                with keeping(kept), accepting_scores(scores):
                    outputs = self.capture(run, on_block, wanted)
                self.kept = kept if kept is not None and kept.complete() else None
            else:
                outputs = None
                for layer, attention in enumerate(self.cache or []):
                    on_block(layer, 0, attention)
        finally:
            self.busy = False
        if len(reduced.maps) != len(rows):
            raise RuntimeError(
                f"{self.source.name} handed over attention for {len(reduced.maps)} of the {len(rows)} "
                "layers shown: a grid with missing layers is not drawn (no attention module ran, or a "
                "layer's blocks of queries did not cover it)"
            )
        if rerun:
            self.cache = [_joined(cache[layer]) for layer in sorted(cache)] if keep_cache else None
        self.input = run
        return reduced, outputs

    def capture(self, run: RunInput, on_block: AttentionCallback, rows: Sequence[int] | None = None) -> Any:
        """Run the source on `run`, whole layers or, when a layer is larger than `block_bytes`, blocks
        of queries (outputs stay those of the model's attention); only query rows `rows` when given."""
        block_bytes = self.block_bytes if self.in_blocks(run.layout) else None
        if rows is None:
            return self.source.capture(run.model_input, on_block, block_bytes)
        return self.source.capture(run.model_input, on_block, block_bytes, rows=rows)

    def replay(self, on_block: AttentionCallback, layer: int) -> None:
        """Hand the current input's attention to `on_block` again, layer `layer` (0-based) at least: from
        the cache, from the kept queries and keys (that layer only), or by running the source until
        `on_block` raises `StopCapture` (it has what it needs)."""
        run = self.current()
        with contextlib.suppress(StopCapture):
            if self.cache is None and self.kept is not None:
                for first_query, weights in self.kept.layers[layer].weights(self.block_bytes):
                    on_block(layer, first_query, weights[0])
            elif self.cache is None:
                self.capture(run, on_block)
            for layer, attention in enumerate(self.cache or []):
                on_block(layer, 0, attention)

    def full_attention(self, layer: int) -> torch.Tensor:
        """Attention of layer `layer` (1-based, checked) of the current input [heads, queries, keys]."""
        if self.cache is not None:
            return self.cache[layer - 1]
        blocks: list[torch.Tensor] = []
        queries = self.current().layout.query_count

        def keep(position: int, first_query: int, weights: torch.Tensor) -> None:
            if position == layer - 1:
                blocks.append(weights.float().cpu())
                if first_query + weights.shape[1] == queries:
                    raise StopCapture

        self.replay(keep, layer - 1)
        return torch.cat(blocks, dim=1)

    def head_reductions(self, layer: int, head: int, matrix_size: int) -> LayerBlocks:
        """One head's exact query rows and its matrix pooled to `matrix_size` (1-based, checked numbers)."""
        run = self.current()
        reductions = LayerBlocks(run.query, matrix_size, self.pooling, queries=run.layout.query_count)

        def keep(position: int, first_query: int, weights: torch.Tensor) -> None:
            if position == layer - 1:
                reductions.add(first_query, weights[head - 1 : head])
                if reductions.complete:
                    raise StopCapture

        self.replay(keep, layer - 1)
        return reductions

    def head_region(
        self, layer: int, head: int, rows: tuple[int, int], columns: tuple[int, int], limit: int
    ) -> torch.Tensor:
        """One head's attention from queries `rows` = (first, stop) to keys `columns`, exact up to
        `limit` tokens a side and pooled beyond (1-based, checked layer and head numbers)."""
        layout = self.current().layout
        queries, keys = layout.query_count, layout.token_count
        (first_row, stop_row), (first_column, stop_column) = rows, columns
        if not (0 <= first_row < stop_row <= queries and 0 <= first_column < stop_column <= keys):
            raise ValueError(
                f"region rows {rows}, columns {columns} is not inside the {queries} x {keys} tokens"
            )
        height, width = min(stop_row - first_row, limit), min(stop_column - first_column, limit)
        pieces: list[torch.Tensor] = []

        def keep(position: int, first_query: int, weights: torch.Tensor) -> None:
            if position != layer - 1:
                return
            low, high = max(first_row, first_query), min(stop_row, first_query + weights.shape[1])
            if low < high:
                block = weights[
                    head - 1 : head, low - first_query : high - first_query, first_column:stop_column
                ]
                pieces.append(pool_columns(block, width, self.pooling))
            if first_query + weights.shape[1] >= stop_row:
                raise StopCapture

        self.replay(keep, layer - 1)
        return pool_rows(torch.cat(pieces, dim=1), height, self.pooling)[0].cpu()

    def forget(self) -> None:
        """Let go of the attention kept (the widget was closed)."""
        self.cache = None
        self.kept = None

    def _layer_bytes(self, layout: TokenLayout) -> int:
        return self.source.head_count * layout.query_count * layout.token_count * 4

    def _cache_bytes(self, layout: TokenLayout) -> int:
        return self.source.layer_count * self._layer_bytes(layout)


def _joined(blocks: list[torch.Tensor]) -> torch.Tensor:
    """A layer's attention from its blocks of queries (one block: as it is, no copy)."""
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
