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

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

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
    handles = [
        module.register_forward_hook(_hook(layer, output_index, on_layer, detach))
        for layer, module in enumerate(modules)
    ]
    with removed_after(handles):
        yield


@contextmanager
def removed_after(handles: Sequence[RemovableHandle]) -> Iterator[None]:
    """Within the block the hooks of `handles` stand; each is removed on exit, also when it raises."""
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
    rows: tuple[int, ...] | None = None
    """Only these query rows, in this order (numbered from 0 in `on_block`); None: every row."""
    scores: bool = False
    """Whether `on_block` takes `score_blocks.ScoreBlock`s in place of weights."""
    workspace: Workspace | None = None
    """Where every block's weights are computed (whole layers), if anywhere: see `Workspace`."""
    opened: set[int] = field(default_factory=set)
    """Layers whose module's forward has begun and handed over nothing yet."""

    def layer_of(self, module: nn.Module) -> int | None:
        """The layer the attention call of `module` hands its weights over as, or None: not a layer's
        module, or not its first call in its module's forward (DiffLlama calls it twice over the same
        query and key; eager attention returns the first call's weights)."""
        layer = self.layers.get(module)
        if layer is None or layer not in self.opened:
            return None
        self.opened.remove(layer)
        return layer

    def blocks(self, query: torch.Tensor, key: torch.Tensor) -> Iterator[tuple[int, slice | torch.Tensor]]:
        """`query_blocks` of this capture's `block_bytes` and `rows`."""
        return query_blocks(query, key, self.block_bytes, self.rows)


