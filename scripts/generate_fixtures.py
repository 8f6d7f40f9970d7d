"""Write the drawing fixtures that the Python and TypeScript tests both read, so the two sides draw alike.

Each file in `js/tests/fixtures/` holds inputs and what Python makes of them; vitest checks the
front-end against it, and `tests/test_render.py` fails when a file is not what this script writes:

- `colour-index.json`: normalised values and the colour-table entry each one takes
  (`attnwidget.render.colour_index`; the front-end's `lutIndex`);
- `normalize-ranges.json`: tiles' own ranges and the range each is drawn with per scope, also centred
  on zero for diverging colormaps (`attnwidget.render.normalize_tiles`; `displayRanges`);
- `mass-mask.json`: maps, masses and the DINO mask kept (`attnwidget.masks.mass_mask`; `massMask`);
- `high-norm-mask.json`: norms, factors and the cells flagged (`attnwidget.masks.high_norm_mask`;
  `highNormMask`).

NaN is written as `null` (JSON has no NaN). Run after changing a rule:

    .venv/bin/python scripts/generate_fixtures.py
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from attnwidget.masks import high_norm_mask, mass_mask
from attnwidget.render import NORMALIZE_SCOPES, colour_index, normalize_tiles

FIXTURES = Path(__file__).resolve().parent.parent / "js" / "tests" / "fixtures"


def colour_index_fixture() -> str:
    """Bin edges and their neighbours, a sweep of [0, 1], and values outside it."""
    edges = np.arange(257) / 256
    near_edges = np.concatenate([np.nextafter(edges, -1), edges, np.nextafter(edges, 2)])
    sweep = np.linspace(0, 1, 1001)
    outside = np.array([-1.0, -1e-9, 1 + 1e-9, 2.0, 1e30, -1e30])
    values = np.unique(np.concatenate([near_edges, sweep, outside]))
    return json.dumps({"values": values.tolist(), "index": colour_index(values).tolist()}) + "\n"


def normalize_ranges_fixture() -> str:
    """Float32 tiles of different scales, some without data (NaN), and their ranges in every scope, as
    they are and centred on zero."""
    rng = np.random.default_rng(14)
    cases = []
    for rows, cols, empty in [(3, 4, [(1, 2)]), (2, 5, [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]), (1, 1, [])]:
        scales = rng.choice([1e-4, 0.01, 1.0, 300.0], size=(rows, cols, 1, 1))
        tiles = (rng.normal(size=(rows, cols, 6, 6)) * scales).astype(np.float32).astype(np.float64)
        for row, col in empty:
            tiles[row, col] = np.nan
        ranges = {scope: _json_values(normalize_tiles(tiles, scope)[1]) for scope in NORMALIZE_SCOPES}
        centred = {
            scope: _json_values(normalize_tiles(tiles, scope, centred=True)[1]) for scope in NORMALIZE_SCOPES
        }
        cases.append(
            {"rows": rows, "cols": cols, "tile_ranges": ranges["head"], "ranges": ranges, "centred": centred}
        )
    return json.dumps({"cases": cases}) + "\n"


def mass_mask_fixture() -> str:
    """Ties, exact boundaries, masses of 1 and near 0, uniform and quantised maps, maps without a mask."""
    rng = np.random.default_rng(6)
    decoded = np.linspace(0.001, 0.02, 256)[rng.integers(0, 256, (14, 14))]  # 8-bit rows: many ties
    maps = {
        "four cells": [0.05, 0.5, 0.15, 0.3],
        "exactly half in the largest": [2.0, 5.0, 2.0, 1.0],
        "exactly half in the two largest": [2.0, 3.0, 2.0, 0.0, 7.0, 3.0, 3.0, 6.0],
        "uniform": [1.0] * 16,
        "quantised": (rng.integers(0, 6, 64) / 255).astype(np.float32).tolist(),
        "with zeros": [0.0, 0.0, 3.0, 1.0, 0.0, 2.0],
        "random float32": rng.random(196).astype(np.float32).tolist(),
        "sparse": rng.dirichlet(np.full(196, 0.2)).astype(np.float32).tolist(),
        "decoded 8-bit": decoded.astype(np.float32).ravel().tolist(),
        "no mass": [0.0, 0.0, 0.0],
        "negative": [1.0, -1.0, 2.0],
        "NaN": [1.0, float("nan"), 2.0],
        "empty": [],
    }
    masses = [1e-17, 1e-9, 0.1, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97, 1.0]
    cases = [_case(name, values, [*masses, 0.0, -0.5, 1.5], mass_mask) for name, values in maps.items()]
    return json.dumps({"cases": cases}) + "\n"


def high_norm_mask_fixture() -> str:
    """Outliers, even and odd counts, a zero median, NaN, and factors that are not powers of two."""
    rng = np.random.default_rng(8)
    norms = rng.normal(40, 4, 196).astype(np.float32)
    norms[[3, 50, 51, 190]] = [400.0, 160.0, 161.0, 1000.0]
    maps = {
        "even count": [1.0, 9.0, 2.0, 40.0, 1.0, 3.0],
        "odd count": [1.0, 2.0, 9.0],
        "exactly the factor": [1.0, 2.0, 8.0],
        "zero median": [0.0, 0.0, 0.0, 1.0, 2.0],
        "NaN": [1.0, float("nan"), 9.0, 1.0, 20.0],
        "register-like outliers": norms.tolist(),
        "empty": [],
    }
    cases = [_case(name, values, [4.0, 2.5, 1.1], high_norm_mask) for name, values in maps.items()]
    return json.dumps({"cases": cases}) + "\n"


FIXTURE_FILES: dict[str, Callable[[], str]] = {
    "colour-index.json": colour_index_fixture,
    "normalize-ranges.json": normalize_ranges_fixture,
    "mass-mask.json": mass_mask_fixture,
    "high-norm-mask.json": high_norm_mask_fixture,
}


def _case(
    name: str,
    values: list[float],
    parameters: list[float],
    rule: Callable[[np.ndarray, float], np.ndarray | None],
) -> dict:
    """One map and the mask `rule` makes of it with each parameter (`None` for no mask)."""
    array = np.array(values, dtype=np.float64)
    masks = [(parameter, rule(array, parameter)) for parameter in parameters]
    return {
        "name": name,
        "values": _json_values(array),
        "masks": [
            {"parameter": parameter, "mask": None if kept is None else kept.astype(int).tolist()}
            for parameter, kept in masks
        ],
    }


def _json_values(values: np.ndarray) -> list:
    """`values` as nested lists, NaN as None."""
    return np.where(np.isnan(values), None, values).tolist()


def write() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, make in FIXTURE_FILES.items():
        (FIXTURES / name).write_text(make())


if __name__ == "__main__":
    write()
    print(f"wrote {', '.join(FIXTURE_FILES)} in {FIXTURES}")
