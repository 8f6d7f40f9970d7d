"""Attention already at hand as a `Source`: `HeldAttention` replays layers the user holds (from any
library: `arrays` converts them), or layers handed over one at a time while their loop runs
(`held_grid.LiveLayers`). `held_layout` says how its tokens are laid out: named tokens (also cross
attention) or patches over a picture (also named query tokens over them: a vision-language model's
generated tokens), with errors naming what was expected and what was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .arrays import attention_layers, check_values, shape_text
from .images import ImageLike, load_image
from .source import AttentionCallback, Picture, Prediction, SourceInput, TokenLayout

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class LayoutOptions:
    """How the user names the tokens of held attention (the keyword arguments of `from_attention`)."""

    tokens: Sequence[str] | None = None
    query_tokens: Sequence[str] | None = None
    key_tokens: Sequence[str] | None = None
    causal: bool = False
    image: ImageLike | None = None
    grid: tuple[int, int] | None = None
    prefix_tokens: int | Sequence[str] = 0
    crop_box: Box = (0.0, 0.0, 1.0, 1.0)


class HeldAttention:
    """A `Source` of attention at hand: `capture` replays the layers of its input ([heads, queries,
    keys] each), which are checked against the grid's shape and `values` when they are prepared."""

    query_blocks = False
    methods: frozenset[str] = frozenset()

    def __init__(
        self,
        shape: tuple[int, int, int, int],
        layout: TokenLayout,
        picture: Picture | None = None,
        *,
        values: str = "attention",
        name: str = "attention",
    ):
        self.layer_count, self.head_count, self.queries, self.keys = shape
        self.layout, self.picture = layout, picture
        self.values, self.name = values, name
        self.grid_kind = "patches" if picture is not None else "tokens"

    @property
    def layer_shape(self) -> tuple[int, int, int]:
        return self.head_count, self.queries, self.keys

    def prepare_input(self, data: Any, *, batch_index: int = 0) -> SourceInput:
        """`data`: attention of this grid's shape in any layout `arrays.attention_layers` takes, or
        `CheckedLayers`."""
        if isinstance(data, CheckedLayers):
            return SourceInput(data, self.layout, self.picture)
        layers = attention_layers(data, batch_index=batch_index)
        if len(layers) != self.layer_count or layers[0].shape != self.layer_shape:
            given = shape_text((len(layers), *layers[0].shape))
            raise ValueError(
                f"this grid shows [layers, heads, queries, keys] = "
                f"{shape_text((self.layer_count, *self.layer_shape))}, given {given}: make a new grid for it"
            )
        check_values(layers, self.values)
        return SourceInput(layers, self.layout, self.picture)

    def check_layer(self, weights: Any, layer: int, *, batch_index: int = 0) -> torch.Tensor:
        """One layer handed over alone ([queries, keys], [heads, ...] or [batch, heads, ...]), checked
        against the grid's layer shape and `values`; numbered from 0 in messages, as the model's code."""
        (converted,) = attention_layers([weights], batch_index=batch_index)
        if converted.shape != self.layer_shape:
            raise ValueError(
                f"layer {layer}: expected [heads, queries, keys] = {shape_text(self.layer_shape)}, "
                f"got {shape_text(converted.shape)}"
            )
        try:
            check_values([converted], self.values)
        except ValueError as error:
            raise ValueError(f"layer {layer}: {str(error).split(': ', 1)[-1]}") from None
        return converted

    def capture(
        self, model_input: Iterable[torch.Tensor], on_block: AttentionCallback, block_bytes: int | None = None
    ) -> None:
        """Hand every layer to `on_block`, in order (waiting for layers still to come)."""
        for layer, weights in enumerate(model_input):
            on_block(layer, 0, weights)

    def predictions(self, outputs: Any) -> list[Prediction]:
        return []


class CheckedLayers:
    """Layers [heads, queries, keys] already converted and checked against their grid, which
    `prepare_input` takes as they are (`held_grid.LiveLayers`: layers arriving while a run reads them)."""

    def __init__(self, layers: Sequence[torch.Tensor] = ()):
        self.layers = list(layers)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.layers)


