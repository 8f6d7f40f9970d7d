"""What a saved notebook holds of the grid (`saved_detail`), and the size the widget reports for it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import traitlets
from ipywidgets.embed import dependency_state

from attnwidget import AttentionGrid
from attnwidget.encode import decode_rows

PICTURE = np.random.default_rng(5).integers(0, 256, (40, 40, 3), dtype=np.uint8)


def saved_state_size(grid: AttentionGrid) -> int:
    """Bytes of the grid's entry in the widget state a notebook saves (binary data as base64)."""
    state = dependency_state([grid], drop_defaults=False)[grid.model_id]
    return len(json.dumps(state))


def test_the_detail_decides_what_is_saved_and_the_reported_size_matches(tiny_model_dirs):
    grid = AttentionGrid(tiny_model_dirs["vit"], PICTURE, matrix_budget=12 * 9 * 9)  # pooled: 9 x 9
    sizes = {}
    for detail in ("maps", "pooled", "full"):
        grid.saved_detail = detail  # recomputed from the cached attention, no model run
        sizes[detail] = grid.saved_bytes
        assert grid.saved_bytes == pytest.approx(saved_state_size(grid), rel=0.02), detail
    assert sizes["maps"] < sizes["pooled"] < sizes["full"]

    grid.saved_detail = "pooled"
    assert grid.matrix_size == 9
    grid.saved_detail = "maps"
    assert (grid.matrix_size, grid.matrices) == (0, b"")
    assert grid.maps  # the query -> patch maps are always there

    grid.saved_detail = "full"
    tokens = grid.token_count
    assert grid.matrix_size == tokens == 17
    tiles = len(grid.layers) * len(grid.heads)
    matrices = decode_rows(grid.matrices, grid.matrices_range, tokens).reshape(tiles, tokens, tokens)
    exact = grid.full_attention(2)[3].numpy()  # layer 2, head 4: tile 1 * 4 + 3
    spread = exact.max(axis=1, keepdims=True) - exact.min(axis=1, keepdims=True)
    assert np.all(np.abs(matrices[4 + 3] - exact) <= spread / 255 + 1e-6)  # 8-bit rows, nothing pooled

    with pytest.raises(traitlets.TraitError):
        grid.saved_detail = "everything"


def test_full_matrices_beyond_the_state_limit_are_pooled_with_a_message(tiny_model_dirs, monkeypatch):
    import attnwidget.sizing as sizing

    grid = AttentionGrid(tiny_model_dirs["vit"], PICTURE, saved_detail="full", matrix_budget=12 * 9 * 9)
    tokens = grid.token_count
    assert grid.matrix_size == tokens and grid.message == ""
    full_bytes = len(grid.layers) * len(grid.heads) * tokens * tokens
    monkeypatch.setattr(sizing, "FULL_STATE_LIMIT", full_bytes - 1)
    grid.run(PICTURE)
    assert 0 < grid.matrix_size < tokens and grid.status == "done"
    assert "saved_detail='full' would put" in grid.message and f"pooled to {grid.matrix_size}" in grid.message
    assert len(grid.matrices) < full_bytes
