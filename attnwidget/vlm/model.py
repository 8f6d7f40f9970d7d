"""`VisionLanguageModel`: a transformers vision-language model and its processor as a `Source` whose
queries are the tokens it generates and whose keys are its image tokens placed on the picture.

Keys are laid out as two special columns, "text" and "sink" (the mass on text and sink tokens, see
`generation.share_kinds`), then the canvas cells (`token_maps.ImageTokenMap.fold`), so each folded row
sums to 1. `generate` streams: `on_token` gets each token's label and shares as it comes, and a way to
fold the rows of any tokens generated so far (averaged), so nothing is kept twice.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from ..errors import UnsupportedModelError
from ..fast_attention import fast_path_refusal
from ..images import ImageLike, load_image
from ..implementation import attention_implementation
from ..source import AttentionCallback, Prediction, RowsOf, SourceInput, TokenLayout
from ..transformers_support import find_attention_modules, quiet_weight_loading
from . import families
from .families import PlacedMap
from .generation import StepRecorder, TokenStep, capturing
from .token_maps import ImageTokenMap

#: The special key columns before the canvas cells: mass on text tokens and on sink tokens.
SPECIAL_KEYS = ("text", "sink")
#: Tokens generated when the caller does not say.
DEFAULT_NEW_TOKENS = 32

OnGenerated = Callable[[int, str, RowsOf, torch.Tensor], None]
"""`on_token(index, label, rows_of, shares)`: shares [layers, heads, 3] of token `index`."""


@dataclass(frozen=True)
class PromptInput:
    """A picture and prompt run through the processor, checked against the image-token map."""

    encoded: dict[str, Any]
    placed: PlacedMap
    max_new_tokens: int

    @property
    def prompt_length(self) -> int:
        return int(self.encoded["input_ids"].shape[-1])


@dataclass(frozen=True)
class Generation:
    """A finished generation: its prompt, every generated token's step and their labels."""

    prompt: PromptInput
    steps: tuple[TokenStep, ...]
    labels: tuple[str, ...]

    @property
    def token_map(self) -> ImageTokenMap:
        return self.prompt.placed.token_map

    def layer_rows(self, layer: int) -> torch.Tensor:
        """Layer `layer` (0-based) of every generated token: [heads, tokens, 2 + cells], folded."""
        rows = torch.stack([step.rows[layer] for step in self.steps], dim=1)
        shares = torch.stack([step.shares[layer] for step in self.steps], dim=1)
        return fold_keys(self.token_map, rows, shares)

    def shares(self) -> torch.Tensor:
        """[tokens, layers, 3]: the head-mean shares of each generated token (`query_shares`)."""
        return torch.stack([step.shares.mean(1) for step in self.steps])


