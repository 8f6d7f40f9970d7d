"""Attention aggregations and saliency methods as pure functions: tensors in, tensors out.

Notation: `attention` of one layer is [heads, tokens, tokens] (rows are queries and sum to 1); a stack
of layers is [layers, heads, tokens, tokens] or a sequence of per-layer tensors, first layer first.
`special` is the number of prefix tokens (CLS, DIST, registers) before the patch tokens, which lie
row-major on a `grid` of (rows, columns). Nothing here needs the widget or a particular model; the
functions that run a model (`attention_gradients`, `grad_cam_for`) take any `nn.Module`.

References: rollout (Abnar & Zuidema, 2020), gradient-weighted rollout (as in vit-explain, with each
layer's gradient paired with its own layer), Chefer et al. (2021, generic attention explainability),
Grad-CAM (Selvaraju et al., 2017), mean attention distance (Dosovitskiy et al., 2020, fig. 7), DINO
mass-threshold masks (Caron et al., 2021), high-norm tokens (Darcet et al., 2023).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from . import masks
from .capture import buffer_start, capture_attention

HeadFusion = Literal["mean", "max", "min"]
Attentions = torch.Tensor | Sequence[torch.Tensor]


class NoGradientError(RuntimeError):
    """The target of a gradient method received no gradient from the explained class."""


def fuse_heads(attention: torch.Tensor, fusion: HeadFusion = "mean") -> torch.Tensor:
    """Mean, max or min over the head axis (the one before the last two): [..., H, N, N] -> [..., N, N]."""
    if fusion == "mean":
        return attention.mean(dim=-3)
    if fusion == "max":
        return attention.amax(dim=-3)
    if fusion == "min":
        return attention.amin(dim=-3)
    raise ValueError(f"unknown head fusion {fusion!r}: use 'mean', 'max' or 'min'")


def attention_rollout(
    attentions: Attentions,
    fusion: HeadFusion = "mean",
    discard_ratio: float = 0.0,
    start_layer: int = 1,
    keep_columns: Sequence[int] = (0,),
) -> torch.Tensor:
    """The rollout matrix R = Â^L ... Â^start [N, N] (Abnar & Zuidema, 2020).

    Each layer's heads are fused; the smallest `discard_ratio` of its entries are zeroed, except in
    the `keep_columns` (the CLS column); then Â = (Ā + I) / 2 with every row renormalised to sum 1.
    `start_layer` is 1-based.
    """
    fused = [fuse_heads(layer.float(), fusion) for layer in _layers(attentions, start_layer)]
    return _roll_out(fused, discard_ratio, keep_columns)


def gradient_rollout(
    attentions: Attentions,
    gradients: Attentions,
    discard_ratio: float = 0.0,
    start_layer: int = 1,
    keep_columns: Sequence[int] = (0,),
) -> torch.Tensor:
    """Rollout of gradient-weighted attention: Ā^l = mean_h (A^l ⊙ ∂y/∂A^l) with negatives set to 0.

    `gradients[l]` must be the gradient of layer l's own attention (see `attention_gradients`).
    """
    attentions, gradients = _paired(attentions, gradients, start_layer)
    fused = [
        (a.float() * g.float()).clamp_min(0).mean(dim=-3) for a, g in zip(attentions, gradients, strict=True)
    ]
    return _roll_out(fused, discard_ratio, keep_columns)


def chefer_relevance(attentions: Attentions, gradients: Attentions, start_layer: int = 1) -> torch.Tensor:
    """Relevance [N, N] by the rule of Chefer et al. (2021).

    R = I, then R <- R + mean_h((∇A ⊙ A)^+) R for each layer, first layer first.
    """
    attentions, gradients = _paired(attentions, gradients, start_layer)
    tokens = attentions[0].shape[-1]
    relevance = torch.eye(tokens, dtype=torch.float32, device=attentions[0].device)
    for attention, gradient in zip(attentions, gradients, strict=True):
        weighted = (gradient.float() * attention.float()).clamp_min(0).mean(dim=-3)
        relevance = relevance + weighted @ relevance
    return relevance


def token_map(matrix: torch.Tensor, special: int, grid: tuple[int, int]) -> torch.Tensor:
    """The CLS row of a token x token matrix over the patches, as a [rows, columns] map.

    With no special token (`special == 0`) the rows of all patches are averaged instead.
    """
    _check_tokens(matrix.shape[-1], special, grid)
    rows = matrix[..., :1, :] if special > 0 else matrix[..., :, :]
    return rows.mean(dim=-2)[..., special:].reshape(*matrix.shape[:-2], *grid)


def mean_attention_distance(
    attention: torch.Tensor,
    special: int,
    grid: tuple[int, int],
    patch_size: int | tuple[int, int],
    scratch: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean attention distance in pixels, one value per head: [..., H, N, N] -> [..., H].

    For each patch query i: Σ_j A_ij · ||pos_i - pos_j|| over patch keys j, with the weights on patch
    keys renormalised to sum 1 (mass on CLS or registers has no position), positions in pixels at
    patch centres; then the mean over patch queries (Dosovitskiy et al., 2020, fig. 7). `scratch`: a
    flat float32 tensor of at least as many entries as `attention`, on its device, to hold the
    products (else they are a new tensor).
    """
    _check_tokens(attention.shape[-1], special, grid)
    patches = attention[..., special:, special:].float()
    height, width = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    distances = patch_distances((int(grid[0]), int(grid[1])), (int(height), int(width))).to(patches.device)
    products = torch.mul(patches, distances, out=buffer_start(scratch, patches.shape))
    weighted = products.sum(dim=-1)  # each row's dot product with its distances
    return (weighted / patches.sum(dim=-1).clamp_min(1e-12)).mean(dim=-1)


