"""Where the model's input lies in the original picture, measured through the processor itself.

Image processors resize, crop, pad and round in many ways (a fixed size, the shortest edge, the
shortest edge over `crop_pct` then a centre crop, crop then resize, sizes rounded to a divisor...).
Rather than knowing each rule, `input_geometry` runs the processor on three pictures of the same size:
one whose red channel rises from left to right and green from top to bottom, one black and one white.
Per channel the processor's normalisation is undone with the black and white ones, which leaves, at
every input pixel, where in the picture it came from; a straight line fitted to that is the mapping.
A processor whose mapping is no straight line within the picture (padding, tiles, warps) has a rule
attnwidget does not know: it warns and gives no crop box, never a wrong one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

#: Largest error of the fitted mapping, as a share of the picture's side, that is still a straight line.
FIT_TOLERANCE = 2.5 / 255
#: Pictures with a side shorter than this are not measured (the usual rule, where there is one).
MIN_MEASURED_SIDE = 8
#: Larger pictures are measured on a copy of this many pixels with their proportions (the fractions
#: of a resizing processor's box do not change with the picture's size).
MAX_MEASURED_PIXELS = 1024 * 1024
#: How close (as a share of the picture's side) the usual rule must come to the measurement to be used.
RULE_AGREEMENT = 0.01
#: Share of the input's pixels that must come from the picture (the rest: padding) for a crop box.
MIN_PICTURE_SHARE = 0.98


@dataclass(frozen=True)
class InputGeometry:
    """How a processor maps an original picture onto the model's input.

    The picture of `image_size` (W, H) is resized to `resized` (W, H); the model sees the window
    `crop` (left, top, width, height) of the resized picture. `known` is False when the processor's
    mapping could not be measured: then the window is the whole picture and says nothing.
    """

    image_size: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int, int, int]
    known: bool = True

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

    Measured through the processor; where the usual rule of transformers' processors (a fixed
    `height` x `width`, or the shortest edge scaled to `shortest_edge`, then an optional centre crop)
    agrees with the measurement, its exact whole pixels are kept (the measurement is good to about a
    pixel of the resized picture).
    """

    def apply(pictures: list[Image.Image]) -> np.ndarray:
        try:
            return np.asarray(processor(images=pictures, return_tensors="np")["pixel_values"])
        except Exception:  # a processor (or a wrapper of one) that takes one picture at a time
            return np.concatenate(
                [
                    np.asarray(processor(images=picture, return_tensors="np")["pixel_values"])
                    for picture in pictures
                ]
            )

    ruled = _usual_rule(processor, image_size)
    if ruled and min(image_size) < MIN_MEASURED_SIDE:
        return ruled  # too few pixels to measure a line in
    measured = measure_geometry(apply, image_size, type(processor).__name__)
    if (
        measured.known
        and ruled
        and ruled.crop[2:] == measured.crop[2:]
        and np.allclose(ruled.crop_box, measured.crop_box, atol=RULE_AGREEMENT)
    ):
        return ruled
    return measured


def measure_geometry(
    apply: Callable[[list[Image.Image]], np.ndarray], image_size: tuple[int, int], name: str
) -> InputGeometry:
    """Geometry of `apply` (pictures -> model inputs [3, C, h, w]), measured on a picture of `image_size`."""
    width, height = image_size
    scale = min(1.0, (MAX_MEASURED_PIXELS / (width * height)) ** 0.5)  # a proxy for a huge picture
    proxy = (max(1, round(width * scale)), max(1, round(height * scale)))
    try:
        inputs = np.asarray(apply(list(_probe_pictures(*proxy))), dtype=np.float64)
        box = _fitted_box(inputs) if inputs.ndim == 4 and inputs.shape[:2] >= (3, 2) else None
    except Exception as error:  # a processor that cannot take these pictures has an unknown rule too
        box, inputs = None, None
        reason = f"it failed on a plain picture ({type(error).__name__}: {error})"
    else:
        reason = "its inputs are not one straight resize and crop of the picture (padding, tiles or warps)"
    if box is None:
        warnings.warn(
            f"attnwidget cannot tell where {name}'s input lies in the picture: {reason}. The overlay "
            "spreads the map over the whole picture, which may not be where the model looked",
            stacklevel=3,
        )
        return InputGeometry((width, height), (width, height), (0, 0, width, height), known=False)
    input_h, input_w = inputs.shape[-2:]
    x0, y0, x1, y1 = box
    resized = (max(1, round(input_w / (x1 - x0))), max(1, round(input_h / (y1 - y0))))
    crop = (round(x0 * resized[0]), round(y0 * resized[1]), input_w, input_h)
    return InputGeometry((width, height), resized, crop)


