"""Static pictures, drawn with numpy and Pillow: no browser needed.

The grid (`grid_picture`) follows published layer x head figures: `h=..` above the columns, `l=..`
left of the rows, a colour bar below. One map over its picture (`overlay_figure`) has a title and a
colour bar with its values. The colours come from the same lookup tables as the front-end
(`colormaps.json`). `save_png` writes any of them with its DPI, never half-written.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .contract import DIVERGING_COLORMAPS
from .render_marks import NO_MARKS, OverlayMarks, draw_marks, picture_layout, round_half_up

COLORMAP_FILE = Path(__file__).with_name("colormaps.json")
NORMALIZE_SCOPES = ("head", "layer", "global")
INTERPOLATIONS = ("bilinear", "nearest")
#: The largest side of the painted map, as the front-end's overlay caps its heat canvas.
HEAT_MAX_PIXELS = 1024


@functools.cache
def colormap_table(name: str) -> np.ndarray:
    """The 256 x 3 uint8 lookup table of a colormap (viridis, magma, inferno, gray)."""
    tables = json.loads(COLORMAP_FILE.read_text())
    if name not in tables:
        raise ValueError(f"unknown colormap {name!r}: choose one of {', '.join(tables)}")
    return np.frombuffer(bytes.fromhex(tables[name]), dtype=np.uint8).reshape(256, 3)


def colour_index(values: np.ndarray) -> np.ndarray:
    """Table entries of normalised `values`: [0, 1] in 256 equal bins, clipped outside, NaN as 0.

    The front-end's `lutIndex` (js/src/colormaps.ts) follows the same rule, checked against the
    fixture `js/tests/fixtures/colour-index.json` on both sides.
    """
    return np.clip(np.floor(np.nan_to_num(np.asarray(values, dtype=np.float64)) * 256), 0, 255).astype(
        np.intp
    )


def apply_colormap(values: np.ndarray, name: str = "viridis") -> np.ndarray:
    """Colours (uint8, shape + (3,)) of `values` in [0, 1]; values outside are clipped."""
    return colormap_table(name)[colour_index(values)]


def centred_range(low: Any, high: Any) -> tuple[Any, Any]:
    """The range symmetric about zero that holds [low, high] (arrays too; NaN stays NaN): how diverging
    colormaps are drawn, zero in the middle colour (`centredRange` in js/src/normalize.ts)."""
    reach = np.fmax(np.abs(low), np.abs(high))
    return -reach, reach


def display_range(
    values: np.ndarray, value_range: tuple[float, float] | None, colormap: str
) -> tuple[float, float]:
    """The range a map is coloured from: `value_range`, or the map's own finite range; centred on zero
    for a diverging colormap."""
    low, high = value_range if value_range is not None else _finite_range(values)
    if colormap in DIVERGING_COLORMAPS:
        low, high = (float(bound) for bound in centred_range(low, high))
    return low, high


def normalize_tiles(
    tiles: np.ndarray, scope: str = "head", *, centred: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Scale tiles [rows, cols, h, w] to [0, 1] per head, per layer (row) or globally, ignoring NaN;
    with `centred`, each range made symmetric about zero (diverging colormaps).

    Returns the scaled tiles and each tile's (lo, hi) range, [rows, cols, 2]. A tile of NaN only has no
    data: its range is (NaN, NaN) and it does not count towards a layer's or the global range, as in
    the front-end's `displayRanges` (js/src/normalize.ts).
    """
    axes = {"head": (2, 3), "layer": (1, 2, 3), "global": (0, 1, 2, 3)}.get(scope)
    if axes is None:
        raise ValueError(f"unknown normalisation {scope!r}: choose one of {', '.join(NORMALIZE_SCOPES)}")
    low = np.fmin.reduce(tiles, axis=axes, keepdims=True, initial=np.inf)
    high = np.fmax.reduce(tiles, axis=axes, keepdims=True, initial=-np.inf)
    has_data = ~np.isnan(tiles).all(axis=(2, 3), keepdims=True)
    low, high = np.where(has_data, low, np.nan), np.where(has_data, high, np.nan)
    if centred:
        low, high = centred_range(low, high)
    span = np.where(high > low, high - low, 1.0)
    ranges = np.concatenate([low, high], axis=-1)[..., :1, :].reshape(*tiles.shape[:2], 2)
    return (tiles - low) / span, ranges