@functools.lru_cache(maxsize=16)
def patch_distances(grid: tuple[int, int], patch_size: int | tuple[int, int]) -> torch.Tensor:
    """Euclidean distances in pixels between patch centres, [P, P], patches in row-major order
    (computed once per grid and patch size: do not write to it)."""
    height, width = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    centres = torch.stack([rows.flatten() * float(height), cols.flatten() * float(width)], dim=1)
    return torch.cdist(centres, centres)


@dataclass(frozen=True)
class HeadStatistics:
    """Per-head statistics, each [layers, heads]: mean attention distance (pixels) and entropy (nats)."""

    distance: np.ndarray
    entropy: np.ndarray

    @staticmethod
    def mean(statistics: Sequence[HeadStatistics]) -> HeadStatistics:
        """The average over pictures, as the ViT paper averages mean attention distance over 128 images."""
        if not statistics:
            raise ValueError("no statistics to average")
        return HeadStatistics(
            np.mean([s.distance for s in statistics], axis=0),
            np.mean([s.entropy for s in statistics], axis=0),
        )


def head_statistics(
    attentions: Attentions, special: int, grid: tuple[int, int], patch_size: int | tuple[int, int]
) -> HeadStatistics:
    """Mean attention distance and entropy of every head of one picture, from per-layer [H, N, N]."""
    stacked = torch.stack([layer.float() for layer in _layers(attentions, 1)])
    distance = mean_attention_distance(stacked, special, grid, patch_size)
    return HeadStatistics(distance.cpu().numpy(), attention_entropy(stacked).cpu().numpy())


