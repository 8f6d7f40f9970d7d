"""The DINO and high-norm masks and their outlines, against the fixtures the front-end checks too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from attnwidget import methods
from attnwidget.masks import high_norm_mask, mask_edges, mass_mask
from attnwidget.render_marks import (
    Rect,
    cell_rect,
    contour_segments,
    dashes,
    grid_coverage,
    outline_path,
    picture_layout,
)

FIXTURES = Path(__file__).parent.parent / "js" / "tests" / "fixtures"


def fixture_cases(name: str) -> list[tuple[str, np.ndarray, float, list[int] | None]]:
    """(name, values, parameter, mask) of every case of a mask fixture; NaN is written as null."""
    cases = json.loads((FIXTURES / name).read_text())["cases"]
    return [
        (
            case["name"],
            np.array([np.nan if v is None else v for v in case["values"]]),
            m["parameter"],
            m["mask"],
        )
        for case in cases
        for m in case["masks"]
    ]


@pytest.mark.parametrize(
    "rule, name", [(mass_mask, "mass-mask.json"), (high_norm_mask, "high-norm-mask.json")]
)
def test_masks_are_the_fixtures(rule, name):
    cases = fixture_cases(name)
    assert len(cases) > 20
    for case, values, parameter, expected in cases:
        kept = rule(values, parameter)
        assert (None if kept is None else kept.astype(int).tolist()) == expected, (case, parameter)


def test_the_methods_keep_the_fixtures_masks():
    for case, values, mass, expected in fixture_cases("mass-mask.json"):
        if expected is not None:
            kept = methods.dino_mask(torch.tensor(values, dtype=torch.float64), mass)
            assert kept.int().tolist() == expected, (case, mass)
    for case, norms, factor, expected in fixture_cases("high-norm-mask.json"):
        if expected is not None:
            flags = methods.high_norm_tokens(torch.tensor([[9.0, *norms]]), special=1, factor=factor)
            assert flags[0].int().tolist() == [0, *expected], (case, factor)


def test_the_mass_mask_keeps_exact_shares_exactly():
    # The two largest hold exactly half: they are the mask, whatever the rounding of the shares.
    kept = mass_mask(np.array([2.0, 3.0, 2.0, 0.0, 7.0, 3.0, 3.0, 6.0]), 0.5)
    assert kept.astype(int).tolist() == [0, 0, 0, 0, 1, 0, 0, 1]
    assert mass_mask(np.ones((3, 3)), 0.5).all()  # ties go together
    assert mass_mask(np.array([[1.0, 2.0], [3.0, 4.0]]), 1e-17).tolist() == [[False, False], [False, True]]
    assert mass_mask(np.array([0.0, 1.0]), 0.0) is None


def test_mask_edges_outline_the_kept_region():
    # One kept cell: its four sides. Two kept neighbours: six sides, the shared one left out.
    one = np.zeros((3, 3), dtype=bool)
    one[1, 1] = True
    assert mask_edges(one).tolist() == [[1, 1, 2, 1], [1, 2, 2, 2], [1, 1, 1, 2], [2, 1, 2, 2]]
    pair = mask_edges(np.array([[True, True]]))
    assert len(pair) == 6 and [1, 0, 1, 1] not in pair.tolist()
    assert mask_edges(np.zeros((2, 2), dtype=bool)).shape == (0, 4)


def test_contours_and_cells_lie_on_the_grid_in_pixels():
    grid = Rect(10.0, 20.0, 120.0, 60.0)  # 4 x 3 cells of 40 x 15 px
    mask = np.zeros((4, 3), dtype=bool)
    mask[3, 2] = True
    segments = contour_segments(mask, grid)
    assert segments.tolist() == [[90, 65, 130, 65], [90, 80, 130, 80], [90, 65, 90, 80], [130, 65, 130, 80]]
    assert cell_rect(grid, 4, 3, 3, 2) == Rect(90.0, 65.0, 40.0, 15.0)


def test_dashes_run_on_across_corners_and_restart_per_path():
    pieces = dashes(np.array([[0.0, 0.0], [8.0, 0.0], [8.0, 8.0]]), (6.0, 4.0))
    assert pieces.tolist() == [[0, 0, 6, 0], [8, 2, 8, 8]]
    assert dashes(np.array([[0.0, 0.0], [3.0, 0.0]]), ()).tolist() == [[0, 0, 3, 0]]
    assert outline_path(Rect(0.0, 0.0, 10.0, 10.0))[[0, 2]].tolist() == [[0.75, 0.75], [9.25, 9.25]]


def test_picture_layout_fits_the_picture_and_places_crop_and_grid():
    layout = picture_layout((256, 192), 512, (0.125, 0.125, 0.875, 0.875))
    assert (layout.width, layout.height) == (512, 384)
    assert layout.crop == layout.grid == Rect(64.0, 48.0, 384.0, 288.0)
    assert layout.cropped
    assert picture_layout((3, 1), 5, (0, 0, 1, 1)).height == 2  # 1.666.. rounds half up, as Math.round
    assert not picture_layout((100, 50), 200, (0, 0, 1, 1)).cropped
    assert grid_coverage((12, 12), [100, 100], 8) == (0.96, 0.96)
    assert grid_coverage((12, 12), None, 8) == (1.0, 1.0)
