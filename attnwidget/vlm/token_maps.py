"""Where each image token of a vision-language model's prompt came from on the picture (pure functions).

An `ImageTokenMap` names, for every image token position in `input_ids`, the cells of one
picture-aligned canvas grid (gh, gw) it stands for, with weights: a token that covers one cell has
weight 1 on it; a coarse token (a base or global view over finer tiles) spreads its weight evenly over
the cells it covers, so folding a row of attention keeps its mass. Tokens that stand for no place (an
image-newline token) have no cells. `fold` turns a vector over the image tokens into the canvas.

The family rules (`square_grid_map`, `merged_grid_map`) know how each model orders its image tokens;
where the canvas lies in the picture (the processor's resize, crop or pad) is said by the caller
(`Picture.crop_box`), measured or derived from the processor, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


class ImageTokenMismatchError(ValueError):
    """The prompt's image tokens do not match what the model makes of the picture."""


@dataclass(frozen=True)
class ImageTokenMap:
    """Image token positions in `input_ids` and the canvas cells each stands for (a sparse matrix)."""

    positions: torch.Tensor
    """[tokens] long: where each image token lies in `input_ids` (ascending)."""
    grid: tuple[int, int]
    """The canvas (gh, gw), row-major, over the picture's crop box."""
    token_index: torch.Tensor
    """[entries] long: the image token (0..tokens-1, counted among the image tokens) of each entry."""
    cell_index: torch.Tensor
    """[entries] long: the canvas cell (row * gw + col) of each entry."""
    weight: torch.Tensor
    """[entries] float32: the share of the token's attention that goes to the cell."""

    @property
    def token_count(self) -> int:
        return int(self.positions.numel())

    @property
    def cell_count(self) -> int:
        return self.grid[0] * self.grid[1]

    def matrix(self) -> torch.Tensor:
        """The dense [tokens, cells] matrix of weights (for tests and small grids)."""
        dense = torch.zeros(self.token_count, self.cell_count)
        dense.index_put_((self.token_index, self.cell_index), self.weight, accumulate=True)
        return dense

    def cells_of(self, token: int) -> list[int]:
        """The canvas cells image token `token` (counted among the image tokens) stands for."""
        return self.cell_index[self.token_index == token].tolist()

    def fold(self, values: torch.Tensor) -> torch.Tensor:
        """`values` [..., tokens] over the image tokens -> [..., cells] over the canvas (row-major)."""
        if values.shape[-1] != self.token_count:
            raise ValueError(f"expected {self.token_count} image-token values, got {values.shape[-1]}")
        spread = values.index_select(-1, self.token_index.to(values.device)).float()
        spread = spread * self.weight.to(spread.device)
        folded = torch.zeros(*values.shape[:-1], self.cell_count, device=values.device)
        return folded.index_add_(-1, self.cell_index.to(values.device), spread)


