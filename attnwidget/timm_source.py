"""timm's vision transformers (ViT, DeiT, BEiT, EVA, ViTs with registers) as a `Source`.

timm's attention modules compute `F.scaled_dot_product_attention` while `fused_attn` is set, which
returns no weights. timm's plain `Attention` (ViT, DeiT, ViTs with registers) keeps it: the weights
are computed beside it from the query and key its `q_norm` and `k_norm` return, the very tensors
the fused call gets (`beside_fused`). Other attention modules (BEiT's position bias, EVA's rotary
embeddings) are switched to unfused for the forward, and the softmax probabilities read where the
unfused path hands them to `attn_drop`. The picture goes through timm's own eval transform
(from the model's data config), and the crop box is read off that transform's steps.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from PIL import Image
from torch import nn

from .capture import Workspace, removed_after
from .images import load_image
from .models import UnsupportedModelError
from .softmax_rows import softmax_rows
from .source import AttentionCallback, Picture, Prediction, SourceInput, TokenLayout, predictions

SUPPORTED = (
    "timm's vision transformers: ViT, DeiT (also distilled), BEiT, EVA / EVA02, ViTs with registers "
    "(DINOv2-style) and ViTs without a class token"
)
NEUTRAL_STEPS = frozenset(
    [
        "ToTensor",
        "PILToTensor",
        "MaybeToTensor",
        "MaybePILToTensor",
        "ToNumpy",
        "Normalize",
        "ConvertImageDtype",
    ]
)
"""Transform steps that leave the picture's geometry as it is."""

Box = tuple[float, float, float, float]
LayerWeights = Callable[[int, torch.Tensor], None]
"""`on_layer(layer, weights)`: one layer's weights [B, H, N, N]."""


def is_timm_model(model: Any) -> bool:
    """Whether `model` is a module built by timm (told by its class's module, without importing timm)."""
    return isinstance(model, nn.Module) and type(model).__module__.partition(".")[0] == "timm"


