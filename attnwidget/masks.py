"""Cell masks over a patch grid and their outlines, as pure numpy functions.

The rules are the front-end's (`js/src/mask.ts`) step for step, in float64 and in the same order, so
both keep the same cells; `scripts/generate_fixtures.py` writes fixtures from them that both sides
check. DINO mass-threshold masks follow Caron et al. (2021), high-norm tokens Darcet et al. (2023).
"""

from __future__ import annotations

import numpy as np


def mass_mask(values: np.ndarray, mass: float) -> np.ndarray | None:
    """The smallest set of cells holding `mass` of the map's total, as a bool array shaped like `values`.

    The values are sorted ascending and summed in that order (float64); cells from the first whose
    running sum exceeds (1 - `mass`) x the total are kept, and every cell tied with the smallest kept
    value too. `None` when `mass` is not in (0, 1] or the map is empty, has a negative or NaN value or
    no mass.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if not 0.0 < mass <= 1.0 or flat.size == 0 or not bool((flat >= 0).all()):
        return None
    ascending = np.sort(flat)
    cumulative = np.cumsum(ascending)  # sequential, as the front-end adds them
    total = cumulative[-1]
    if not total > 0:
        return None
    above = np.flatnonzero(cumulative > (1.0 - mass) * total)
    threshold = ascending[above[0]] if above.size else ascending[-1]
    return (flat >= threshold).reshape(np.shape(values))


def high_norm_mask(norms: np.ndarray, factor: float) -> np.ndarray | None:
    """Cells whose norm exceeds `factor` times the median norm, as a bool array; `None` when empty.

    The median is the lower middle value for an even count, as torch's, and NaN when any norm is NaN
    (nothing is flagged then).
    """
    flat = np.asarray(norms, dtype=np.float64).ravel()
    if flat.size == 0:
        return None
    median = np.nan if np.isnan(flat).any() else np.sort(flat)[(flat.size - 1) // 2]
    return (flat > factor * median).reshape(np.shape(norms))


def mask_edges(mask: np.ndarray) -> np.ndarray:
    """Segments [x0, y0, x1, y1] in cell units along every border between kept cells and the others (or
    the grid's edge), int [k, 4]; per kept cell in row-major order: top, bottom, left, right."""
    kept = np.pad(np.asarray(mask, dtype=bool), 1)
    edges = []
    for row, col in np.argwhere(kept[1:-1, 1:-1]):
        r, c = row + 1, col + 1
        if not kept[r - 1, c]:
            edges.append((col, row, col + 1, row))
        if not kept[r + 1, c]:
            edges.append((col, row + 1, col + 1, row + 1))
        if not kept[r, c - 1]:
            edges.append((col, row, col, row + 1))
        if not kept[r, c + 1]:
            edges.append((col + 1, row, col + 1, row + 1))
    return np.array(edges, dtype=np.int64).reshape(-1, 4)