@dataclass(frozen=True)
class GridLayout:
    """Where the parts of a grid picture lie, in pixels."""

    left: int
    top: int
    tile_width: int
    tile_height: int
    gap: int
    rows: int
    cols: int
    font_size: int

    def tile_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of a tile, x1 and y1 exclusive."""
        x = self.left + col * (self.tile_width + self.gap)
        y = self.top + row * (self.tile_height + self.gap)
        return x, y, x + self.tile_width, y + self.tile_height

    def row_label_box(self, row: int) -> tuple[int, int, int, int]:
        _, y0, _, y1 = self.tile_box(row, 0)
        return 0, y0, self.left - self.gap, y1

    def column_label_box(self, col: int) -> tuple[int, int, int, int]:
        x0, _, x1, _ = self.tile_box(0, col)
        return x0, 0, x1, self.top - self.gap

    @property
    def colour_bar_origin(self) -> tuple[int, int]:
        return self.left, self.top + self.rows * (self.tile_height + self.gap) + self.font_size

    @property
    def size(self) -> tuple[int, int]:
        width = self.left + self.cols * (self.tile_width + self.gap)
        return max(width, self.left + 264), self.colour_bar_origin[1] + 12 + 2 * self.font_size


def grid_layout(
    shape: tuple[int, int, int, int], layers: Sequence[int], tile_size: int, gap: int, font_size: int
) -> GridLayout:
    """Layout of a grid picture of tiles [rows, cols, h, w], scaled up by a whole factor to >= `tile_size`."""
    rows, cols, height, width = shape
    scale = max(1, -(-tile_size // max(height, width)))
    font = ImageFont.load_default(size=font_size)
    left = _text_width(font, f"l={max(layers)}") + 3 * gap + 4
    return GridLayout(left, font_size + 3 * gap, width * scale, height * scale, gap, rows, cols, font_size)


def grid_picture(
    tiles: np.ndarray,
    layers: Sequence[int],
    heads: Sequence[int],
    *,
    colormap: str = "viridis",
    normalize: str = "head",
    tile_size: int = 72,
    gap: int = 2,
    font_size: int = 14,
    head_names: Sequence[str] = (),
    caption: str = "",
) -> Image.Image:
    """The layer x head grid as an RGB picture.

    `tiles` is [len(layers), len(heads), h, w] (attention maps or token x token matrices);
    `layers` and `heads` are the 1-based numbers written in the labels, `head_names` (one per head
    of the model, if given) replace `h=..`; `caption` (what the values are) follows the colour bar's
    numbers. Each tile is scaled up by nearest neighbour to at least `tile_size` pixels, so every
    patch stays a crisp block.
    """
    rows, cols, _, width = tiles.shape
    if (rows, cols) != (len(layers), len(heads)):
        raise ValueError(f"tiles are {rows} x {cols} but {len(layers)} layers x {len(heads)} heads are named")
    layout = grid_layout(tiles.shape, layers, tile_size, gap, font_size)
    scale = layout.tile_width // width
    font = ImageFont.load_default(size=font_size)
    scaled, ranges = normalize_tiles(
        tiles.astype(np.float64), normalize, centred=colormap in DIVERGING_COLORMAPS
    )
    bar = ColourBar(colormap, ranges, normalize, caption)
    width, height = layout.size
    picture = Image.new("RGB", (width, height + (font_size + 2 if bar.note else 0)), "white")
    colours = apply_colormap(scaled, colormap)
    draw = ImageDraw.Draw(picture)
    for row in range(rows):
        _, y0, x1, y1 = layout.row_label_box(row)
        draw.text((x1 - 2, (y0 + y1) / 2), f"l={layers[row]}", fill="black", font=font, anchor="rm")
        for col in range(cols):
            block = colours[row, col].repeat(scale, axis=0).repeat(scale, axis=1)
            picture.paste(Image.fromarray(np.ascontiguousarray(block)), layout.tile_box(row, col)[:2])
    for col in range(cols):
        x0, _, x1, y1 = layout.column_label_box(col)
        label = head_names[heads[col] - 1] if head_names else f"h={heads[col]}"
        draw.text(((x0 + x1) / 2, y1), label, fill="black", font=font, anchor="md")
    bar.draw(draw, picture, layout.colour_bar_origin, font)
    return picture


def overlay_picture(
    picture: Image.Image,
    values: np.ndarray,
    crop_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    *,
    alpha: float = 0.5,
    colormap: str = "viridis",
    interpolation: str = "bilinear",
    value_range: tuple[float, float] | None = None,
) -> Image.Image:
    """`picture` with `values` [h, w] upsampled ("bilinear" or "nearest") over the `crop_box` region
    (fractions of the picture), scaled from `value_range` (default: the map's own) to [0, 1] and blended
    in `colormap` with opacity `alpha`."""
    width, height = picture.size
    x0, y0, x1, y1 = (
        round_half_up(f * s) for f, s in zip(crop_box, (width, height, width, height), strict=True)
    )
    value_range = display_range(values, value_range, colormap)
    return _blend_heat(picture, values, (x0, y0, x1, y1), alpha, colormap, interpolation, value_range)


def upsample(values: np.ndarray, width: int, height: int, interpolation: str) -> np.ndarray:
    """`values` [h, w] resampled to [height, width], float32, as the front-end's `upsample`
    (js/src/upsample.ts): pixel-centre alignment, clamped at the edges, the same arithmetic."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"unknown interpolation {interpolation!r}: choose one of {', '.join(INTERPOLATIONS)}"
        )
    source = np.asarray(values, dtype=np.float32).astype(np.float64)
    (ys, y_low, y_high, y_weight), (xs, x_low, x_high, x_weight) = (
        _sample_axis(source.shape[0], height),
        _sample_axis(source.shape[1], width),
    )
    if interpolation == "nearest":
        return source[ys[:, None], xs[None, :]].astype(np.float32)
    upper = source[y_low][:, x_low] * (1 - x_weight) + source[y_low][:, x_high] * x_weight
    lower = source[y_high][:, x_low] * (1 - x_weight) + source[y_high][:, x_high] * x_weight
    return (upper * (1 - y_weight[:, None]) + lower * y_weight[:, None]).astype(np.float32)


