"""Head statistics over a dataset: batched equals picture by picture, the spread and intervals follow
their formulas, sums merge exactly, bad pictures are skipped and named, an interrupted run keeps
what it counted, and statistics of one's own flow through."""

from __future__ import annotations

import math

import numpy as np
import pandas
import pytest
import torch
import transformers as tf
from PIL import Image

import attnwidget
from attnwidget import AttentionGrid, head_statistics_over
from attnwidget.methods import attention_entropy, mean_attention_distance
from attnwidget.moments import Moments, student_t_quantile
from attnwidget.scenes import SceneDataset

#: t(0.975, n - 1) from published tables (scipy.stats.t.ppf), for the intervals.
T_975 = {1: 12.706204736174694, 4: 2.7764451051977934, 9: 2.2621571627409915, 30: 2.0422724563012378}


@pytest.fixture(scope="module")
def model():
    return attnwidget.default_model()


@pytest.fixture(scope="module")
def scenes():
    return [scene.image for scene in SceneDataset(0, 7)]


def per_picture(model, pictures) -> dict[str, np.ndarray]:
    """Mean distance and entropy of every picture, each from its own grid: [pictures, layers, heads]."""
    grid = AttentionGrid(model)
    values = {"distance": [], "entropy": []}
    for picture in pictures:
        statistics = grid.run(picture).head_statistics()
        values["distance"].append(statistics.distance)
        values["entropy"].append(statistics.entropy)
    return {name: np.stack(each) for name, each in values.items()}