def image_positions(input_ids: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """The positions of `image_token_id` in one prompt's `input_ids` ([1, length] or [length])."""
    ids = input_ids.reshape(-1) if input_ids.ndim == 1 or input_ids.shape[0] == 1 else None
    if ids is None:
        raise ValueError(f"one prompt at a time: input_ids has a batch of {input_ids.shape[0]}")
    return torch.nonzero(ids == image_token_id).flatten().cpu()


def square_grid_map(positions: torch.Tensor, grid: tuple[int, int]) -> ImageTokenMap:
    """One view whose tokens are its patches in row-major order (LLaVA 1.5 without CLS, PaliGemma)."""
    cells = grid[0] * grid[1]
    _check_count(positions, cells, f"a {grid[0]} x {grid[1]} patch grid")
    index = torch.arange(cells)
    return ImageTokenMap(positions, grid, index, index.clone(), torch.ones(cells))


def merged_grid_map(positions: torch.Tensor, grid_thw: Sequence[int], merge: int) -> ImageTokenMap:
    """Qwen2-VL / Qwen2.5-VL: `grid_thw` patches (t, h, w) merged `merge` x `merge` into one token each;
    the language model sees the merged cells in row-major order (Qwen2.5-VL's window order is undone
    by its vision tower before the merger's output is returned)."""
    frames, height, width = (int(value) for value in grid_thw)
    if frames != 1:
        raise ValueError(f"a picture has one frame: image_grid_thw says {frames} (a video is not supported)")
    if height % merge or width % merge:
        raise ValueError(f"a {height} x {width} patch grid does not merge {merge} x {merge}")
    return square_grid_map(positions, (height // merge, width // merge))


def tiled_map(positions: torch.Tensor, tiles: tuple[int, int], side: int) -> ImageTokenMap:
    """Idefics3 / SmolVLM: `tiles` = (rows, cols) tiles of `side` x `side` tokens each (after the pixel
    shuffle, row-major within a tile), tile after tile in row-major order, then the global view's
    `side` x `side` tokens, each spread over the (rows x cols) canvas cells it covers. (0, 0) tiles: the
    global view alone, one cell per token."""
    rows, cols = tiles
    if rows == 0 and cols == 0:
        return square_grid_map(positions, (side, side))
    per_tile = side * side
    canvas = (rows * side, cols * side)
    _check_count(positions, (rows * cols + 1) * per_tile, f"{rows} x {cols} tiles and a global view")
    local = torch.arange(per_tile)
    tokens, cells = [], []
    for tile in range(rows * cols):
        tile_row, tile_col = divmod(tile, cols)
        cell_rows = tile_row * side + local // side
        cell_cols = tile_col * side + local % side
        tokens.append(tile * per_tile + local)
        cells.append(cell_rows * canvas[1] + cell_cols)
    coarse_tokens, coarse_cells, coarse_weights = coarse_view_entries(
        (side, side), canvas, (0, 0, canvas[0], canvas[1])
    )
    fine = rows * cols * per_tile
    return ImageTokenMap(
        positions,
        canvas,
        torch.cat([*tokens, fine + coarse_tokens]),
        torch.cat([*cells, coarse_cells]),
        torch.cat([torch.ones(fine), coarse_weights]),
    )


def coarse_view_entries(
    view: tuple[int, int], canvas: tuple[int, int], box: tuple[int, int, int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A coarse view's `view` (h, w) tokens over canvas rows/cols `box` = (top, left, bottom, right):
    each token spreads evenly over the canvas cells whose centres lie in its share of the box.
    Returns (token_index, cell_index, weight) with tokens numbered row-major within the view."""
    top, left, bottom, right = box
    tokens, cells, weights = [], [], []
    for row in range(view[0]):
        rows = _covered(top, bottom, view[0], row)
        for col in range(view[1]):
            cols = _covered(left, right, view[1], col)
            covered = [r * canvas[1] + c for r in rows for c in cols]
            tokens += [row * view[1] + col] * len(covered)
            cells += covered
            weights += [1.0 / len(covered)] * len(covered) if covered else []
    return (
        torch.tensor(tokens, dtype=torch.long),
        torch.tensor(cells, dtype=torch.long),
        torch.tensor(weights),
    )


def _covered(first: int, stop: int, parts: int, part: int) -> list[int]:
    """Canvas lines in [first, stop) whose centres fall in share `part` of `parts` equal shares."""
    span = stop - first
    low, high = part * span / parts, (part + 1) * span / parts
    return [first + line for line in range(span) if low <= line + 0.5 < high]


def _check_count(positions: torch.Tensor, expected: int, what: str) -> None:
    if positions.numel() != expected:
        raise ImageTokenMismatchError(
            f"the prompt holds {positions.numel()} image tokens but the picture makes {expected} ({what}): "
            "prepare the prompt with the model's own processor (one image placeholder per picture), "
            "and do not cut the prompt short"
        )


def side_of(count: int) -> int:
    """The side of a square grid of `count` patches; a ValueError when `count` is not a square."""
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"{count} image tokens make no square grid")
    return side
