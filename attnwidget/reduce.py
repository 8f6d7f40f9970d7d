"""Reductions of one layer's attention, run on the model's device as each layer finishes.

All functions take `attention` of shape [H, N, N] (heads, queries, keys; rows sum to 1) and return
tensors on the same device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .pooling_windows import adaptive_windows, window_bounds
from .score_blocks import ScoreBlock


def query_rows(attention: torch.Tensor, query: Sequence[int]) -> torch.Tensor:
    """Attention from the query to every token, [H, N]: the mean of the query tokens' rows."""
    index = torch.as_tensor(list(query), device=attention.device, dtype=torch.long)
    return attention.index_select(1, index).float().mean(dim=1)


def pool_matrix(attention: torch.Tensor, size: int, mode: str = "max") -> torch.Tensor:
    """Token x token matrices pooled to [H, size, size] (adaptive windows, as torch defines them)."""
    if size >= attention.shape[-1]:
        return attention.float()
    return pool2d(attention.float(), (size, size), mode)


def pool_columns(rows: torch.Tensor, size: int, mode: str = "max") -> torch.Tensor:
    """Rows [H, R, K] pooled along the keys to [H, R, size], the windows `pool_matrix` uses."""
    if size >= rows.shape[-1]:
        return rows.float()
    return pool2d(rows.float(), (rows.shape[-2], size), mode)


def pool_rows(columns: torch.Tensor, size: int, mode: str = "max") -> torch.Tensor:
    """Finish `pool_columns`: [H, N, C] pooled along the queries to [H, size, C].

    Both poolings use separable windows, so `pool_rows(pool_columns(a, s), s)` is `pool_matrix(a, s)`
    (up to float rounding for the mean): a layer can be pooled a block of queries at a time.
    """
    if size >= columns.shape[-2]:
        return columns.float()
    return pool2d(columns.float(), (size, columns.shape[-1]), mode)


class LayerBlocks:
    """One layer's reductions, fed a block of query rows at a time: the query tokens' mean row and the
    pooled matrices come out equal to `query_rows` and `pool_matrix` of the whole layer."""

    def __init__(self, query: Sequence[int], matrix_size: int, pooling: str = "max", *, queries: int):
        self.query = sorted(set(query))
        self.matrix_size, self.pooling = matrix_size, pooling
        self.queries = queries
        """The layer's query rows: the last block ends there."""
        self.rows_seen = 0
        self._row_sum: torch.Tensor | None = None
        self._pooled_columns: list[torch.Tensor] = []
        self._pooled_rows: list[torch.Tensor] = []
        self._windows_pooled = 0
        self._columns_from = 0
        """The first query row of `_pooled_columns`."""
        self._matrices: torch.Tensor | None = None

    def add(self, first_query: int, block: torch.Tensor | ScoreBlock) -> None:
        """Take the rows `first_query ..` of the layer, `block` [H, rows, keys] (weights, or a
        `ScoreBlock` of them); in order, no gaps."""
        if first_query != self.rows_seen:
            raise ValueError(f"query rows from {first_query} after {self.rows_seen} rows: blocks must follow")
        stop = first_query + block.shape[1]
        inside = [row - first_query for row in self.query if first_query <= row < stop]
        if inside:
            if inside[-1] + 1 - inside[0] == len(inside):  # a run of rows (every patch): no copy
                picked: slice | torch.Tensor = slice(inside[0], inside[-1] + 1)
            else:
                picked = torch.as_tensor(inside, device=block.device)
            rows = block.weights(picked) if isinstance(block, ScoreBlock) else block[:, picked]
            total = rows.float().sum(dim=1)
            self._row_sum = total if self._row_sum is None else self._row_sum + total
        self.rows_seen = stop
        if self.matrix_size:
            self._pool(block, whole_layer=first_query == 0 and stop == self.queries)

    def _pool(self, block: torch.Tensor | ScoreBlock, whole_layer: bool) -> None:
        """Pool a block's keys (a `ScoreBlock` from its scores where max pooling asks for no weights)."""
        if isinstance(block, ScoreBlock) and self.pooling == "max":
            self._pooled_columns.append(block.max_pooled_keys(self.matrix_size))
            self._pool_whole_windows()
            return
        weights = block.weights() if isinstance(block, ScoreBlock) else block
        if whole_layer:
            self._matrices = pool_matrix(weights, self.matrix_size, self.pooling)
        else:
            self._pooled_columns.append(pool_columns(weights, self.matrix_size, self.pooling))
            self._pool_whole_windows()

    def _pool_whole_windows(self) -> None:
        """Pool the rows of every window whose rows have all been taken, so a long layer keeps its
        pooled rows and at most a window and a block of pending ones, not one per query."""
        queries, size, done = self.queries, self.matrix_size, self._windows_pooled
        if size >= queries:
            return
        whole = self.rows_seen * size // queries  # window i ends at ceil((i + 1) queries / size)
        if whole == done:
            return
        columns = self._pooled_columns[0]
        if len(self._pooled_columns) > 1:
            columns = torch.cat(self._pooled_columns, dim=1)
        first = window_bounds(whole, queries, size)[0]  # the next window's first row: rows stay pending
        if queries % size == 0:  # even windows, none overlapping: a reshape
            rows = columns[:, : first - self._columns_from]
            pooled = pool2d(rows, (whole - done, rows.shape[-1]), self.pooling)
        else:  # each window's rows gathered (its last repeated to the widest window's width)
            index, weights = adaptive_windows(queries, size, columns.device)
            windows = index[done:whole] - self._columns_from
            picked = columns.index_select(1, windows.flatten()).unflatten(1, windows.shape)
            if self.pooling == "max":
                pooled = picked.amax(dim=2)
            else:
                pooled = (picked * weights[done:whole, :, None].to(columns.dtype)).sum(dim=2)
        self._pooled_rows.append(pooled)
        self._windows_pooled = whole
        self._pooled_columns = [columns[:, first - self._columns_from :]] if whole < size else []
        self._columns_from = first

    @property
    def complete(self) -> bool:
        return self.rows_seen == self.queries

    def query_rows(self) -> torch.Tensor:
        """[H, keys]: the mean of the query tokens' rows."""
        return self._row_sum / len(self.query)

    def matrices(self) -> torch.Tensor:
        """[H, size, size]: the layer's matrices pooled to `matrix_size` (fewer rows or columns where
        the layer has fewer query or key tokens)."""
        if self._matrices is not None:
            return self._matrices
        if self._pooled_rows:
            return torch.cat(self._pooled_rows, dim=1)
        return torch.cat(self._pooled_columns, dim=1)  # fewer queries than `matrix_size`: rows as they are


