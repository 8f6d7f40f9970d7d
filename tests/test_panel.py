"""The statistics panel: its dots are the heads' statistics.

Its link to the grid lives in the front-end: see js/tests/dots.test.ts and tests/browser.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnwidget import AttentionGrid, load_image, methods
from attnwidget.panel import HeadStatsPanel

PICTURE = np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)


@pytest.fixture
def linked(tiny_model_dirs) -> tuple[AttentionGrid, HeadStatsPanel]:
    grid = AttentionGrid(tiny_model_dirs["vit"], layers=[1, 2], heads=[1])
    grid.run(PICTURE)
    return grid, HeadStatsPanel(grid)


def test_dots_are_every_heads_distance_and_entropy(linked):
    grid, panel = linked
    vision = grid.vision_model
    pixel_values, _ = vision.prepare(load_image(PICTURE))
    with torch.no_grad():
        attentions = torch.stack(
            [
                a[0]
                for a in vision.forward_module(pixel_values=pixel_values, output_attentions=True).attentions
            ]
        )
    distance = methods.mean_attention_distance(attentions, 1, (4, 4), 8).numpy()
    assert panel.dots.y.shape == (3 * 4,)  # every layer and head, not only those shown
    np.testing.assert_allclose(panel.dots.y, distance.ravel(), rtol=1e-5)
    assert np.array_equal(np.round(panel.dots.x), np.repeat([1, 2, 3], 4))  # layer on x
    panel.metric = "entropy"
    np.testing.assert_allclose(panel.dots.y, methods.attention_entropy(attentions).numpy().ravel(), rtol=1e-5)
    assert panel.metric_picker.value == "entropy"


def test_the_grid_names_the_dots_it_links_in_the_front_end(linked):
    grid, panel = linked
    assert grid.head_dots is panel.dots
    # The front-end finds the scatter by this reference (js/src/dots.ts) and links the selections there.
    assert grid.get_state("head_dots") == {"head_dots": f"IPY_MODEL_{panel.dots.model_id}"}
    assert panel.dots.y.shape == (grid.layer_count * grid.head_count,)  # dot i is head divmod(i, head_count)


def test_a_new_picture_refreshes_the_statistics(linked):
    grid, panel = linked
    before = panel.dots.y.copy()
    grid.run(PICTURE[::-1])
    assert not np.allclose(panel.dots.y, before)


def test_run_many_averages_the_statistics_and_browses_without_running(tiny_model_dirs, tmp_path):
    from PIL import Image

    from attnwidget.methods import head_statistics

    pictures = [
        np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8) for seed in range(3)
    ]
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(tmp_path / f"picture-{i}.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    grid = AttentionGrid(tiny_model_dirs["vit"])
    panel = HeadStatsPanel(grid)
    grid.run_many(tmp_path, progress=False)  # a folder: its image files in name order
    assert (grid.image_count, grid.image_index) == (3, 2)

    vision = grid.vision_model
    singles = []
    for picture in pictures:
        pixel_values, _ = vision.prepare(load_image(picture))
        with torch.no_grad():
            out = vision.forward_module(pixel_values=pixel_values, output_attentions=True)
        singles.append(head_statistics([a[0] for a in out.attentions], 1, (4, 4), 8))
    np.testing.assert_allclose(
        grid.mean_statistics.distance, np.mean([s.distance for s in singles], 0), rtol=1e-5
    )
    np.testing.assert_allclose(panel.dots.y, grid.mean_statistics.distance.ravel(), rtol=1e-5)
    assert "mean of 3 pictures" in panel._y_axis.label

    alone = AttentionGrid(tiny_model_dirs["vit"])
    alone.run(pictures[0])
    runs = []
    vision.run = lambda *args, **kwargs: runs.append(args)  # browsing must not run the model
    grid.image_index = 0
    assert runs == [] and grid.maps == alone.maps and grid.image == alone.image
    assert grid.predictions == alone.predictions

    grid.image_index = 7
    assert grid.image_index == 0 and "out of range" in grid.message


def test_run_many_refuses_nothing_to_run(tiny_model_dirs, tmp_path):
    grid = AttentionGrid(tiny_model_dirs["vit"])
    with pytest.raises(ValueError, match="no image files"):
        grid.run_many(tmp_path)
    with pytest.raises(ValueError, match="no pictures"):
        grid.run_many([], progress=False)
    with pytest.raises(ValueError, match="as a list"):
        grid.run_many(PICTURE)


def test_explore_with_a_panel_shows_both_side_by_side(tiny_model_dirs, monkeypatch):
    import IPython.display

    import attnwidget

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects: shown.extend(objects))
    grid = attnwidget.explore(PICTURE, model=tiny_model_dirs["vit"], panel=True)
    (box,) = shown
    assert box.children[0] is grid and isinstance(box.children[1], HeadStatsPanel)
    dots = box.children[1].dots
    assert dots.y.shape == (12,)  # filled once the run ended, with the picture's patch size known
    vision = grid.vision_model
    pixel_values, _ = vision.prepare(load_image(PICTURE))
    with torch.no_grad():
        out = vision.forward_module(pixel_values=pixel_values, output_attentions=True)
    attentions = torch.stack([a[0] for a in out.attentions])
    np.testing.assert_allclose(
        dots.y, methods.mean_attention_distance(attentions, 1, (4, 4), 8).numpy().ravel(), rtol=1e-5
    )
