"""LLaVA-NeXT's "anyres" image tokens (pure functions): a base view, then tiles of the picture with the
padding's feature rows (or columns) cut off and an image-newline token after each row.

The processor resizes the picture to fit the best resolution of `image_grid_pinpoints` (aspect kept,
sides rounded up), pads it to that resolution (centred), cuts it into tiles and adds the whole
picture resized to one tile (the base view). The model turns the tiles' features into one grid,
removes whole feature rows (or columns) of padding (`unpad_image`, with its own rounding) and puts an
image-newline token after each row; the base view's tokens come first.

The canvas is that unpadded feature grid. Its rows can reach a fraction of a cell past the picture
(the feature rows kept include some padding), so its crop box can lie a little outside [0, 1]: it is
where those cells lie, exactly. Each base-view token spreads evenly over the canvas cells whose
centres lie in its share of the picture; newline tokens stand for no place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .token_maps import ImageTokenMap, _check_count


@dataclass(frozen=True)
class AnyresGeometry:
    """Where the unpadded feature grid lies: its size and its box in the picture."""

    tiles: tuple[int, int]
    """(rows, cols) of tiles."""
    canvas: tuple[int, int]
    """The unpadded feature grid (gh, gw)."""
    crop_box: tuple[float, float, float, float]
    """The canvas in the picture, as fractions (x0, y0, x1, y1); may reach a little past [0, 1]."""


def best_resolution(image_size: tuple[int, int], pinpoints: list[list[int]]) -> tuple[int, int]:
    """The processor's choice among `pinpoints` [(height, width)] for a picture of (height, width): the
    most effective pixels once fitted, then the least waste (transformers' `select_best_resolution`)."""
    height, width = image_size
    best, best_effective, best_waste = None, -1, math.inf
    for target_height, target_width in pinpoints:
        scale = min(target_width / width, target_height / height)
        scaled_width, scaled_height = int(width * scale), int(height * scale)
        effective = min(scaled_width * scaled_height, width * height)
        waste = target_width * target_height - effective
        if effective > best_effective or (effective == best_effective and waste < best_waste):
            best, best_effective, best_waste = (target_height, target_width), effective, waste
    assert best is not None
    return best


def anyres_geometry(
    image_size: tuple[int, int], pinpoints: list[list[int]], tile: int, patch: int
) -> AnyresGeometry:
    """The tiles, the unpadded canvas and its crop box for a picture of (height, width)."""
    height, width = image_size
    target_height, target_width = best_resolution(image_size, pinpoints)
    # The processor's fit (get_patch_output_size) and centred padding.
    if target_width / width < target_height / height:
        new_width, new_height = target_width, min(math.ceil(height * target_width / width), target_height)
    else:
        new_height, new_width = target_height, min(math.ceil(width * target_height / height), target_width)
    paste_x, paste_y = (target_width - new_width) // 2, (target_height - new_height) // 2
    side = tile // patch
    tiles = (target_height // tile, target_width // tile)
    rows, cols = tiles[0] * side, tiles[1] * side
    # The model's unpad_image, in feature units.
    top = left = 0
    if width / height > cols / rows:
        kept = int(round(height * cols / width, 7))
        top = (rows - kept) // 2
    else:
        kept = int(round(width * rows / height, 7))
        left = (cols - kept) // 2
    canvas = (rows - 2 * top, cols - 2 * left)
    # Feature row r covers padded pixels [r * patch, (r + 1) * patch); the picture lies at the paste.
    x0, x1 = (left * patch - paste_x) / new_width, ((left + canvas[1]) * patch - paste_x) / new_width
    y0, y1 = (top * patch - paste_y) / new_height, ((top + canvas[0]) * patch - paste_y) / new_height
    return AnyresGeometry(tiles, canvas, (x0, y0, x1, y1))


def anyres_map(
    positions: torch.Tensor, base_side: int, geometry: AnyresGeometry, newline: bool
) -> ImageTokenMap:
    """Base view (`base_side` x `base_side`, first), then the canvas row by row, each row followed by an
    image-newline token when `newline` (no cells)."""
    gh, gw = geometry.canvas
    base = base_side * base_side
    row_length = gw + (1 if newline else 0)
    _check_count(
        positions, base + gh * row_length, f"a {base_side} x {base_side} base view and {gh} x {gw} tiles"
    )
    tokens, cells, weights = _base_entries(base_side, geometry)
    cell = torch.arange(gh * gw)
    tile_tokens = base + (cell // gw) * row_length + cell % gw
    return ImageTokenMap(
        positions,
        geometry.canvas,
        torch.cat([tokens, tile_tokens]),
        torch.cat([cells, cell]),
        torch.cat([weights, torch.ones(gh * gw)]),
    )


def _base_entries(side: int, geometry: AnyresGeometry) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each base-view token over the canvas cells whose centres fall in its share of the picture."""
    gh, gw = geometry.canvas
    x0, y0, x1, y1 = geometry.crop_box
    # Cell centres as fractions of the picture, then the base token (row, col) each falls in.
    ys = y0 + (torch.arange(gh) + 0.5) / gh * (y1 - y0)
    xs = x0 + (torch.arange(gw) + 0.5) / gw * (x1 - x0)
    rows, cols = torch.floor(ys * side).long(), torch.floor(xs * side).long()
    inside = ((rows >= 0) & (rows < side))[:, None] & ((cols >= 0) & (cols < side))[None, :]
    token = rows[:, None] * side + cols[None, :]
    cell = torch.arange(gh * gw).reshape(gh, gw)
    tokens, cells = token[inside], cell[inside]
    counts = torch.bincount(tokens, minlength=side * side).float()
    return tokens, cells, 1.0 / counts[tokens]
