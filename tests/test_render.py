"""The static grid picture: tiles where the layout says, colours of the published colormaps, labels."""

from __future__ import annotations

import base64
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attnwidget import AttentionGrid
from attnwidget.render import (
    apply_colormap,
    colormap_table,
    colour_index,
    display_range,
    grid_layout,
    grid_picture,
    normalize_tiles,
    overlay_figure,
    upsample,
)
from attnwidget.render_marks import OverlayMarks

ROOT = Path(__file__).parent.parent


def test_colormap_endpoints_are_the_published_ones():
    assert colormap_table("viridis")[0].tolist() == [0x44, 0x01, 0x54]
    assert colormap_table("viridis")[255].tolist() == [0xFD, 0xE7, 0x25]
    assert colormap_table("magma")[0].tolist() == [0, 0, 4]
    assert colormap_table("gray")[128].tolist() == [128, 128, 128]
    with pytest.raises(ValueError, match="unknown colormap"):
        colormap_table("jet")


def test_colour_index_cuts_zero_to_one_into_256_equal_bins():
    edges = np.arange(256) / 256
    np.testing.assert_array_equal(colour_index(edges), np.arange(256))
    np.testing.assert_array_equal(colour_index(np.nextafter(edges[1:], 0)), np.arange(255))
    np.testing.assert_array_equal(colour_index(np.array([-3.0, 1.0, 7.0, np.nan])), [0, 255, 255, 0])
    # float32 values take the entry of the same number in float64.
    values32 = np.linspace(0, 1, 4097, dtype=np.float32)
    np.testing.assert_array_equal(colour_index(values32), colour_index(values32.astype(np.float64)))


def test_the_front_ends_fixtures_are_current():
    spec = importlib.util.spec_from_file_location(
        "generate_fixtures", ROOT / "scripts" / "generate_fixtures.py"
    )
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert sorted(path.name for path in generator.FIXTURES.glob("*.json")) == sorted(generator.FIXTURE_FILES)
    for name, make in generator.FIXTURE_FILES.items():
        written = (generator.FIXTURES / name).read_text()
        assert written == make(), f"{name} is stale: run scripts/generate_fixtures.py"


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


def test_a_diverging_colormap_is_drawn_centred_on_zero_so_zero_is_white():
    tiles = np.array([[[[-1.0, 0.5]], [[0.0, 4.0]]]])  # one layer, two heads of 1 x 2
    _, ranges = normalize_tiles(tiles, "head", centred=True)
    assert ranges.tolist() == [[[-1, 1], [-4, 4]]]
    assert display_range(np.array([[0.2, -0.1]]), None, "rdbu_r") == (-0.2, 0.2)
    assert display_range(np.array([[0.2, -0.1]]), None, "viridis") == (-0.1, 0.2)
    picture = np.asarray(grid_picture(tiles, [1], [1, 2], colormap="rdbu_r", tile_size=2, gap=0))
    layout = grid_layout(tiles.shape, [1], 2, 0, 14)
    x0, y0, *_ = layout.tile_box(0, 1)
    assert picture[y0, x0].min() > 240  # 0 in [-4, 4]: the middle of the table, white
    assert picture[y0, x0 + 1].tolist() == colormap_table("rdbu_r")[255].tolist()


def test_tiles_without_data_keep_no_range_and_do_not_count():
    tiles = np.arange(2 * 2 * 2 * 2, dtype=float).reshape(2, 2, 2, 2)
    tiles[0, 1] = np.nan
    tiles[1, 0, 0, 0] = np.nan  # a missing value inside a tile is skipped
    _, ranges = normalize_tiles(tiles, "layer")
    assert ranges[0, 0].tolist() == [0, 3] and np.isnan(ranges[0, 1]).all()
    assert ranges[1, 1].tolist() == [9, 15]
    assert normalize_tiles(tiles, "global")[1][1, 0].tolist() == [0, 15]


