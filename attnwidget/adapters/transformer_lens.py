"""TransformerLens (4.x `TransformerBridge`; 3.x `HookedTransformer` alike): the patterns of an
`ActivationCache` (`cache["pattern", layer]`, [batch, heads, queries, keys]) and hooks on
`blocks.{layer}.attn.hook_pattern` that stream each layer into a grid while `run_with_hooks` runs.

Needs `pip install "attnwidget[transformerlens]"`; nothing here imports TransformerLens itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ..held_grid import AttentionStream, stream

if TYPE_CHECKING:
    from ..widget import AttentionGrid

PATTERN_HOOK = "blocks.{layer}.attn.hook_pattern"


def is_activation_cache(value: Any) -> bool:
    """Whether `value` is a TransformerLens `ActivationCache` (told by its class, without importing it)."""
    kind = type(value)
    return kind.__name__ == "ActivationCache" and kind.__module__.startswith("transformer_lens")


def cache_patterns(cache: Any) -> list[torch.Tensor]:
    """Every layer's attention pattern of `cache`, in layer order, as TransformerLens keeps them."""
    layers = 0
    while PATTERN_HOOK.format(layer=layers) in cache:
        layers += 1
    if not layers:
        raise ValueError(
            "this ActivationCache holds no attention patterns (blocks.0.attn.hook_pattern): run "
            "run_with_cache without a names_filter that leaves them out"
        )
    return [cache["pattern", layer] for layer in range(layers)]


def is_causal(model: Any) -> bool:
    """Whether the model's attention is causal (`cfg.attention_dir`), as TransformerLens says."""
    return getattr(getattr(model, "cfg", None), "attention_dir", "causal") == "causal"


def pattern_hooks(live: AttentionStream) -> list[tuple[str, Callable[..., None]]]:
    """`fwd_hooks` for `run_with_hooks`: each layer's pattern goes to `live.add_layer` when computed."""

    def hand_over(pattern: torch.Tensor, hook: Any) -> None:
        live.add_layer(hook.layer(), pattern)

    return [(PATTERN_HOOK.format(layer=layer), hand_over) for layer in range(live.layer_count)]


def stream_run(model: Any, text: Any, *, batch_index: int = 0, **options: Any) -> AttentionGrid:
    """Run `model` (a `TransformerBridge` or `HookedTransformer`) on `text` with hooks that draw each
    layer's pattern in a new grid as it is computed; returns the grid. The tokens default to
    `model.to_str_tokens(text)`, `causal` to the model's `attention_dir`, the name to its model's;
    `options` are those of `attnwidget.stream`."""
    cfg = model.cfg
    if "tokens" not in options and "query_tokens" not in options:
        tokens = model.to_str_tokens(text)
        options["tokens"] = tokens[batch_index] if tokens and isinstance(tokens[0], list) else tokens
    options.setdefault("causal", is_causal(model))
    options.setdefault("name", getattr(cfg, "model_name", "") or type(model).__name__)
    with stream(cfg.n_layers, batch_index=batch_index, **options) as live:
        model.run_with_hooks(text, fwd_hooks=pattern_hooks(live))
    assert live.grid is not None
    return live.grid
