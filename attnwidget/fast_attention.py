"""Capture beside the model's own sdpa attention instead of switching it to eager.

The attention function registered as `FAST_ATTENTION` returns transformers' own
`sdpa_attention_forward` output (with sdpa's masks), so the model's outputs are its sdpa outputs.
Beside it, from the very `query` and `key` it receives (after rotary embeddings; with the scaling,
mask, sliding window and position bias the layer passes), it computes the weights of the query rows
the capture asks for with the architecture's own `eager_attention_forward`, a block of queries at a
time, given an empty value so no weights x values product is computed, and hands them to the
capture's `on_block` (`capture.capture_attention_blocks`). Where the capture's consumer accepts them
(`capture_attention_blocks`' `scores`) and sdpa ran a fused kernel whose log-sum-exp is kept
(`sdpa_kernels`), blocks are handed over as `ScoreBlock`s instead: scores and the kernel's own
log-sum-exp, no softmax computed. Where the
capture has a `capture.Workspace` (batches of pictures for dataset statistics), each layer's whole
weights are computed into it and the layer's output is those weights times the values (eager's
formula; sdpa's output up to float rounding): sdpa would compute the same softmax again. Within
`keeping`, each layer's query and key are kept (within a budget) so later exact questions are
answered without running the model again.

Only architectures whose eager attention is one of the forms checked against `output_attentions`
take this path (`eager_forms`); `fast_path_refusal` names why any other model does not.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .capture import Workspace, active_capture, eager_function, eager_rows, query_blocks
from .eager_forms import form_of_function, takes_softmax_rows
from .implementation import attention_implementation
from .score_blocks import ScoreBlock, rows_seeing_no_key, spread_evenly
from .sdpa_kernels import LogSumExpRecorder
from .softmax_rows import block_scores, softmax_rows

#: The name the fast attention is registered under in transformers.
FAST_ATTENTION = "attnwidget_sdpa"
#: Largest float32 weights of one block of queries on the fast path, on the CPU (blocks that stay in
#: its caches) and on an accelerator (fewer, larger launches): either stays small beside the
#: forward's own memory (a layer's whole attention is never built).
FAST_BLOCK_BYTES = {"cpu": 8 * 1024**2, "accelerator": 128 * 1024**2}
#: Score blocks hold a multiple of this many query rows (at least that many, whatever the block
#: bytes): the CPU reduces a window of keys of [heads, keys, rows] scores fastest for such rows.
SCORE_BLOCK_ROWS = 32
#: Implementations whose outputs the fast path reproduces (flash attention's up to rounding).
FAST_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "flash_attention_3", FAST_ATTENTION)


def fast_path_refusal(model: nn.Module, attention_module: nn.Module) -> str | None:
    """Why `model` cannot be captured beside its own fast attention, or None when it can.

    A model on eager attention keeps it (it returns the weights, and it is what the model runs).
    """
    current = attention_implementation(attention_module, model)
    if current not in FAST_IMPLEMENTATIONS:
        return f"it runs {current!r} attention"
    if getattr(attention_module, "attn_logit_softcapping", None) is not None:
        return "it soft-caps its attention scores (attn_logit_softcapping), which sdpa does not"
    try:
        eager = eager_function(attention_module)
    except RuntimeError as error:
        return str(error)
    if form_of_function(eager) is None:
        return (
            f"its attention ({type(attention_module).__name__}) computes its weights otherwise than the "
            "eager attention of the architectures whose weights attnwidget reproduces exactly beside sdpa"
        )
    return None


def fast_block_bytes(model: nn.Module, asked: int | None = None) -> int:
    """The block size of a fast capture of `model`: `asked` (default: no limit) within
    `FAST_BLOCK_BYTES` of the model's device."""
    parameter = next(model.parameters(), None)
    on_cpu = parameter is None or parameter.device.type == "cpu"
    largest = FAST_BLOCK_BYTES["cpu" if on_cpu else "accelerator"]
    return min(asked or largest, largest)


def eager_form_mask(
    attention_mask: torch.Tensor | None,
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    **kwargs: Any,
) -> torch.Tensor | None:
    """The additive mask eager attention would get, from the one sdpa got: a boolean mask as 0 and the
    dtype's minimum (as `masking_utils.eager_mask`), a float one as is, and None as the causal mask
    `sdpa_attention_forward` then asks of sdpa (`is_causal`), or None for full attention."""
    if attention_mask is not None:
        if attention_mask.dtype != torch.bool:
            return attention_mask
        zero = torch.zeros((), dtype=query.dtype, device=query.device)
        return torch.where(attention_mask, zero, torch.finfo(query.dtype).min)
    queries, keys = query.shape[-2], key.shape[-2]
    if not _is_causal(module, query, **kwargs):
        return None
    seen = torch.arange(queries, device=query.device)[:, None] >= torch.arange(keys, device=query.device)
    return eager_form_mask(seen[None, None], module, query, key)


