"""sdpa's fused kernels, called as sdpa calls them, with each row's log-sum-exp kept.

`F.scaled_dot_product_attention` picks a fused kernel (`torch._fused_sdp_choice`) whose log-sum-exp
(the log of each row's softmax denominator) it throws away. `LogSumExpRecorder` calls that kernel
itself, with its inputs prepared as ATen's `scaled_dot_product_attention` prepares them, and keeps
the log-sum-exp as [batch, heads, queries]:

- CPU flash: boolean masks made additive (-inf), grouped key and value heads repeated;
- CUDA flash: the head dimension padded to a multiple of 8, the scale that of the unpadded one;
- memory-efficient: a boolean mask made additive, aligned to 8 keys and expanded to every head; its
  log-sum-exp is padded to 32 queries;
- cuDNN: a boolean mask made additive with -65504; its log-sum-exp is [batch, heads, queries, 1].

Each kernel is trusted only once checked: the first call in a process for a kernel, device, dtype
and kind of mask must give sdpa's own output bit for bit, and the log-sum-exp of the scores (from q
and k in float32) at a few query rows. A kernel that fails the check, or raises, keeps no
log-sum-exp from then on (the capture takes the softmax: exact, slower), with a warning naming what
went wrong; the call still returns sdpa's own output.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend
from torch.overrides import TorchFunctionMode

from .score_blocks import rows_seeing_no_key
from .softmax_rows import block_scores

#: Largest gap allowed between a kernel's log-sum-exp and the one computed from q and k in float32,
#: relative to the latter where that is larger than 1.
LOG_SUM_EXP_TOLERANCE = 1e-3


class Call(NamedTuple):
    """One sdpa call's arguments, named as `F.scaled_dot_product_attention` names them."""

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    attn_mask: torch.Tensor | None = None
    dropout_p: float = 0.0
    is_causal: bool = False
    scale: float | None = None
    enable_gqa: bool = False

    def sdpa(self) -> torch.Tensor:
        """What sdpa itself returns for this call."""
        return F.scaled_dot_product_attention(*self[:6], scale=self.scale, enable_gqa=self.enable_gqa)


Kernel = Callable[[Call], tuple[torch.Tensor, torch.Tensor]]


def _additive(mask: torch.Tensor | None, dtype: torch.dtype, masked: float) -> torch.Tensor | None:
    """A boolean mask (True where a query may attend) as sdpa makes it additive; others as given."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.where(mask.logical_not(), masked, torch.zeros((), dtype=dtype, device=mask.device))


def _cpu_flash(call: Call) -> tuple[torch.Tensor, torch.Tensor]:
    key, value = call.key, call.value
    if call.enable_gqa and key.shape[-3] != call.query.shape[-3]:
        groups = call.query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(groups, dim=-3), value.repeat_interleave(groups, dim=-3)
    mask = _additive(call.attn_mask, call.query.dtype, -math.inf)
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        call.query, key, value, call.dropout_p, call.is_causal, attn_mask=mask, scale=call.scale
    )


def _cuda_flash(call: Call) -> tuple[torch.Tensor, torch.Tensor]:
    size = call.query.shape[-1]
    scale = call.scale if call.scale is not None else 1.0 / math.sqrt(size)
    padding = (0, -size % 8)
    query, key, value = (F.pad(tensor, padding) if padding[1] else tensor for tensor in call[:3])
    output, log_sum_exp, *_ = torch.ops.aten._scaled_dot_product_flash_attention(
        query, key, value, call.dropout_p, call.is_causal, False, scale=scale
    )
    return output[..., :size], log_sum_exp


def efficient_mask(call: Call) -> torch.Tensor | None:
    """The bias sdpa hands the memory-efficient kernel: additive, its rows aligned to 8 keys (padded
    and sliced back where they are not) and expanded to [batch, heads, queries, keys]."""
    mask = _additive(call.attn_mask, call.query.dtype, -math.inf)
    if mask is None:
        return None
    aligned = mask.stride(-1) == 1 and all(stride % 8 == 0 for stride in mask.stride()[:-1])
    if not aligned:
        keys = mask.shape[-1]
        mask = F.pad(mask, (0, 8 - keys % 8))[..., :keys]
    batch, heads, queries, _ = call.query.shape
    return mask.expand(batch, heads, queries, call.key.shape[-2])


def _efficient(call: Call) -> tuple[torch.Tensor, torch.Tensor]:
    output, log_sum_exp, *_ = torch.ops.aten._scaled_dot_product_efficient_attention(
        *call[:3], efficient_mask(call), True, call.dropout_p, call.is_causal, scale=call.scale
    )
    return output, log_sum_exp[..., : call.query.shape[-2]]


def _cudnn(call: Call) -> tuple[torch.Tensor, torch.Tensor]:
    mask = _additive(call.attn_mask, call.query.dtype, -65504.0)
    output, log_sum_exp, *_ = torch.ops.aten._scaled_dot_product_cudnn_attention(
        *call[:3], mask, True, call.dropout_p, call.is_causal, False, scale=call.scale
    )
    return output, log_sum_exp[..., 0]


#: (device type, the backend sdpa chose) -> the aten operator's name and how to call it.
KERNELS: dict[tuple[str, SDPBackend], tuple[str, Kernel]] = {
    ("cpu", SDPBackend.FLASH_ATTENTION): ("_scaled_dot_product_flash_attention_for_cpu", _cpu_flash),
    ("cuda", SDPBackend.FLASH_ATTENTION): ("_scaled_dot_product_flash_attention", _cuda_flash),
    ("cuda", SDPBackend.EFFICIENT_ATTENTION): ("_scaled_dot_product_efficient_attention", _efficient),
    ("cuda", SDPBackend.CUDNN_ATTENTION): ("_scaled_dot_product_cudnn_attention", _cudnn),
}

#: (operator, device type, dtype, mask dtype or None, causal, grouped) -> whether its check passed.
_verdicts: dict[tuple[Any, ...], bool] = {}


def kernel_verdicts() -> dict[tuple[Any, ...], bool]:
    """What this process's checks found, by (operator, device type, dtype, mask dtype or None,
    causal, grouped key heads): True where the kernel's log-sum-exp is kept."""
    return dict(_verdicts)


