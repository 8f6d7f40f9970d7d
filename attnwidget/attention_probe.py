"""Finding a vision model's attention by what it does, not by its name.

`probe_attention` runs the model once on a small input with `output_attentions=True` and finds the
modules whose outputs are the very tensors the model reports, whatever their class is called and
whether or not it declares them to transformers. The probe also measures what a layer looks like
(heads, queries, keys), so the token layout comes from the model: prefix tokens = keys - patches.
A model whose attention is not one grid of global self-attention with the same heads in every layer
(windows, stages, pooled keys, dropped patches) is refused with the reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import UnsupportedModelError

NO_ATTENTION_HELP = (
    "A CNN has no attention to show: use Grad-CAM, `attnwidget.methods.grad_cam_for(layer, forward)` "
    "or `attnwidget.pretrained.ImageClassifier(...).grad_cam(image)`"
)


@dataclass(frozen=True)
class AttentionProbe:
    """What one run showed: the attention modules in layer order, where their weights are in their
    output, the heads of every layer and the keys and patch grid of the probe's input."""

    modules: tuple[nn.Module, ...]
    output_index: int
    heads: int
    keys: int
    grid: tuple[int, int]
    only_when_asked: bool
    """The modules return their weights only in a forward with `output_attentions=True` (older code)."""

    @property
    def prefix_count(self) -> int:
        """Tokens before the patches (class token, distillation token, registers)."""
        return self.keys - self.grid[0] * self.grid[1]


@dataclass(frozen=True)
class ReportedAttention:
    """The modules that return the attention a model reports, in layer order, where the weights are
    in their output, the shape of each layer's weights and whether they come only when asked."""

    modules: tuple[nn.Module, ...]
    output_index: int
    shapes: tuple[tuple[int, ...], ...]
    only_when_asked: bool


def find_attention(
    root: nn.Module, pixel_values: torch.Tensor, name: str, **forward: Any
) -> ReportedAttention:
    """Run `root` on `pixel_values` and find the modules that return the attention it reports."""
    first_output: dict[int, tuple[torch.Tensor, nn.Module, int]] = {}

    def record(module: nn.Module, _inputs: Any, output: Any) -> None:
        if not isinstance(output, (tuple, list)):
            return  # an attention module returns its output with the weights; dropout passes them on
        for index, item in enumerate(output):
            if isinstance(item, torch.Tensor) and item.dim() >= 4:
                # the innermost module returns a tensor first; the tensor is kept so its id stays its own
                first_output.setdefault(id(item), (item, module, index))

    handles = [module.register_forward_hook(record) for module in root.modules() if module is not root]
    try:
        with torch.no_grad():
            outputs = root(pixel_values=pixel_values, output_attentions=True, **forward)
    except Exception as error:  # whatever the model raises on a picture alone is the reason
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnsupportedModelError(
            f"{name} cannot run on a picture alone ({reason}): a model that also needs text or other "
            "inputs (captioning, vision-language, matching) is not a vision encoder attnwidget shows; "
            "its vision encoder, where it has one, goes into the grid on its own"
        ) from error
    finally:
        for handle in handles:
            handle.remove()
    attentions = _reported_attentions(outputs)
    if not attentions:
        raise UnsupportedModelError(
            f"{name} reports no attention weights when asked (output_attentions=True): a CNN has none, "
            "and hybrids such as LeViT and MobileViT compute attention inside blocks that do not hand "
            f"it out. {NO_ATTENTION_HELP}"
        )
    if any(not isinstance(weights, torch.Tensor) for weights in attentions):
        raise UnsupportedModelError(
            f"{name} computes attention with a fused kernel that returns no weights and cannot be switched "
            "to eager attention once loaded: load it with attn_implementation='eager' "
            "(from_pretrained(..., attn_implementation='eager'))"
        )
    found = [first_output.get(id(weights)) for weights in attentions]
    if any(entry is None for entry in found):
        raise UnsupportedModelError(
            f"{name} reports attention weights that no module of it returns (they are computed after "
            "the layers), so attnwidget cannot capture them as the layers run"
        )
    indices = {index for _, _, index in found}
    if len(indices) != 1:
        raise UnsupportedModelError(f"{name} mixes attention modules with different outputs")
    modules, index = tuple(module for _, module, _ in found), indices.pop()
    asked = not _returned_unasked(root, modules, index, pixel_values, forward)
    return ReportedAttention(modules, index, tuple(tuple(w.shape) for w in attentions), asked)


