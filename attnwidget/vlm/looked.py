"""Where a generated token (or a span of them) looked on the picture: head means per layer and over
layers, as arrays over the canvas and laid onto the picture.

Rollout does not apply here: it multiplies every layer's whole token x token attention, and the
capture keeps only the generated tokens' rows over the image tokens (`generation`), by design.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .model import SPECIAL_KEYS, Generation


@dataclass(frozen=True)
class WhereItLooked:
    """Head-mean maps of the attention of `tokens` (averaged) over the canvas."""

    tokens: tuple[int, ...]
    per_layer: np.ndarray
    """[layers, gh, gw] float32: each layer's head mean."""
    crop_box: tuple[float, float, float, float]
    """Where the canvas lies in the picture, as fractions (x0, y0, x1, y1)."""
    image_size: tuple[int, int]
    """The picture (W, H)."""

    @property
    def overall(self) -> np.ndarray:
        """[gh, gw]: the mean over layers and heads."""
        return self.per_layer.mean(0)

    def on_picture(self, layer: int | None = None) -> np.ndarray:
        """The map (one layer, 1-based, or the mean over layers) as an [H, W] array the size of the
        picture: each canvas cell's value over the pixels it covers, NaN where the model did not look
        (outside the crop box)."""
        values = self.overall if layer is None else self.per_layer[layer - 1]
        return lay_on_picture(values, self.crop_box, self.image_size)


def head_mean_maps(
    layer_rows: Sequence[torch.Tensor], tokens: Sequence[int], grid: tuple[int, int]
) -> np.ndarray:
    """Folded rows per layer [heads, generated tokens, 2 + cells] -> [layers, gh, gw]: the mean over
    heads and over `tokens`."""
    index = torch.tensor(list(tokens))
    special = len(SPECIAL_KEYS)
    maps = [rows.index_select(1, index)[..., special:].mean((0, 1)).reshape(grid) for rows in layer_rows]
    return torch.stack(maps).float().numpy()


def lay_on_picture(
    values: np.ndarray, crop_box: tuple[float, float, float, float], image_size: tuple[int, int]
) -> np.ndarray:
    """Canvas `values` [gh, gw] spread over a picture of `image_size` (W, H) inside `crop_box`."""
    width, height = image_size
    gh, gw = values.shape
    x0, y0, x1, y1 = crop_box
    out = np.full((height, width), np.nan, dtype=np.float32)
    xs = (np.arange(width) + 0.5) / width
    ys = (np.arange(height) + 0.5) / height
    cols = np.floor((xs - x0) / (x1 - x0) * gw).astype(int)
    rows = np.floor((ys - y0) / (y1 - y0) * gh).astype(int)
    inside_x, inside_y = (cols >= 0) & (cols < gw), (rows >= 0) & (rows < gh)
    out[np.ix_(inside_y, inside_x)] = values[np.ix_(rows[inside_y], cols[inside_x])]
    return out


def where_it_looked(generation: Generation, tokens: Sequence[int] | None = None) -> WhereItLooked:
    """The head-mean maps of generated `tokens` (default: the last), averaged over the tokens."""
    count = len(generation.steps)
    chosen = tuple(tokens) if tokens is not None else (count - 1,)
    if not chosen or any(not 0 <= token < count for token in chosen):
        raise ValueError(f"tokens {list(chosen)} are not among the generated tokens 0..{count - 1}")
    layers = [generation.layer_rows(layer) for layer in range(generation.steps[0].rows.shape[0])]
    picture = generation.prompt.placed.picture
    per_layer = head_mean_maps(layers, chosen, generation.token_map.grid)
    return WhereItLooked(chosen, per_layer, picture.crop_box, picture.image.size)