def test_batches_and_workers_equal_picture_by_picture(model, scenes):
    expected = per_picture(model, scenes)
    for options in ({"batch_size": 1}, {"batch_size": 3}, {"batch_size": 4, "num_workers": 2}):
        frame = head_statistics_over(model, scenes, progress=False, **options)
        assert frame.attrs["pictures"] == 7 and (frame["pictures"] == 7).all()
        assert list(frame[["layer", "head"]].iloc[9]) == [2, 2]  # row-major, numbered from 1
        for name, values in expected.items():
            np.testing.assert_allclose(frame[name], values.mean(0).ravel(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(
                frame[f"{name}_std"], values.std(0, ddof=1).ravel(), rtol=1e-4, atol=1e-6
            )


def test_the_interval_is_students_t(model, scenes):
    pictures = scenes[:5]
    values = per_picture(model, pictures)["entropy"]
    frame = head_statistics_over(model, pictures, batch_size=2, progress=False)
    half = T_975[4] * values.std(0, ddof=1) / math.sqrt(5)
    np.testing.assert_allclose(frame["entropy_low"], (values.mean(0) - half).ravel(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(frame["entropy_high"], (values.mean(0) + half).ravel(), rtol=1e-4, atol=1e-6)
    for degrees, quantile in T_975.items():
        assert student_t_quantile(0.975, degrees) == pytest.approx(quantile, rel=1e-8)


def test_moments_merge_exactly_as_sums_and_counts():
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(5, 2, 3)), rng.normal(size=(8, 2, 3))
    one, two, both = Moments(), Moments(), Moments()
    one.add({"x": first})
    two.add({"x": second})
    both.add({"x": np.concatenate([first, second])})
    merged = one.merge(two)
    assert merged.count == 13
    np.testing.assert_allclose(merged.mean("x"), both.mean("x"), rtol=1e-12)
    np.testing.assert_allclose(merged.std("x"), np.concatenate([first, second]).std(0, ddof=1), rtol=1e-10)
    single = Moments()
    single.add({"x": first[:1]})
    assert np.isnan(single.std("x")).all() and np.isnan(single.interval("x")[0]).all()


def test_special_and_high_norm_mass_against_the_model_itself():
    torch.manual_seed(0)
    config = tf.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    vit = tf.ViTModel._from_config(config, attn_implementation="eager", add_pooling_layer=False).eval()
    outputs_of_last_layer = []

    def loud_patch(_module, _inputs, output):
        """Token 6 (patch 5) leaves the last layer 30 times louder: a high-norm token (Darcet et al.)."""
        hidden = (output[0] if isinstance(output, tuple) else output).clone()
        hidden[:, 6] *= 30
        outputs_of_last_layer.append(hidden)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    vit.layers[-1].register_forward_hook(loud_patch)
    processor = tf.ViTImageProcessorPil(size={"height": 32, "width": 32})
    pictures = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(3)]
    pixel_values = processor(images=pictures, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        outputs = vit(pixel_values=pixel_values, output_attentions=True)
    norms = outputs_of_last_layer[-1][:, 1:].norm(dim=-1)  # patches only
    flagged = norms > 4 * norms.median(dim=-1, keepdim=True).values  # torch's lower median, as the rule
    assert flagged[:, 5].all() and flagged.sum() == 3
    special, high = [], []
    for attention in outputs.attentions:
        from_patches = attention[:, :, 1:, :].mean(dim=-2)
        special.append(from_patches[..., 0])
        high.append((from_patches[..., 1:] * flagged[:, None]).sum(-1))
    frame = head_statistics_over(vit, pictures, processor=processor, progress=False)
    np.testing.assert_allclose(frame["special_mass"], torch.stack(special, 1).mean(0).flatten(), rtol=1e-5)
    np.testing.assert_allclose(frame["high_norm_mass"], torch.stack(high, 1).mean(0).flatten(), rtol=1e-5)
    assert (frame["high_norm_mass"] > 0).all()
    distance = [mean_attention_distance(a, 1, (4, 4), 8) for a in outputs.attentions]
    np.testing.assert_allclose(frame["distance"], torch.stack(distance, 1).mean(0).flatten(), rtol=1e-5)


def test_a_statistic_of_ones_own_flows_through(model, scenes):
    def strongest(attention: torch.Tensor, layout) -> torch.Tensor:
        return attention[..., layout.special_count :, :].amax(dim=-1).mean(dim=-1)

    frame = head_statistics_over(model, scenes[:3], statistics={"strongest": strongest}, progress=False)
    grid = AttentionGrid(model)
    expected = []
    for picture in scenes[:3]:
        grid.run(picture)
        layers = [grid.full_attention(layer) for layer in range(1, grid.layer_count + 1)]
        expected.append(torch.stack([layer[:, 1:].amax(-1).mean(-1) for layer in layers]))
    np.testing.assert_allclose(frame["strongest"], torch.stack(expected).mean(0).flatten(), rtol=1e-5)


def test_a_statistic_that_is_a_view_of_the_attention_keeps_its_values(model, scenes):
    """Each layer is computed into the memory of the one before: a statistic returned as a view of
    the attention (each head's CLS attention to itself) is copied, not overwritten by later layers."""
    frame = head_statistics_over(
        model, scenes[:4], batch_size=2, statistics={"self": lambda a, _: a[..., 0, 0]}, progress=False
    )
    grid = AttentionGrid(model)
    expected = []
    for picture in scenes[:4]:
        grid.run(picture)
        expected.append(torch.stack([grid.full_attention(layer)[:, 0, 0] for layer in range(1, 9)]))
    np.testing.assert_allclose(frame["self"], torch.stack(expected).mean(0).flatten(), rtol=1e-5, atol=1e-9)
    with pytest.raises(
        ValueError, match=r"statistic 'bad' returned .* must return a tensor \[pictures, heads\]"
    ):
        head_statistics_over(model, scenes[:2], statistics={"bad": lambda a, _: a.mean()}, progress=False)


def test_unreadable_pictures_are_skipped_counted_and_named(model, scenes, tmp_path):
    for index, picture in enumerate(scenes[:3]):
        Image.fromarray(picture).save(tmp_path / f"{index}.png")
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    (tmp_path / "sub").mkdir()
    Image.fromarray(scenes[3]).save(tmp_path / "sub" / "3.jpg")  # class folders are read too
    frame = head_statistics_over(model, tmp_path, batch_size=2, progress=False)
    assert frame.attrs["pictures"] == 4
    [(name, reason)] = frame.attrs["skipped"]
    assert name.endswith("broken.png") and "cannot read" in reason and "Pillow does not recognise" in reason
    with pytest.raises(ValueError, match="no picture was counted: all 1 were skipped"):
        head_statistics_over(model, [tmp_path / "broken.png"], progress=False)


def test_an_interrupted_run_returns_what_it_counted(model, scenes):
    calls = []

    def interrupt_in_the_second_batch(attention: torch.Tensor, layout) -> torch.Tensor:
        calls.append(1)
        if len(calls) > model.layer_count:  # the second batch's first layer
            raise KeyboardInterrupt
        return attention.mean(dim=(-1, -2))

    frame = head_statistics_over(
        model, scenes, batch_size=3, statistics={"mean": interrupt_in_the_second_batch}, progress=False
    )
    assert frame.attrs["interrupted"] and frame.attrs["pictures"] == 3
    np.testing.assert_allclose(
        frame["entropy"], per_picture(model, scenes[:3])["entropy"].mean(0).ravel(), rtol=1e-5
    )


def test_datasets_loaders_and_items_of_every_shape(model, scenes):
    expected = head_statistics_over(model, scenes[:4], progress=False)["distance"]

    class Tuples(torch.utils.data.Dataset):  # (picture, label), as torchvision's datasets give
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return Image.fromarray(scenes[index]), index

    dicts = [{"image": picture, "label": 0} for picture in scenes[:4]]  # as a datasets.Dataset gives
    pixels = torch.stack([model.picture_transform()(Image.fromarray(p)) for p in scenes[:4]])
    ready = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(pixels), batch_size=3)
    pictures = torch.utils.data.DataLoader(scenes[:4], batch_size=3, collate_fn=list)
    for images in (Tuples(), dicts, SceneDataset(0, 4), iter(scenes[:4]), ready, pictures):
        frame = head_statistics_over(model, images, batch_size=3, progress=False)
        assert frame.attrs["pictures"] == 4, type(images)
        np.testing.assert_allclose(frame["distance"], expected, rtol=1e-5)


def test_bad_calls_say_what_to_do(model, scenes):
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        head_statistics_over(model, scenes, batch_size=0)
    with pytest.raises(ValueError, match="is not a folder"):
        head_statistics_over(model, "/nonexistent/pictures")
    assert isinstance(head_statistics_over(model, scenes[:1], progress=False), pandas.DataFrame)


def test_timm_and_windowed_models_too(scenes):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, depth=2).eval()
    frame = head_statistics_over(vit, scenes[:3], batch_size=2, progress=False)
    assert len(frame) == 2 * 3 and frame.attrs["pictures"] == 3
    entropy = []
    source = attnwidget.timm_source.TimmModel(vit)
    for picture in scenes[:3]:
        layers: list[torch.Tensor] = []
        source.capture(
            source.prepare_input(picture).model_input, lambda _, __, w, kept=layers: kept.append(w)
        )
        entropy.append(torch.stack([attention_entropy(w) for w in layers]))
    np.testing.assert_allclose(frame["entropy"], torch.stack(entropy).mean(0).flatten(), rtol=1e-5)

    swin = tf.SwinModel(
        tf.SwinConfig(
            image_size=32, patch_size=4, embed_dim=16, depths=[2, 1], num_heads=[1, 2], window_size=4
        )
    ).eval()
    processor = tf.ViTImageProcessorPil(size={"height": 32, "width": 32})
    frame = head_statistics_over(swin, scenes[:3], processor=processor, progress=False)
    assert len(frame) == 2 and "special_mass" not in frame  # stage 1: 2 layers of 1 head, no CLS


def test_the_panel_follows_a_run_and_draws_each_heads_interval(model, scenes):
    frames = []
    panel = attnwidget.DatasetStatisticsPanel()
    frame = head_statistics_over(
        model, scenes, batch_size=2, progress=False, on_update=lambda f: (frames.append(f), panel.update(f))
    )
    assert frames and frames[-1].attrs["pictures"] == 7  # the last update is the whole run
    pandas.testing.assert_frame_equal(frames[-1], frame)
    assert panel.picker.options == ("distance", "entropy", "special_mass", "high_norm_mass")
    np.testing.assert_allclose(panel.dots.y, frame["distance"])
    np.testing.assert_allclose(panel.intervals.y, frame[["distance_low", "distance_high"]].to_numpy())
    # Each head's bar stands at its dot's x; the heads of a layer sit apart, around the layer.
    np.testing.assert_allclose(panel.intervals.x[:, 0], panel.dots.x)
    assert len(set(np.round(panel.dots.x, 6))) == 64 and np.all(np.abs(panel.dots.x - frame["layer"]) < 0.5)
    panel.statistic = "entropy"
    np.testing.assert_allclose(panel.dots.y, frame["entropy"])
    panel.dots.hovered_point = 9  # layer 2, head 2
    assert panel.caption.value.startswith("layer 2, head 2: ") and "7 pictures" in panel.caption.value


def test_updates_come_per_batch_and_one_picture_has_no_interval_yet(model, scenes):
    from attnwidget.dataset_statistics import Tally, Updates, batch_statistics

    counts = []
    updates = Updates(lambda frame: counts.append(frame.attrs["pictures"]), 0.95, every=0)
    tally = Tally()
    updates(tally)  # nothing counted: nothing to show
    source = attnwidget.default_model()
    transform = source.picture_transform()
    for picture in scenes[:3]:
        tally.moments.add(batch_statistics(source, transform(picture)[None], {}))
        updates(tally)
    assert counts == [1, 2, 3]
    panel = attnwidget.DatasetStatisticsPanel(statistics_frame_of(tally))
    assert panel.intervals.y.shape == (64, 2)
    one = Tally()
    one.moments.add(batch_statistics(source, transform(scenes[0])[None], {}))
    panel.update(statistics_frame_of(one))
    assert panel.intervals.y.shape == (0, 2) and len(panel.dots.y) == 64  # a mean, no interval
    with pytest.raises(ValueError, match="no statistics"):
        panel.update(pandas.DataFrame({"layer": [1], "head": [1]}))


def statistics_frame_of(tally):
    from attnwidget.dataset_statistics import statistics_frame

    return statistics_frame(tally)
