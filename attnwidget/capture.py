"""Capture attention weights while the model runs, a layer or a block of queries at a time.

`capture_attention`: forward hooks hand each layer's weights to a callback the moment its
attention module returns, so the caller can reduce them on the model's device and drop them: at
most one layer's full attention is alive at a time, unlike `output_attentions=True`, which keeps
every layer until the forward ends.

`capture_attention_blocks`: for contexts where even one layer's weights are too large, attention
registered with transformers' attention interface (`register_query_block_attention`) computes each
layer a block of queries at a time and hands each block to a callback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

LayerCallback = Callable[[int, torch.Tensor], None]


class AttentionNotReturnedError(RuntimeError):
    """The attention module returned no weights (sdpa / flash attention, or an unknown module)."""


class StopCapture(Exception):
    """Raise from a layer callback to end the forward pass early (the layers needed are in)."""


@contextmanager
def capture_attention(
    modules: Sequence[nn.Module], output_index: int, on_layer: LayerCallback, detach: bool = True
) -> Iterator[None]:
    """Within the block, call `on_layer(layer, weights)` as each of `modules` returns its weights.

    `modules` are the model's attention modules in layer order; `weights` is the
    [batch, heads, queries, keys] tensor at `output_index` of each module's output, detached from the
    autograd graph unless `detach` is False (for gradient methods). Hooks are removed when the block
    exits, also when the forward raises.
    """
    handles = []
    for layer, module in enumerate(modules):
        handles.append(module.register_forward_hook(_hook(layer, output_index, on_layer, detach)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _hook(layer: int, output_index: int, on_layer: LayerCallback, detach: bool):
    def hook(module: nn.Module, args: tuple, output: object) -> None:
        weights = output[output_index] if isinstance(output, (tuple, list)) else None
        if not isinstance(weights, torch.Tensor):
            raise AttentionNotReturnedError(
                f"{type(module).__name__} of layer {layer + 1} returned no attention weights; "
                "load the model with attn_implementation='eager'"
            )
        on_layer(layer, weights.detach() if detach else weights)

    return hook


BlockCallback = Callable[[int, int, torch.Tensor], None]
"""`on_block(layer, first_query, weights)`: `weights` [batch, heads, block queries, keys]."""

#: The name attnwidget's query-block attention is registered under in transformers.
BLOCKED_ATTENTION = "attnwidget_query_blocks"


@dataclass(frozen=True)
class _BlockCapture:
    layers: dict[nn.Module, int]
    on_block: BlockCallback
    block_bytes: int

    def block_queries(self, query: torch.Tensor, key: torch.Tensor) -> int:
        """Queries per block so that one block's float32 weights fit in `block_bytes`."""
        batch, heads, _, _ = query.shape
        return max(1, self.block_bytes // (batch * heads * key.shape[-2] * 4))


_active: ContextVar[_BlockCapture | None] = ContextVar("attnwidget_block_capture", default=None)


@contextmanager
def capture_attention_blocks(
    modules: Sequence[nn.Module], on_block: BlockCallback, block_bytes: int
) -> Iterator[None]:
    """Within the block, attention computed under `BLOCKED_ATTENTION` hands its weights to
    `on_block(layer, first_query, weights)` one block of queries at a time, each block's weights
    taking at most `block_bytes` (float32): a layer's full attention never exists at once.

    `modules` are those `capture_attention` hooks; the attention function may run in one of their
    submodules (T5's). The model must run with `model.set_attn_implementation(BLOCKED_ATTENTION)`,
    after `register_query_block_attention()`.
    Each block is computed by the architecture's own eager attention function, so outputs equal
    eager's (up to float rounding: matrix products of fewer rows may sum in another order).
    """
    token = _active.set(
        _BlockCapture(
            {inner: layer for layer, module in enumerate(modules) for inner in module.modules()},
            on_block,
            block_bytes,
        )
    )
    try:
        yield
    finally:
        _active.reset(token)


def query_block_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *args: Any,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention in blocks of queries, for transformers' attention interface.

    Every query row of eager attention depends on that row's scores only, so computing the rows a
    block at a time with the architecture's own `eager_attention_forward` (its scaling, softcaps,
    sinks and dtype handling included) gives eager's output. Tensors with one entry per query (the
    mask, T5's position bias) are cut to the block. Returns no weights: they went to `on_block`.
    """
    eager = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if eager is None:
        raise AttentionNotReturnedError(
            f"{type(module).__name__} has no eager attention function to compute in blocks; "
            "give the widget a larger block_bytes so the layer is captured whole"
        )
    capture = _active.get()
    layer = capture.layers.get(module) if capture is not None else None
    queries = query.shape[-2]
    step = capture.block_queries(query, key) if capture is not None else queries
    outputs = []
    for start in range(0, queries, step):
        stop = min(start + step, queries)

        def cut(tensor: Any, start: int = start, stop: int = stop) -> Any:
            per_query = isinstance(tensor, torch.Tensor) and tensor.ndim == 4 and tensor.shape[-2] == queries
            return tensor[..., start:stop, :] if per_query and queries > 1 else tensor

        block_kwargs = {name: cut(argument) for name, argument in kwargs.items()}
        output, weights = eager(
            module, query[..., start:stop, :], key, value, cut(attention_mask), *args, **block_kwargs
        )
        if layer is not None:
            capture.on_block(layer, start, weights.detach())
        outputs.append(output)
    return torch.cat(outputs, dim=1), None  # eager returns [batch, queries, heads, head_dim]


def register_query_block_attention() -> None:
    """Register `query_block_attention` with transformers as `BLOCKED_ATTENTION` (with eager's additive
    float mask), so a model can switch to it; done on first use, not on import. Idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(BLOCKED_ATTENTION, query_block_attention)
    AttentionMaskInterface.register(BLOCKED_ATTENTION, eager_mask)