def fold_keys(token_map: ImageTokenMap, rows: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
    """Rows [..., image tokens] and their shares [..., 3] -> [..., 2 + cells]: text, sink, canvas."""
    return torch.cat([shares[..., 1:3], token_map.fold(rows)], dim=-1)


class VisionLanguageModel:
    """A transformers vision-language model (LLaVA 1.5, LLaVA-NeXT, PaliGemma, Qwen2-VL, Qwen2.5-VL,
    Idefics3, SmolVLM) and its processor: a `Source` of the attention of each generated token over
    the picture."""

    grid_kind = "patches"
    query_blocks = False
    methods: frozenset[str] = frozenset()
    replays = True
    """A finished generation is its own cache: `capture` of it replays the kept rows, so the session
    keeps no second copy."""

    def __init__(
        self,
        model: nn.Module,
        processor: Any,
        *,
        name: str | None = None,
        max_new_tokens: int = DEFAULT_NEW_TOKENS,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected a transformers vision-language model, got {type(model).__name__}")
        self.family = families.family_of(model)
        if processor is None:
            raise ValueError("give the model's processor (transformers.AutoProcessor.from_pretrained(name))")
        self.placeholder = families.prompt_placeholder(model, processor)
        self.model = model.eval()
        self.processor = processor
        self.name = name or getattr(model, "name_or_path", "") or type(model).__name__
        self.max_new_tokens = max_new_tokens
        language = families.language_model(model)
        self.attention_modules, self.output_index = find_attention_modules(model, language)
        self.layer_count = len(self.attention_modules)
        text_config = model.config.get_text_config()
        self.head_count = int(text_config.num_attention_heads)
        self._told_eager = False

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, *, processor: Any = None, **kwargs: Any
    ) -> VisionLanguageModel:
        """Load a model and its processor from a hub id or a local directory (`kwargs` go to the
        model's `from_pretrained`)."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        with quiet_weight_loading():
            model = AutoModelForImageTextToText.from_pretrained(name_or_path, **kwargs)
        if processor is None:
            processor = AutoProcessor.from_pretrained(name_or_path)
        return cls(model, processor, name=str(name_or_path))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prepare(self, image: ImageLike, prompt: str, max_new_tokens: int | None = None) -> PromptInput:
        """The picture and prompt through the processor, the image tokens mapped onto the picture. Raises
        before anything is generated when the prompt or the image tokens are wrong."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(
                f"give a prompt (prompt='...') holding {self.placeholder!r} where the picture goes"
            )
        if self.placeholder not in prompt and self.family != "paligemma":  # PaliGemma's processor adds it
            raise ValueError(
                f"the prompt has no image placeholder {self.placeholder!r}: put it where the picture goes, "
                f"e.g. {self.placeholder + ' Describe the picture.'!r} (or build the prompt with "
                "processor.apply_chat_template)"
            )
        picture: Image.Image = load_image(image)
        encoded = dict(self.processor(images=picture, text=prompt, return_tensors="pt"))
        encoded.pop("labels", None)
        families.pixel_count_check(encoded)
        placed = families.placed_map(self.model, self.processor, picture, encoded)
        encoded = {key: self._on_model(value) for key, value in encoded.items()}
        return PromptInput(encoded, placed, max_new_tokens or self.max_new_tokens)

    def _on_model(self, value: Any) -> Any:
        """A tensor on the model's device; pixels also in its dtype (a half-precision model)."""
        if not isinstance(value, torch.Tensor):
            return value
        parameter = next(self.model.parameters())
        dtype = parameter.dtype if value.is_floating_point() else value.dtype
        return value.to(parameter.device, dtype)

    def layout(self, placed: PlacedMap, labels: tuple[str, ...] = ()) -> TokenLayout:
        """Keys: text and sink, then the canvas; queries: the generated tokens `labels`."""
        return TokenLayout(SPECIAL_KEYS, placed.token_map.grid, query_labels=labels)

    def prepare_input(
        self, data: Any, *, prompt: str | None = None, max_new_tokens: int | None = None
    ) -> SourceInput:
        """A picture and its prompt, ready to generate from (no token generated yet)."""
        prompt_input = self.prepare(data, prompt or "", max_new_tokens)
        return SourceInput(prompt_input, self.layout(prompt_input.placed), prompt_input.placed.picture)

    def generate(
        self, prompt: PromptInput, on_token: OnGenerated | None = None, **options: Any
    ) -> Generation:
        """Generate greedily (`options` go to `model.generate`), capturing each token's rows; `on_token`
        is called as each token comes."""
        token_map = prompt.placed.token_map
        labels: list[str] = []

        def rows_of(tokens: Sequence[int]) -> torch.Tensor:
            steps = [recorder.steps[token] for token in tokens]
            rows = torch.stack([step.rows for step in steps]).mean(0)
            return fold_keys(token_map, rows, torch.stack([step.shares for step in steps]).mean(0))

        def each(index: int, step: TokenStep) -> None:
            labels.append(self.token_label(step.token_id))
            if on_token is not None:
                on_token(index, labels[-1], rows_of, step.shares)

        dtype = next(self.model.parameters()).dtype
        recorder = StepRecorder(token_map.positions, prompt.prompt_length, self.layer_count, dtype, each)
        arguments = {"do_sample": False, "max_new_tokens": prompt.max_new_tokens, **options}
        fast = self._takes_fast_path()
        with (
            torch.no_grad(),
            capturing(self.model, self.attention_modules, self.output_index, recorder, fast=fast),
        ):
            self.model.generate(**prompt.encoded, streamer=recorder, **arguments)
        return Generation(prompt, tuple(recorder.steps), tuple(labels))

    def _takes_fast_path(self) -> bool:
        """Whether the language model keeps its own attention while it generates (`fast_attention`);
        when it cannot, it is switched to eager, and the first time says why."""
        attention = self.attention_modules[0]
        refusal = fast_path_refusal(self.model, attention)
        current = attention_implementation(attention, self.model)
        if refusal is not None and current != "eager" and not self._told_eager:
            warnings.warn(
                f"{self.name}'s language model uses {current!r} attention, which returns no attention "
                f"weights, and attnwidget cannot compute them beside it ({refusal}); it switches the "
                "language model to 'eager' while it generates and back afterwards",
                stacklevel=4,
            )
            self._told_eager = True
        return refusal is None

    def finished_input(self, generation: Generation) -> SourceInput:
        """The input of a finished generation: its tokens are the queries, replayed without the model."""
        placed = generation.prompt.placed
        return SourceInput(generation, self.layout(placed, generation.labels), placed.picture)

    def capture(self, model_input: Any, on_block: AttentionCallback, block_bytes: int | None = None) -> Any:
        """Hand each layer's folded rows [heads, generated tokens, 2 + cells] to `on_block`, generating
        first when `model_input` is a prompt. Returns the `Generation`."""
        generation = model_input if isinstance(model_input, Generation) else self.generate(model_input)
        if not generation.steps:
            raise ValueError("no token was generated: raise max_new_tokens")
        for layer in range(self.layer_count):
            on_block(layer, 0, generation.layer_rows(layer))
        return generation

    def predictions(self, outputs: Any) -> list[Prediction]:
        return []

    def token_label(self, token_id: int) -> str:
        """A generated token as readable text."""
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        text = tokenizer.decode([token_id])
        if not text:
            return "∅"
        return text if text.strip() and text.isprintable() else repr(text)


def is_vision_language_model(model: Any) -> bool:
    """Whether `model` is a transformers model of a family attnwidget maps (`families.FAMILIES`)."""
    return getattr(getattr(model, "config", None), "model_type", None) in families.FAMILIES


def check_supported(model: Any) -> None:
    """An UnsupportedModelError when `model` is no vision-language model of a known family."""
    if not isinstance(model, nn.Module):
        raise UnsupportedModelError(
            f"expected a transformers vision-language model, got {type(model).__name__}"
        )
    families.family_of(model)
