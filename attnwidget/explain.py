"""Run a method of `attnwidget.methods` on a `VisionModel` for one input: the widget's single entry point.

Attention-only methods (head fusion, rollout) use attention that was already captured when it is
given, so the widget's clicks never re-run the model; gradient methods (gradient rollout, Chefer,
Grad-CAM) run one forward and one backward.
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from . import methods
from .capture import capture_attention
from .contract import GRADIENT_METHODS, HIGH_NORM_FACTOR, METHODS
from .source import TokenLayout

if TYPE_CHECKING:
    from .models import VisionModel

METHOD_TITLES: dict[str, str] = {
    "attention": "attention of the selected head",
    "head-mean": "mean over heads",
    "head-max": "max over heads",
    "head-min": "min over heads",
    "rollout": "attention rollout",
    "gradient-rollout": "gradient-weighted rollout",
    "chefer": "Chefer et al. relevance",
    "grad-cam": "Grad-CAM",
    "token-norms": "token norms",
}
"""The title of each method's map, for every name of `contract.METHODS`."""


@dataclass(frozen=True)
class Explanation:
    """A method's map over the patch grid [rows, columns] and what it explains."""

    method: str
    map: torch.Tensor
    title: str
    class_index: int | None = None


def class_index(vision: VisionModel, name_or_index: str | int) -> int:
    """The class index of a label name (or an index, checked); a ValueError suggests close names."""
    labels: dict[int, str] = dict(getattr(vision.model.config, "id2label", None) or {})
    return resolve_class(labels, _class_count(vision), name_or_index, vision.name)


def resolve_class(labels: dict[int, str], count: int, name_or_index: str | int, owner: str) -> int:
    """The index of class `name_or_index` (a label or an index) among `count` classes of model `owner`."""
    if isinstance(name_or_index, int) and not isinstance(name_or_index, bool):
        if not 0 <= name_or_index < count:
            raise ValueError(f"class {name_or_index} is out of range: {owner} has classes 0..{count - 1}")
        return name_or_index
    by_name = {label: index for index, label in labels.items()}
    if name_or_index in by_name:
        return int(by_name[name_or_index])
    close = difflib.get_close_matches(str(name_or_index), list(by_name), n=3)
    hint = f"; did you mean {', '.join(repr(name) for name in close)}?" if close else ""
    raise ValueError(f"{name_or_index!r} is not a class of {owner}{hint}")


def explain(
    vision: VisionModel,
    pixel_values: torch.Tensor,
    method: str,
    *,
    layer: int | None = None,
    target: str | int | None = None,
    attentions: Sequence[torch.Tensor] | None = None,
    fusion: methods.HeadFusion = "mean",
    discard_ratio: float = 0.0,
    start_layer: int = 1,
) -> Explanation:
    """The map of `method` (a name of `contract.METHODS` other than "attention") for one input [1, 3, H, W].

    `layer` (1-based, default the last) is the layer of head fusion and token norms. `target` is the
    class a gradient method explains (a label name or an index; default the predicted class).
    `attentions` are the input's per-layer [heads, N, N] weights when already captured. `fusion`
    (rollout), `discard_ratio` (rollout, gradient rollout) and `start_layer` (the rollouts and
    Chefer, 1-based) are passed on to `attnwidget.methods`.
    """
    if method not in METHODS or method == "attention":
        choices = ", ".join(name for name in METHODS if name != "attention")
        raise ValueError(f"unknown method {method!r}: choose one of {choices}")
    layout = vision.layout(pixel_values)
    special, grid = layout.special_count, layout.grid
    if method in GRADIENT_METHODS:
        return _gradient_method(vision, pixel_values, method, target, layout, discard_ratio, start_layer)
    if method == "token-norms":
        return _token_norms(vision, pixel_values, layer, special, grid)
    if attentions is None:
        captured: list[torch.Tensor] = []
        vision.capture_batch(pixel_values, lambda _, weights: captured.append(weights[0].float().cpu()))
        attentions = captured
    if method == "rollout":
        if special == 0:
            title = f"{METHOD_TITLES[method]} (no CLS token: mean over patch queries)"
        else:
            title = METHOD_TITLES[method]
        matrix = methods.attention_rollout(
            attentions, fusion=fusion, discard_ratio=discard_ratio, start_layer=start_layer
        )
        return Explanation(method, methods.token_map(matrix, special, grid), title)
    index = _layer_number(vision, layer)
    fused = methods.fuse_heads(attentions[index - 1], method.removeprefix("head-"))  # type: ignore[arg-type]
    query = layout.default_query
    rows = fused[query].mean(dim=0, keepdim=True)
    return Explanation(method, rows[0, special:].reshape(grid), f"{METHOD_TITLES[method]}, layer {index}")