class TimmModel:
    """A timm vision transformer with its eval transform: a `Source` of query -> patch maps over the
    picture (no explanation methods)."""

    grid_kind = "patches"
    query_blocks = False
    methods: frozenset[str] = frozenset()

    def __init__(self, model: nn.Module, transform: Callable[[Image.Image], torch.Tensor] | None = None):
        self.model = model.eval()
        config = getattr(model, "pretrained_cfg", None) or {}
        self.name = config.get("architecture") or type(model).__name__
        self.attention_modules = attention_modules(model, self.name)
        self.layer_count = len(self.attention_modules)
        self.head_count = int(self.attention_modules[0].num_heads)
        self.special_tokens = prefix_token_names(model)
        self.patch_size = _pair(model.patch_embed.patch_size)
        self.transform, self._fill = (transform, 0) if transform is not None else eval_transform(model)
        classes = int(getattr(model, "num_classes", 0) or 0)
        if classes == 1000:
            from .pretrained import imagenet_class_names

            self.labels = dict(enumerate(imagenet_class_names()))
        else:
            self.labels = {index: f"class {index}" for index in range(classes)}
        self._warned = False

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def layout(self, pixel_values: torch.Tensor) -> TokenLayout:
        """Prefix tokens, then the patch grid of this input (dynamic sizes follow the input)."""
        embed = self.model.patch_embed
        size = (int(pixel_values.shape[-2]), int(pixel_values.shape[-1]))
        grid = embed.dynamic_feat_size(size) if hasattr(embed, "dynamic_feat_size") else embed.grid_size
        return TokenLayout(self.special_tokens, _pair(grid))

    def prepare_input(self, data: Any, **options: Any) -> SourceInput:
        """A picture (anything `load_image` reads) through the model's transform, its layout and picture."""
        if options:
            raise TypeError(f"a vision model takes only the picture, not {', '.join(options)}")
        image = load_image(data)
        pixel_values = self.transform(image)
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 3:
            raise TypeError(f"the transform of {self.name} made no [C, H, W] tensor from the picture")
        dtype = next(self.model.parameters()).dtype
        pixel_values = pixel_values.unsqueeze(0).to(device=self.device, dtype=dtype)
        input_size = (int(pixel_values.shape[-2]), int(pixel_values.shape[-1]))
        box = transform_crop_box(self.transform, image.size)
        if box is None:
            if not self._warned:
                warnings.warn(
                    f"attnwidget cannot tell where the transform of {self.name} puts the picture "
                    f"({self.transform}); the maps are drawn over the whole picture, which may not be "
                    "what the model saw",
                    stacklevel=3,
                )
                self._warned = True
            picture = Picture(image, input_size=input_size, patch_size=self.patch_size, placed=False)
        else:
            image, box = padded(image, box, self._fill)
            picture = Picture(image, box, input_size, self.patch_size)
        return SourceInput(pixel_values, self.layout(pixel_values), picture)

    def capture(
        self, model_input: torch.Tensor, on_block: AttentionCallback, block_bytes: int | None = None
    ) -> Any:
        """Run the model unfused, handing each layer's weights [H, N, N] to `on_block(layer, 0, weights)`."""
        return self.capture_batch(model_input, lambda layer, weights: on_block(layer, 0, weights[0]))

    def capture_batch(
        self, pixel_values: torch.Tensor, on_layer: LayerWeights, workspace: Workspace | None = None
    ) -> Any:
        """Run the model on a batch [B, C, H, W], handing each layer's weights [B, H, N, N] to
        `on_layer`, checked against the layout: computed beside its fused attention where it takes
        that path (into `workspace` where given: valid only during the call), else unfused."""
        expected = self.layout(pixel_values).token_count
        captured: list[int] = []

        def hand_over(layer: int, weights: torch.Tensor) -> None:
            if weights.ndim != 4 or weights.shape[-1] != expected:
                raise UnsupportedModelError(
                    f"{self.name}: layer {layer + 1} attends over {weights.shape[-1]} keys, not the "
                    f"{expected} tokens of its {len(self.special_tokens)} prefix tokens and patch grid; "
                    f"attnwidget shows {SUPPORTED}"
                )
            captured.append(layer)
            on_layer(layer, weights.detach())

        fast = takes_fast_path(self.attention_modules)
        with (
            beside_fused(self.attention_modules, hand_over, workspace)
            if fast
            else unfused_hooked(self.attention_modules, hand_over),
            torch.no_grad(),
        ):
            outputs = self.model(pixel_values)
        if len(captured) != self.layer_count:
            raise UnsupportedModelError(
                f"{self.name}: only {len(captured)} of its {self.layer_count} attention modules handed "
                f"over their weights (a compiled or changed forward?); attnwidget shows {SUPPORTED} "
                "run eagerly"
            )
        return outputs

    def picture_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """Picture -> the model's input [C, H, W] through its transform; picklable, for loader workers."""
        return self.transform

    def predictions(self, outputs: Any) -> list[Prediction]:
        """A classifier's top classes (ImageNet names for 1000 classes); empty for a feature model."""
        if not self.labels or not isinstance(outputs, torch.Tensor) or outputs.ndim != 2:
            return []
        return predictions(outputs, self.labels)


def attention_modules(model: nn.Module, name: str) -> list[nn.Module]:
    """The attention modules of the transformer's blocks, in layer order; refuses anything else."""
    blocks = getattr(model, "blocks", None)
    is_vit = (
        isinstance(blocks, nn.Module)
        and hasattr(model, "patch_embed")
        and hasattr(model, "num_prefix_tokens")
    )
    modules = [
        module
        for module in (blocks.modules() if is_vit else ())
        if hasattr(module, "fused_attn")
        and isinstance(getattr(module, "attn_drop", None), nn.Dropout)
        and hasattr(module, "num_heads")
    ]
    if not modules:
        raise UnsupportedModelError(
            f"{name} ({type(model).__name__}) is not a vision transformer attnwidget can capture: it shows "
            f"{SUPPORTED}. A CNN has no attention to show: use Grad-CAM, "
            "`attnwidget.methods.grad_cam_for(layer, forward)`"
        )
    return modules