def test_upsampling_aligns_pixel_centres_and_clamps_at_the_edges():
    values = np.array([[0.0, 1.0]], dtype=np.float32)
    assert upsample(values, 4, 1, "bilinear").tolist() == [[0.0, 0.25, 0.75, 1.0]]
    assert upsample(values, 4, 1, "nearest").tolist() == [[0.0, 0.0, 1.0, 1.0]]
    assert upsample(values, 2, 2, "bilinear").tolist() == [[0.0, 1.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="unknown interpolation"):
        upsample(values, 2, 2, "cubic")


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


def test_overlay_figure_blends_the_map_over_its_crop_with_title_and_colour_bar():
    picture = Image.new("RGB", (200, 100), (128, 128, 128))
    values = np.array([[0.0, 1.0], [0.0, 1.0]])  # right half bright
    figure = np.asarray(
        overlay_figure(
            picture,
            values,
            (0.5, 0.0, 1.0, 1.0),
            title="l=2 h=3",
            size=400,
            alpha=1.0,
            interpolation="nearest",
        )
    ).astype(int)
    viridis = colormap_table("viridis")
    top = 28  # title band: 2 x font size
    assert figure[top + 100, 50].tolist() == [64, 64, 64]  # left of the crop: the picture, dimmed
    assert figure[top + 100, 250].tolist() == viridis[0].tolist()  # the crop's dark left half
    assert figure[top + 100, 350].tolist() == viridis[255].tolist()  # and its bright right half
    assert (figure[:top].sum(-1) < 300).sum() > 20  # the title
    bar = top + 200 + 7
    assert figure[bar + 5, 0].tolist() == viridis[0].tolist()
    assert (figure[bar + 14 :, :].sum(-1) < 300).sum() > 20  # the values 0 and 1 under the bar
    with pytest.raises(ValueError, match="unknown interpolation"):
        overlay_figure(picture, values, interpolation="cubic")


def test_overlay_figure_draws_the_mask_contour_and_high_norm_outlines():
    picture = Image.new("RGB", (80, 80), (128, 128, 128))
    values = np.zeros((4, 4), dtype=np.float32)
    values[1:3, 1:3] = 1.0  # four cells hold all the mass: a 40 x 40 px square in the middle
    plain = np.asarray(overlay_figure(picture, values, size=80, alpha=1.0)).astype(int)
    marked = np.asarray(
        overlay_figure(picture, values, size=80, alpha=1.0, marks=OverlayMarks(mask_mass=0.9))
    ).astype(int)
    # The square's left side at x = 20: white over x 19..20, a dark halo one pixel either side.
    assert marked[40, 19].tolist() == marked[40, 20].tolist() == [255, 255, 255]
    assert marked[40, 18].sum() < plain[40, 18].sum() / 2 and marked[40, 21].sum() < plain[40, 21].sum() / 2
    assert marked[40, 40].tolist() == plain[40, 40].tolist()  # inside: the map, untouched
    norms = np.ones((4, 4), dtype=np.float32)
    norms[0, 0] = 10.0
    flagged = np.asarray(
        overlay_figure(picture, norms, size=80, alpha=1.0, marks=OverlayMarks(high_norm_factor=4.0))
    ).astype(int)
    red = (flagged[:, :, 0] > 180) & (flagged[:, :, 1] < 60)
    assert red[:25, :25].sum() > 10 and red[25:, 25:].sum() == 0  # dashed red around cell (0, 0) only


def test_widget_exports_the_overlay_with_exact_values(tiny_model_dirs, tmp_path):
    widget = AttentionGrid(tiny_model_dirs["vit"], alpha=1.0, interpolation="nearest")
    picture = np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    widget.run(picture)
    with pytest.raises(ValueError, match="select a head first"):
        widget.overlay_to_png()
    widget.selected = [2, 3]
    data = widget.overlay_to_png(tmp_path / "overlay.png", size=160, dpi=300)
    assert (tmp_path / "overlay.png").read_bytes() == data
    image = Image.open(io.BytesIO(data))
    assert round(image.info["dpi"][0]) == 300
    pixels = np.asarray(image).astype(int)

    with torch.no_grad():
        out = widget.vision_model.forward_module(
            pixel_values=widget.vision_model.prepare(Image.fromarray(picture))[0], output_attentions=True
        )
    cls_row = out.attentions[1][0, 2, 0, 1:].reshape(4, 4).numpy()  # layer 2, head 3, from CLS
    scaled = (cls_row - cls_row.min()) / (cls_row.max() - cls_row.min())
    top = 28
    for row, col in [(0, 0), (1, 2), (3, 3)]:  # patch centres: 160 px / 4 patches = 40 px each
        expected = apply_colormap(scaled[row, col]).tolist()
        assert pixels[top + 40 * row + 20, 40 * col + 20].tolist() == expected, (row, col)

    widget.method = "rollout"
    rollout = np.asarray(Image.open(io.BytesIO(widget.overlay_to_png(size=160)))).astype(int)
    assert not np.array_equal(rollout[top : top + 160], pixels[top : top + 160])


def test_the_mime_bundle_carries_a_png_once_the_grid_has_data(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"])
    data, _ = widget._repr_mimebundle_()
    assert "image/png" not in data
    widget.run(np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    bundle, _ = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live widget first
    assert base64.b64decode(bundle["image/png"]) == widget.to_png()