def attention_entropy(attention: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over queries of -Σ_j A_ij log A_ij in nats (0 log 0 = 0): [..., H, N, N] -> [..., H].

    log A is taken of A clamped to float32's smallest normal number, so 0 log 0 is 0 (and weights
    below it add under 1e-36): one temporary, computed in place, about 2.4x faster than `xlogy`;
    in `scratch` where given (as for `mean_attention_distance`).
    """
    weights = attention.float()
    tiny = torch.finfo(torch.float32).tiny
    terms = torch.clamp(weights, min=tiny, out=buffer_start(scratch, weights.shape)).log_().mul_(weights)
    return -terms.sum(dim=-1).mean(dim=-1)


def dino_mask(cls_map: torch.Tensor, mass: float = 0.6) -> torch.Tensor:
    """The smallest set of tokens holding `mass` of the map (Caron et al., 2021), as a bool map.

    The rule is `masks.mass_mask` (float64, the browser's too): the values sorted ascending are summed
    in that order, and tokens from the first whose running sum exceeds (1 - `mass`) x the total are
    kept. Ties are kept or dropped together.
    """
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must lie in (0, 1], not {mass}")
    kept = masks.mass_mask(cls_map.detach().cpu().double().numpy(), mass)
    if kept is None:
        raise ValueError("a DINO mask needs a non-negative map with some mass")
    return torch.from_numpy(kept).to(cls_map.device)


def grad_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM [h, w] from a layer's activations and gradients [C, h, w], min-max scaled to [0, 1].

    alpha_k = mean over pixels of ∂y/∂A^k; cam = ReLU(Σ_k alpha_k A^k) (Selvaraju et al., 2017). A map with
    no positive evidence is returned as zeros.
    """
    if activations.shape != gradients.shape or activations.ndim != 3:
        raise ValueError(
            f"expected activations and gradients of the same [C, h, w] shape, got "
            f"{tuple(activations.shape)} and {tuple(gradients.shape)}"
        )
    alpha = gradients.float().mean(dim=(1, 2))
    cam = torch.relu((alpha[:, None, None] * activations.float()).sum(dim=0))
    low, high = cam.min(), cam.max()
    return (cam - low) / (high - low) if high > low else torch.zeros_like(cam)


def attention_gradients(
    modules: Sequence[nn.Module],
    output_index: int,
    forward: Callable[[], torch.Tensor],
    class_index: int | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Attention [H, N, N] of each layer and its gradient for one class, from one forward and one backward.

    `forward()` runs the model on one input and returns its logits [1, classes]; `modules` are its
    attention modules in layer order. The class is the predicted one unless `class_index` is given.
    Gradients are matched to their layer by the hook that captured the attention, whatever order
    autograd runs them in. Returns (attentions, gradients, logits).
    """
    captured: dict[int, torch.Tensor] = {}

    def keep(layer: int, weights: torch.Tensor) -> None:
        weights.retain_grad()
        captured[layer] = weights

    with torch.enable_grad(), capture_attention(modules, output_index, keep, detach=False):
        logits = forward()
    if logits.ndim != 2 or logits.shape[0] != 1:
        raise ValueError(f"expected logits of one input, [1, classes], got {tuple(logits.shape)}")
    target = int(logits[0].argmax()) if class_index is None else _check_class(class_index, logits.shape[1])
    logits[0, target].backward()
    attentions, gradients = [], []
    for layer in range(len(modules)):
        weights = captured[layer]
        if weights.grad is None:
            raise NoGradientError(
                f"layer {layer + 1}'s attention received no gradient from class {target}: the model's "
                "output must depend on it (run the whole model, not a truncated forward)"
            )
        attentions.append(weights.detach()[0])
        gradients.append(weights.grad.detach()[0])
    return attentions, gradients, logits.detach()


def grad_cam_for(
    target: nn.Module,
    forward: Callable[[], torch.Tensor],
    class_index: int | None = None,
    to_maps: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM of the output of module `target` for one class, from one forward and one backward.

    `forward()` returns logits [1, classes]; the class is the predicted one unless `class_index` is
    given. `to_maps` turns the module's output for the one input into [C, h, w] (for a ViT: drop the
    special tokens and reshape the patch tokens, see `vit_tokens_to_maps`); by default the output
    must already be [1, C, h, w]. Returns (cam [h, w] in [0, 1], logits).
    """
    stored: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple, output: object) -> None:
        tensor = output[0] if isinstance(output, (tuple, list)) else output
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{type(module).__name__} returned no tensor, so it cannot be a Grad-CAM target")
        tensor.retain_grad()
        stored.append(tensor)

    handle = target.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = forward()
    finally:
        handle.remove()
    if not stored:
        raise NoGradientError(f"the target layer {type(target).__name__} did not run in the forward pass")
    classes = logits.shape[-1]
    index = int(logits[0].argmax()) if class_index is None else _check_class(class_index, classes)
    logits[0, index].backward()
    output = stored[-1]
    maps = to_maps or (lambda tensor: tensor[0])
    gradients = None if output.grad is None else maps(output.grad.detach())
    if gradients is None or not bool(gradients.any()):
        raise NoGradientError(
            f"the target layer {type(target).__name__} received no gradient from class {index}: pick a layer "
            "the prediction depends on (for a CNN its last convolution block; for a ViT the first norm of "
            "the last block, whose patch inputs reach CLS, not the block's output)"
        )
    return grad_cam(maps(output.detach()), gradients), logits.detach()


def last_spatial_layer(model: nn.Module, forward: Callable[[], object]) -> nn.Module:
    """The default Grad-CAM target of a CNN: the last module to output feature maps [B, C, h, w] with
    h x w > 1, that is, the last layer before global pooling (found by running `forward()` once)."""
    order: list[nn.Module] = []

    def note(module: nn.Module, args: tuple, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[-1] * output.shape[-2] > 1:
            order.append(module)

    handles = [module.register_forward_hook(note) for module in model.modules() if module is not model]
    try:
        with torch.no_grad():
            forward()
    finally:
        for handle in handles:
            handle.remove()
    if not order:
        raise ValueError(
            f"{type(model).__name__} outputs no feature maps [B, C, h, w]: give Grad-CAM a target layer; "
            "for a ViT, the first norm of the last block with vit_tokens_to_maps"
        )
    return order[-1]


def vit_tokens_to_maps(special: int, grid: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """For `grad_cam_for` on a ViT: [1, N, C] tokens -> [C, rows, columns], special tokens dropped."""

    def to_maps(tokens: torch.Tensor) -> torch.Tensor:
        _check_tokens(tokens.shape[1], special, grid)
        return tokens[0, special:].transpose(0, 1).reshape(tokens.shape[-1], *grid)

    return to_maps


def token_norms(hidden_states: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """L2 norm of every token after every layer: [layers, N] from per-layer [1, N, C] (or [N, C]) states."""
    return torch.stack([state.float().reshape(-1, state.shape[-1]).norm(dim=-1) for state in hidden_states])


def high_norm_tokens(norms: torch.Tensor, special: int, factor: float = 4.0) -> torch.Tensor:
    """Patch tokens whose norm exceeds `factor` times the median patch norm of their layer: bool [layers, N].

    Large ViTs repurpose a few background patches as registers (Darcet et al., 2023); their output
    norms are many times the median. Special tokens are never flagged. The rule is
    `masks.high_norm_mask` (torch's lower median, float64), the browser's too.
    """
    flags = torch.zeros_like(norms, dtype=torch.bool)
    for layer, patches in enumerate(norms[:, special:].detach().cpu().double().numpy()):
        flagged = masks.high_norm_mask(patches, factor)
        if flagged is not None:
            flags[layer, special:] = torch.from_numpy(flagged)
    return flags


# --- helpers ---------------------------------------------------------------------------------------


def _layers(attentions: Attentions, start_layer: int) -> list[torch.Tensor]:
    layers = list(attentions.unbind(0)) if isinstance(attentions, torch.Tensor) else list(attentions)
    if not layers:
        raise ValueError("no layers of attention given")
    if not 1 <= start_layer <= len(layers):
        raise ValueError(f"start_layer must lie in 1..{len(layers)}, not {start_layer}")
    for layer in layers:
        if layer.ndim != 3 or layer.shape[-1] != layer.shape[-2]:
            raise ValueError(f"expected per-layer attention [heads, N, N], got {tuple(layer.shape)}")
    return layers[start_layer - 1 :]


def _paired(
    attentions: Attentions, gradients: Attentions, start_layer: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    attentions, gradients = _layers(attentions, start_layer), _layers(gradients, start_layer)
    if len(attentions) != len(gradients) or any(
        a.shape != g.shape for a, g in zip(attentions, gradients, strict=True)
    ):
        raise ValueError("attentions and gradients must have one tensor of the same shape per layer")
    return attentions, gradients


def _discard_smallest(fused: torch.Tensor, ratio: float, keep_columns: Sequence[int]) -> torch.Tensor:
    """Zero the `ratio` smallest entries of [N, N], never those in `keep_columns`."""
    if ratio == 0.0:
        return fused
    candidates = torch.ones_like(fused, dtype=torch.bool)
    candidates[:, list(keep_columns)] = False
    values = fused[candidates]
    count = math.floor(ratio * values.numel())
    if count == 0:
        return fused
    smallest = torch.topk(values, count, largest=False).indices
    flat = torch.nonzero(candidates.flatten()).squeeze(1)[smallest]
    result = fused.flatten().clone()
    result[flat] = 0.0
    return result.reshape(fused.shape)


def _roll_out(fused: list[torch.Tensor], discard_ratio: float, keep_columns: Sequence[int]) -> torch.Tensor:
    """Discard the smallest entries of each fused layer, then multiply (A + I) / 2, rows renormalised."""
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must lie in [0, 1), not {discard_ratio}")
    tokens = fused[0].shape[-1]
    eye = torch.eye(tokens, dtype=torch.float32, device=fused[0].device)
    result = eye
    for layer in fused:
        kept = _discard_smallest(layer.float(), discard_ratio, keep_columns)
        mixed = 0.5 * kept + 0.5 * eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        result = mixed @ result
    return result


def _check_tokens(tokens: int, special: int, grid: tuple[int, int]) -> None:
    if tokens != special + grid[0] * grid[1]:
        raise ValueError(
            f"{tokens} tokens do not make {special} special tokens plus a {grid[0]} x {grid[1]} patch grid"
        )


def _check_class(class_index: int, classes: int) -> int:
    if not 0 <= int(class_index) < classes:
        raise ValueError(f"class {class_index} is out of range: the model has classes 0..{classes - 1}")
    return int(class_index)
