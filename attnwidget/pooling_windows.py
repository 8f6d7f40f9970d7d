"""Torch's adaptive pooling windows, shared by the poolings of weights (`reduce`) and of scores
(`score_blocks`): window i of `size` over `length` entries covers [floor(i length / size),
ceil((i + 1) length / size))."""

from __future__ import annotations

import functools

import torch


def window_bounds(cell: int, length: int, size: int) -> tuple[int, int]:
    """[start, end) of window `cell` of `size` adaptive windows over `length` entries."""
    return cell * length // size, -(-(cell + 1) * length // size)


@functools.lru_cache(maxsize=64)
def adaptive_windows(length: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """[size, width] indices of each adaptive window's entries (its last repeated to the widest
    window's width) and their weights in the window's mean (0 for the repeats), on `device`
    (computed once per length, size and device: do not write to them)."""
    cells = torch.arange(size)
    starts, ends = cells * length // size, -(-(cells + 1) * length // size)
    index = starts[:, None] + torch.arange(int((ends - starts).max()))
    weights = (index < ends[:, None]) / (ends - starts)[:, None]
    return torch.minimum(index, ends[:, None] - 1).to(device), weights.to(device)
