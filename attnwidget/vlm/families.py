"""The vision-language families attnwidget knows: how to tell them apart, find their language model,
and build the image-token map and the picture's placement from a processor's real output.

- llava (1.5): the vision tower's patches without CLS ("default" strategy) on a (side, side) canvas,
  placed by measuring the image processor (`geometry.input_geometry`): a centre crop is placed; a pad
  to square is not (no place is given, and the grid says so).
- llava_next: the base view, then the unpadded tiles with an image-newline token per row (`anyres`);
  the canvas is the unpadded feature grid, placed exactly from the processor's fit and padding.
- paligemma: the SigLIP patches on a (side, side) canvas, measured likewise (a plain resize: the
  whole picture).
- qwen2_vl, qwen2_5_vl: 2 x 2 merged patches from `image_grid_thw` on an (h / 2, w / 2) canvas over
  the whole picture (`smart_resize` resizes all of it to multiples of the merged patch).
- idefics3, smolvlm: (rows x cols) tiles of the picture resized to multiples of the tile (the image
  processor's own count, `return_row_col_info`), each tile's tokens after the pixel shuffle (one per
  scale x scale patches), then the global view (the whole picture resized to one tile), each of its
  tokens spread evenly over the rows x cols canvas cells it covers; canvas (rows * side, cols * side)
  over the whole picture (all steps resize the whole picture: nothing is cropped or padded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import nn

from ..errors import UnsupportedModelError
from ..geometry import input_geometry
from ..source import Picture
from .anyres import anyres_geometry, anyres_map
from .token_maps import ImageTokenMap, image_positions, merged_grid_map, square_grid_map, tiled_map

FAMILIES = {
    "llava": "llava",
    "llava_next": "llava_next",
    "paligemma": "paligemma",
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_vl",
    "idefics3": "idefics3",
    "smolvlm": "idefics3",
}
"""`config.model_type` -> the family whose rules apply."""
SUPPORTED = "LLaVA 1.5, LLaVA-NeXT, PaliGemma, Qwen2-VL, Qwen2.5-VL, Idefics3 and SmolVLM"


@dataclass(frozen=True)
class PlacedMap:
    """An image-token map and where its canvas lies in the picture."""

    token_map: ImageTokenMap
    picture: Picture


def family_of(model: nn.Module) -> str:
    """The family of a transformers vision-language model; an UnsupportedModelError names those known."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        kind = f"a {model_type!r} model" if model_type else f"a {type(model).__name__}"
        raise UnsupportedModelError(
            f"{kind} is not a vision-language model attnwidget can map onto the picture: supported are "
            f"{SUPPORTED} (loaded with transformers' *ForConditionalGeneration). For a vision encoder "
            "use attnwidget.VisionModel, for a text model attnwidget.text.TextModel"
        )
    return FAMILIES[model_type]


def language_model(model: nn.Module) -> nn.Module:
    """The language model (decoder stack) inside a vision-language model."""
    inner = getattr(model, "model", model)
    found = getattr(inner, "language_model", None) or getattr(inner, "text_model", None)
    if found is None:
        raise UnsupportedModelError(f"{type(model).__name__} has no language_model to capture")
    return found


def image_token_id(model: nn.Module) -> int:
    config = model.config
    found = getattr(config, "image_token_id", None)
    if found is None:
        found = getattr(config, "image_token_index", None)
    if found is None:
        raise UnsupportedModelError(f"{type(model).__name__}'s config names no image token")
    return int(found)


