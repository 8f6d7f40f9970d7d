"""The DINO and high-norm masks and their outlines, against the fixtures the front-end checks too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from attnwidget import methods
from attnwidget.masks import high_norm_mask, mask_edges, mass_mask

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