def _token_norms(
    vision: VisionModel, pixel_values: torch.Tensor, layer: int | None, special: int, grid: tuple[int, int]
) -> Explanation:
    """Norms of the patch tokens after `layer`, and how much CLS attention goes to high-norm ones."""
    index = _layer_number(vision, layer)
    captured: list[torch.Tensor] = []

    def keep_layer(position: int, weights: torch.Tensor) -> None:
        if position == index - 1:
            captured.append(weights[0].float().cpu())

    with (
        torch.no_grad(),
        vision.eager_attention(),
        capture_attention(vision.attention_modules, vision.output_index, keep_layer),
    ):
        out = vision.forward_module(pixel_values=pixel_values, output_hidden_states=True)
    norms = methods.token_norms(out.hidden_states[1:]).cpu()  # after each layer
    flags = methods.high_norm_tokens(norms, special, HIGH_NORM_FACTOR)[index - 1]
    count = int(flags.sum())
    title = f"token norms after layer {index}"
    if count == 0:
        title += ": no high-norm tokens"
    else:
        to_cls = captured[0].mean(dim=0)[0] if special else captured[0].mean(dim=(0, 1))
        share = float(to_cls[flags].sum())
        tokens = "1 high-norm token receives" if count == 1 else f"{count} high-norm tokens receive"
        title += (
            f": {tokens} {share:.0%} of the layer's CLS attention (norm > {HIGH_NORM_FACTOR:g}x the median)"
        )
    return Explanation("token-norms", norms[index - 1, special:].reshape(grid), title)


def _layer_number(vision: VisionModel, layer: int | None) -> int:
    index = vision.layer_count if layer is None else layer
    if not 1 <= index <= vision.layer_count:
        raise ValueError(f"layer {index} is out of range: this model has layers 1..{vision.layer_count}")
    return index


def _gradient_method(
    vision: VisionModel,
    pixel_values: torch.Tensor,
    method: str,
    target: str | int | None,
    layout: TokenLayout,
    discard_ratio: float,
    start_layer: int,
) -> Explanation:
    model = vision.model
    _class_count(vision)  # says clearly when the model has no classifier
    chosen = None if target is None else class_index(vision, target)
    special, grid = layout.special_count, layout.grid

    def logits() -> torch.Tensor:
        return model(pixel_values=pixel_values).logits

    with vision.eager_attention():
        if method == "grad-cam":
            norm = first_norm_of_last_block(vision, pixel_values)
            cam, out = methods.grad_cam_for(norm, logits, chosen, methods.vit_tokens_to_maps(special, grid))
            result = cam
        else:
            attentions, gradients, out = methods.attention_gradients(
                vision.attention_modules, vision.output_index, logits, chosen
            )
            if method == "chefer":
                matrix = methods.chefer_relevance(attentions, gradients, start_layer=start_layer)
            else:
                matrix = methods.gradient_rollout(
                    attentions, gradients, discard_ratio=discard_ratio, start_layer=start_layer
                )
            result = methods.token_map(matrix, special, grid)
    model.zero_grad(set_to_none=True)
    explained = int(out[0].argmax()) if chosen is None else chosen
    label = (getattr(model.config, "id2label", None) or {}).get(explained, str(explained))
    return Explanation(method, result.detach(), f"{METHOD_TITLES[method]} for class {label!r}", explained)


_GRAD_CAM_TARGETS: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()


def first_norm_of_last_block(vision: VisionModel, pixel_values: torch.Tensor) -> nn.Module:
    """The last normalisation layer that runs before the last attention module: ViT Grad-CAM's target.

    Found with one forward pass the first time, then remembered per model (the order of its layers
    does not change).
    """
    known = _GRAD_CAM_TARGETS.get(vision.forward_module)
    if known is not None:
        return known
    last_attention = vision.attention_modules[-1]
    norms = [m for m in vision.forward_module.modules() if isinstance(m, (nn.LayerNorm, nn.GroupNorm))]
    calls: list[nn.Module] = []
    handles = [
        module.register_forward_pre_hook(lambda module, args: calls.append(module)) for module in norms
    ]
    handles.append(last_attention.register_forward_pre_hook(lambda module, args: calls.append(module)))
    try:
        with torch.no_grad():
            vision.forward_module(pixel_values=pixel_values)
    finally:
        for handle in handles:
            handle.remove()
    before = calls[: calls.index(last_attention)] if last_attention in calls else []
    if not before:
        raise ValueError(
            f"{vision.name} has no normalisation layer before its last attention: give Grad-CAM a layer"
        )
    _GRAD_CAM_TARGETS[vision.forward_module] = before[-1]
    return before[-1]


def _class_count(vision: VisionModel) -> int:
    classifier = getattr(vision.model, "classifier", None)
    count = getattr(vision.model.config, "num_labels", 0) if classifier is not None else 0
    if not count:
        raise ValueError(
            f"{vision.name} has no classification head, so there is no class to explain: gradient "
            "methods and predictions need a model such as ViTForImageClassification; attention methods "
            "work without one"
        )
    return int(count)
