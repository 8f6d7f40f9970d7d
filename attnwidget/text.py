"""A thin wrapper around Hugging Face text models, as `VisionModel` is for vision transformers.

Encoders (BERT family), decoders (GPT-2, Llama, Mistral, Qwen) and encoder-decoders (T5, BART):
for the last, `stack` picks the encoder's self-attention, the decoder's, or the decoder's cross
attention over the encoder's tokens. The attention modules are found by the model's own structure.
A model on sdpa / flash attention whose architecture is verified exact is captured beside its own
attention (`fast_attention`); any other is switched to eager only while capturing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .capture import (
    BLOCKED_ATTENTION,
    AttentionNotReturnedError,
    BlockCallback,
    LayerCallback,
    capture_attention,
    capture_attention_blocks,
    register_query_block_attention,
)
from .errors import UnsupportedModelError
from .fast_attention import FAST_ATTENTION, fast_block_bytes, fast_path_refusal, register_fast_attention
from .implementation import EagerSwitch
from .score_blocks import scores_accepted
from .source import AttentionCallback, Prediction, SourceInput, TokenLayout, predictions
from .transformers_support import find_attention_modules, language_path, load_config, quiet_weight_loading

Stack = Literal["auto", "encoder", "decoder", "cross"]


@dataclass(frozen=True)
class TextInput:
    """A tokenized text: what the model runs on and the token labels (queries, and keys)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    tokens: tuple[str, ...]
    """The query tokens, as text."""
    key_tokens: tuple[str, ...]
    """The key tokens: the same as `tokens` but for cross attention (the encoder's tokens)."""
    decoder_input_ids: torch.Tensor | None = None


