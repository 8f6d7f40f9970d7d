"""`AttentionGrid.run_many`: a dataset in batches through the batched statistics, its statistics equal
to picture-by-picture grids, a bounded sample of pictures browsed without running the model again,
unreadable pictures skipped and named, an interrupted run keeping what it counted."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pandas
import pytest
import torch
from PIL import Image

import attnwidget
from attnwidget import AttentionGrid, head_statistics_over
from attnwidget.gallery import reservoir_slot
from attnwidget.methods import HeadStatistics
from attnwidget.scenes import SceneDataset


@pytest.fixture(scope="module")
def model():
    return attnwidget.default_model()


@pytest.fixture(scope="module")
def scenes():
    return [scene.image for scene in SceneDataset(0, 9)]


def storage_bytes(kept) -> int:
    """Bytes of memory the kept attention holds (views of one tensor count it once)."""
    storages = {
        layer.untyped_storage().data_ptr(): layer.untyped_storage().nbytes()
        for picture in kept
        for layer in picture.attention or []
    }
    return sum(storages.values())


class Forwards:
    """Counts the model's forward passes (through its first attention module)."""

    def __init__(self, model):
        self.count = 0
        self.handle = model.attention_modules[0].register_forward_hook(self._seen)

    def _seen(self, *_):
        self.count += 1


def test_statistics_equal_picture_by_picture_grids(model, scenes):
    single = AttentionGrid(model)
    expected = HeadStatistics.mean([single.run(picture).head_statistics() for picture in scenes])
    grid = AttentionGrid(model).run_many(scenes, batch_size=4, progress=False)
    np.testing.assert_allclose(grid.mean_statistics.distance, expected.distance, rtol=1e-5)
    np.testing.assert_allclose(grid.mean_statistics.entropy, expected.entropy, rtol=1e-5, atol=1e-6)
    frame = head_statistics_over(model, scenes, batch_size=4, progress=False)
    pandas.testing.assert_frame_equal(grid.dataset_statistics, frame)
    assert (grid.image_count, grid.image_index, grid.status) == (9, 8, "done")


def test_a_bounded_sample_is_browsed_without_running_the_model(model, scenes):
    grid = AttentionGrid(model).run_many(scenes, sample=4, batch_size=3, progress=False)
    kept = grid._gallery.kept
    positions = [picture.position for picture in kept]
    assert grid.image_count == 4 and grid.dataset_statistics.attrs["pictures"] == 9
    assert positions == sorted(set(positions)) and max(positions) > 3  # a sample, not the first four
    assert all(picture.attention is not None for picture in kept)
    assert storage_bytes(kept) == sum(picture.bytes for picture in kept)  # no batch held for one row
    alone = AttentionGrid(model)
    forwards = Forwards(model)
    try:
        for index, position in enumerate(positions):
            grid.image_index = index
            assert grid.status == "done" and forwards.count == 0
            alone.run(scenes[position])
            forwards.count = 0
            assert grid.image == alone.image and grid.predictions[0]["label"] == alone.predictions[0]["label"]
            torch.testing.assert_close(grid.full_attention(3), alone.full_attention(3), atol=1e-5, rtol=1e-4)
            assert forwards.count == 0  # exact values come from the attention kept
    finally:
        forwards.handle.remove()


def test_attention_beyond_the_budget_is_recomputed_when_shown(model, scenes):
    per_picture = (
        model.layer_count * model.head_count * 4 * model.layout(torch.zeros(1, 3, 96, 96)).token_count ** 2
    )
    grid = AttentionGrid(model, cache_budget=2 * per_picture)
    forwards = Forwards(model)
    try:
        grid.run_many(scenes[:5], batch_size=5, progress=False)
        kept = grid._gallery.kept
        assert [picture.attention is not None for picture in kept] == [True, True, False, False, False]
        assert storage_bytes(kept) == sum(picture.bytes for picture in kept) <= 2 * per_picture
        # One batch, and the grid shows the last picture whose attention was kept: no other run.
        assert forwards.count == 1 and grid.image_index == 1
        forwards.count = 0
        grid.image_index = 0
        assert forwards.count == 0
        grid.image_index = 3
        assert forwards.count == 1 and grid.status == "done"
    finally:
        forwards.handle.remove()