def query_blocks(
    query: torch.Tensor,
    key: torch.Tensor,
    block_bytes: int,
    rows: Sequence[int] | None = None,
    multiple: int = 1,
) -> Iterator[tuple[int, slice | torch.Tensor]]:
    """(first row handed over, the query rows: a slice, or an index among `rows`) of each block of
    query rows (default: every row) whose float32 weights fit in `block_bytes`, in blocks of a
    `multiple` of rows (at least one `multiple`, whatever `block_bytes`; but the last)."""
    batch, heads, _, _ = query.shape
    step = max(1, block_bytes // (batch * heads * key.shape[-2] * 4))
    step = max(multiple, step - step % multiple)
    count = query.shape[-2] if rows is None else len(rows)
    for start in range(0, count, step):
        stop = min(start + step, count)
        if rows is None:
            yield start, slice(start, stop)
        else:
            yield start, torch.tensor(rows[start:stop], device=query.device)


class Workspace:
    """Float32 buffers that every layer of a run computes its weights (and the temporaries of their
    statistics) into, reused from layer to layer and batch to batch: a layer's weights are then valid
    only until the next layer is computed (consumers reduce them, or copy what they keep). Batches of
    pictures are captured whole layers at a time; a fresh [batch, heads, tokens, tokens] tensor per
    layer, let go a layer later, costs a fresh allocation (and, with glibc's defaults, freshly
    faulted pages) every layer."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def buffer(self, count: int, device: torch.device, use: str = "weights") -> torch.Tensor:
        """A flat float32 tensor of at least `count` entries on `device` for `use` (the same one
        while it fits)."""
        held = self._buffers.get(use)
        if held is None or held.numel() < count or held.device != device:
            self._buffers.pop(use, None)  # the old buffer goes before the new one is made
            held = self._buffers[use] = torch.empty(count, dtype=torch.float32, device=device)
        return held

    def weights(self, query: torch.Tensor, key: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """`buffer` with room for the float32 weights of `rows` query rows (default: every row) of
        `query` [batch, heads, queries, dim] over the keys of `key`."""
        batch, heads, queries, _ = query.shape
        count = batch * heads * (queries if rows is None else rows) * key.shape[-2]
        return self.buffer(count, query.device)


def buffer_start(buffer: torch.Tensor | None, shape: Sequence[int]) -> torch.Tensor | None:
    """The start of the flat `buffer` (a `Workspace.buffer`) viewed as `shape`, to write a result
    into; None where there is no buffer."""
    return None if buffer is None else buffer[: math.prod(shape)].view(shape)


_active: ContextVar[_BlockCapture | None] = ContextVar("attnwidget_block_capture", default=None)


@contextmanager
def capture_attention_blocks(
    modules: Sequence[nn.Module],
    on_block: BlockCallback,
    block_bytes: int,
    rows: Sequence[int] | None = None,
    scores: bool = False,
    workspace: Workspace | None = None,
) -> Iterator[None]:
    """Within the block, attention computed under `BLOCKED_ATTENTION` (or `fast_attention.FAST_ATTENTION`)
    hands its weights to `on_block(layer, first_query, weights)` one block of queries at a time, each
    block's weights taking at most `block_bytes` (float32): a layer's full attention never exists at once.

    `modules` are those `capture_attention` hooks; the attention function may run in one of their
    submodules (T5's). The model must run with `model.set_attn_implementation(BLOCKED_ATTENTION)`,
    after `register_query_block_attention()`.
    Each block is computed by the architecture's own eager attention function, so outputs equal
    eager's (up to float rounding: matrix products of fewer rows may sum in another order).
    `rows` (only with `FAST_ATTENTION`) limits the weights to those query rows: `first_query` then
    counts among them. With `scores` (only with `FAST_ATTENTION`) `on_block` may be handed
    `score_blocks.ScoreBlock`s in place of weights. With a `workspace` (only with `FAST_ATTENTION`)
    each layer is one block, computed into the workspace: valid until the next layer's.
    """
    capture = _BlockCapture(
        {inner: layer for layer, module in enumerate(modules) for inner in module.modules()},
        on_block,
        block_bytes,
        None if rows is None else tuple(rows),
        scores,
        workspace,
    )
    handles = [
        module.register_forward_pre_hook(lambda _module, _args, layer=layer: capture.opened.add(layer))
        for layer, module in enumerate(modules)
    ]
    token = _active.set(capture)
    try:
        yield
    finally:
        _active.reset(token)
        for handle in handles:
            handle.remove()


def active_capture() -> _BlockCapture | None:
    """The capture the attention functions hand their weights to, if any."""
    return _active.get()


def eager_function(module: nn.Module) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """The `eager_attention_forward` of the module's architecture (its scaling, softcaps, sinks and
    dtype handling); an `AttentionNotReturnedError` when its module has none."""
    eager = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if eager is None:
        raise AttentionNotReturnedError(
            f"{type(module).__name__} has no eager attention function to compute in blocks; "
            "give the widget a larger block_bytes so the layer is captured whole"
        )
    return eager


def eager_rows(
    eager: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    rows: slice | torch.Tensor,
    args: tuple,
    kwargs: dict[str, Any],
) -> tuple[torch.Tensor, torch.Tensor]:
    """`eager` for the query rows `rows` only: every query row of eager attention depends on that row's
    scores only, so it equals those rows of the whole layer's. Tensors with one entry per query (the
    mask, T5's position bias) are cut to the rows."""
    queries = query.shape[-2]

    def cut(tensor: Any) -> Any:
        per_query = isinstance(tensor, torch.Tensor) and tensor.ndim == 4 and tensor.shape[-2] == queries
        return tensor[..., rows, :] if per_query and queries > 1 else tensor

    block_kwargs = {name: cut(argument) for name, argument in kwargs.items()}
    return eager(module, query[..., rows, :], key, value, cut(attention_mask), *args, **block_kwargs)


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

    Computing the rows a block at a time with the architecture's own `eager_attention_forward`
    (`eager_rows`) gives eager's output. Returns no weights: they went to `on_block`.
    """
    eager = eager_function(module)
    capture = _active.get()
    layer = capture.layer_of(module) if capture is not None else None
    if capture is None:
        return eager(module, query, key, value, attention_mask, *args, **kwargs)[0], None
    outputs = []
    for start, rows in replace(capture, rows=None).blocks(query, key):
        output, weights = eager_rows(eager, module, query, key, value, attention_mask, rows, args, kwargs)
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