def chosen_kernel(call: Call) -> tuple[str, Kernel] | None:
    """The kernel sdpa runs `call` on, where its log-sum-exp can be kept: a fused kernel of `KERNELS`,
    without autograd (nothing else needs the kernel's outputs kept for a backward pass)."""
    choose = getattr(torch, "_fused_sdp_choice", None)
    if choose is None or torch.is_grad_enabled() or call.dropout_p:
        return None
    if any(not isinstance(tensor, torch.Tensor) or tensor.ndim != 4 for tensor in call[:3]):
        return None
    try:
        backend = SDPBackend(choose(*call[:6], scale=call.scale, enable_gqa=call.enable_gqa))
    except (RuntimeError, TypeError, ValueError):
        return None
    found = KERNELS.get((call.query.device.type, backend))
    if found is None or getattr(torch.ops.aten, found[0], None) is None:
        return None
    return found


def reference_log_sum_exp(call: Call, rows: torch.Tensor) -> torch.Tensor:
    """float32 [heads, len(rows)]: the log-sum-exp of batch entry 0's query rows `rows`, from its
    scores (`block_scores` of q and k in float32, with sdpa's scale, mask and top-left causal mask);
    -inf for a row that may attend to no key."""
    mask = call.attn_mask
    if mask is not None:
        mask = mask.expand(*call.query.shape[:-1], call.key.shape[-2])[:1]
    query, key = call.query[:1].float(), call.key[:1].float()
    scores, _ = block_scores(query, key, mask, rows, scaling=call.scale, causal=call.is_causal)
    log_sum_exp = torch.logsumexp(scores[0], dim=-1)
    blind = rows_seeing_no_key(mask)
    return log_sum_exp if blind is None else log_sum_exp.masked_fill(blind[0][:, rows], -math.inf)


def disagreement(call: Call, output: torch.Tensor, log_sum_exp: torch.Tensor) -> str | None:
    """What a kernel's `output` and `log_sum_exp` [batch, heads, queries] get wrong for `call`: sdpa's
    output bit for bit, the log-sum-exp's shape, and its values at the first, middle and last query
    rows of batch entry 0 (rows that see no key aside). None when both agree."""
    if not torch.equal(output, call.sdpa()):
        return "its output is not sdpa's"
    batch, heads, queries, _ = call.query.shape
    if tuple(log_sum_exp.shape) != (batch, heads, queries):
        return f"its log-sum-exp is shaped {tuple(log_sum_exp.shape)}"
    rows = torch.tensor(sorted({0, queries // 2, queries - 1}), device=call.query.device)
    expected = reference_log_sum_exp(call, rows)
    seen = torch.isfinite(expected)
    got, expected = log_sum_exp[0][:, rows].float()[seen], expected[seen]
    allowed = LOG_SUM_EXP_TOLERANCE * expected.abs().clamp(min=1)
    if not bool(((got - expected).abs() <= allowed).all()):  # NaN and inf fail too
        return "its log-sum-exp is not that of the scores"
    return None


def sdpa_with_log_sum_exp(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(sdpa's output, its kernel's log-sum-exp [batch, heads, queries] where that kernel is checked
    and kept, else None), for `F.scaled_dot_product_attention`'s arguments."""
    call = Call(*args, **kwargs)
    found = chosen_kernel(call)
    if found is None:
        return call.sdpa(), None
    name, kernel = found
    mask = call.attn_mask.dtype if call.attn_mask is not None else None
    grouped = call.key.shape[-3] != call.query.shape[-3]
    situation = (name, call.query.device.type, call.query.dtype, mask, call.is_causal, grouped)
    if _verdicts.get(situation) is False:
        return call.sdpa(), None
    try:
        output, log_sum_exp = kernel(call)
    except RuntimeError as error:  # sdpa's choice took this call, the operator did not
        reason: str | None = f"it failed ({str(error).splitlines()[0]})"
    else:
        reason = None if _verdicts.get(situation) else disagreement(call, output, log_sum_exp)
    _verdicts[situation] = reason is None
    if reason is not None:
        warnings.warn(
            f"attnwidget: sdpa's kernel {name} ({call.query.device.type}, {call.query.dtype}) was "
            f"checked and {reason}; pooled attention is computed with the softmax instead "
            "(exact, slower)",
            RuntimeWarning,
            stacklevel=2,
        )
        return call.sdpa(), None
    return output, log_sum_exp


class LogSumExpRecorder(TorchFunctionMode):
    """Within the block, `F.scaled_dot_product_attention` returns sdpa's own output, and where its
    kernel keeps a checked log-sum-exp (`sdpa_with_log_sum_exp`) the call's log-sum-exp
    [batch, heads, queries] is kept in `log_sum_exp`; else None."""

    def __init__(self) -> None:
        super().__init__()
        self.log_sum_exp: torch.Tensor | None = None

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        output, self.log_sum_exp = sdpa_with_log_sum_exp(*args, **kwargs)
        return output