def prefix_token_names(model: nn.Module) -> tuple[str, ...]:
    """CLS, DIST (distilled DeiT) and the registers reg1..regR, in the order timm puts them first."""
    count = int(model.num_prefix_tokens)
    names = ["CLS"] if getattr(model, "cls_token", None) is not None else []
    if getattr(model, "dist_token", None) is not None:
        names.append("DIST")
    if getattr(model, "reg_token", None) is not None:
        names += [f"reg{i}" for i in range(1, int(getattr(model, "num_reg_tokens", 0)) + 1)]
    return tuple(names) if len(names) == count else tuple(f"prefix{i}" for i in range(1, count + 1))


def takes_fast_path(modules: Sequence[nn.Module]) -> bool:
    """Whether every module is timm's plain `Attention` running fused: its weights are then
    softmax(q k^T * scale (+ mask)) of what its norms return (`beside_fused`)."""
    from timm.layers.attention import Attention

    return all(type(module) is Attention and module.fused_attn for module in modules)


@contextmanager
def beside_fused(
    modules: Sequence[nn.Module], on_layer: LayerWeights, workspace: Workspace | None = None
) -> Iterator[None]:
    """Within the block each module keeps its fused attention, and `on_layer(layer, weights)` gets the
    weights computed beside it from the query and key its `q_norm` and `k_norm` return (with the
    mask and causality the module is called with), into `workspace` where given (valid only during
    the call). Hooks are removed on exit."""
    handles = []
    for layer, module in enumerate(modules):
        call: dict[str, Any] = {}

        def on_call(module: nn.Module, args: tuple, kwargs: dict, call: dict = call) -> None:
            call["mask"] = kwargs.get("attn_mask", args[1] if len(args) > 1 else None)
            call["causal"] = bool(kwargs.get("is_causal", args[2] if len(args) > 2 else False))

        def on_query(norm: nn.Module, args: tuple, query: torch.Tensor, call: dict = call) -> None:
            call["query"] = query

        def on_key(
            norm: nn.Module, args: tuple, key: torch.Tensor, layer: int = layer, call: dict = call
        ) -> None:
            query, scale = call.pop("query"), modules[layer].scale
            out = None if workspace is None else workspace.weights(query, key)
            rows = slice(0, query.shape[-2])
            weights = softmax_rows(
                query, key, call["mask"], rows, scaling=scale, causal=call["causal"], out=out
            )
            on_layer(layer, weights)

        handles += [
            module.register_forward_pre_hook(on_call, with_kwargs=True),
            module.q_norm.register_forward_hook(on_query),
            module.k_norm.register_forward_hook(on_key),
        ]
    with removed_after(handles):
        yield


@contextmanager
def unfused_hooked(modules: Sequence[nn.Module], on_layer: LayerWeights) -> Iterator[None]:
    """Within the block the modules compute attention unfused and `on_layer(layer, weights)` gets the
    softmax probabilities each hands to its `attn_drop`; hooks and `fused_attn` are restored on exit."""
    handles = [
        module.attn_drop.register_forward_pre_hook(lambda _, args, layer=layer: on_layer(layer, args[0]))
        for layer, module in enumerate(modules)
    ]
    with removed_after(handles), unfused(modules):
        yield