def matrix_size_for_budget(tokens: int, tiles: int, budget_bytes: int) -> int:
    """Side of the pooled matrices so that `tiles` of them at one byte a value fit in `budget_bytes`.

    The side is a whole fraction of `tokens` (tokens / k rounded up) so pooled windows stay even.
    """
    largest = max(1, math.isqrt(budget_bytes // max(1, tiles)))
    factor = math.ceil(tokens / largest)
    return math.ceil(tokens / factor)


#: On the CPU, max pooling gathers its windows where the gathered copy has at most this many values:
#: 1.5x to 3x faster than adaptive pooling for a ViT-B/16 layer (12 x 197 x 197), slower where the
#: copy outgrows the caches (a DINOv2-L layer, 16 x 1,370 x 1,370); `benchmarks/fast_capture.py`.
CPU_GATHERED_MAX_VALUES = 1 << 20


def pool2d(values: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """The last two dimensions of `values` [..., R, C] pooled to `size` by torch's adaptive windows:
    by a reshape where the windows divide evenly, else by gathering each window (rows first) on an
    accelerator, where adaptive pooling of wide windows is slow, and for small max poolings on the CPU
    (`CPU_GATHERED_MAX_VALUES`), else by torch's adaptive pooling."""
    if mode not in ("max", "mean"):
        raise ValueError(f"unknown pooling {mode!r}: use 'max' or 'mean'")
    (rows, columns), (out_rows, out_columns) = values.shape[-2:], size
    if rows % out_rows == 0 and columns % out_columns == 0:
        windows = values.reshape(*values.shape[:-2], out_rows, rows // out_rows, out_columns, -1)
        return windows.amax(dim=(-3, -1)) if mode == "max" else windows.mean(dim=(-3, -1))
    if values.device.type == "cpu" and not (
        mode == "max" and _gathered_values(values, out_rows) <= CPU_GATHERED_MAX_VALUES
    ):
        pool = F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d
        return pool(values, size)
    return _gathered(_gathered(values, out_rows, mode, dim=-2), out_columns, mode, dim=-1)


def _gathered_values(values: torch.Tensor, out_rows: int) -> int:
    """How many values gathering the rows' windows of `values` [..., R, C] copies."""
    rows = values.shape[-2]
    width = adaptive_windows(rows, out_rows, values.device)[0].shape[1] if out_rows < rows else 1
    return values.numel() // rows * min(rows, out_rows) * width


def _gathered(values: torch.Tensor, size: int, mode: str, dim: int) -> torch.Tensor:
    """`values` pooled along `dim` (-1 or -2) to `size` adaptive windows (start floor(i N / size), end
    ceil((i + 1) N / size)), each window's entries gathered (padded by repeating its last entry)."""
    length = values.shape[dim]
    if size >= length:
        return values
    index, weights = adaptive_windows(length, size, values.device)
    width = index.shape[1]
    windows = values.index_select(dim, index.flatten()).unflatten(dim, (size, width))
    if mode == "max":
        return windows.amax(dim=dim)
    weights = weights.to(values.dtype)
    return (windows * (weights if dim == -1 else weights[:, :, None])).sum(dim=dim)