def probe_attention(
    root: nn.Module, pixel_values: torch.Tensor, patch_size: tuple[int, int], name: str, **forward: Any
) -> AttentionProbe:
    """Find `root`'s attention (`find_attention`) and measure one grid of global self-attention."""
    found = find_attention(root, pixel_values, name, **forward)
    _check_one_grid(found.shapes, pixel_values.shape[0], name)
    _, heads, _, keys = found.shapes[0]
    grid = (pixel_values.shape[-2] // patch_size[0], pixel_values.shape[-1] // patch_size[1])
    probe = AttentionProbe(found.modules, found.output_index, heads, keys, grid, found.only_when_asked)
    if probe.prefix_count < 0:
        raise UnsupportedModelError(
            f"{name} attends over {keys} tokens, fewer than the {grid[0] * grid[1]} patches of its "
            f"{pixel_values.shape[-2]} x {pixel_values.shape[-1]} input: it drops, pools or merges patches "
            "before its attention, so its tokens have no fixed place on the picture. Load the model "
            "without patch dropping (for example a ViT built from the same weights) to see its attention"
        )
    return probe


def _returned_unasked(
    root: nn.Module, modules: tuple[nn.Module, ...], index: int, pixel_values: torch.Tensor, forward: dict
) -> bool:
    """Whether the modules return their weights in a plain forward too (code of transformers 5 does)."""
    returned: list[bool] = []

    def check(_module: nn.Module, _inputs: Any, output: Any) -> None:
        items = output if isinstance(output, (tuple, list)) else ()
        returned.append(len(items) > index and isinstance(items[index], torch.Tensor))

    handles = [module.register_forward_hook(check) for module in modules]
    try:
        with torch.no_grad():
            root(pixel_values=pixel_values, **forward)
    finally:
        for handle in handles:
            handle.remove()
    return bool(returned) and all(returned)


def prefix_token_names(root: nn.Module, count: int) -> tuple[str, ...] | None:
    """Names of the `count` tokens before the patches, from the token parameters of the model's
    embeddings: CLS (a class token or embedding; CLS1... for several), DIST (a distillation token),
    reg1..regN (registers). None when those do not account for exactly `count` tokens."""
    names: list[str] = []
    for parameter_name, parameter in root.named_parameters():
        path, leaf = parameter_name.rpartition(".")[::2]
        if "embed" not in path:  # a pooling head's own class token is not in the sequence
            continue
        several = parameter.shape[-2] if parameter.dim() == 3 else 1
        if leaf in ("cls_token", "class_embedding"):
            names[:0] = ["CLS"] if several == 1 else [f"CLS{i}" for i in range(1, several + 1)]
        elif leaf in ("distillation_token", "dist_token"):
            names.append("DIST")
        elif leaf in ("register_tokens", "reg_token"):
            names += [f"reg{i}" for i in range(1, several + 1)]
    if count == 0:
        return ()
    return tuple(names) if len(names) == count else None


@contextmanager
def patches_in_order(model: nn.Module, root: nn.Module) -> Iterator[Callable[[torch.Tensor], dict]]:
    """For a model that drops patches at random before its encoder (MAE-style `mask_ratio`, with a
    `noise` argument): keep every patch, in order, within the block. Yields the extra forward
    arguments for an input; none for other models."""
    config = getattr(model, "config", None)
    ratio = getattr(config, "mask_ratio", None)
    takes_noise = "noise" in inspect.signature(root.forward).parameters
    if not ratio or not takes_noise:
        yield lambda _pixel_values: {}
        return

    def keep_every_patch(pixel_values: torch.Tensor) -> dict:
        patches = _patch_count(root, pixel_values)
        return {"noise": torch.arange(patches, device=pixel_values.device).expand(pixel_values.shape[0], -1)}

    config.mask_ratio = 0.0
    try:
        yield keep_every_patch
    finally:
        config.mask_ratio = ratio


def _patch_count(root: nn.Module, pixel_values: torch.Tensor) -> int:
    config = getattr(root, "config", None)
    patch = getattr(config, "patch_size", 16)
    height, width = (patch, patch) if isinstance(patch, int) else patch
    return (pixel_values.shape[-2] // height) * (pixel_values.shape[-1] // width)


def _reported_attentions(outputs: Any) -> tuple[torch.Tensor, ...]:
    attentions = getattr(outputs, "attentions", None)
    if attentions is None and isinstance(outputs, dict):
        attentions = outputs.get("attentions")
    return tuple(attentions or ())


def _check_one_grid(shapes: tuple[tuple[int, ...], ...], batch: int, name: str) -> None:
    """Refuse attention that is not one token grid of global self-attention, saying what it is."""
    heads = [shape[1] if len(shape) >= 2 else 0 for shape in shapes]
    windowed = any(len(shape) != 4 or shape[0] != batch for shape in shapes)
    if windowed or len(set(heads)) > 1:
        raise UnsupportedModelError(
            f"{name} computes attention in windows or in stages of their own resolution (heads per "
            f"layer {heads}, attention shapes {sorted(set(shapes))}). attnwidget places shifted windows "
            "(Swin, Swin v2, Donut-Swin: `attnwidget.WindowedVisionModel`, one grid per stage) and one "
            "grid of global self-attention; windows of other layouts (Hiera's mask units) and "
            "multi-scale attention (PVT, SegFormer) have no place on the picture it can vouch for"
        )
    pooled = [shape for shape in shapes if shape[2] != shape[3]]
    if pooled:
        raise UnsupportedModelError(
            f"{name} pools its keys (queries x keys {pooled[0][2]} x {pooled[0][3]}, spatial-reduction "
            "attention as in PVT and SegFormer): its keys are not the patches, so attnwidget cannot "
            "place them on the picture"
        )
    if len({shape[3] for shape in shapes}) > 1:
        raise UnsupportedModelError(
            f"{name} changes its number of tokens between layers ({sorted({s[3] for s in shapes})}): "
            "it merges or drops tokens inside the encoder, so later layers have no fixed patch grid"
        )
