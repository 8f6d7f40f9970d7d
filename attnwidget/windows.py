"""Windowed attention (Swin and its kin) put back on the patch grid: pure functions, tensors in and out.

A windowed layer rolls its feature map of `resolution` patches up and left by `shift` (a cyclic
shift), cuts it into `window` x `window` windows in row-major order and computes attention within
each window: weights [windows, heads, window², window²]. `window_tokens` says which patch of the
unrolled grid each window position holds, and `spread_rows` writes a block of query rows of the
layer over every patch of the grid, zero outside each query's window.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class WindowGrid:
    """How one windowed layer cut its patch grid: `resolution` (rows, columns) of patches, square
    windows of `window` patches a side, rolled by `shift` patches before the cut."""

    resolution: tuple[int, int]
    window: int
    shift: int

    @property
    def tokens(self) -> int:
        return self.resolution[0] * self.resolution[1]

    @property
    def window_count(self) -> int:
        rows, columns = self.resolution
        return (rows // self.window) * (columns // self.window)

    @property
    def padded(self) -> bool:
        """Whether the layer pads its grid to whole windows (the padding tokens take attention too)."""
        rows, columns = self.resolution
        return rows % self.window != 0 or columns % self.window != 0


def window_tokens(grid: WindowGrid) -> torch.Tensor:
    """[windows, window²]: the patch (row-major over `grid.resolution`) at each position of each window."""
    if grid.padded:
        raise ValueError(f"a {grid.resolution} grid is not cut into whole {grid.window}-patch windows")
    rows, columns = grid.resolution
    # torch.roll by -shift: position i of the rolled grid holds patch (i + shift) mod size.
    row_of = (torch.arange(rows) + grid.shift) % rows
    column_of = (torch.arange(columns) + grid.shift) % columns
    token = row_of[:, None] * columns + column_of[None, :]
    size = grid.window
    windows = token.view(rows // size, size, columns // size, size).permute(0, 2, 1, 3)
    return windows.reshape(-1, size * size)


def spread_rows(
    weights: torch.Tensor, grid: WindowGrid, first: int = 0, count: int | None = None
) -> torch.Tensor:
    """Query rows `first` .. `first + count` (patches, row-major) of a windowed layer over every patch.

    `weights` [windows, heads, window², window²] as the layer computed them; returns
    [heads, count, tokens], each row zero outside its query's window.
    """
    windows, heads, size2, _ = weights.shape
    if windows != grid.window_count or size2 != grid.window**2:
        raise ValueError(
            f"weights of shape {tuple(weights.shape)} do not cut a {grid.resolution} grid into "
            f"{grid.window} x {grid.window} windows ({grid.window_count} windows of {grid.window**2})"
        )
    count = grid.tokens - first if count is None else count
    members = window_tokens(grid).to(weights.device)
    # Where each patch sits: its window and its position in that window.
    window_of = torch.empty(grid.tokens, dtype=torch.long, device=weights.device)
    position_of = torch.empty_like(window_of)
    window_of[members.flatten()] = torch.arange(windows, device=weights.device).repeat_interleave(size2)
    position_of[members.flatten()] = torch.arange(size2, device=weights.device).repeat(windows)
    queries = torch.arange(first, first + count, device=weights.device)
    query_windows = window_of[queries]
    rows = weights[query_windows, :, position_of[queries], :]  # [count, heads, window²]
    keys = members[query_windows][:, None, :].expand(-1, heads, -1)
    spread = weights.new_zeros(count, heads, grid.tokens)
    spread.scatter_(2, keys, rows)
    return spread.transpose(0, 1)