@contextmanager
def unfused(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Within the block the modules compute attention unfused (so `attn_drop` sees the weights);
    each one's `fused_attn` is restored afterwards, also when the forward raises."""
    saved = [module.fused_attn for module in modules]
    try:
        for module in modules:
            module.fused_attn = False
        yield
    finally:
        for module, fused in zip(modules, saved, strict=True):
            module.fused_attn = fused


def eval_transform(model: nn.Module) -> tuple[Callable[[Image.Image], torch.Tensor], Any]:
    """timm's eval transform from the model's data config, and its padding colour.

    A model built at another `img_size` than its pretrained config names (and without dynamic sizes)
    takes its own size, which is the only one it accepts.
    """
    from timm.data import create_transform, resolve_model_data_config

    config = resolve_model_data_config(model)
    embed = model.patch_embed
    fixed = getattr(embed, "img_size", None)
    if fixed is not None and not getattr(model, "dynamic_img_size", False):
        config["input_size"] = (config["input_size"][0], *_pair(fixed))
    fill = tuple(round(255 * value) for value in config.get("mean", (0.0, 0.0, 0.0)))
    return create_transform(**config), fill


def transform_crop_box(transform: Any, image_size: tuple[int, int]) -> Box | None:
    """Where the output of `transform` lies in a picture of `image_size` (W, H): (x0, y0, x1, y1) as
    fractions of its width and height, beyond [0, 1] where the transform pads. None when a step is
    not one whose geometry is known (torchvision's Resize and CenterCrop, timm's ResizeKeepRatio and
    CenterCropOrPad, and steps that change no geometry).

    Each axis is tracked as `position in the output = scale * position in the original + shift`.
    """
    steps = getattr(transform, "transforms", [transform])
    (width, height), scale, shift = image_size, [1.0, 1.0], [0.0, 0.0]
    for step in steps:
        kind = type(step).__name__
        if kind in NEUTRAL_STEPS:
            continue
        if kind == "Resize" and getattr(step, "max_size", None) is None:
            new = _resized(step.size, width, height)
        elif kind == "ResizeKeepRatio" and not (step.random_scale_prob or step.random_aspect_prob):
            new = _kept_ratio(step.size, step.longest, width, height)
        elif kind in ("CenterCrop", "CenterCropOrPad"):
            crop_h, crop_w = _pair(step.size)
            left, top = _crop_offset(width, crop_w), _crop_offset(height, crop_h)
            shift = [shift[0] - left, shift[1] - top]
            width, height = crop_w, crop_h
            continue
        else:
            return None
        factors = (new[0] / width, new[1] / height)
        scale = [scale[0] * factors[0], scale[1] * factors[1]]
        shift = [shift[0] * factors[0], shift[1] * factors[1]]
        width, height = new
    original_w, original_h = image_size
    x0, x1 = (0.0 - shift[0]) / scale[0], (width - shift[0]) / scale[0]
    y0, y1 = (0.0 - shift[1]) / scale[1], (height - shift[1]) / scale[1]
    return (x0 / original_w, y0 / original_h, x1 / original_w, y1 / original_h)


def padded(image: Image.Image, box: Box, fill: Any) -> tuple[Image.Image, Box]:
    """The picture grown with the padding colour wherever `box` reaches beyond it, and the box on it."""
    width, height = image.size
    x0, y0, x1, y1 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    left, top = max(0, math.ceil(-x0 - 1e-6)), max(0, math.ceil(-y0 - 1e-6))
    right, bottom = max(0, math.ceil(x1 - width - 1e-6)), max(0, math.ceil(y1 - height - 1e-6))
    if not (left or top or right or bottom):
        return image, box
    grown_w, grown_h = width + left + right, height + top + bottom
    colour = fill if isinstance(fill, tuple) else (int(fill),) * 3
    grown = Image.new("RGB", (grown_w, grown_h), colour)
    grown.paste(image, (left, top))
    return grown, ((x0 + left) / grown_w, (y0 + top) / grown_h, (x1 + left) / grown_w, (y1 + top) / grown_h)


def _resized(size: int | Sequence[int], width: int, height: int) -> tuple[int, int]:
    """torchvision's Resize: a pair (H, W) exactly; one number for the shorter side, aspect kept."""
    if isinstance(size, int) or len(size) == 1:
        short_side = size if isinstance(size, int) else size[0]
        short, long = sorted((width, height))
        new_long = int(short_side * long / short)
        return (short_side, new_long) if width <= height else (new_long, short_side)
    return int(size[1]), int(size[0])


def _kept_ratio(size: Sequence[int], longest: float, width: int, height: int) -> tuple[int, int]:
    """timm's ResizeKeepRatio without its random parts: one ratio for both sides, between the
    shorter side's (longest 0) and the longer side's (longest 1)."""
    ratio_h, ratio_w = height / size[0], width / size[1]
    ratio = max(ratio_h, ratio_w) * longest + min(ratio_h, ratio_w) * (1.0 - longest)
    return round(width / ratio), round(height / ratio)


def _crop_offset(side: int, crop: int) -> int:
    """Where a centre crop (padded first on both sides when larger than the picture) starts."""
    if crop > side:
        return -((crop - side) // 2)
    return round((side - crop) / 2.0)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
