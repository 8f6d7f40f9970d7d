"""Reductions of one layer's attention, run on the model's device as each layer finishes.

All functions take `attention` of shape [H, N, N] (heads, queries, keys; rows sum to 1) and return
tensors on the same device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def query_rows(attention: torch.Tensor, query: Sequence[int]) -> torch.Tensor:
    """Attention from the query to every token, [H, N]: the mean of the query tokens' rows."""
    index = torch.as_tensor(list(query), device=attention.device, dtype=torch.long)
    return attention.index_select(1, index).float().mean(dim=1)


def pool_matrix(attention: torch.Tensor, size: int, mode: str = "max") -> torch.Tensor:
    """Token x token matrices pooled to [H, size, size] (adaptive windows, as torch defines them)."""
    if size >= attention.shape[-1]:
        return attention.float()
    pool = {"max": F.adaptive_max_pool2d, "mean": F.adaptive_avg_pool2d}.get(mode)
    if pool is None:
        raise ValueError(f"unknown pooling {mode!r}: use 'max' or 'mean'")
    return pool(attention.float(), (size, size))


def matrix_size_for_budget(tokens: int, tiles: int, budget_bytes: int) -> int:
    """Side of the pooled matrices so that `tiles` of them at one byte a value fit in `budget_bytes`.

    The side is a whole fraction of `tokens` (tokens / k rounded up) so pooled windows stay even.
    """
    largest = max(1, math.isqrt(budget_bytes // max(1, tiles)))
    factor = math.ceil(tokens / largest)
    return math.ceil(tokens / factor)