def placed_map(model: nn.Module, processor: Any, image: Image.Image, encoded: dict[str, Any]) -> PlacedMap:
    """The map of the image tokens in `encoded` (the processor's output for `image`) and its placement;
    an `ImageTokenMismatchError` when the prompt's image tokens do not match the picture."""
    family = family_of(model)
    positions = image_positions(encoded["input_ids"], image_token_id(model))
    vision = model.config.vision_config
    if family == "qwen2_vl":
        grid_thw = encoded.get("image_grid_thw")
        if grid_thw is None or len(grid_thw) != 1:
            raise ValueError("one picture at a time: the processor gave no single image_grid_thw")
        merge, patch = int(vision.spatial_merge_size), int(vision.patch_size)
        token_map = merged_grid_map(positions, grid_thw[0].tolist(), merge)
        _, height, width = (int(value) for value in grid_thw[0])
        picture = Picture(image, (0.0, 0.0, 1.0, 1.0), (height * patch, width * patch), (patch * merge,) * 2)
        return PlacedMap(token_map, picture)
    if family == "idefics3":
        return _idefics3_map(model, processor, image, positions)
    if family == "llava_next":
        return _llava_next_map(model, encoded, image, positions)
    patch, size = int(vision.patch_size), int(vision.image_size)
    side = size // patch
    if family == "llava":
        _check_default_strategy(model)
    token_map = square_grid_map(positions, (side, side))
    geometry = input_geometry(getattr(processor, "image_processor", processor), image.size)
    picture = Picture(image, geometry.crop_box, (size, size), (patch, patch), placed=geometry.known)
    return PlacedMap(token_map, picture)


def _llava_next_map(
    model: nn.Module, encoded: dict[str, Any], image: Image.Image, positions: torch.Tensor
) -> PlacedMap:
    vision, config = model.config.vision_config, model.config
    _check_default_strategy(model)
    patch, tile = int(vision.patch_size), int(vision.image_size)
    height, width = (int(value) for value in encoded["image_sizes"][0])
    geometry = anyres_geometry(
        (height, width), [list(point) for point in config.image_grid_pinpoints], tile, patch
    )
    newline = getattr(getattr(model, "model", model), "image_newline", None) is not None
    token_map = anyres_map(positions, tile // patch, geometry, newline)
    gh, gw = geometry.canvas
    return PlacedMap(token_map, Picture(image, geometry.crop_box, (gh * patch, gw * patch), (patch, patch)))


def _check_default_strategy(model: nn.Module) -> None:
    if getattr(model.config, "vision_feature_select_strategy", "default") != "default":
        raise UnsupportedModelError(
            "this LLaVA keeps the vision tower's CLS token among the image tokens "
            "(vision_feature_select_strategy='full'), which stands for no place on the picture"
        )


def _idefics3_map(model: nn.Module, processor: Any, image: Image.Image, positions: torch.Tensor) -> PlacedMap:
    vision = model.config.vision_config
    patch, tile, scale = int(vision.patch_size), int(vision.image_size), int(model.config.scale_factor)
    side = tile // patch // scale
    info = processor.image_processor(images=[[image]], return_row_col_info=True, return_tensors="pt")
    rows, cols = int(info["rows"][0][0]), int(info["cols"][0][0])
    token_map = tiled_map(positions, (rows, cols), side)
    input_size = (max(rows, 1) * tile, max(cols, 1) * tile)
    return PlacedMap(token_map, Picture(image, (0.0, 0.0, 1.0, 1.0), input_size, (patch * scale,) * 2))


def image_placeholder(processor: Any) -> str:
    """The text that stands for the picture in a prompt (the processor expands it into image tokens)."""
    token = getattr(processor, "image_token", None)
    if not token:
        raise UnsupportedModelError(f"{type(processor).__name__} names no image placeholder (image_token)")
    return str(token)


def prompt_placeholder(model: nn.Module, processor: Any) -> str:
    """What a prompt must hold where the picture goes: Qwen2-VL's vision markers around its image pad,
    else the processor's image token."""
    token = image_placeholder(processor)
    if family_of(model) == "qwen2_vl":
        start = getattr(processor, "vision_start_token", "<|vision_start|>")
        end = getattr(processor, "vision_end_token", "<|vision_end|>")
        return f"{start}{token}{end}"
    return token


def pixel_count_check(encoded: dict[str, Any]) -> None:
    """One picture per prompt."""
    pixels = encoded.get("pixel_values")
    if pixels is None:
        raise ValueError("the processor made no pixel_values: give the picture as `image`")
    if isinstance(pixels, torch.Tensor) and pixels.ndim == 4 and pixels.shape[0] != 1:
        raise ValueError(f"one picture at a time: the processor made {pixels.shape[0]}")
