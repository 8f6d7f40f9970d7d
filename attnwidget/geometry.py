"""Where the model's input lies in the original picture, after the processor's resize and crop."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InputGeometry:
    """How a processor maps an original picture onto the model's input.

    The picture of `image_size` (W, H) is resized to `resized` (W, H); the model sees the window
    `crop` (left, top, width, height) of the resized picture.
    """

    image_size: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int, int, int]

    @property
    def crop_box(self) -> tuple[float, float, float, float]:
        """The region the model saw as fractions (x0, y0, x1, y1) of the original's width and height."""
        left, top, width, height = self.crop
        resized_w, resized_h = self.resized
        return (left / resized_w, top / resized_h, (left + width) / resized_w, (top + height) / resized_h)

    def patch_box(self, grid: tuple[int, int], row: int, col: int) -> tuple[float, float, float, float]:
        """Pixel box (x0, y0, x1, y1) in the original picture covered by patch (row, col) of `grid`."""
        x0, y0, x1, y1 = self.crop_box
        rows, cols = grid
        width, height = self.image_size
        span_x, span_y = (x1 - x0) / cols, (y1 - y0) / rows
        return (
            (x0 + col * span_x) * width,
            (y0 + row * span_y) * height,
            (x0 + (col + 1) * span_x) * width,
            (y0 + (row + 1) * span_y) * height,
        )


def input_geometry(processor: Any, image_size: tuple[int, int]) -> InputGeometry:
    """Geometry of `processor` (a transformers image processor) applied to a picture of `image_size`.

    Follows the resize rules of transformers' image processors: a fixed `height` x `width`, or the
    shortest edge scaled to `shortest_edge` (aspect kept), then an optional centre crop.
    """
    width, height = image_size
    resized = (width, height)
    if getattr(processor, "do_resize", True) and getattr(processor, "size", None):
        resized = _resized_size(_as_dict(processor.size), width, height)
    crop = (0, 0, *resized)
    crop_size = _as_dict(getattr(processor, "crop_size", None) or {})
    if getattr(processor, "do_center_crop", False) and crop_size.get("height") and crop_size.get("width"):
        crop_w, crop_h = crop_size["width"], crop_size["height"]
        crop = ((resized[0] - crop_w) // 2, (resized[1] - crop_h) // 2, crop_w, crop_h)
    return InputGeometry(image_size=(width, height), resized=resized, crop=crop)


def _as_dict(size: Any) -> dict[str, int]:
    if isinstance(size, int):
        return {"height": size, "width": size}
    items = size.items() if hasattr(size, "items") else vars(size).items()
    return {key: value for key, value in items if value is not None}


def _resized_size(size: dict[str, int], width: int, height: int) -> tuple[int, int]:
    if "height" in size and "width" in size:
        return size["width"], size["height"]
    if "shortest_edge" in size:
        short, long = sorted((width, height))
        new_short = size["shortest_edge"]
        new_long = int(new_short * long / short)
        if "longest_edge" in size and new_long > size["longest_edge"]:
            new_short, new_long = int(size["longest_edge"] * new_short / new_long), size["longest_edge"]
        return (new_short, new_long) if width <= height else (new_long, new_short)
    if "longest_edge" in size:
        scale = size["longest_edge"] / max(width, height)
        return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    raise ValueError(f"unsupported processor size {size}: expected height/width or shortest_edge")
