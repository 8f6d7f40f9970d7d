"""Attention weights of a block of query rows, softmax(q k^T * scaling + mask), computed the short way.

For architectures whose eager attention is exactly that formula (`eager_forms`: the plain softmax
form), `softmax_rows` gives the weights eager attention would, with less work than calling it:
- the scaling is applied to the block's queries, not to its scores, and the mask is added in place;
- grouped-query heads share their key head without repeating it (no `repeat_kv` copy);
- keys that no row of the block may see (the future, under a causal or sliding mask) are not
  scored: their weights are exactly 0 in eager attention too, since exp(min - max) underflows.
  A block of the first rows of a causal layer scores a few keys, not all of them.
Weights are float32 (eager's softmax runs in float32 and may round them to the model's dtype).
"""

from __future__ import annotations

import torch

from .capture import buffer_start


def softmax_rows(
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    rows: slice | torch.Tensor,
    *,
    scaling: float | None = None,
    causal: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weights [batch, heads, block rows, keys] (float32) of the query rows `rows` of one layer.

    `query` [batch, heads, queries, dim], `key` [batch, key heads, keys, dim] (heads a multiple of key
    heads); `attention_mask` as sdpa gets it: None, boolean (True: may attend) or additive float,
    broadcastable to [batch, heads, queries, keys]; `causal` where a None mask stands for the causal
    one. `scaling` defaults to dim ** -0.5, as eager attention's does. With `out` (a flat float32
    buffer, large enough) the weights are a view of its start; on the CPU float32 scores are computed
    there and their softmax taken in place: no new memory for a block.
    """
    in_place = out is not None and query.dtype == torch.float32 and query.device.type == "cpu"
    scores, seen = block_scores(
        query, key, attention_mask, rows, scaling=scaling, causal=causal, out=out if in_place else None
    )
    shape = (*scores.shape[:-1], key.shape[-2])
    target = buffer_start(out, shape)
    if seen == key.shape[-2]:
        return torch.softmax(scores, dim=-1, dtype=torch.float32, out=target)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32)  # read before `target` is written
    whole = weights.new_empty(shape) if target is None else target
    whole[..., :seen] = weights
    whole[..., seen:] = 0
    return whole


def block_scores(
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    rows: slice | torch.Tensor,
    *,
    scaling: float | None = None,
    causal: bool = False,
    keys_first: bool = False,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """(scores, seen): the masked scores q k^T * scaling + mask of the query rows `rows` over the
    `seen` leading keys (those after are hidden from every row of the block), in the query's dtype,
    masked entries at its minimum; [batch, heads, rows, seen], or [batch, heads, seen, rows] with
    `keys_first` (each window of keys then contiguous), written to the start of `out` (a flat buffer
    of the query's dtype, large enough) where given. Arguments as `softmax_rows`."""
    batch, heads, queries, dim = query.shape
    key_heads, keys = key.shape[1], key.shape[-2]
    block = query[:, :, rows]
    count = block.shape[-2]
    additive, allowed = None, None
    if attention_mask is not None and attention_mask.dtype != torch.bool:
        additive = _rows_of(attention_mask, rows, queries)
    elif attention_mask is not None:
        allowed = _rows_of(attention_mask, rows, queries)
    elif causal and queries > 1:
        row_numbers = torch.arange(queries, device=query.device)[rows]
        allowed = (row_numbers[:, None] >= torch.arange(keys, device=query.device))[None, None]
    if allowed is None:
        first_masked, seen = keys, keys
    elif causal and attention_mask is None and isinstance(rows, slice):  # known without a device sync
        first_masked, seen = min(rows.start + 1, keys), min(rows.stop, keys)
    else:
        first_masked, seen = _masked_span(allowed)

    scaled = block * (dim**-0.5 if scaling is None else scaling)
    grouped = scaled.reshape(batch, key_heads, (heads // key_heads) * count, dim)
    seen_keys = key[:, :, :seen]
    if keys_first:
        shape = (batch, key_heads, seen, grouped.shape[-2])
        product = buffer_start(out, shape)
        scores = torch.matmul(seen_keys, grouped.transpose(-1, -2), out=product)
        scores = scores.view(batch, key_heads, seen, -1, count)
        scores = scores.transpose(2, 3).reshape(batch, heads, seen, count)
    else:
        shape = (batch, key_heads, grouped.shape[-2], seen)
        product = buffer_start(out, shape)
        scores = torch.matmul(grouped, seen_keys.transpose(-1, -2), out=product)
        scores = scores.view(batch, heads, count, seen)
    rows_last = scores.transpose(-1, -2) if keys_first else scores  # a view: filled in place
    if additive is not None:
        rows_last += additive[..., :seen]
    if first_masked < seen:
        hidden = ~allowed[..., first_masked:seen]
        rows_last[..., first_masked:].masked_fill_(hidden, torch.finfo(scores.dtype).min)
    return scores, seen


def _rows_of(mask: torch.Tensor, rows: slice | torch.Tensor, queries: int) -> torch.Tensor:
    """The mask's rows `rows` (a mask of one row, broadcast over the queries, as it is)."""
    return mask[..., rows, :] if mask.shape[-2] == queries and queries > 1 else mask


def _masked_span(allowed: torch.Tensor) -> tuple[int, int]:
    """(first key some row of the block may not see, how many leading keys must be scored: up to the
    last any row may see). Every key is scored when a row may see none (eager then spreads that row
    evenly over every key)."""
    keys = allowed.shape[-1]
    columns = allowed.flatten(0, -2)
    hidden = (~columns.all(dim=0)).nonzero()
    first_masked = int(hidden.min()) if len(hidden) else keys
    if not bool(columns.any(dim=-1).all()):
        return first_masked, keys
    return first_masked, int(columns.any(dim=0).nonzero().max()) + 1
