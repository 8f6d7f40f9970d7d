"""`sdpa_kernels`: a fused kernel's log-sum-exp is kept only after it gave sdpa's own output and the
scores' log-sum-exp; the CUDA kernels are called as their operators' schemas (checked on meta tensors)
and ATen's `scaled_dot_product_attention` ask."""

import math
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
import transformers as tf
from test_fast_attention import SMALL, padded
from test_score_blocks import HEADS, KEYS, MASKS, tensors
from test_text import TEXT, eager_reference
from tiny_text_models import byte_level_tokenizer
from torch.nn.attention import SDPBackend

from attnwidget import sdpa_kernels
from attnwidget.score_blocks import ScoreBlock
from attnwidget.sdpa_kernels import (
    KERNELS,
    Call,
    LogSumExpRecorder,
    efficient_mask,
    kernel_verdicts,
    reference_log_sum_exp,
)
from attnwidget.text import TextModel, _arguments

CPU_FLASH = ("cpu", SDPBackend.FLASH_ATTENTION)


@pytest.fixture(autouse=True)
def fresh_verdicts(monkeypatch):
    """Each test checks kernels anew."""
    monkeypatch.setattr(sdpa_kernels, "_verdicts", {})


def broken(change):
    """The CPU flash kernel with `change` applied to its (output, log-sum-exp)."""
    name, kernel = KERNELS[CPU_FLASH]
    return name, lambda call: change(*kernel(call))


def refusing(output: torch.Tensor, log_sum_exp: torch.Tensor):
    raise RuntimeError("no engine for these inputs\nmore detail")


def recorded(mask_name: str = "causal", key_heads: int = HEADS):
    query, key, value = tensors(key_heads)
    mask, causal = MASKS[mask_name]()
    with torch.no_grad(), LogSumExpRecorder() as recorder:
        output = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, is_causal=causal, enable_gqa=key_heads != HEADS
        )
    expected = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, is_causal=causal, enable_gqa=key_heads != HEADS
    )
    assert torch.equal(output, expected)  # sdpa's own output, whether the kernel is kept or not
    return recorder.log_sum_exp


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("key_heads", [HEADS, 2])
def test_the_reference_equals_the_cpu_kernels_log_sum_exp(mask_name, key_heads):
    query, key, value = tensors(key_heads)
    mask, causal = MASKS[mask_name]()
    call = Call(query, key, value, mask, 0.0, causal, None, key_heads != HEADS)
    _, log_sum_exp = KERNELS[CPU_FLASH][1](call)
    rows = torch.arange(KEYS)
    expected = reference_log_sum_exp(call, rows)
    seen = torch.isfinite(expected)
    assert (mask_name == "rows that see no key") == (not bool(seen.all()))
    torch.testing.assert_close(log_sum_exp[0][seen], expected[seen])
    assert recorded(mask_name, key_heads) is not None
    assert all(kernel_verdicts().values()) and len(kernel_verdicts()) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda output, lse: (output, lse + 0.01), "its log-sum-exp is not that of the scores"),
        (lambda output, lse: (output, lse / math.log(2)), "its log-sum-exp is not that of the scores"),
        (lambda output, lse: (output, lse.flip(-1)), "its log-sum-exp is not that of the scores"),
        (lambda output, lse: (output, lse.transpose(1, 2)), "its log-sum-exp is shaped (2, 23, 6)"),
        (lambda output, lse: (output.nextafter(output + 1), lse), "its output is not sdpa's"),
        (refusing, "it failed (no engine for these inputs)"),
    ],
    ids=["shifted", "log2", "rows reversed", "queries first", "output one ulp off", "raises"],
)
def test_a_kernel_that_disagrees_is_refused_once_with_the_reason(monkeypatch, change, reason):
    monkeypatch.setitem(KERNELS, CPU_FLASH, broken(change))
    with pytest.warns(RuntimeWarning, match=re.escape(reason)):
        assert recorded() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: the verdict holds for the process
        assert recorded() is None
    assert list(kernel_verdicts().values()) == [False]


def test_a_refused_kernels_captures_take_the_softmax_and_equal_eager(monkeypatch):
    monkeypatch.setitem(KERNELS, CPU_FLASH, broken(lambda output, lse: (output, lse + 1)))
    tokenizer = byte_level_tokenizer()
    torch.manual_seed(0)
    config = tf.LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=256, **SMALL)
    text_model = TextModel(tf.LlamaForCausalLM(config), tokenizer)
    inputs = padded(text_model.prepare(" ".join([TEXT] * 3)))
    layers: dict[int, list[torch.Tensor]] = {}

    def keep(layer: int, first: int, weights: torch.Tensor | ScoreBlock) -> None:
        assert not isinstance(weights, ScoreBlock)
        layers.setdefault(layer, []).append(weights.clone())

    with pytest.warns(RuntimeWarning, match="not that of the scores"):
        text_model.run_fast(inputs, keep, scores=True)
    expected = eager_reference(text_model.model, **_arguments(inputs)).attentions
    for layer, weights in enumerate(expected):
        torch.testing.assert_close(torch.cat(layers[layer], dim=2), weights)


