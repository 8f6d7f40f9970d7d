"""What the grid needs from anything that yields attention: the `Source` protocol and its small types.

A source prepares an input (`prepare_input`), says how its tokens are laid out (`TokenLayout`),
runs with a callback that receives each layer's attention (`capture`), and may offer predictions,
a picture the maps lie over and explanation methods. `VisionModel` (a transformers vision
transformer), `TextModel` (a transformers text model) and `TimmModel` (a timm vision transformer)
implement it; so can attention tensors already at hand (`capture` replays them) or a
vision-language model (the rows of generated tokens over the image tokens): the widget asks the
protocol, never the kind of model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from PIL import Image

    from .explain import Explanation

GridKind = Literal["patches", "tokens"]
""""patches": maps from the query to a patch grid over a picture (shown first as query maps);
"tokens": token x token attention, one row of tokens (shown first as matrices)."""

AttentionCallback = Callable[[int, int, torch.Tensor], None]
"""`on_block(layer, first_query, weights)`: layer 0-based, `weights` [heads, block queries, keys]."""


@dataclass(frozen=True)
class TokenLayout:
    """Special (prefix) tokens first, then the patch tokens in row-major order over `grid`."""

    special_tokens: tuple[str, ...]
    grid: tuple[int, int]
    labels: tuple[str, ...] = ()
    """Text models: every token as text (the "grid" is then one row of tokens)."""
    causal: bool = False
    """Text decoders: each query sees only itself and earlier keys."""
    query_labels: tuple[str, ...] = ()
    """Cross attention: the query tokens as text, when they are not the keys (`labels`)."""

    @property
    def special_count(self) -> int:
        return len(self.special_tokens)

    @property
    def token_count(self) -> int:
        """Key tokens (and query tokens, but for cross attention)."""
        return self.special_count + self.grid[0] * self.grid[1]

    @property
    def query_count(self) -> int:
        return len(self.query_labels) if self.query_labels else self.token_count

    @property
    def default_query(self) -> list[int]:
        """CLS where the model has one, else every patch (their rows are averaged). Text: the last
        token for a decoder (what the next prediction attends from), a leading CLS-like token for an
        encoder, else every token."""
        if self.query_labels:
            return [len(self.query_labels) - 1]  # the decoder's last token
        if self.labels:
            if self.causal:
                return [len(self.labels) - 1]
            if re.search("cls|class", self.labels[0], re.IGNORECASE):
                return [0]
        if self.special_tokens and self.special_tokens[0] == "CLS":
            return [0]
        return list(range(self.special_count, self.token_count))

    def check_query(self, query: list[int]) -> None:
        if not query:
            raise ValueError("the query is empty: give at least one token index")
        bad = [token for token in query if not 0 <= token < self.query_count]
        if bad:
            raise ValueError(
                f"query tokens {bad} are out of range: this input has query tokens 0..{self.query_count - 1}"
            )


@dataclass(frozen=True)
class Picture:
    """The picture a source's maps lie over, and where the model's input lies in it."""

    image: Image.Image
    crop_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    """The region of `image` the model saw, as fractions of its width and height."""
    input_size: tuple[int, int] = (0, 0)
    """The model's input, (height, width) in pixels."""
    patch_size: tuple[int, int] = (0, 0)
    """Pixels of the model's input per patch, (height, width)."""
    placed: bool = True
    """False when where the model's input lies in the picture is unknown: `crop_box` is then the whole
    picture, and the grid says that the maps are spread over it."""


@dataclass(frozen=True)
class SourceInput:
    """One prepared input: what `capture` runs on, its token layout and its picture, if any."""

    model_input: Any
    layout: TokenLayout
    picture: Picture | None = None


@dataclass(frozen=True)
class Prediction:
    """One class of a model's top-k (or one next token): index, label and softmax probability."""

    index: int
    label: str
    probability: float


def predictions(logits: torch.Tensor, labels: dict[int, str], top_k: int = 5) -> list[Prediction]:
    """The `top_k` most probable classes of logits [1, classes], most probable first."""
    probabilities = logits.detach().float().softmax(-1)[0]
    values, indices = probabilities.topk(min(top_k, probabilities.numel()))
    return [
        Prediction(int(i), labels.get(int(i), str(int(i))), float(v))
        for v, i in zip(values, indices, strict=True)
    ]


@runtime_checkable
class Source(Protocol):
    """Anything the grid can show: it yields `head_count` heads of attention for each of `layer_count`
    layers of an input.

    `query_blocks` says whether `capture` can hand a layer a block of queries at a time (for layers
    too large to hold whole); `methods` names the explanation methods (keys of
    `attnwidget.contract.METHODS` other than "attention") that `explain` computes, empty for none.
    """

    name: str
    layer_count: int
    head_count: int
    grid_kind: GridKind
    query_blocks: bool
    methods: Collection[str]

    def prepare_input(self, data: Any, **options: Any) -> SourceInput:
        """The input for `data` (a picture, a text...); `options` are the source's own (a decoder text)."""
        ...

    def capture(self, model_input: Any, on_block: AttentionCallback, block_bytes: int | None = None) -> Any:
        """Run on `model_input`, handing each layer's weights to `on_block` as they are computed:
        whole layers, or blocks of queries of at most `block_bytes` (float32) when it is given (only
        asked of sources with `query_blocks`). Returns the outputs `predictions` reads."""
        ...

    def predictions(self, outputs: Any) -> list[Prediction]:
        """The top classes or next tokens of `capture`'s outputs; empty when there are none."""
        ...


RowsOf = Callable[[Sequence[int]], torch.Tensor]
"""`rows_of(tokens)`: a generating source's rows of generated `tokens`, averaged: [layers, heads, keys]."""


@runtime_checkable
class GeneratingSource(Source, Protocol):
    """A source whose queries are the tokens it generates (a vision-language model): the grid streams
    the generation, then shows the finished input like any other."""

    def generate(self, model_input: Any, on_token: Callable[[int, str, RowsOf, torch.Tensor], None]) -> Any:
        """Generate from a prepared prompt; `on_token(index, label, rows_of, shares)` as each token
        comes: its shares [layers, heads, len(contract.SHARE_KINDS)], and `rows_of(tokens)`, the rows
        [layers, heads, keys] of any tokens generated so far, averaged."""
        ...

    def finished_input(self, generation: Any) -> SourceInput:
        """The input of a finished generation (its tokens the queries), replayed without the model."""
        ...


@runtime_checkable
class ExplainingSource(Source, Protocol):
    """A source with explanation methods (`methods` not empty) and classes they can explain."""

    def explain(self, model_input: Any, method: str, **options: Any) -> Explanation:
        """The map of `method` over the patch grid; `options` as for `attnwidget.explain.explain`."""
        ...

    def class_index(self, name_or_index: str | int) -> int:
        """The index of a class (a label or an index); a ValueError names close labels."""
        ...
