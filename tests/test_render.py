"""The static grid picture: tiles where the layout says, colours of the published colormaps, labels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from attnwidget import AttentionGrid
from attnwidget.render import apply_colormap, colormap_table, grid_layout, grid_picture, normalize_tiles


def test_colormap_endpoints_are_the_published_ones():
    assert colormap_table("viridis")[0].tolist() == [0x44, 0x01, 0x54]
    assert colormap_table("viridis")[255].tolist() == [0xFD, 0xE7, 0x25]
    assert colormap_table("magma")[0].tolist() == [0, 0, 4]
    assert colormap_table("gray")[128].tolist() == [128, 128, 128]
    with pytest.raises(ValueError, match="unknown colormap"):
        colormap_table("jet")


def test_normalisation_scopes():
    tiles = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    per_head, ranges = normalize_tiles(tiles, "head")
    assert np.allclose(per_head.min(axis=(2, 3)), 0) and np.allclose(per_head.max(axis=(2, 3)), 1)
    assert ranges[1, 2].tolist() == [20, 23]
    per_layer, ranges = normalize_tiles(tiles, "layer")
    assert per_layer[0].min() == 0 and per_layer[0].max() == 1 and ranges[0, 0].tolist() == [0, 11]
    shared, ranges = normalize_tiles(tiles, "global")
    assert shared.max() == 1 and shared[0, 0, 0, 0] == 0 and ranges[1, 1].tolist() == [0, 23]
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize_tiles(tiles, "row")


def test_tiles_land_where_the_layout_says_with_the_colours_of_their_values():
    rows, cols, side = 2, 3, 4
    tiles = np.zeros((rows, cols, side, side))
    for row in range(rows):
        for col in range(cols):
            tiles[row, col, 0, 0] = 1 + row * cols + col  # one bright patch, top-left of each tile
    picture = np.asarray(grid_picture(tiles, [1, 8], [1, 2, 3], tile_size=40, normalize="global"))
    layout = grid_layout(tiles.shape, [1, 8], tile_size=40, gap=2, font_size=14)
    assert (layout.tile_width, layout.tile_height) == (40, 40)
    dark = colormap_table("viridis")[0].tolist()
    for row in range(rows):
        for col in range(cols):
            x0, y0, x1, y1 = layout.tile_box(row, col)
            bright = apply_colormap(np.array((1 + row * cols + col) / 6)).tolist()
            assert picture[y0 + 5, x0 + 5].tolist() == bright, (row, col)  # patch (0, 0): 10 x 10 px
            assert picture[y0 + 5, x0 + 15].tolist() == dark, (row, col)  # patch (0, 1)
            assert picture[y1 - 1, x1 - 1].tolist() == dark, (row, col)
            assert picture[y1, x1].tolist() == [255, 255, 255], (row, col)  # the gap


def test_labels_are_drawn_left_of_rows_and_above_columns():
    tiles = np.random.default_rng(0).random((2, 3, 4, 4))
    picture = np.asarray(grid_picture(tiles, [1, 8], [1, 2, 3], tile_size=40)).astype(int)
    layout = grid_layout(tiles.shape, [1, 8], tile_size=40, gap=2, font_size=14)
    ink = picture.sum(-1) < 300  # dark text pixels
    for row in range(2):
        x0, y0, x1, y1 = layout.row_label_box(row)
        assert ink[y0:y1, x0:x1].sum() > 20, f"no l= label for row {row}"
    for col in range(3):
        x0, y0, x1, y1 = layout.column_label_box(col)
        assert ink[y0:y1, x0:x1].sum() > 20, f"no h= label for column {col}"
    x, y = layout.colour_bar_origin
    assert picture[y + 5, x].tolist() == colormap_table("viridis")[0].tolist()
    assert ink[y + 14 :, x:].sum() > 20, "no values under the colour bar"


def test_mismatched_labels_are_refused():
    with pytest.raises(ValueError, match="2 x 3"):
        grid_picture(np.zeros((2, 3, 4, 4)), [1], [1, 2, 3])


def test_widget_exports_what_it_shows(tiny_model_dirs, tmp_path):
    widget = AttentionGrid(tiny_model_dirs["vit"])
    with pytest.raises(RuntimeError, match="run the widget"):
        widget.to_png()
    widget.run(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    data = widget.to_png(tmp_path / "grid.png", tile_size=32)
    assert (tmp_path / "grid.png").read_bytes() == data
    query = Image.open(io.BytesIO(data))
    widget.view, widget.colormap = "matrix", "gray"
    matrix = np.asarray(Image.open(io.BytesIO(widget.to_png(tile_size=32))))
    assert query.size != Image.fromarray(matrix).size or not np.array_equal(np.asarray(query), matrix)
    tile_pixels = matrix[(matrix != 255).any(-1)]
    assert (tile_pixels[:, 0] == tile_pixels[:, 1]).mean() > 0.95  # gray: R == G == B
