"""`score_blocks`: sdpa's own outputs with the kernel's log-sum-exp kept, and weights and max-pooled
keys from scores and log-sum-exp equal to the softmax's (`softmax_rows`, eager attention's formula)."""

import pytest
import torch
import torch.nn.functional as F

from attnwidget import score_blocks
from attnwidget.reduce import pool_columns
from attnwidget.score_blocks import ScoreBlock, rows_seeing_no_key, spread_evenly
from attnwidget.sdpa_kernels import LogSumExpRecorder
from attnwidget.softmax_rows import block_scores, softmax_rows

BATCH, HEADS, KEYS, DIM = 2, 6, 23, 8


def tensors(key_heads: int = HEADS, dtype: torch.dtype = torch.float32):
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(BATCH, HEADS, KEYS, DIM, generator=generator) * 2
    key = torch.randn(BATCH, key_heads, KEYS, DIM, generator=generator) * 2
    value = torch.randn(BATCH, key_heads, KEYS, DIM, generator=generator)
    return query.to(dtype), key.to(dtype), value.to(dtype)


def allowed_with_padding() -> torch.Tensor:
    allowed = (torch.arange(KEYS)[:, None] >= torch.arange(KEYS))[None, None].repeat(BATCH, 1, 1, 1)
    allowed[0, :, :, :3] = False
    allowed[0, :, :3, 0] = True  # as transformers' sdpa masks: a padding row sees its first key
    return allowed


def blind_rows() -> torch.Tensor:
    allowed = allowed_with_padding()
    allowed[0, :, :3] = False  # padding rows that see no key: eager spreads them over every key
    return allowed


MASKS = {
    "none": lambda: (None, False),
    "rows that see no key": lambda: (blind_rows(), False),
    "causal": lambda: (None, True),
    "boolean": lambda: (allowed_with_padding(), False),
    "additive": lambda: (torch.where(allowed_with_padding(), 0.0, torch.finfo(torch.float32).min), False),
}


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize(
    ("key_heads", "dtype"), [(HEADS, torch.float32), (2, torch.float32), (HEADS, torch.bfloat16)]
)
def test_the_recorder_returns_sdpas_own_output_and_its_log_sum_exp(mask_name, key_heads, dtype):
    query, key, value = tensors(key_heads, dtype)
    mask, causal = MASKS[mask_name]()
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.to(dtype)
    gqa = key_heads != HEADS
    expected = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, is_causal=causal, enable_gqa=gqa
    )
    with torch.no_grad(), LogSumExpRecorder() as recorder:
        output = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, is_causal=causal, enable_gqa=gqa
        )
    assert torch.equal(output, expected)  # the same kernel on the same inputs
    assert recorder.log_sum_exp is not None and recorder.log_sum_exp.shape == (BATCH, HEADS, KEYS)
    if dtype == torch.float32 and rows_seeing_no_key(mask) is None:
        scores, _ = block_scores(query, key, mask, slice(0, KEYS), causal=causal)
        torch.testing.assert_close(
            recorder.log_sum_exp, torch.logsumexp(scores, dim=-1), atol=1e-5, rtol=1e-5
        )


def test_the_recorder_keeps_nothing_where_sdpa_needs_gradients():
    query, key, value = (tensor.requires_grad_() for tensor in tensors())
    with LogSumExpRecorder() as recorder:
        output = F.scaled_dot_product_attention(query, key, value)
    assert recorder.log_sum_exp is None and output.requires_grad


@pytest.mark.parametrize("rows", [slice(0, 5), slice(5, 17), slice(17, 24)])
def test_max_pooled_keys_in_even_windows_equal_the_softmaxs(rows):
    """24 keys: windows of 2, 3, 4 and 6 keys, whole ones taken by one reshape and the one a causal
    block's last key cuts taken apart."""
    generator = torch.Generator().manual_seed(1)
    query, key = (torch.randn(1, HEADS, 24, DIM, generator=generator) * 2 for _ in range(2))
    value = torch.randn(1, HEADS, 24, DIM, generator=generator)
    with torch.no_grad(), LogSumExpRecorder() as recorder:
        F.scaled_dot_product_attention(query, key, value, is_causal=True)
    expected = softmax_rows(query, key, None, rows, causal=True)[0]
    scores, _ = block_scores(query, key, None, rows, causal=True, keys_first=True)
    block = ScoreBlock(scores, recorder.log_sum_exp[:, :, rows], 24)[0]
    for size in (12, 8, 6, 4):
        torch.testing.assert_close(block.max_pooled_keys(size), pool_columns(expected, size))


@pytest.fixture(params=["slabs", "gathered"])
def uneven_windows(request, monkeypatch):
    """Uneven windows of keys pooled a slab at a time (the CPU's way) or gathered at once (the way of
    other devices), both run here on the CPU."""
    if request.param == "gathered":
        monkeypatch.setattr(score_blocks, "SLAB_DEVICES", ())
    return request.param


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("rows", [slice(0, 5), slice(5, 17), slice(17, 23), torch.tensor([9, 2, 20])])
def test_weights_and_max_pooled_keys_equal_the_softmaxs(mask_name, rows, uneven_windows):
    query, key, value = tensors(key_heads=2)
    mask, causal = MASKS[mask_name]()
    with torch.no_grad(), LogSumExpRecorder() as recorder:
        F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=causal, enable_gqa=True)
    expected = softmax_rows(query, key, mask, rows, causal=causal)
    scores, _ = block_scores(query, key, mask, rows, causal=causal, keys_first=True)
    block = ScoreBlock(scores, recorder.log_sum_exp[:, :, rows], KEYS)
    blind = rows_seeing_no_key(mask)
    assert (blind is None) == (mask_name != "rows that see no key")
    block = block if blind is None else spread_evenly(block, blind[:, :, rows])
    assert block.shape == expected.shape
    torch.testing.assert_close(block.weights(), expected)
    torch.testing.assert_close(block.weights(slice(1, 3)), expected[:, :, 1:3])
    for size in (4, 7, 23, 40):  # uneven windows, windows past the keys a causal block sees, none
        pooled = pool_columns(expected.flatten(0, 1), size).unflatten(0, (BATCH, HEADS))
        torch.testing.assert_close(block.max_pooled_keys(size), pooled)
    unbatched = block[1].index_select(0, torch.tensor([4, 0]))
    torch.testing.assert_close(unbatched.max_pooled_keys(7), pool_columns(expected[1, [4, 0]], 7))