def test_unreadable_pictures_are_skipped_and_named(model, scenes, tmp_path):
    for index, picture in enumerate(scenes[:3]):
        Image.fromarray(picture).save(tmp_path / f"{index}.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    grid = AttentionGrid(model).run_many(tmp_path, batch_size=2, progress=False)
    [(name, reason)] = grid.dataset_statistics.attrs["skipped"]
    assert name.endswith("broken.png") and "cannot read" in reason
    assert grid.image_count == 3 and grid.dataset_statistics.attrs["pictures"] == 3
    assert "1 pictures could not be read" in grid.message and grid.status == "done"
    with pytest.raises(ValueError, match="no picture was counted: all 1 were skipped"):
        AttentionGrid(model).run_many([tmp_path / "broken.png"], progress=False)


def test_an_interrupted_run_keeps_what_it_counted_and_shows_it(model, scenes):
    calls = []

    def interrupt_in_the_second_batch(attention, layout):
        calls.append(1)
        if len(calls) > model.layer_count:
            raise KeyboardInterrupt
        return attention.mean(dim=(-1, -2))

    grid = AttentionGrid(model).run_many(
        scenes, batch_size=3, statistics={"mean": interrupt_in_the_second_batch}, progress=False
    )
    frame = grid.dataset_statistics
    assert frame.attrs["interrupted"] and frame.attrs["pictures"] == 3
    assert grid.image_count == 3 and grid.status == "done" and grid.maps
    assert [picture.position for picture in grid._gallery.kept] == [0, 1, 2]
    assert "interrupted" in grid.message
    with pytest.raises(ValueError, match="interrupted before the first batch"):
        AttentionGrid(model).run_many(
            scenes, statistics={"stop": lambda *_: (_ for _ in ()).throw(KeyboardInterrupt)}, progress=False
        )


def test_every_kind_of_dataset_is_browsable(model, scenes):
    class Tuples(torch.utils.data.Dataset):  # (picture, label), as torchvision's datasets give
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return Image.fromarray(scenes[index]), index

    pixels = torch.stack([model.picture_transform()(Image.fromarray(p)) for p in scenes[:4]])
    kinds = {
        "dataset": Tuples(),
        "dicts": [{"image": picture, "label": 0} for picture in scenes[:4]],
        "iterator": iter(scenes[:4]),
        "ready inputs": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(pixels), batch_size=3),
    }
    expected = head_statistics_over(model, scenes[:4], progress=False)["distance"]
    alone = AttentionGrid(model).run(scenes[1])
    for kind, images in kinds.items():
        grid = AttentionGrid(model).run_many(images, batch_size=3, progress=False)
        np.testing.assert_allclose(grid.dataset_statistics["distance"], expected, rtol=1e-5, err_msg=kind)
        assert grid.image_count == 4 and grid.status == "done", kind
        grid.image_index = 1
        assert grid.status == "done" and grid.image, kind
        if kind != "ready inputs":  # the others show the picture itself
            assert grid.image == alone.image and grid.crop_box == alone.crop_box, kind
        else:  # a DataLoader hands over model inputs: they are the picture
            assert grid.input_size == [96, 96] and grid.crop_box == [0.0, 0.0, 1.0, 1.0]


def test_a_hugging_face_dataset(model, scenes):
    datasets = pytest.importorskip("datasets")
    rows = datasets.Dataset.from_dict({"image": [Image.fromarray(p) for p in scenes[:3]], "label": [0, 1, 2]})
    grid = AttentionGrid(model).run_many(rows, batch_size=2, progress=False)
    assert grid.image_count == 3 and grid.dataset_statistics.attrs["pictures"] == 3
    grid.image_index = 0
    assert grid.image == AttentionGrid(model).run(scenes[0]).image


def test_bad_calls_say_what_to_do(model, scenes, tmp_path):
    grid = AttentionGrid(model)
    with pytest.raises(ValueError, match="no image files"):
        grid.run_many(tmp_path)
    with pytest.raises(ValueError, match="no pictures"):
        grid.run_many([], progress=False)
    with pytest.raises(ValueError, match="as a list"):
        grid.run_many(scenes[0])
    with pytest.raises(ValueError, match="sample and batch_size must be at least 1"):
        grid.run_many(scenes, sample=0)
    assert grid.status == "empty" and grid.image_count == 0  # nothing was said to be done


def test_the_sample_is_uniform():
    counts = Counter()
    for seed in range(3000):
        rng = random.Random(seed)
        slots: dict[int, int] = {}
        for seen in range(10):
            slot = reservoir_slot(seen, 3, rng)
            if slot is not None:
                slots[slot] = seen
        counts.update(slots.values())
    assert sum(counts.values()) == 9000
    assert all(abs(counts[position] - 900) < 120 for position in range(10)), counts


def test_explore_many_shows_the_panel_following_the_run(model, scenes, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects: shown.extend(objects))
    grid = attnwidget.explore_many(scenes[:5], model=model, sample=2, batch_size=2, progress=False)
    (box,) = shown
    panel = box.children[1]
    assert box.children[0] is grid and isinstance(panel, attnwidget.DatasetStatisticsPanel)
    assert panel.frame.attrs["pictures"] == 5 and grid.image_count == 2
    np.testing.assert_allclose(panel.dots.y, grid.dataset_statistics["distance"])


def test_timm_and_windowed_models_browse_their_sample(scenes):
    import transformers as tf

    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, depth=2).eval()
    swin = tf.SwinModel(
        tf.SwinConfig(
            image_size=32, patch_size=4, embed_dim=16, depths=[2, 1], num_heads=[1, 2], window_size=4
        )
    ).eval()
    processor = tf.ViTImageProcessorPil(size={"height": 32, "width": 32})
    for model, options in ((vit, {}), (swin, {"processor": processor})):
        grid = AttentionGrid(model, **options).run_many(scenes[:4], batch_size=3, progress=False)
        alone = AttentionGrid(grid.source).run(scenes[1])
        forwards = Forwards(grid.source)
        try:
            grid.image_index = 1
        finally:
            forwards.handle.remove()
        assert forwards.count == 0 and grid.image_count == 4 and grid.status == "done"
        torch.testing.assert_close(grid.full_attention(1), alone.full_attention(1), atol=1e-5, rtol=1e-4)
        assert grid.image == alone.image
        batched, single = ([list(p.values()) for p in each.predictions] for each in (grid, alone))
        assert [label for label, _ in batched] == [label for label, _ in single]
        np.testing.assert_allclose([p for _, p in batched], [p for _, p in single], rtol=1e-4)
