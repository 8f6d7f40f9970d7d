"""Capture during generation: for each generated token and each language-model layer, only the row of
attention that produced it over the image tokens ([heads, image tokens]) and its shares on image,
text and sink tokens ([heads, 3]), never a whole matrix.

The row of generated token `i` is the last query row of the forward step whose logits chose it (step 0,
the prompt's prefill, chooses the first token): the same row as `generate(output_attentions=True)`'s
`attentions[i][layer][:, :, -1]`, kept in the model's dtype. Where the language model takes the fast
path (`fast_attention`) it keeps its own sdpa attention and only that row is computed beside it, from
the same query and key; otherwise the language model alone is switched to eager while it generates.
Memory: `tokens x layers x heads x image tokens` values of that dtype (and 3 float32 shares),
whatever the context length.

Sinks (`sink_mask`): the first key, and any other key of the prompt that is not an image token and
receives at least `SINK_SHARE` of the layer's head-mean attention from the query (the query's own
key excepted). Image tokens are never sinks here, so the image share is the mass the maps show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..capture import AttentionNotReturnedError, capture_attention_blocks, removed_after
from ..contract import SHARE_KINDS
from ..fast_attention import FAST_ATTENTION, fast_block_bytes, register_fast_attention

#: A prompt key other than the first is a sink when it receives at least this share of the head mean.
SINK_SHARE = 0.25


def sink_mask(row: torch.Tensor, image_mask: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """[..., keys] bool: the sink keys of one query's attention `row` [..., heads, keys] (see the
    module), for each of any leading dimensions (layers)."""
    keys = row.shape[-1]
    mean = row.float().mean(-2)
    prompt = torch.arange(keys, device=row.device) < min(prompt_length, keys - 1)
    sinks = prompt & ~image_mask[:keys] & (mean >= SINK_SHARE)
    sinks[..., 0] = not bool(image_mask[0])
    return sinks


def share_kinds(row: torch.Tensor, image_mask: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """[..., heads, len(SHARE_KINDS)]: each head's attention mass on image, text and sink keys (sums to
    1) of one query's attention `row` [..., heads, keys], for each of any leading dimensions."""
    row = row.float()
    keys = row.shape[-1]
    image = image_mask[:keys].to(row.device)
    sinks = sink_mask(row, image, prompt_length)
    kind = torch.where(image, 0, torch.where(sinks, 2, 1))  # the order of SHARE_KINDS
    return row @ torch.nn.functional.one_hot(kind, len(SHARE_KINDS)).to(row.dtype)


@dataclass
class TokenStep:
    """One generated token: its id, and per layer its row over the image tokens and its shares."""

    token_id: int
    rows: torch.Tensor
    """[layers, heads, image tokens], in the model's dtype."""
    shares: torch.Tensor
    """[layers, heads, len(SHARE_KINDS)] float32."""


OnToken = Callable[[int, TokenStep], None]
"""`on_token(index, step)`: called as each token is generated (index from 0)."""


@dataclass
class StepRecorder:
    """Collects each forward step's rows from the attention hooks and pairs them with the token the
    step chose (from the streamer); steps are kept in `steps`."""

    positions: torch.Tensor
    prompt_length: int
    layer_count: int
    dtype: torch.dtype
    """The model's: rows are kept in it, as `output_attentions` gives them."""
    on_token: OnToken | None = None
    steps: list[TokenStep] = field(default_factory=list)
    _rows: dict[int, torch.Tensor] = field(default_factory=dict)
    _pending: tuple[torch.Tensor, torch.Tensor] | None = None
    _prompt_seen: bool = False
    _masks: tuple[torch.Tensor, torch.Tensor] | None = None

    def layer(self, layer: int, weights: torch.Tensor) -> None:
        """One layer's weights [1, heads, queries, keys] of the current forward step."""
        self._rows[layer] = weights[0, :, -1, :].detach()
        if len(self._rows) == self.layer_count:  # every layer's in: one pass and one copy per token
            rows = torch.stack([self._rows[i] for i in range(self.layer_count)])  # [layers, heads, keys]
            positions, image_mask = self._on_device(rows.device, rows.shape[-1])
            self._pending = (
                rows.index_select(2, positions).to(self.dtype).cpu(),
                share_kinds(rows, image_mask, self.prompt_length).cpu(),
            )
            self._rows = {}

    def _on_device(self, device: torch.device, keys: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The image positions and an image mask of at least `keys` keys on `device`, made once."""
        if self._masks is None or self._masks[1].device != device or self._masks[1].numel() < keys:
            mask = torch.zeros(max(keys, 2 * self.prompt_length), dtype=torch.bool, device=device)
            mask[self.positions.to(device)] = True
            self._masks = (self.positions.to(device), mask)
        return self._masks

    # The streamer interface of `generate`: the prompt first, then each chosen token.
    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        if self._pending is None:
            raise AttentionNotReturnedError(
                "a token was generated without attention from every language-model layer"
            )
        rows, shares = self._pending
        self._pending = None
        step = TokenStep(int(value.reshape(-1)[0]), rows, shares)
        self.steps.append(step)
        if self.on_token is not None:
            self.on_token(len(self.steps) - 1, step)

    def end(self) -> None:
        pass


@contextmanager
def hooked(modules: list[nn.Module], output_index: int, recorder: StepRecorder) -> Iterator[None]:
    """Forward hooks on the language model's attention modules feeding `recorder`; removed on exit."""

    def hook_for(layer: int):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            weights = output[output_index] if isinstance(output, (tuple, list)) else None
            if not isinstance(weights, torch.Tensor):
                raise AttentionNotReturnedError(
                    f"{type(module).__name__} of language-model layer {layer + 1} returned no weights"
                )
            recorder.layer(layer, weights)

        return hook

    with removed_after(
        [module.register_forward_hook(hook_for(layer)) for layer, module in enumerate(modules)]
    ):
        yield


@contextmanager
def capturing(
    model: nn.Module, modules: list[nn.Module], output_index: int, recorder: StepRecorder, *, fast: bool
) -> Iterator[None]:
    """Within the block, each step of the model's generation hands the language model's weights to
    `recorder`: with `fast`, the last query row only, computed beside the language model's own sdpa
    attention; otherwise every weight the language model returns once it is switched to eager. The
    vision tower keeps its implementation; the language model's is restored afterwards."""
    if not fast:
        with language_model_on(model, "eager"), hooked(modules, output_index, recorder):
            yield
        return
    register_fast_attention()

    def last_row(layer: int, first: int, weights: torch.Tensor) -> None:
        recorder.layer(layer, weights)

    last = (-1,)  # the row of the step's last query: the one whose logits choose the next token
    with (
        language_model_on(model, FAST_ATTENTION),
        capture_attention_blocks(modules, last_row, fast_block_bytes(model), rows=last),
    ):
        yield


@contextmanager
def language_model_on(model: nn.Module, implementation: str) -> Iterator[None]:
    """The language model (only) computes attention with `implementation` within the block; the vision
    tower keeps its own. The previous implementation is restored afterwards."""
    text_config = model.config.get_text_config()
    previous = getattr(text_config, "_attn_implementation", None) or "eager"
    if previous == implementation:
        yield
        return
    key = _text_config_key(model)
    model.set_attn_implementation({key: implementation})
    try:
        yield
    finally:
        model.set_attn_implementation({key: previous})


def _text_config_key(model: nn.Module) -> str:
    config = model.config
    for key in getattr(config, "sub_configs", {}) or {}:
        if getattr(config, key, None) is config.get_text_config():
            return key
    return "text_config"