def save_png(picture: Image.Image, path: str | Path, *, dpi: int = 300) -> Path:
    """Write `picture` to `path` as a PNG at `dpi`, never half-written."""
    return write_atomically(Path(path), png_bytes(picture, dpi))


def write_atomically(path: Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder: the file is whole or absent."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the folder {path.parent} does not exist")
    handle, temporary = tempfile.mkstemp(suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def overlay_figure(
    picture: Image.Image,
    values: np.ndarray,
    crop_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    *,
    title: str = "",
    size: int = 512,
    alpha: float = 0.6,
    colormap: str = "viridis",
    interpolation: str = "bilinear",
    font_size: int = 14,
    value_range: tuple[float, float] | None = None,
    coverage: tuple[float, float] = (1.0, 1.0),
    marks: OverlayMarks = NO_MARKS,
    caption: str = "",
) -> Image.Image:
    """One map over its picture, as the widget's overlay draws it: `title` above, the picture fitted into
    a `size` square, the map over the patch grid (the `coverage` of the crop) coloured from `value_range`
    (default: the map's own; centred on zero for a diverging colormap), the picture dimmed outside the
    crop, `marks` (mask contours, outlines), and a colour bar with the range's values and `caption`."""
    value_range = display_range(values, value_range, colormap)
    layout = picture_layout(picture.size, size, crop_box, coverage)
    shown = picture.convert("RGB").resize((layout.width, layout.height), Image.Resampling.BILINEAR)
    grid = layout.grid
    box = tuple(round_half_up(v) for v in (grid.x, grid.y, grid.x + grid.width, grid.y + grid.height))
    blended = _blend_heat(shown, values, box, alpha, colormap, interpolation, value_range)
    blended = draw_marks(blended, layout, np.asarray(values, dtype=np.float32), marks)
    font = ImageFont.load_default(size=font_size)
    top = 2 * font_size if title else 0
    figure = Image.new("RGB", (max(blended.width, 280), top + blended.height + 3 * font_size + 14), "white")
    draw = ImageDraw.Draw(figure)
    if title:
        draw.text((0, font_size // 2), title, fill="black", font=font)
    figure.paste(blended, (0, top))
    bar = ColourBar(colormap, np.array([[value_range]]), "global", caption)
    bar.draw(draw, figure, (0, top + blended.height + font_size // 2), font)
    return figure


def png_bytes(picture: Image.Image, dpi: int = 144) -> bytes:
    """`picture` as PNG bytes at `dpi`."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", dpi=(dpi, dpi))
    return buffer.getvalue()


def export_png(picture: Image.Image, path: str | Path | None, *, dpi: int) -> bytes:
    """`picture` as PNG bytes at `dpi`, also written to `path` (whole or not at all) when given."""
    data = png_bytes(picture, dpi)
    if path is not None:
        write_atomically(Path(path), data)
    return data


@dataclass(frozen=True)
class ColourBar:
    """A colour bar: the colormap's ramp, its range's ends (per `normalize` scope: numbers when global,
    else words), zero in the middle for a diverging colormap, and below them a note of the range and
    `caption` (what the values are), when there is one."""

    colormap: str
    ranges: np.ndarray
    normalize: str
    caption: str = ""

    @property
    def centred(self) -> bool:
        return self.colormap in DIVERGING_COLORMAPS

    @property
    def note(self) -> str:
        """The line under the numbers: how the range is taken and what the values are, or ""."""
        parts = [f"each {self.normalize}'s range" if self.centred and self.normalize != "global" else ""]
        parts += ["centred on 0" if self.centred else "", self.caption]
        return ", ".join(part for part in parts if part)

    def draw(
        self, draw: ImageDraw.ImageDraw, picture: Image.Image, origin: tuple[int, int], font: Any
    ) -> None:
        x, y = origin
        width = min(256, picture.width - x - 8)
        ramp = apply_colormap(np.linspace(0, 1, width)[None, :].repeat(12, axis=0), self.colormap)
        picture.paste(Image.fromarray(np.ascontiguousarray(ramp)), (x, y))
        if self.normalize == "global":
            low, high = f"{self.ranges[0, 0, 0]:.3g}", f"{self.ranges[0, 0, 1]:.3g}"
        elif self.centred:
            low, high = "-max", "+max"
        else:
            low, high = "min", f"max of each {self.normalize}"
        draw.text((x, y + 14), low, fill="black", font=font, anchor="la")
        draw.text((x + width, y + 14), high, fill="black", font=font, anchor="ra")
        if self.centred:
            draw.text((x + width / 2, y + 14), "0", fill="black", font=font, anchor="ma")
        if self.note:
            draw.text((x, y + 16 + font.size), self.note, fill="black", font=font, anchor="la")


def _blend_heat(
    picture: Image.Image,
    values: np.ndarray,
    box: tuple[int, int, int, int],
    alpha: float,
    colormap: str,
    interpolation: str,
    value_range: tuple[float, float],
) -> Image.Image:
    """`picture` with `values` painted over `box` (x0, y0, x1, y1 in pixels) as the front-end paints its
    heat canvas: values upsampled, then (v - lo) / (hi - lo) to a colour, blended with opacity `alpha`."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], not {alpha}")
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"expected a 2-d map, got shape {values.shape}")
    low, high = value_range
    x0, y0, x1, y1 = box
    region = (max(1, x1 - x0), max(1, y1 - y0))
    heat_size = (min(HEAT_MAX_PIXELS, region[0]), min(HEAT_MAX_PIXELS, region[1]))
    smooth = upsample(values, *heat_size, interpolation).astype(np.float64)
    scale = 1 / (high - low) if high > low else 0.0
    heat = apply_colormap((smooth - low) * scale, colormap)
    if heat_size != region:
        heat = np.asarray(Image.fromarray(heat).resize(region, Image.Resampling.BILINEAR))
    result = np.asarray(picture.convert("RGB"), dtype=np.float32).copy()
    window = result[max(0, y0) : y0 + region[1], max(0, x0) : x0 + region[0]]
    heat = heat[max(0, -y0) :, max(0, -x0) :].astype(np.float32)
    window[:] = (1 - alpha) * window + alpha * heat[: window.shape[0], : window.shape[1]]
    return Image.fromarray(np.clip(np.rint(result), 0, 255).astype(np.uint8))


def _sample_axis(size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per output pixel: the nearest source index, the two bilinear neighbours, the upper one's weight."""
    centre = (np.arange(out_size) + 0.5) * (size / out_size)
    nearest = np.minimum(size - 1, np.floor(centre)).astype(np.intp)
    source = np.minimum(size - 1, np.maximum(0.0, centre - 0.5))
    low = np.floor(source)
    weight = (source - low).astype(np.float32).astype(np.float64)
    low = low.astype(np.intp)
    return nearest, low, np.minimum(size - 1, low + 1), weight


def _finite_range(values: np.ndarray) -> tuple[float, float]:
    """The lowest and highest finite values of `values`, (0, 0) when there are none."""
    finite = np.asarray(values, dtype=np.float64)[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


def _text_width(font: ImageFont.FreeTypeFont, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)