def _is_causal(module: nn.Module, query: torch.Tensor, is_causal: bool | None = None, **_: Any) -> bool:
    """Whether sdpa, given no mask, attends causally (as `sdpa_attention_forward` decides)."""
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    return bool(causal) and query.shape[-2] > 1


@dataclass(frozen=True)
class LayerInputs:
    """What one layer's attention function received, enough to compute its weights again."""

    module: nn.Module
    query: torch.Tensor
    key: torch.Tensor
    value_heads: tuple[int, ...]
    """The value's shape but its last dimension: the weights alone need no values."""
    attention_mask: torch.Tensor | None
    args: tuple
    kwargs: dict[str, Any]

    def tensors(self) -> list[torch.Tensor]:
        """The tensors held."""
        held = [self.query, self.key, self.attention_mask, *self.args, *self.kwargs.values()]
        return [tensor for tensor in held if isinstance(tensor, torch.Tensor)]

    def weights(
        self, block_bytes: int, rows: Sequence[int] | None = None, workspace: Workspace | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(first row, weights [batch, heads, block rows, keys]) of each block of the query rows `rows`
        (default: all): by `softmax_rows` where the architecture's eager attention is that plain
        softmax (into `workspace` where given: each block then valid until the next), else by its
        own eager attention, given an empty value so no weights x values product is computed."""
        blocks = query_blocks(self.query, self.key, block_bytes, rows)
        if takes_softmax_rows(self.module, self.args, self.kwargs):
            causal = _is_causal(self.module, self.query, **self.kwargs)
            scaling = self.kwargs.get("scaling")
            out = None  # room for every row asked for: each block holds at most that many
            if workspace is not None:
                out = workspace.weights(self.query, self.key, None if rows is None else len(rows))
            for start, block in blocks:
                weights = softmax_rows(
                    self.query, self.key, self.attention_mask, block, scaling=scaling, causal=causal, out=out
                )
                yield start, weights
            return
        eager = eager_function(self.module)
        mask = eager_form_mask(self.attention_mask, self.module, self.query, self.key, **self.kwargs)
        no_values = self.key.new_empty((*self.value_heads, 0))
        for start, block in blocks:
            _, weights = eager_rows(
                eager, self.module, self.query, self.key, no_values, mask, block, self.args, self.kwargs
            )
            yield start, weights.detach()

    def score_blocks(
        self, block_bytes: int, log_sum_exp: torch.Tensor | None, rows: Sequence[int] | None = None
    ) -> Iterator[tuple[int, ScoreBlock]] | None:
        """(first row, `ScoreBlock`) of each block of the query rows `rows` (default: all), from the
        scores and sdpa's `log_sum_exp` of every row; None where they would not give the weights
        exactly: no log-sum-exp, or an architecture that is not a plain softmax. Rows that see no key
        are spread evenly over every key, as eager attention does. The blocks share one buffer: a
        block's scores hold until the next block is made (take what is needed from each)."""
        batch, heads, queries, _ = self.query.shape
        if log_sum_exp is None or not takes_softmax_rows(self.module, self.args, self.kwargs):
            return None
        if log_sum_exp.numel() != batch * heads * queries:
            return None
        log_sum_exp = log_sum_exp.reshape(batch, heads, queries)
        if not bool(torch.isfinite(log_sum_exp).all()):
            return None
        blind = rows_seeing_no_key(self.attention_mask)
        causal = _is_causal(self.module, self.query, **self.kwargs)
        scaling = self.kwargs.get("scaling")

        def blocks() -> Iterator[tuple[int, ScoreBlock]]:
            blocks = list(query_blocks(self.query, self.key, block_bytes, rows, SCORE_BLOCK_ROWS))
            first = blocks[0][1]  # the largest block
            largest = len(range(queries)[first]) if isinstance(first, slice) else len(first)
            buffer = self.query.new_empty(batch * heads * self.key.shape[-2] * largest)
            for start, block in blocks:
                scores, _ = block_scores(
                    self.query,
                    self.key,
                    self.attention_mask,
                    block,
                    scaling=scaling,
                    causal=causal,
                    keys_first=True,
                    out=buffer,
                )
                scored = ScoreBlock(scores, log_sum_exp[:, :, block], self.key.shape[-2])
                yield start, scored if blind is None else spread_evenly(scored, blind[:, :, block])

        return blocks()


class KeptQueriesKeys:
    """Every layer's `LayerInputs` of one run, while the storage they hold stays within `budget` bytes
    (a layer's query and key are far smaller than its weights): later exact questions are answered
    from them without running the model again. Past the budget nothing is kept, and a run whose
    first layers already say its `layer_count` layers will not fit keeps nothing from then on (no
    memory is held for layers that would be dropped)."""

    def __init__(self, budget: int, layer_count: int):
        self.budget, self.layer_count = budget, layer_count
        self.layers: dict[int, LayerInputs] = {}
        self.overflowed = False
        self._storage: dict[int, int] = {}

    def add(self, layer: int, inputs: LayerInputs) -> None:
        if self.overflowed:
            return
        for tensor in inputs.tensors():
            storage = tensor.untyped_storage()
            self._storage[storage.data_ptr()] = storage.nbytes()
        held, layers = self.nbytes, len(self.layers) + 1
        if held > self.budget or held * self.layer_count > self.budget * layers:
            self.overflowed = True
            self.layers.clear()
            self._storage.clear()
            return
        self.layers[layer] = inputs

    @property
    def nbytes(self) -> int:
        """The bytes of the storage held."""
        return sum(self._storage.values())

    def complete(self) -> bool:
        """Whether every one of the run's `layer_count` layers is kept."""
        return not self.overflowed and len(self.layers) == self.layer_count


_kept: ContextVar[KeptQueriesKeys | None] = ContextVar("attnwidget_kept", default=None)


@contextmanager
def keeping(kept: KeptQueriesKeys | None) -> Iterator[None]:
    """Within the block, fast captures add each layer's `LayerInputs` to `kept` (None: keep none)."""
    token = _kept.set(kept)
    try:
        yield
    finally:
        _kept.reset(token)


def sdpa_with_weights(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *args: Any,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """sdpa attention for transformers' attention interface, handing the weights of the query rows
    the active capture asks for to its `on_block`, a block at a time (`LayerInputs.score_blocks`
    where they are accepted and sdpa kept its log-sum-exp, else `LayerInputs.weights`), and keeping
    the layer's inputs where asked (`keeping`). Returns sdpa's output, or with the capture's
    workspace the output made from the whole layer's weights (`weighted_values`)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    capture = active_capture()
    layer = capture.layer_of(module) if capture is not None else None
    if layer is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, *args, **kwargs)
    inputs = LayerInputs(module, query, key, tuple(value.shape[:-1]), attention_mask, args, kwargs)
    kept = _kept.get()
    if kept is not None:
        kept.add(layer, inputs)
    if capture.workspace is not None and capture.rows is None and takes_softmax_rows(module, args, kwargs):
        # The whole layer's weights go into the workspace; the output is made from them (eager's
        # formula, sdpa's output up to float rounding) rather than by sdpa's softmax again.
        ((_, weights),) = inputs.weights(sys.maxsize, None, capture.workspace)
        output = weighted_values(weights, value)
        capture.on_block(layer, 0, weights)
        return output, None
    recorder = LogSumExpRecorder()  # its log-sum-exp stays None unless the capture takes score blocks
    with recorder if capture.scores else nullcontext():
        output, _ = sdpa_attention_forward(module, query, key, value, attention_mask, *args, **kwargs)
    blocks = inputs.score_blocks(capture.block_bytes, recorder.log_sum_exp, capture.rows)
    for start, weights in blocks or inputs.weights(capture.block_bytes, capture.rows, capture.workspace):
        capture.on_block(layer, start, weights)
    return output, None


def weighted_values(weights: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Attention's output from its weights [batch, heads, queries, keys] and `value` [batch, value heads,
    keys, dim] (grouped-query heads share their value head, as `repeat_kv` repeats it), in the value's
    dtype, as the attention interface returns it: [batch, queries, heads, dim]."""
    batch, heads, queries, keys = weights.shape
    value_heads = value.shape[1]
    grouped = weights.to(value.dtype).reshape(batch, value_heads, (heads // value_heads) * queries, keys)
    output = torch.matmul(grouped, value).view(batch, heads, queries, value.shape[-1])
    return output.transpose(1, 2).contiguous()


def register_fast_attention() -> None:
    """Register `sdpa_with_weights` with transformers as `FAST_ATTENTION`, with sdpa's mask function, so
    a model can switch to it; done on first use, not on import. Idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(FAST_ATTENTION, sdpa_with_weights)
    AttentionMaskInterface.register(FAST_ATTENTION, sdpa_mask)
