"""Attention already at hand, as the grid takes it: pure conversion, no widget.

Accepts the layouts of the peers (BertViz: a tuple of [batch, heads, n, n] per layer, as transformers'
`output_attentions`; CircuitsVis: [heads, dest, src]; Inspectus: [q, k], [h, q, k], [l, h, q, k]),
stacked caches ([layers, batch, heads, q, k]), TransformerLens' `ActivationCache`, and every array
kind: numpy, torch (any device and dtype), objects with `__dlpack__` (JAX) or `__array__`. Out come
float32 CPU torch layers [heads, queries, keys]; wrong input gets a `ValueError` naming the expected
shape and the given one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .contract import VALUE_KINDS

ACCEPTED = (
    "[queries, keys], [heads, queries, keys], [layers, heads, queries, keys], "
    "[layers, batch, heads, queries, keys], or a list / tuple of layers, each [heads, queries, keys] "
    "or [batch, heads, queries, keys] (transformers' output_attentions, BertViz)"
)


def as_tensor(array: Any, what: str = "attention") -> torch.Tensor:
    """`array` (torch, numpy, DLPack, `__array__`) as a float32 CPU tensor, detached from any graph."""
    if isinstance(array, torch.Tensor):
        tensor = array.detach()
    elif isinstance(array, np.ndarray):
        tensor = torch.from_numpy(_numeric(array, what))
    elif hasattr(array, "__dlpack__"):
        try:
            tensor = torch.from_dlpack(array)
        except (BufferError, RuntimeError, TypeError):  # a device or dtype torch cannot share
            if not hasattr(array, "__array__"):
                raise
            tensor = torch.from_numpy(_numeric(np.asarray(array), what))
    elif hasattr(array, "__array__"):
        tensor = torch.from_numpy(_numeric(np.asarray(array), what))
    else:
        raise TypeError(
            f"{what}: expected a torch tensor, a numpy array or an array with __array__ or __dlpack__ "
            f"(JAX), got {type(array).__name__}"
        )
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{what}: expected real numbers, got dtype {tensor.dtype}")
    return tensor.to(device="cpu", dtype=torch.float32, copy=True)


def attention_layers(attention: Any, *, batch_index: int = 0) -> list[torch.Tensor]:
    """Every layer of `attention` as float32 [heads, queries, keys] (see the module for the layouts).

    `batch_index` picks the example where the layout has a batch dimension. Layers of unequal shape,
    a bad rank or a batch index out of range raise a `ValueError` naming the expected and given shapes.
    """
    from .adapters import transformer_lens

    if transformer_lens.is_activation_cache(attention):
        attention = transformer_lens.cache_patterns(attention)
    if isinstance(attention, (list, tuple)):
        if not attention:
            raise ValueError(f"attention: the list of layers is empty; expected {ACCEPTED}")
        layers = [
            _layer(as_tensor(layer, f"layer {number}"), number, batch_index)
            for number, layer in enumerate(attention, start=1)
        ]
    else:
        tensor = as_tensor(attention)
        if tensor.ndim == 2:
            layers = [tensor[None]]
        elif tensor.ndim == 3:
            layers = [tensor]
        elif tensor.ndim == 4:
            layers = list(tensor)
        elif tensor.ndim == 5:
            layers = list(_batch(tensor, batch_index, 1, "[layers, batch, heads, queries, keys]"))
        else:
            raise ValueError(f"attention: expected {ACCEPTED}; got shape {shape_text(tensor.shape)}")
    first = layers[0].shape
    for number, layer in enumerate(layers, start=1):
        if layer.shape != first:
            raise ValueError(
                "every layer must have the same [heads, queries, keys]: "
                f"layer 1 has {shape_text(layers[0].shape)}, "
                f"layer {number} has {shape_text(layer.shape)}"
            )
    if 0 in first:
        raise ValueError(f"attention: a layer of shape {shape_text(layers[0].shape)} has no values")
    return [layer.contiguous() for layer in layers]


def check_values(layers: Sequence[torch.Tensor], values: str) -> None:
    """NaN and infinite values are refused; so are negative ones when `values` is "attention"
    (probabilities): a `ValueError` naming the layer and the `values` kinds that take signed values."""
    if values not in VALUE_KINDS:
        raise ValueError(f"values must be one of {', '.join(VALUE_KINDS)}, not {values!r}")
    for number, layer in enumerate(layers, start=1):
        finite = torch.isfinite(layer)
        if not bool(finite.all()):
            nan = int(torch.isnan(layer).sum())
            raise ValueError(
                f"layer {number} holds {nan} NaN and {int((~finite).sum()) - nan} infinite values: "
                "the grid draws finite numbers only"
            )
        if values == "attention" and bool((layer < 0).any()):
            signed = ", ".join(repr(kind) for kind in VALUE_KINDS if kind != "attention")
            raise ValueError(
                f"layer {number} holds negative values (lowest {float(layer.min()):.3g}), which attention "
                f"probabilities cannot: for scores or other signed values pass values= {signed}, drawn "
                "with a diverging colormap centred on zero"
            )


def _layer(tensor: torch.Tensor, number: int, batch_index: int) -> torch.Tensor:
    """One layer of a list: [q, k], [heads, q, k] or [batch, heads, q, k] -> [heads, q, k]."""
    if tensor.ndim == 2:
        return tensor[None]
    if tensor.ndim == 3:
        return tensor
    if tensor.ndim == 4:
        return _batch(tensor, batch_index, 0, f"layer {number}: [batch, heads, queries, keys]")
    raise ValueError(
        f"layer {number}: expected [heads, queries, keys] or [batch, heads, queries, keys], "
        f"got shape {shape_text(tensor.shape)}"
    )


def _batch(tensor: torch.Tensor, index: int, dim: int, layout: str) -> torch.Tensor:
    size = tensor.shape[dim]
    if not -size <= index < size:
        raise ValueError(
            f"batch_index={index} is out of range: {layout} has a batch of {size} "
            f"(shape {shape_text(tensor.shape)})"
        )
    return tensor.select(dim, index)


def _numeric(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{what}: expected real numbers, got dtype {array.dtype}")
    return np.array(array, dtype=np.float32)


def shape_text(sizes: Sequence[int]) -> str:
    """A shape as error messages write it: "[4, 7, 7]"."""
    return "[" + ", ".join(str(size) for size in sizes) + "]"