def meta_call(mask: torch.Tensor | None = None, causal: bool = False, size: int = 72) -> Call:
    query, key, value = (torch.empty(2, 4, 45, size, device="meta", dtype=torch.bfloat16) for _ in range(3))
    return Call(query, key, value, mask, 0.0, causal)


@pytest.mark.parametrize(("device", "backend"), [key for key in KERNELS if key[0] == "cuda"])
@pytest.mark.parametrize("masked", [False, True])
def test_cuda_kernels_are_called_as_their_schemas_ask(device, backend, masked):
    """On meta tensors each CUDA operator runs its shape function: the arguments are the ones its
    schema names, and what comes back is sdpa's output [2, 4, 45, 72] and a log-sum-exp [2, 4, 45]
    (the head dimension padded to 80 for flash and cut back; the efficient kernel's 64 rows of
    log-sum-exp and cuDNN's trailing 1 taken away)."""
    if masked and backend == SDPBackend.FLASH_ATTENTION:
        pytest.skip("sdpa hands CUDA flash no mask")
    mask = torch.ones(2, 1, 45, 45, dtype=torch.bool, device="meta") if masked else None
    name, kernel = KERNELS[(device, backend)]
    output, log_sum_exp = kernel(meta_call(mask, causal=not masked))
    assert getattr(torch.ops.aten, name) is not None
    assert output.shape == (2, 4, 45, 72) and output.dtype == torch.bfloat16
    assert log_sum_exp.shape == (2, 4, 45) and log_sum_exp.dtype == torch.float32


@pytest.mark.parametrize(("keys", "aligned"), [(24, True), (23, False)])
def test_the_efficient_kernels_mask_is_aligned_and_expanded_as_sdpa_makes_it(keys, aligned):
    allowed = torch.rand(2, 1, 5, keys, generator=torch.Generator().manual_seed(0)) > 0.3
    query = torch.zeros(2, 3, 5, 8, dtype=torch.bfloat16)
    key = torch.zeros(2, 3, keys, 8, dtype=torch.bfloat16)
    mask = efficient_mask(Call(query, key, key, allowed))
    assert mask.shape == (2, 3, 5, keys) and mask.dtype == torch.bfloat16
    assert torch.equal(mask, torch.where(allowed, 0.0, -math.inf).to(torch.bfloat16).expand(2, 3, 5, keys))
    assert mask.stride(-2) % 8 == 0 and mask.stride(-1) == 1
    assert (mask.stride(-2) == keys) == aligned  # padded to 24 keys a row only where not aligned


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("backend", [key[1] for key in KERNELS if key[0] == "cuda"])
@pytest.mark.parametrize("mask_name", ["none", "causal", "boolean", "additive"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_each_cuda_kernel_passes_its_check_on_the_device(backend, mask_name, dtype):
    """Where sdpa runs `backend` on this device, its log-sum-exp is kept after its check: the output is
    sdpa's own bit for bit and the log-sum-exp that of the scores at every row."""
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 8, 300, 72, generator=generator).to("cuda", dtype) for _ in range(3))
    causal, mask = mask_name == "causal", None
    if mask_name in ("boolean", "additive"):
        allowed = torch.rand(2, 1, 300, 300, generator=generator) > 0.2
        allowed[..., 0] = True  # every row sees a key
        additive = torch.where(allowed, 0.0, torch.finfo(dtype).min).to(dtype)
        mask = (allowed if mask_name == "boolean" else additive).cuda()
    call = Call(query, key, value, mask, 0.0, causal)
    with torch.nn.attention.sdpa_kernel(backend):
        try:
            expected = call.sdpa()
        except RuntimeError as error:
            pytest.skip(f"sdpa does not run {backend} here: {str(error).splitlines()[0]}")
        with torch.no_grad(), LogSumExpRecorder() as recorder:
            output = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=causal)
    assert torch.equal(output, expected)
    assert recorder.log_sum_exp is not None, kernel_verdicts()
    reference = reference_log_sum_exp(call, torch.arange(300, device="cuda"))
    torch.testing.assert_close(recorder.log_sum_exp[0], reference, atol=1e-3, rtol=1e-3)
