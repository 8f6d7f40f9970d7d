"""Reductions and the row encoding, against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnwidget import reduce
from attnwidget.encode import decode_rows, encode_rows, float32_bytes
from attnwidget.reduce import _gathered, matrix_size_for_budget, pool2d, pool_matrix, query_rows


def softmax_attention(heads: int = 3, tokens: int = 10, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(heads, tokens, tokens, generator=generator).mul(3).softmax(-1)


def test_query_rows_average_the_query_tokens():
    attention = softmax_attention()
    torch.testing.assert_close(query_rows(attention, [0]), attention[:, 0])
    torch.testing.assert_close(query_rows(attention, [2, 5]), (attention[:, 2] + attention[:, 5]) / 2)
    assert torch.allclose(query_rows(attention, range(1, 10)).sum(-1), torch.ones(3))


def test_max_pooling_keeps_every_peak_and_covers_adaptive_windows():
    attention = softmax_attention(tokens=13)
    pooled = pool_matrix(attention, 5)
    assert pooled.shape == (3, 5, 5)
    for i in range(5):
        rows = slice(i * 13 // 5, -(-(i + 1) * 13 // 5))
        for j in range(5):
            cols = slice(j * 13 // 5, -(-(j + 1) * 13 // 5))
            assert pooled[:, i, j].tolist() == attention[:, rows, cols].amax(dim=(1, 2)).tolist()
    assert pool_matrix(attention, 13).equal(attention)
    mean = pool_matrix(attention, 5, "mean")
    assert torch.allclose(mean[:, 0, 0], attention[:, 0:3, 0:3].mean(dim=(1, 2)))
    with pytest.raises(ValueError, match="unknown pooling"):
        pool_matrix(attention, 5, "median")


@pytest.mark.parametrize("size", [(5, 5), (13, 4), (3, 13), (6, 6), (12, 12)])
@pytest.mark.parametrize("mode", ["max", "mean"])
@pytest.mark.parametrize("gathered_on_cpu", [0, 1 << 20])
def test_every_way_of_pooling_takes_torch_adaptive_windows(size, mode, gathered_on_cpu, monkeypatch):
    """Reshaped (even windows, 6 of 12), adaptive (the CPU's large or mean pooling) and gathered (an
    accelerator's way and the CPU's small max pooling) pooling agree with torch's adaptive pooling."""
    monkeypatch.setattr(reduce, "CPU_GATHERED_MAX_VALUES", gathered_on_cpu)
    attention = softmax_attention(tokens=12 if size[0] in (6, 12) else 13)
    expected = (F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d)(attention, size)
    torch.testing.assert_close(pool2d(attention, size, mode), expected)
    gathered = _gathered(_gathered(attention, size[1], mode, dim=-1), size[0], mode, dim=-2)
    torch.testing.assert_close(gathered, expected)


@pytest.mark.parametrize(
    ("tokens", "tiles", "budget"), [(197, 144, 640 * 1024), (145, 64, 640 * 1024), (50, 4, 10**6)]
)
def test_matrix_size_fits_the_budget(tokens, tiles, budget):
    size = matrix_size_for_budget(tokens, tiles, budget)
    factor = math.ceil(tokens / size)
    assert size == math.ceil(tokens / factor)  # even pooling windows
    assert tiles * size * size <= budget
    if factor > 1:  # the next finer pooling would not fit
        finer = math.ceil(tokens / (factor - 1))
        assert tiles * finer * finer > budget


def test_row_encoding_round_trip_error_is_below_half_a_step():
    rows = torch.rand(6, 40) * torch.logspace(-4, 0, 6)[:, None]
    data, ranges = encode_rows(rows)
    assert len(data) == 6 * 40 and len(ranges) == 6 * 2 * 4
    decoded = decode_rows(data, ranges, 40)
    step = (rows.amax(1) - rows.amin(1)) / 255
    assert (np.abs(decoded - rows.numpy()) <= step[:, None].numpy() / 2 + 1e-9).all()
    # Every row keeps its full 0..255 contrast, however faint it is.
    quantised = np.frombuffer(data, dtype=np.uint8).reshape(6, 40)
    assert (quantised.min(1) == 0).all() and (quantised.max(1) == 255).all()


def test_constant_rows_encode_to_zero_without_dividing_by_zero():
    data, ranges = encode_rows(torch.full((2, 5), 0.2))
    assert set(data) == {0}
    np.testing.assert_allclose(decode_rows(data, ranges, 5), 0.2)


def test_non_finite_attention_is_refused():
    with pytest.raises(ValueError, match="NaN or infinite"):
        encode_rows(torch.tensor([[0.5, float("nan")]]))


def test_float32_bytes_are_little_endian():
    assert float32_bytes(torch.tensor([1.0])) == np.array([1.0], dtype="<f4").tobytes()


def test_decoder_rejects_mismatched_buffers():
    data, ranges = encode_rows(torch.rand(3, 4))
    with pytest.raises(ValueError):
        decode_rows(data, ranges[:-8], 4)