def held_layout(queries: int, keys: int, options: LayoutOptions) -> tuple[TokenLayout, Picture | None]:
    """The token layout (and picture) of attention with `queries` x `keys` tokens, as `options` name them."""
    shape = f"{queries} queries x {keys} keys"
    if options.image is not None or options.grid is not None:
        return _picture_layout(queries, keys, options, shape)
    if options.tokens is not None and (options.query_tokens is not None or options.key_tokens is not None):
        raise ValueError("give tokens= (self-attention) or query_tokens= and key_tokens=, not both")
    if options.tokens is not None:
        query_labels = key_labels = _labels(options.tokens, "tokens")
        if len(query_labels) != keys or queries != keys:
            raise ValueError(
                f"tokens: {len(query_labels)} given, but the attention has {shape}: give one token per "
                "key (and query_tokens= with key_tokens= for cross attention)"
            )
    else:
        query_labels = _named(options.query_tokens, queries, "query_tokens", shape)
        key_labels = _named(options.key_tokens, keys, "key_tokens", shape)
    cross = options.query_tokens is not None or queries != keys
    if options.causal and cross:
        raise ValueError(
            f"causal=True is for self-attention, where queries are the keys; the attention has {shape}"
        )
    return TokenLayout((), (1, keys), key_labels, options.causal, query_labels if cross else ()), None


def _picture_layout(
    queries: int, keys: int, options: LayoutOptions, shape: str
) -> tuple[TokenLayout, Picture]:
    if options.image is None:
        raise ValueError("grid= places the patches over a picture: give image= too")
    if options.tokens is not None or options.key_tokens is not None:
        raise ValueError("a picture's tokens are its patches: give grid= and prefix_tokens=, not tokens=")
    if options.causal:
        raise ValueError(f"patches over a picture take no causal mask; given {shape}")
    if options.query_tokens is None and queries != keys:
        raise ValueError(
            f"patches over a picture: the attention has {shape}; give query_tokens= (one per query) for "
            "queries that are not the patches, such as a vision-language model's generated tokens"
        )
    prefix = _prefix_names(options.prefix_tokens)
    patches = keys - len(prefix)
    grid = options.grid
    if grid is None:
        side = round(max(patches, 0) ** 0.5)
        if side * side != patches or patches <= 0:
            raise ValueError(
                f"the attention has {keys} keys, {len(prefix)} of them prefix tokens: {patches} patches make "
                "no square grid; give grid=(rows, columns)"
            )
        grid = (side, side)
    rows, columns = (int(size) for size in grid)
    if rows <= 0 or columns <= 0 or rows * columns + len(prefix) != keys:
        raise ValueError(
            f"grid=({rows}, {columns}) with {len(prefix)} prefix tokens makes {rows * columns + len(prefix)} "
            f"tokens, but the attention has {keys} keys"
        )
    x0, y0, x1, y1 = (float(value) for value in options.crop_box)
    if not 0 <= x0 < x1 <= 1 or not 0 <= y0 < y1 <= 1:
        raise ValueError(
            f"crop_box: expected (x0, y0, x1, y1), fractions of the picture, given {options.crop_box}"
        )
    picture = Picture(
        load_image(options.image), (x0, y0, x1, y1), input_size=(rows, columns), patch_size=(1, 1)
    )
    query_labels = (
        () if options.query_tokens is None else _named(options.query_tokens, queries, "query_tokens", shape)
    )
    return TokenLayout(prefix, (rows, columns), query_labels=query_labels), picture


def _prefix_names(prefix: int | Sequence[str]) -> tuple[str, ...]:
    """Names of the prefix (special) tokens: given, or CLS then p2, p3... for a count."""
    if isinstance(prefix, int):
        if prefix < 0:
            raise ValueError(f"prefix_tokens must be 0 or more, not {prefix}")
        return tuple("CLS" if index == 0 else f"p{index + 1}" for index in range(prefix))
    return _labels(prefix, "prefix_tokens")


def _named(labels: Sequence[str] | None, count: int, what: str, shape: str) -> tuple[str, ...]:
    if labels is None:
        return tuple(str(index) for index in range(count))
    named = _labels(labels, what)
    if len(named) != count:
        raise ValueError(f"{what}: {len(named)} given, but the attention has {shape}")
    return named


def _labels(labels: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(labels, str):
        raise TypeError(f"{what}: expected a list of tokens, got one str (split it first)")
    return tuple(str(label) for label in labels)
