"""Where an overlay's parts lie and the marks over it, as the front-end draws them.

`picture_layout` is `pictureLayout` (js/src/layout.ts): the picture fitted into a square, the region
the model saw (`crop_box`) and the patch grid in it. The marks are those of js/src/overlay.ts and
js/src/overlay-marks.ts: outside the crop the picture is dimmed and the crop outlined (dashed white
over a dark halo); the DINO mask's contour is white over a dark halo; high-norm tokens are outlined
dashed red over white; the query's patches are outlined. Geometry is pure (numbers in, segments out);
`draw_marks` strokes it with Pillow, in canvas coordinates (pixel (i, j) spans [i, i + 1) x [j, j + 1)).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .masks import high_norm_mask, mask_edges, mass_mask

HALO = (0, 0, 0, 179)  # rgba(0, 0, 0, 0.7)
WHITE = (255, 255, 255, 255)
HIGH_NORM_RED = (0xE0, 0x10, 0x3A, 255)
DIM = 0.5  # outside the crop: rgba(0, 0, 0, 0.5) over the picture
CROP_DASH = (6.0, 4.0)
HIGH_NORM_DASH = (4.0, 3.0)
#: Query patches are outlined while there are at most this many (more would just frame the grid).
MAX_QUERY_OUTLINES = 64


@dataclass(frozen=True)
class Rect:
    """A rectangle in canvas pixels (fractional where the front-end's is)."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class PictureLayout:
    """The picture's size in pixels, the region the model saw and the patch grid drawn over it."""

    width: int
    height: int
    crop: Rect
    grid: Rect

    @property
    def cropped(self) -> bool:
        """Whether the model saw less than the whole picture (the front-end then dims the rest)."""
        return self.crop.width < self.width - 0.5 or self.crop.height < self.height - 0.5


@dataclass(frozen=True)
class OverlayMarks:
    """What is drawn over the map: the DINO mask of `mask_mass` (0 for none), the high-norm tokens above
    `high_norm_factor` times the median (None for none) and the outlines of `query_patches` (row-major)."""

    mask_mass: float = 0.0
    high_norm_factor: float | None = None
    query_patches: tuple[int, ...] = ()


NO_MARKS = OverlayMarks()


def round_half_up(value: float) -> int:
    """`value` to the nearest integer, halves up, as JavaScript's `Math.round`."""
    return math.floor(value + 0.5)


def picture_layout(
    image_size: tuple[int, int],
    max_side: float,
    crop_box: Sequence[float],
    coverage: tuple[float, float] = (1.0, 1.0),
) -> PictureLayout:
    """The picture of `image_size` (W, H) fitted into a `max_side` square, its crop and the grid in it.

    `coverage` is the share (x, y) of the crop the patches cover: less than 1 where the model drops a
    remainder.
    """
    image_width, image_height = image_size
    scale = min(max_side / image_width, max_side / image_height)
    width = max(1, round_half_up(image_width * scale))
    height = max(1, round_half_up(image_height * scale))
    x0, y0, x1, y1 = crop_box
    crop = Rect(x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height)
    grid = Rect(crop.x, crop.y, crop.width * coverage[0], crop.height * coverage[1])
    return PictureLayout(width, height, crop, grid)


def grid_coverage(
    grid: tuple[int, int], input_size: Sequence[int] | None, patch_size: int
) -> tuple[float, float]:
    """Shares (x, y) of the model input ([H, W]) covered by the patch grid (gh, gw): (1, 1) unless the
    model drops a remainder, or when the sizes are unknown (`gridCoverage` in js/src/layout.ts)."""
    gh, gw = grid
    if not input_size or patch_size <= 0 or gh <= 0 or gw <= 0:
        return 1.0, 1.0
    return min(1.0, gw * patch_size / input_size[1]), min(1.0, gh * patch_size / input_size[0])


def contour_segments(mask: np.ndarray, grid: Rect) -> np.ndarray:
    """The outline of a cell mask [gh, gw] over `grid`: segments [x0, y0, x1, y1] in canvas pixels."""
    rows, cols = np.shape(mask)
    scale = np.array([grid.width / cols, grid.height / rows] * 2)
    return mask_edges(mask) * scale + np.array([grid.x, grid.y] * 2)


def cell_rect(grid: Rect, rows: int, cols: int, row: int, col: int) -> Rect:
    """The rectangle of cell (row, col) of a `rows x cols` grid spread over `grid`."""
    width, height = grid.width / cols, grid.height / rows
    return Rect(grid.x + col * width, grid.y + row * height, width, height)


def outline_path(rect: Rect) -> np.ndarray:
    """The closed path `outline` strokes around `rect` (inset by 0.75 px): its five corners [5, 2]."""
    x, y = rect.x + 0.75, rect.y + 0.75
    width, height = max(0.0, rect.width - 1.5), max(0.0, rect.height - 1.5)
    return np.array([[x, y], [x + width, y], [x + width, y + height], [x, y + height], [x, y]])


def dashes(path: np.ndarray, pattern: Sequence[float]) -> np.ndarray:
    """The drawn pieces [x0, y0, x1, y1] of the polyline `path` [n, 2] under a dash `pattern` (on, off,
    ...) that starts at its first point and runs on across its corners, as a canvas dashes one subpath."""
    if not pattern:
        return np.concatenate([path[:-1], path[1:]], axis=1)
    pieces = []
    index, left = 0, float(pattern[0])  # the pattern's entry and what is left of it
    for start, end in itertools.pairwise(path):
        length = float(np.hypot(*(end - start)))
        done = 0.0
        while done < length:
            step = min(left, length - done)
            if index % 2 == 0:
                pieces.append(
                    [
                        *(start + (end - start) * done / length),
                        *(start + (end - start) * (done + step) / length),
                    ]
                )
            done += step
            left -= step
            if left <= 1e-9:
                index = (index + 1) % len(pattern)
                left = float(pattern[index])
    return np.array(pieces, dtype=np.float64).reshape(-1, 4)


def draw_marks(
    picture: Image.Image, layout: PictureLayout, values: np.ndarray, marks: OverlayMarks
) -> Image.Image:
    """`picture` (the blended overlay, `layout`'s size) with the crop, the masks of `values` [gh, gw] and
    the query's patches marked as the front-end marks them."""
    rgba = picture.convert("RGBA")
    if layout.cropped:
        rgba = _dim_outside(rgba, layout.crop)
        rgba = _outline(rgba, layout.crop, CROP_DASH)
    gh, gw = np.shape(values)
    mask = mass_mask(values, marks.mask_mass) if marks.mask_mass > 0 else None
    if mask is not None:
        segments = contour_segments(mask, layout.grid)
        rgba = _stroke(rgba, segments, HALO, 4, round_caps=True)
        rgba = _stroke(rgba, segments, WHITE, 2, round_caps=True)
    flagged = high_norm_mask(values, marks.high_norm_factor) if marks.high_norm_factor is not None else None
    if flagged is not None and flagged.any():
        segments = contour_segments(flagged, layout.grid)
        rgba = _stroke(rgba, segments, WHITE, 3, round_caps=True)
        pieces = [dashes(segment.reshape(2, 2), HIGH_NORM_DASH) for segment in segments]
        rgba = _stroke(rgba, np.concatenate(pieces), HIGH_NORM_RED, 2, round_caps=True)
    patches = [p for p in marks.query_patches if 0 <= p < gh * gw]
    if len(patches) <= MAX_QUERY_OUTLINES:
        for patch in patches:
            rgba = _outline(rgba, cell_rect(layout.grid, gh, gw, patch // gw, patch % gw), ())
    return rgba.convert("RGB")


def _dim_outside(picture: Image.Image, crop: Rect) -> Image.Image:
    pixels = np.asarray(picture, dtype=np.float32).copy()
    x0, y0 = round_half_up(crop.x), round_half_up(crop.y)
    x1, y1 = round_half_up(crop.x + crop.width), round_half_up(crop.y + crop.height)
    outside = np.ones(pixels.shape[:2], dtype=bool)
    outside[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = False
    pixels[outside, :3] *= 1 - DIM
    return Image.fromarray(np.rint(pixels).astype(np.uint8), "RGBA")


def _outline(picture: Image.Image, rect: Rect, pattern: Sequence[float]) -> Image.Image:
    """A white line over a dark halo around `rect`, as `outline` in js/src/overlay-marks.ts."""
    pieces = dashes(outline_path(rect), pattern)
    return _stroke(_stroke(picture, pieces, HALO, 3), pieces, WHITE, 1)


def _stroke(
    picture: Image.Image,
    segments: np.ndarray,
    colour: tuple[int, int, int, int],
    width: int,
    *,
    round_caps: bool = False,
) -> Image.Image:
    """`segments` stroked `width` wide in `colour` as one path: where they overlap, a translucent colour
    is laid on once."""
    layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    radius = width / 2
    for x0, y0, x1, y1 in segments - 0.5:  # canvas pixel centres lie at +0.5
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=width)
        if round_caps:
            for x, y in ((x0, y0), (x1, y1)):
                draw.ellipse(
                    [x - radius + 0.5, y - radius + 0.5, x + radius - 0.5, y + radius - 0.5], fill=colour
                )
    return Image.alpha_composite(picture, layer)
