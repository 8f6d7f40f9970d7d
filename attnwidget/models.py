"""A thin wrapper around Hugging Face vision transformers that hides their quirks from the widget.

It finds the attention modules by running the model once (`attention_probe`), measures its token
layout (prefix tokens = keys - patches, named from the model's own token parameters), turns pictures
into model inputs and captures beside the model's own sdpa / flash attention where its architecture
is verified exact (`fast_attention`), switching any other to eager only for the capture.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from .attention_probe import patches_in_order, prefix_token_names, probe_attention
from .capture import BlockCallback, LayerCallback, Workspace, capture_attention, capture_attention_blocks
from .contract import METHODS
from .errors import UnsupportedModelError
from .explain import Explanation, class_index, explain
from .fast_attention import FAST_ATTENTION, fast_block_bytes, fast_path_refusal, register_fast_attention
from .geometry import InputGeometry, input_geometry
from .images import load_image
from .implementation import EagerSwitch
from .score_blocks import scores_accepted
from .source import AttentionCallback, Picture, Prediction, SourceInput, TokenLayout, predictions
from .transformers_support import find_attention_modules, load_config, quiet_weight_loading

#: Pictures larger than this (pixels) are shrunk before the processor sees them (`VisionModel.prepare`).
SHRINK_ABOVE_PIXELS = 4096 * 4096


class VisionModel:
    """A vision transformer and its image processor, ready for attention capture: a `Source` of
    query -> patch maps over the picture, with every explanation method."""

    grid_kind = "patches"
    query_blocks = False
    methods = frozenset(METHODS) - {"attention"}

    def __init__(self, model: nn.Module, processor: Any = None, name: str | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"expected a torch / transformers model, got {type(model).__name__}")
        self.model = model.eval()
        self.name = name or getattr(model, "name_or_path", "") or type(model).__name__
        self.forward_module = _vision_tower(model)
        config = getattr(model, "config", None)
        config = getattr(config, "vision_config", config)
        if getattr(config, "patch_size", None) is None:
            find_attention_modules(model, self.forward_module)  # without any: the reason (a CNN: Grad-CAM)
            raise UnsupportedModelError(
                f"{type(model).__name__} is not a vision transformer (its config names no patch_size). "
                "A text model goes into the grid as attnwidget.text.TextModel(model, tokenizer) or "
                "TextModel.from_pretrained(id_or_dir)"
            )
        self.processor = processor if processor is not None else _processor_for(model)
        tokenizer = _is_tokenizer(self.processor)
        if tokenizer or not callable(self.processor):
            kind = "tokenizer, which reads text" if tokenizer else "value"
            raise TypeError(
                f"processor= must be the model's image processor (AutoImageProcessor.from_pretrained(...)), "
                f"not a {type(self.processor).__name__} (a {kind})"
            )
        self.patch_size = _as_pair(config.patch_size)
        self._eager = EagerSwitch(model, self.forward_module, self.name)
        self._find_attention(config)
        self._geometries: dict[tuple[int, int], InputGeometry] = {}

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, processor: Any = None, **kwargs: Any) -> VisionModel:
        """Load a model (and its processor, unless given) from a hub id or a local directory, eager.

        `kwargs` go to the model's `from_pretrained`. Code shipped with a checkpoint runs only with
        `trust_remote_code=True`, which then applies to its config, model and processor alike.
        """
        from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification

        source = str(name_or_path)
        looks_local = isinstance(name_or_path, Path) or source.startswith((".", "/", "~"))
        if looks_local and not Path(source).expanduser().is_dir():
            raise FileNotFoundError(
                f"no model directory at {source}: give a directory written by save_pretrained"
            )
        trust_remote_code = bool(kwargs.pop("trust_remote_code", False))
        config = load_config(name_or_path, trust_remote_code=trust_remote_code)
        architectures = getattr(config, "architectures", None) or []
        classifies = any("ImageClassification" in name for name in architectures)
        loader = AutoModelForImageClassification if classifies else AutoModel
        with quiet_weight_loading():
            model = loader.from_pretrained(
                name_or_path, attn_implementation="eager", trust_remote_code=trust_remote_code, **kwargs
            )
        if processor is None:
            processor = AutoImageProcessor.from_pretrained(
                name_or_path, trust_remote_code=trust_remote_code, **_processor_backend()
            )
        if cls is VisionModel:
            from .windowed_model import WindowedVisionModel, has_shifted_windows

            if has_shifted_windows(model):
                return WindowedVisionModel(model, processor, name=source)
        return cls(model, processor, name=source)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prepare(self, image: Image.Image) -> tuple[torch.Tensor, InputGeometry]:
        """Model input for `image` and where that input lies in the picture.

        A picture of more than `SHRINK_ABOVE_PIXELS` is first shrunk to 4 x the size the processor
        resizes it to, the same geometry, so the processor never holds a huge float copy of it.
        """
        geometry = self._geometries.get(image.size) or input_geometry(self.processor, image.size)
        self._geometries[image.size] = geometry  # measured once per picture size
        resized_w, resized_h = geometry.resized
        large = image.width * image.height > SHRINK_ABOVE_PIXELS
        if large and image.width > 4 * resized_w and image.height > 4 * resized_h:
            image = image.resize((4 * resized_w, 4 * resized_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        pixel_values = processed_pixels(self.processor, image).unsqueeze(0)
        dtype = next(self.model.parameters()).dtype
        return pixel_values.to(device=self.device, dtype=dtype), geometry

    def layout(self, pixel_values: torch.Tensor) -> TokenLayout:
        """Token layout of the model for this input: its measured prefix tokens, then the patches."""
        grid = (pixel_values.shape[-2] // self.patch_size[0], pixel_values.shape[-1] // self.patch_size[1])
        return TokenLayout(self.prefix_tokens, grid)

    def prepare_input(self, data: Any, **options: Any) -> SourceInput:
        """A picture (anything `load_image` reads) as the model's input, its layout and its picture."""
        if options:
            raise TypeError(f"a vision model takes only the picture, not {', '.join(options)}")
        picture = load_image(data)
        pixel_values, geometry = self.prepare(picture)
        input_size = (int(pixel_values.shape[-2]), int(pixel_values.shape[-1]))
        return SourceInput(
            pixel_values,
            self.layout(pixel_values),
            Picture(picture, tuple(geometry.crop_box), input_size, self.patch_size, geometry.known),
        )

    @property
    def query_selection(self) -> bool:
        """Whether `capture` runs the model's own sdpa / flash attention and computes the weights
        beside it (`fast_attention`), only for the query rows it is given (`rows`)."""
        return fast_path_refusal(self.model, self.attention_modules[0]) is None

    def capture(
        self,
        model_input: torch.Tensor,
        on_block: AttentionCallback,
        block_bytes: int | None = None,
        rows: Sequence[int] | None = None,
    ) -> Any:
        """`run_fast` where the model takes the fast path (`query_selection`; `rows` as there), else
        `run`, handing each layer's weights [H, N, N] (or blocks of rows) to `on_block(layer, first,
        weights)`; a layer over more or fewer tokens than the layout accounts for is refused, never
        drawn misplaced."""
        layout = self.layout(model_input)

        def checked_block(layer: int, first: int, weights: torch.Tensor) -> None:
            self._check_tokens(layer, weights, layout)
            on_block(layer, first, weights[0])

        if self.query_selection:
            return self.run_fast(model_input, checked_block, block_bytes, rows, scores_accepted())
        return self.run(model_input, lambda layer, weights: checked_block(layer, 0, weights))

    def capture_batch(
        self, pixel_values: torch.Tensor, on_layer: LayerCallback, workspace: Workspace | None = None
    ) -> Any:
        """A forward pass on a batch [B, C, H, W] handing each layer's weights [B, H, N, N] to `on_layer`,
        checked against the layout as `capture` does: computed beside the model's own sdpa attention
        where it takes the fast path (into `workspace` where given, a whole layer at a time: valid
        only during the call; else the blocks of a layer joined), else with eager attention."""
        layout = self.layout(pixel_values)

        def checked(layer: int, weights: torch.Tensor) -> None:
            self._check_tokens(layer, weights, layout)
            on_layer(layer, weights)

        if not self.query_selection:
            return self.run(pixel_values, checked)
        if workspace is not None:
            return self.run_fast(
                pixel_values, lambda layer, _, weights: checked(layer, weights), workspace=workspace
            )
        blocks: dict[int, list[torch.Tensor]] = {}

        def joined(layer: int, first: int, weights: torch.Tensor) -> None:
            parts = blocks.setdefault(layer, [])
            parts.append(weights)
            if first + weights.shape[2] == weights.shape[-1]:  # the layer's last query row is in
                checked(layer, torch.cat(blocks.pop(layer), dim=2))

        return self.run_fast(pixel_values, joined)

    def picture_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """Picture -> the model's input [C, H, W] through its processor; picklable, for loader workers."""
        return partial(processed_pixels, self.processor)

    def _check_tokens(self, layer: int, weights: torch.Tensor, layout: TokenLayout) -> None:
        """Refuse a layer over more or fewer tokens than the layout accounts for."""
        if weights.shape[-1] != layout.token_count:
            raise UnsupportedModelError(
                f"{self.name} attended over {weights.shape[-1]} tokens in layer {layer + 1}, where its "
                f"layout has {layout.token_count} ({layout.special_count} prefix tokens + "
                f"{layout.grid[0]} x {layout.grid[1]} patches of {self.patch_size[0]} px): its tokens "
                "cannot be placed on the picture for this input size"
            )

    def predictions(self, outputs: Any) -> list[Prediction]:
        """A classifier's top classes (empty for a model without a classification head)."""
        logits = getattr(outputs, "logits", None)
        labels = dict(getattr(self.model.config, "id2label", None) or {})
        return predictions(logits, labels) if isinstance(logits, torch.Tensor) and logits.ndim == 2 else []

    def explain(self, model_input: torch.Tensor, method: str, **options: Any) -> Explanation:
        """`attnwidget.explain.explain` for this model."""
        return explain(self, model_input, method, **options)

    def class_index(self, name_or_index: str | int) -> int:
        """The index of a class of the classifier: a label name or an index, checked."""
        return class_index(self, name_or_index)

    def run(self, pixel_values: torch.Tensor, on_layer: LayerCallback) -> Any:
        """Forward pass that hands each layer's attention [1, H, N, N] to `on_layer` as it finishes."""
        hooks = capture_attention(self.attention_modules, self.output_index, on_layer)
        return self._forward(pixel_values, self.eager_attention(), hooks, self._asked)

    def run_fast(
        self,
        pixel_values: torch.Tensor,
        on_block: BlockCallback,
        block_bytes: int | None = None,
        rows: Sequence[int] | None = None,
        scores: bool = False,
        workspace: Workspace | None = None,
    ) -> Any:
        """Forward pass with the model's own sdpa attention (its outputs are sdpa's, or with a
        `workspace` made from the weights: `fast_attention`) that hands the weights of query rows
        `rows` (default: all) to `on_block(layer, first, weights)`, blocks of at most `block_bytes`
        (and `fast_block_bytes`) [1, H, rows, N], `first` counting among `rows`;
        with `scores`, `ScoreBlock`s where sdpa kept its log-sum-exp; with a `workspace`, whole
        layers computed into it (`capture.Workspace`)."""
        register_fast_attention()
        budget = sys.maxsize if workspace is not None else fast_block_bytes(self.model, block_bytes)
        blocks = capture_attention_blocks(self.attention_modules, on_block, budget, rows, scores, workspace)
        return self._forward(pixel_values, self._eager(FAST_ATTENTION), blocks, {})

    def _forward(
        self,
        pixel_values: torch.Tensor,
        implementation: AbstractContextManager[None],
        capture: AbstractContextManager[None],
        asked: dict[str, bool],
    ) -> Any:
        try:
            with (
                implementation,
                patches_in_order(self.model, self.forward_module) as extra_inputs,
                torch.no_grad(),
                capture,
            ):
                return self.forward_module(pixel_values=pixel_values, **extra_inputs(pixel_values), **asked)
        except (ValueError, RuntimeError) as error:
            self._explain_input_mismatch(pixel_values, error)
            raise

    def _explain_input_mismatch(self, pixel_values: torch.Tensor, error: Exception) -> None:
        """Raise an error naming the processor when a failed forward had an input of the wrong shape."""
        config = getattr(self.model.config, "vision_config", self.model.config)
        channels = getattr(config, "num_channels", pixel_values.shape[1])
        trained = _as_pair(getattr(config, "image_size", pixel_values.shape[-2:]))
        given = (int(pixel_values.shape[-2]), int(pixel_values.shape[-1]))
        if pixel_values.shape[1] == channels and given == trained:
            return
        raise ValueError(
            f"the processor does not match {self.name}: it makes {pixel_values.shape[1]} x {given[0]} x "
            f"{given[1]} inputs, the model takes {channels} x {trained[0]} x {trained[1]} ({error}). Pass "
            "the model's own processor: AutoImageProcessor.from_pretrained(<the model's id or directory>)"
        ) from error

    def _find_attention(self, config: Any) -> None:
        """Run the model once on a blank input of its own size to find and measure its attention:
        the modules, heads, layers and prefix tokens (one grid of global self-attention)."""
        blank = self._blank_input(config)
        with self._eager(announce=False), patches_in_order(self.model, self.forward_module) as extra_inputs:
            extra = extra_inputs(blank)
            probe = probe_attention(self.forward_module, blank, self.patch_size, self.name, **extra)
        self.attention_modules, self.output_index = list(probe.modules), probe.output_index
        self._asked = {"output_attentions": True} if probe.only_when_asked else {}
        self.head_count = probe.heads
        self.layer_count = len(self.attention_modules)
        names = prefix_token_names(self.forward_module, probe.prefix_count)
        if names is None:
            raise UnsupportedModelError(
                f"{self.name} has {probe.prefix_count} tokens besides its {probe.grid[0]} x {probe.grid[1]} "
                "patches, more or fewer than its class, distillation and register tokens: attnwidget cannot "
                "tell where the others sit (detection tokens after the patches, as in YOLOS) and does "
                "not guess"
            )
        self.prefix_tokens = names

    def _blank_input(self, config: Any) -> torch.Tensor:
        """A black picture of the model's own input size, on its device and in its dtype."""
        parameter = next(self.model.parameters())
        height, width = _as_pair(getattr(config, "image_size", None) or 224)
        channels = getattr(config, "num_channels", None) or 3
        return torch.zeros(1, channels, height, width, device=parameter.device, dtype=parameter.dtype)

    def eager_attention(self) -> AbstractContextManager[None]:
        """Within the block the model computes eager attention, which returns weights; restored after.
        The switch is announced (once) for a model whose weights cannot be computed beside its own
        attention; one that can switches only for what needs eager's weights (gradient methods)."""
        why = fast_path_refusal(self.model, self.attention_modules[0])
        return self._eager(announce=why is not None, why=why)