class TextModel:
    """A transformers text model and its tokenizer, ready for attention capture: a `Source` of token x
    token attention, captured a block of queries at a time where a layer is too large."""

    grid_kind = "tokens"
    query_blocks = True
    methods: frozenset[str] = frozenset()

    def __init__(self, model: nn.Module, tokenizer: Any, *, stack: Stack = "auto", name: str | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected a torch / transformers model, got {type(model).__name__}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model, "name_or_path", "") or type(model).__name__
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        self.config = model.config if self.encoder_decoder else model.config.get_text_config(decoder=True)
        """The language model's config (its text config where towers sit beside it)."""
        if stack == "auto":
            stack = "encoder" if self.encoder_decoder or not _is_decoder(model, self.config) else "decoder"
        if stack not in ("encoder", "decoder", "cross"):
            raise ValueError(f"stack must be 'auto', 'encoder', 'decoder' or 'cross', not {stack!r}")
        if stack == "cross" and not self.encoder_decoder:
            raise UnsupportedModelError(f"{self.name} is not an encoder-decoder: it has no cross attention")
        self.stack = stack
        root = _stack_root(model, stack) if self.encoder_decoder else model
        kind = "cross_attentions" if stack == "cross" else "attentions"
        declared_by = None if self.encoder_decoder else language_path(model)  # not its towers'
        self.attention_modules, self.output_index = find_attention_modules(model, root, kind, declared_by)
        self.layer_count = len(self.attention_modules)
        self.head_count = _head_count(self.config, stack)
        bidirectional = getattr(self.attention_modules[0], "is_causal", True) is False  # PaliGemma's
        self.causal = stack == "decoder" and not bidirectional
        """Each query sees only itself and earlier keys (decoder self-attention, unless its attention
        modules say they are not causal, as a prefix language model's are)."""
        self.context_length = _context_length(self.config, tokenizer)
        self._eager = EagerSwitch(model, self.attention_modules[0], self.name)

    @property
    def query_selection(self) -> bool:
        """Whether `capture` computes only the query rows it is given (`rows`): the model runs its own
        sdpa / flash attention and the weights are computed beside it (`fast_attention`)."""
        return fast_path_refusal(self.model, self.attention_modules[0]) is None

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, *, stack: Stack = "auto", tokenizer: Any = None, **kwargs: Any
    ) -> TextModel:
        """Load a model and its tokenizer from a hub id or a local directory, with the attention
        implementation transformers picks for it (sdpa where the architecture has it).

        `kwargs` go to the model's `from_pretrained`. Code shipped with a checkpoint runs only with
        `trust_remote_code=True`, which then applies to its config, model and tokenizer alike.
        """
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        source = str(name_or_path)
        if Path(source).expanduser().exists() and not Path(source).expanduser().is_dir():
            raise FileNotFoundError(f"{source} is a file: give a directory written by save_pretrained")
        trust_remote_code = bool(kwargs.pop("trust_remote_code", False))
        config = load_config(name_or_path, trust_remote_code=trust_remote_code)
        architectures = getattr(config, "architectures", None) or []
        names = " ".join(architectures)
        if "CausalLM" in names or "LMHead" in names:
            loader = AutoModelForCausalLM
        elif "ConditionalGeneration" in names or "Seq2SeqLM" in names:
            loader = AutoModelForSeq2SeqLM
        else:
            loader = AutoModel
        with quiet_weight_loading():
            model = loader.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **kwargs)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, stack=stack, name=source)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prepare(self, text: str, target: str | None = None) -> TextInput:
        """Tokenize `text` (and, for an encoder-decoder's decoder or cross attention, `target`, the
        decoder's text; default: the decoder's start token only)."""
        if not isinstance(text, str):
            raise TypeError(f"expected the text as a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("the text is empty: give at least one word")
        encoded = self.tokenizer(text, return_tensors="pt")
        input_ids = encoded["input_ids"]
        self._check_ids(input_ids, "text")
        attention_mask = encoded.get("attention_mask", torch.ones_like(input_ids))
        tokens = self.token_labels(input_ids[0])
        decoder_ids = None
        if self.encoder_decoder:
            decoder_ids = self._decoder_ids(target)
            self._check_ids(decoder_ids, "target")
        on_decoder = decoder_ids is not None and self.stack in ("decoder", "cross")
        query_tokens = self.token_labels(decoder_ids[0]) if on_decoder else tokens
        device = self.device
        return TextInput(
            input_ids.to(device),
            attention_mask.to(device),
            query_tokens,
            tokens if self.stack == "cross" else query_tokens,
            None if decoder_ids is None else decoder_ids.to(device),
        )

    def layout(self, inputs: TextInput) -> TokenLayout:
        """The token layout of a tokenized text: one row of key tokens, named by their text (and, for
        cross attention, the decoder's query tokens)."""
        cross = self.stack == "cross"
        query_labels = inputs.tokens if cross else ()
        return TokenLayout((), (1, len(inputs.key_tokens)), inputs.key_tokens, self.causal, query_labels)

    def prepare_input(self, data: Any, *, decoder_text: str | None = None) -> SourceInput:
        """A text (and an encoder-decoder's `decoder_text`) tokenized, with its layout."""
        inputs = self.prepare(data, decoder_text)
        return SourceInput(inputs, self.layout(inputs))

    def capture(
        self,
        model_input: TextInput,
        on_block: AttentionCallback,
        block_bytes: int | None = None,
        rows: Sequence[int] | None = None,
    ) -> Any:
        """`run_fast` where the model takes the fast path (`query_selection`), else `run`, or
        `run_in_blocks` when `block_bytes` is given; `on_block` gets weights without the batch
        dimension. `rows` (only with `query_selection`): the query rows wanted, numbered among them."""

        def unbatched(layer: int, first: int, weights: torch.Tensor) -> None:
            on_block(layer, first, weights[0])

        if self.query_selection:
            return self.run_fast(model_input, unbatched, block_bytes, rows, scores_accepted())
        if rows is not None:
            raise ValueError(f"{self.name} computes every query row: it does not take the fast path")
        if block_bytes is None:
            return self.run(model_input, lambda layer, weights: on_block(layer, 0, weights[0]))
        return self.run_in_blocks(model_input, unbatched, block_bytes)

    def predictions(self, outputs: Any) -> list[Prediction]:
        """The most probable next tokens of a language model; empty for other models."""
        return self.next_token_predictions(outputs)

    def next_token_predictions(self, outputs: Any, top_k: int = 5) -> list[Prediction]:
        """A language model's `top_k` most probable next tokens after the text, as text."""
        logits = getattr(outputs, "logits", None)
        if logits is None or logits.ndim != 3:
            return []
        top = predictions(logits[:, -1], {}, top_k)  # labelled below: only these few are decoded
        labels = self.token_labels(torch.tensor([prediction.index for prediction in top]))
        return [replace(prediction, label=label) for prediction, label in zip(top, labels, strict=True)]

    def token_labels(self, ids: torch.Tensor) -> tuple[str, ...]:
        """Each token as readable text (byte-level BPE and SentencePiece marks turned into spaces)."""
        pieces = self.tokenizer.convert_ids_to_tokens(ids.tolist())
        labels = []
        for piece in pieces:
            text = self.tokenizer.convert_tokens_to_string([piece]) if piece is not None else ""
            if not text:
                labels.append("∅")
            elif not text.strip() or not text.isprintable():  # spaces alone, newlines, control bytes
                labels.append(repr(text))
            else:
                labels.append(text)
        return tuple(labels)

    def run(self, inputs: TextInput, on_layer: LayerCallback) -> Any:
        """Forward pass that hands each layer's attention [1, H, queries, keys] to `on_layer`."""
        with (
            self._eager(why=fast_path_refusal(self.model, self.attention_modules[0])),
            torch.no_grad(),
            capture_attention(self.attention_modules, self.output_index, on_layer),
        ):
            return self.model(**_arguments(inputs))

    def run_in_blocks(self, inputs: TextInput, on_block: BlockCallback, block_bytes: int) -> Any:
        """Forward pass that hands each layer's attention to `on_block(layer, first_query, weights)` a
        block of queries at a time ([1, H, block queries, keys], at most `block_bytes` in float32), for
        contexts where one layer's whole attention would not fit. Outputs equal eager attention's."""
        register_query_block_attention()
        return self._run_with(BLOCKED_ATTENTION, inputs, on_block, block_bytes)

    def run_fast(
        self,
        inputs: TextInput,
        on_block: BlockCallback,
        block_bytes: int | None = None,
        rows: Sequence[int] | None = None,
        scores: bool = False,
    ) -> Any:
        """Forward pass with the model's own sdpa attention (its outputs are sdpa's) that hands the
        weights of query rows `rows` (default: all, in order) to `on_block(layer, first, weights)`, a
        block of at most `block_bytes` (and `fast_block_bytes`) at a time ([1, H, block rows, keys];
        `first` counts among `rows`); with `scores`, `ScoreBlock`s where sdpa kept its log-sum-exp.
        Only for models that take the fast path (`query_selection`)."""
        register_fast_attention()
        budget = fast_block_bytes(self.model, block_bytes)
        return self._run_with(FAST_ATTENTION, inputs, on_block, budget, rows, scores)

    def _run_with(
        self,
        implementation: str,
        inputs: TextInput,
        on_block: BlockCallback,
        block_bytes: int,
        rows: Sequence[int] | None = None,
        scores: bool = False,
    ) -> Any:
        layers_seen: set[int] = set()

        def record(layer: int, first_query: int, weights: torch.Tensor) -> None:
            layers_seen.add(layer)
            on_block(layer, first_query, weights)

        with (
            self._eager(implementation),
            torch.no_grad(),
            capture_attention_blocks(self.attention_modules, record, block_bytes, rows, scores),
        ):
            outputs = self.model(**_arguments(inputs))
        if len(layers_seen) < self.layer_count:
            advice = ": give the widget a block_bytes larger than one layer's attention"
            raise AttentionNotReturnedError(
                f"{self.name} handed over attention for {len(layers_seen)} of its {self.layer_count} layers: "
                "the others computed theirs outside transformers' attention interface, or did not run on "
                f"this input{advice if implementation == BLOCKED_ATTENTION else ''}"
            )
        return outputs

    def _decoder_ids(self, target: str | None) -> torch.Tensor:
        start = getattr(self.model.config, "decoder_start_token_id", None)
        if start is None:
            raise UnsupportedModelError(f"{self.name} names no decoder start token")
        if target is None or not target.strip():
            return torch.tensor([[start]])
        ids = self.tokenizer(text_target=target, return_tensors="pt")["input_ids"]
        return torch.cat([torch.tensor([[start]]), ids[:, :-1]], dim=1)  # shifted right, as in training

    def _check_ids(self, ids: torch.Tensor, what: str) -> None:
        if self.context_length and ids.shape[-1] > self.context_length:
            raise ValueError(
                f"the {what} is {ids.shape[-1]} tokens long, more than {self.name}'s context of "
                f"{self.context_length}: shorten it"
            )
        vocabulary = getattr(self.config, "vocab_size", None)
        if vocabulary and int(ids.max()) >= vocabulary:
            raise ValueError(
                f"the tokenizer produced token id {int(ids.max())} but {self.name} has {vocabulary} "
                "tokens: the tokenizer does not belong to this model (load both from the same checkpoint)"
            )


def _arguments(inputs: TextInput) -> dict[str, Any]:
    arguments: dict[str, Any] = {"input_ids": inputs.input_ids, "attention_mask": inputs.attention_mask}
    if inputs.decoder_input_ids is not None:
        arguments["decoder_input_ids"] = inputs.decoder_input_ids
    return arguments


def _is_decoder(model: nn.Module, text_config: Any) -> bool:
    """Whether a model that is not an encoder-decoder is a decoder: marked so (in `text_config`, its
    language model's), named so, or one that generates (a language model with towers inside, such as
    LLaVA's)."""
    marked = bool(getattr(text_config, "is_decoder", False))
    named = type(model).__name__.endswith(("CausalLM", "LMHeadModel"))
    can_generate = getattr(model, "can_generate", None)
    return marked or named or bool(callable(can_generate) and can_generate())


def _stack_root(model: nn.Module, stack: str) -> nn.Module:
    part = "encoder" if stack == "encoder" else "decoder"
    for holder in (model, getattr(model, "model", None)):
        module = getattr(holder, part, None) if holder is not None else None
        if isinstance(module, nn.Module):
            return module
    get = getattr(model, f"get_{part}", None)
    if callable(get):
        return get()
    raise UnsupportedModelError(f"{type(model).__name__} has no {part} to capture")


def _head_count(config: Any, stack: str) -> int:
    shared = ("num_heads", "num_attention_heads", "n_head")
    side = (
        ("encoder_attention_heads",)
        if stack == "encoder"
        else ("decoder_attention_heads", "num_decoder_heads")
    )
    for name in side + shared:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise UnsupportedModelError(f"{type(config).__name__} names no attention head count")


def _context_length(config: Any, tokenizer: Any) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and 0 < value < 10**7:
            return value
    limit = getattr(tokenizer, "model_max_length", 0)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else 0
