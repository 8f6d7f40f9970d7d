"""Capture attention weights with forward hooks while the model runs.

Each layer's weights are handed to a callback the moment its attention module returns, so the
caller can reduce them on the model's device and drop them: at most one layer's full attention is
alive at a time, unlike `output_attentions=True`, which keeps every layer until the forward ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

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