def processed_pixels(processor: Any, image: Image.Image) -> torch.Tensor:
    """The pixel values [C, H, W] an image processor makes of one picture."""
    inputs = processor(images=image, return_tensors="pt")
    pixel_values = inputs.get("pixel_values") if hasattr(inputs, "get") else None
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(
            f"the processor ({type(processor).__name__}) made no pixel_values from the picture: "
            "pass the model's own image processor, AutoImageProcessor.from_pretrained(<the model's id>)"
        )
    return pixel_values[0]


def _vision_tower(model: nn.Module) -> nn.Module:
    """The image encoder of a two-tower model (CLIP, SigLIP); the model itself otherwise."""
    if hasattr(model, "vision_model") and hasattr(model, "text_model"):
        return model.vision_model
    return model


def _processor_for(model: nn.Module) -> Any:
    from transformers import AutoImageProcessor

    source = getattr(model, "name_or_path", "")
    if not source:
        raise ValueError(
            "this model does not say where it was loaded from: pass its image processor as processor="
        )
    return AutoImageProcessor.from_pretrained(source, trust_remote_code=False, **_processor_backend())


def _is_tokenizer(processor: Any) -> bool:
    from transformers import PreTrainedTokenizerBase

    return isinstance(processor, PreTrainedTokenizerBase)


def _processor_backend() -> dict[str, str]:
    """Pillow-backed processors where torchvision is missing (transformers would warn and fall back)."""
    return {} if importlib.util.find_spec("torchvision") else {"backend": "pil"}


def _as_pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
