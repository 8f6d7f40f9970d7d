"""nnsight: attention weights saved from a trace. Saved values are tensors once the trace ends, so
they go into `AttentionGrid.from_attention` as they are; `trace_attention` saves every layer's for
you, finding the attention modules by the model's structure (as `TextModel` does).

Needs `pip install "attnwidget[nnsight]"` and a model with eager attention
(`LanguageModel(..., attn_implementation="eager")`), whose attention modules return their weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..transformers_support import find_attention_modules


def attention_paths(model: Any) -> tuple[list[str], int]:
    """The paths of an nnsight model's attention modules ("transformer.h.0.attn", ...) in layer
    order, and the index of their output that holds the weights."""
    inner = model._module  # the wrapped torch module
    modules, index = find_attention_modules(inner, inner)
    names = {id(module): name for name, module in inner.named_modules()}
    return [names[id(module)] for module in modules], index


def trace_attention(model: Any, text: Any, paths: Sequence[str] | None = None) -> list[torch.Tensor]:
    """Every layer's attention weights [batch, heads, queries, keys] for `text`, saved from one
    trace of `model` (an nnsight `LanguageModel` or `NNsight`): the outputs of its attention modules,
    or of the modules at `paths` (weights at output index 1)."""
    index = 1
    if paths is None:
        paths, index = attention_paths(model)
    values: list[torch.Tensor] = []
    with model.trace(text):
        for path in paths:
            values.append(model.get(path).output[index].save())
    return values


def token_labels(model: Any, text: str) -> list[str]:
    """The tokens of `text` as the model's tokenizer makes them, as text."""
    tokenizer = model.tokenizer
    return [tokenizer.decode([token]) for token in tokenizer(text)["input_ids"]]
