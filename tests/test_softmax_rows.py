"""`softmax_rows` against the formula eager attention computes, softmax(q k^T * scaling + mask), and
against transformers' own `eager_attention_forward` (Llama's: grouped-query heads, float32 softmax)."""

import pytest
import torch
from transformers.models.llama.modeling_llama import eager_attention_forward

from attnwidget.softmax_rows import softmax_rows

BATCH, HEADS, KEY_HEADS, QUERIES, DIM = 2, 6, 2, 11, 8


def reference(query, key, additive, scaling):
    """Eager Llama attention's weights for the additive mask `additive` (None: full attention)."""
    module = torch.nn.Module()
    module.num_key_value_groups = query.shape[1] // key.shape[1]
    module.training = False
    value = torch.zeros_like(key)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    _, weights = eager_attention_forward(module, query, key, value, additive, scaling=scaling)
    return weights


def additive_of(allowed: torch.Tensor) -> torch.Tensor:
    return torch.where(allowed, 0.0, torch.finfo(torch.float32).min)


@pytest.fixture
def query_key():
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(BATCH, HEADS, QUERIES, DIM, generator=generator) * 3
    key = torch.randn(BATCH, KEY_HEADS, QUERIES, DIM, generator=generator) * 3
    return query, key


CAUSAL = torch.arange(QUERIES)[:, None] >= torch.arange(QUERIES)


@pytest.mark.parametrize("rows", [slice(0, 4), slice(4, 9), slice(9, 11), torch.tensor([7, 2, 10])])
def test_causal_rows_equal_eager_with_the_future_unscored(query_key, rows):
    query, key = query_key
    expected = reference(query, key, additive_of(CAUSAL)[None, None], 0.3)[:, :, rows]
    got = softmax_rows(query, key, None, rows, scaling=0.3, causal=True)
    torch.testing.assert_close(got, expected)
    assert got.dtype == torch.float32


def test_a_boolean_mask_with_padding_and_a_sliding_window(query_key):
    query, key = query_key
    allowed = CAUSAL & (torch.arange(QUERIES)[:, None] - torch.arange(QUERIES) < 4)
    allowed = allowed[None, None].repeat(BATCH, 1, 1, 1)
    allowed[0, :, :, :3] = False  # the first sequence is padded on the left
    allowed[0, :, :3] = False  # its padding rows see nothing: eager spreads them over every key
    expected = reference(query, key, additive_of(allowed), None)
    for rows in (slice(0, 2), slice(2, 6), slice(6, 11)):
        got = softmax_rows(query, key, allowed, rows)
        torch.testing.assert_close(got, expected[:, :, rows])
    assert torch.allclose(softmax_rows(query, key, allowed, slice(0, 2))[0, 0, 0], torch.tensor(1 / QUERIES))


def test_an_additive_mask_and_full_attention(query_key):
    query, key = query_key
    bias = torch.randn(1, HEADS, QUERIES, QUERIES)  # a position bias folded into the mask (BEiT)
    torch.testing.assert_close(
        softmax_rows(query, key, bias, slice(3, 8)), reference(query, key, bias, None)[:, :, 3:8]
    )
    torch.testing.assert_close(
        softmax_rows(query, key, None, slice(0, 5)), reference(query, key, None, None)[:, :, :5]
    )


def test_bf16_no_further_from_the_exact_weights_than_eager_in_bf16(query_key):
    query, key = (tensor.bfloat16() for tensor in query_key)
    exact = reference(query.float(), key.float(), additive_of(CAUSAL)[None, None], None)[:, :, 2:9]
    eager = reference(query, key, additive_of(CAUSAL)[None, None].bfloat16(), None)[:, :, 2:9]
    got = softmax_rows(query, key, None, slice(2, 9), causal=True)
    assert got.dtype == torch.float32
    assert (got - exact).abs().max() <= 1.5 * (eager.float() - exact).abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [slice(0, 11), slice(2, 6), torch.tensor([7, 2, 10])])
def test_weights_into_a_buffer_equal_new_weights_and_live_in_it(query_key, rows, dtype):
    query, key = (tensor.to(dtype) for tensor in query_key)
    buffer = torch.full((BATCH * HEADS * QUERIES * QUERIES + 5,), float("nan"))
    for causal in (False, True):  # causal rows 2..5 score only the keys up to 5: the rest is zero
        expected = softmax_rows(query, key, None, rows, causal=causal)
        got = softmax_rows(query, key, None, rows, causal=causal, out=buffer)
        assert torch.equal(got, expected) and got.data_ptr() == buffer.data_ptr()


def test_weighted_values_equal_eager_outputs_with_grouped_heads(query_key):
    from attnwidget.fast_attention import weighted_values

    query, key = query_key
    value = torch.randn(BATCH, KEY_HEADS, QUERIES, DIM + 3, generator=torch.Generator().manual_seed(1))
    module = torch.nn.Module()
    module.num_key_value_groups, module.training = HEADS // KEY_HEADS, False
    additive = additive_of(CAUSAL)[None, None]
    expected, _ = eager_attention_forward(module, query, key, value, additive, scaling=0.3)
    weights = softmax_rows(query, key, None, slice(0, QUERIES), scaling=0.3, causal=True)
    torch.testing.assert_close(weighted_values(weights, value), expected)
