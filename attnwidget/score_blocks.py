"""A block of query rows' attention kept as its scores and each row's log-sum-exp.

sdpa's fused kernels compute every row's log-sum-exp (the log of the softmax's denominator) and
throw it away. Kept (`sdpa_kernels.LogSumExpRecorder`), it turns a row's weights into
exp(score - log-sum-exp): no softmax pass over the keys, and a max-pooled window of keys needs one
exp per window, not per key, since exp is increasing: max_j exp(s_j - lse) = exp(max_j s_j - lse).
`ScoreBlock` holds the scores keys-first, so each window of keys is a contiguous slab.

A consumer that reduces blocks by max pooling says so with `accepting_scores`; the fast path then
hands it `ScoreBlock`s in place of weight tensors, where the kernel's log-sum-exp was recorded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .pooling_windows import adaptive_windows, window_bounds

#: Devices on which uneven windows of keys are max-pooled a slab at a time (on the CPU that is
#: faster than gathering them); elsewhere one gather takes every window, as a launch per window
#: would cost more than the pooling.
SLAB_DEVICES = ("cpu",)

_accepting: ContextVar[bool] = ContextVar("attnwidget_accepting_scores", default=False)


@contextmanager
def accepting_scores(accept: bool = True) -> Iterator[None]:
    """Within the block, fast captures may hand `ScoreBlock`s to the block callback (when `accept`)."""
    token = _accepting.set(accept)
    try:
        yield
    finally:
        _accepting.reset(token)


def scores_accepted() -> bool:
    """Whether the running capture's consumer takes `ScoreBlock`s."""
    return _accepting.get()


@dataclass(frozen=True)
class ScoreBlock:
    """The attention of a block of query rows: weights [..., heads, rows, keys] = exp(score - lse).

    Stands in for that weights tensor where a consumer accepts it (`accepting_scores`): its `shape`
    and `device` are the weights', `block[b]` takes batch entry `b`, `index_select(0, heads)` heads of an
    unbatched block.
    """

    scores: torch.Tensor
    """[..., heads, seen keys, rows], the model's dtype; masked entries at its minimum. Keys past
    `seen` are hidden from every row (their weights are 0). The fast path's blocks of one layer
    share this storage: it holds until the next block is made."""
    log_sum_exp: torch.Tensor
    """[..., heads, rows], float32: each row's log of the sum of exp(scores)."""
    keys: int

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*self.log_sum_exp.shape, self.keys))

    @property
    def device(self) -> torch.device:
        return self.scores.device

    def __getitem__(self, batch: int) -> ScoreBlock:
        return ScoreBlock(self.scores[batch], self.log_sum_exp[batch], self.keys)

    def index_select(self, dim: int, index: torch.Tensor) -> ScoreBlock:
        if dim != 0 or self.scores.ndim != 3:
            raise ValueError("a ScoreBlock selects heads (dimension 0) of an unbatched block only")
        return ScoreBlock(
            self.scores.index_select(0, index), self.log_sum_exp.index_select(0, index), self.keys
        )

    def weights(self, rows: slice | torch.Tensor = slice(None)) -> torch.Tensor:
        """float32 weights [..., heads, len(rows), keys] of the block's rows `rows`."""
        seen = self.scores.shape[-2]
        scores = self.scores[..., rows].transpose(-1, -2).float()
        picked = torch.exp(scores - self.log_sum_exp[..., rows, None])
        return F.pad(picked, (0, self.keys - seen)) if seen < self.keys else picked

    def max_pooled_keys(self, size: int) -> torch.Tensor:
        """float32 [..., heads, rows, size]: each row's weights max-pooled over the keys in torch's
        adaptive windows (those of `reduce.pool_columns`); all its weights where `size` >= keys."""
        if size >= self.keys:
            return self.weights()
        seen = self.scores.shape[-2]
        begun = min(size, -(-seen * size // self.keys))  # windows that start before `seen`
        maxima = self.scores.new_full(
            (*self.log_sum_exp.shape[:-1], size, self.log_sum_exp.shape[-1]), -torch.inf
        )  # a window past the keys seen weighs 0
        if self.keys % size == 0:  # even windows: the whole ones by one reshape, then the one cut
            width = self.keys // size
            whole = seen // width
            slabs = self.scores[..., : whole * width, :].unflatten(-2, (whole, width))
            torch.amax(slabs, dim=-2, out=maxima[..., :whole, :])
            if whole < begun:
                torch.amax(self.scores[..., whole * width :, :], dim=-2, out=maxima[..., whole, :])
        elif self.scores.device.type in SLAB_DEVICES:  # one slab a window
            for cell in range(begun):
                start, end = window_bounds(cell, self.keys, size)
                torch.amax(self.scores[..., start : min(end, seen), :], dim=-2, out=maxima[..., cell, :])
        else:  # every window's keys gathered at once (a window cut by `seen` repeats its last key seen)
            index = adaptive_windows(self.keys, size, self.scores.device)[0][:begun].clamp(max=seen - 1)
            gathered = self.scores.index_select(-2, index.flatten()).unflatten(-2, tuple(index.shape))
            torch.amax(gathered, dim=-2, out=maxima[..., :begun, :])
        return torch.exp(maxima.float().transpose(-1, -2) - self.log_sum_exp[..., None])


def rows_seeing_no_key(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """[batch, 1 or heads, queries], True at the query rows an sdpa mask (None, boolean: True where
    it may attend, or additive) lets attend to no key; None when there are none. sdpa's kernels give
    such a row a log-sum-exp of 0 and an output of 0; eager attention spreads it over every key."""
    if attention_mask is None:
        return None
    if attention_mask.dtype == torch.bool:
        blind = ~attention_mask.any(dim=-1)
    else:
        blind = ~(attention_mask > torch.finfo(attention_mask.dtype).min / 2).any(dim=-1)
    return blind if bool(blind.any()) else None


def spread_evenly(block: ScoreBlock, blind: torch.Tensor) -> ScoreBlock:
    """`block` with its rows `blind` [..., 1 or heads, rows] (rows that see no key, every key scored)
    spread evenly over every key, as eager attention does: scores 0 and log-sum-exp log(keys)."""
    scores = block.scores.masked_fill(blind[..., None, :], 0)
    log_sum_exp = torch.where(blind, math.log(block.keys), block.log_sum_exp)
    return ScoreBlock(scores, log_sum_exp, block.keys)