def _probe_pictures(width: int, height: int) -> tuple[Image.Image, Image.Image, Image.Image]:
    """The ramps hold 255 x the pixel centre's fraction of the side, dithered: rounded up or down at
    random so that a column's (row's) mean is exact, not off by a rounding that repeats along it."""
    dither = np.random.default_rng(0).random((height, width, 2))
    fractions = np.stack(
        np.meshgrid((np.arange(width) + 0.5) / width, (np.arange(height) + 0.5) / height), -1
    )
    ramp = np.zeros((height, width, 3), dtype=np.uint8)
    ramp[..., :2] = np.clip(np.floor(255 * fractions + dither), 0, 255)
    black = np.zeros_like(ramp)
    return Image.fromarray(ramp), Image.fromarray(black), Image.fromarray(black + 255)


def _fitted_box(inputs: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of the picture the inputs show, from the ramp's fractions; None for no line."""
    ramp, black, white = inputs[0, :2], inputs[1, :2], inputs[2, :2]
    span = white - black
    inside = np.abs(span) > 1e-6 * np.abs(span).max()
    if inside.mean() < MIN_PICTURE_SHARE:
        return None
    fractions = np.where(inside, (ramp - black) / np.where(inside, span, 1), np.nan)
    box = []
    for channel, axis in ((0, 1), (1, 0)):  # red: x along columns, green: y along rows
        values = fractions[channel]
        centres = (np.arange(values.shape[axis]) + 0.5) / values.shape[axis]
        line = np.nanmean(values, axis=1 - axis)  # one value per column (x) or row (y)
        usable = ~np.isnan(line)
        inner = usable & (centres > 0.1) & (centres < 0.9)  # edges clamp when resampled
        if inner.sum() < 2:
            return None
        slope, offset = np.polyfit(centres[inner], line[inner], 1)
        if np.abs(np.polyval((slope, offset), centres[inner]) - line[inner]).max() > FIT_TOLERANCE:
            return None
        box.append((offset, slope + offset))
    (x0, x1), (y0, y1) = box
    if not (-0.01 <= x0 < x1 <= 1.01 and -0.01 <= y0 < y1 <= 1.01):
        return None  # the input shows more than the picture
    return (max(0.0, x0), max(0.0, y0), min(1.0, x1), min(1.0, y1))


def _usual_rule(processor: Any, image_size: tuple[int, int]) -> InputGeometry | None:
    """The geometry the usual resize and centre-crop settings describe, or None without such settings."""
    width, height = image_size
    resized = (width, height)
    if getattr(processor, "do_resize", True) and getattr(processor, "size", None):
        size = _as_dict(processor.size)
        if "height" in size and "width" in size:
            resized = (size["width"], size["height"])
        elif "shortest_edge" in size and len(size) == 1:
            short, long = sorted((width, height))
            new_long = int(size["shortest_edge"] * long / short)
            resized = (
                (size["shortest_edge"], new_long) if width <= height else (new_long, size["shortest_edge"])
            )
        else:
            return None
    crop = (0, 0, *resized)
    crop_size = _as_dict(getattr(processor, "crop_size", None) or {})
    if getattr(processor, "do_center_crop", False) and crop_size.get("height") and crop_size.get("width"):
        crop_w, crop_h = crop_size["width"], crop_size["height"]
        crop = ((resized[0] - crop_w) // 2, (resized[1] - crop_h) // 2, crop_w, crop_h)
    return InputGeometry((width, height), resized, crop)


def _as_dict(size: Any) -> dict[str, int]:
    if isinstance(size, int):
        return {"height": size, "width": size}
    items = size.items() if hasattr(size, "items") else vars(size).items()
    return {key: value for key, value in items if value is not None}
