"""timm's vision transformers as a source: each family's attention against the fused forward's own
q and k, the fused path restored, the token names, and the crop box against timm's real transforms."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image, ImageChops, ImageDraw

timm = pytest.importorskip("timm", reason="timm is not installed (pip install 'attnwidget[timm]')")
from timm.data import create_transform  # noqa: E402

import attnwidget  # noqa: E402
from attnwidget import AttentionGrid, UnsupportedModelError  # noqa: E402
from attnwidget.encode import decode_rows  # noqa: E402
from attnwidget.timm_source import TimmModel, takes_fast_path, transform_crop_box  # noqa: E402

PICTURE = Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8))
FAMILIES: dict[str, tuple[str, dict, tuple[str, ...]]] = {
    "vit": ("vit_tiny_patch16_224", {"img_size": 64}, ("CLS",)),
    "deit-distilled": ("deit_tiny_distilled_patch16_224", {"img_size": 64}, ("CLS", "DIST")),
    "beit": ("beit_base_patch16_224", {"img_size": 64, "embed_dim": 64, "num_heads": 2}, ("CLS",)),
    "eva02": ("eva02_tiny_patch14_224", {"img_size": 56}, ("CLS",)),
    "dinov2-registers": (
        "vit_small_patch14_reg4_dinov2",
        {"img_size": 56, "embed_dim": 64, "num_heads": 2},
        ("CLS", "reg1", "reg2", "reg3", "reg4"),
    ),
    "no-class-token": ("vit_medium_patch16_gap_256", {"img_size": 64, "embed_dim": 64, "num_heads": 2}, ()),
}


#: Families whose attention is timm's plain `Attention`, captured beside its fused attention.
FUSED_KEPT = {"vit", "deit-distilled", "dinov2-registers", "no-class-token"}


def build(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, depth=2, **kwargs).eval()


def fused_attention(
    model: torch.nn.Module, pixel_values: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each layer's attention [H, N, N] recomputed from the q, k (and bias) the fused forward passes to
    `scaled_dot_product_attention`, and that forward's output."""
    original = torch.nn.functional.scaled_dot_product_attention
    layers: list[torch.Tensor] = []

    def recording(q, k, v, attn_mask=None, **kwargs):
        scores = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5
        layers.append((scores if attn_mask is None else scores + attn_mask).softmax(-1)[0])
        return original(q, k, v, attn_mask=attn_mask, **kwargs)

    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = True
    with monkeypatch.context() as patch, torch.no_grad():
        patch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
        output = model(pixel_values)
    return layers, output


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_shows_the_attention_its_fused_forward_computes(family, monkeypatch):
    name, kwargs, specials = FAMILIES[family]
    model = build(name, **kwargs)
    pixel_values = TimmModel(model).prepare_input(PICTURE).model_input
    expected, fused_output = fused_attention(model, pixel_values, monkeypatch)
    grid = AttentionGrid(model, PICTURE)
    assert (grid.status, grid.model_name, grid.special_tokens) == ("done", name, list(specials))
    assert isinstance(grid.source, TimmModel) and grid.layer_count == len(expected) == 2
    (gh, gw), count = grid.grid, len(specials)
    assert grid.token_count == count + gh * gw == expected[0].shape[-1]
    for layer, attention in enumerate(expected, start=1):
        torch.testing.assert_close(grid.full_attention(layer), attention, rtol=1e-4, atol=1e-5)
    query = [0] if specials else list(range(count, count + gh * gw))
    assert grid.query == query
    rows = torch.stack(expected)[:, :, query, count:].mean(2)  # [layers, heads, patches]
    maps = decode_rows(grid.maps, grid.maps_range, gh * gw).reshape(rows.shape)
    np.testing.assert_allclose(maps, rows.numpy(), atol=1 / 255)
    captured_output = grid.source.capture(pixel_values, lambda *block: None)
    if family in FUSED_KEPT:  # the model ran its own fused attention: its very outputs
        assert torch.equal(captured_output, fused_output)
    torch.testing.assert_close(captured_output, fused_output, rtol=1e-4, atol=1e-5)
    assert all(module.fused_attn for module in grid.source.attention_modules)
    assert takes_fast_path(grid.source.attention_modules) == (family in FUSED_KEPT)


def test_a_capture_beside_fused_attention_leaves_no_hook_behind():
    source = TimmModel(build("vit_tiny_patch16_224", img_size=64))
    pixel_values = source.prepare_input(PICTURE).model_input

    def failing(layer: int, first: int, weights: torch.Tensor) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        source.capture(pixel_values, failing)
    for module in source.attention_modules:
        assert module.fused_attn
        assert not (module._forward_pre_hooks or module.q_norm._forward_hooks or module.k_norm._forward_hooks)


def test_fused_attention_and_hooks_are_restored_after_a_failed_capture():
    source = TimmModel(build("vit_tiny_patch16_224", img_size=64))
    pixel_values = source.prepare_input(PICTURE).model_input
    source.attention_modules[1].fused_attn = False  # each module gets back its own setting

    def failing(layer: int, first: int, weights: torch.Tensor) -> None:
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        source.capture(pixel_values, failing)
    assert [module.fused_attn for module in source.attention_modules] == [True, False]
    assert not any(module.attn_drop._forward_pre_hooks for module in source.attention_modules)


def test_a_layout_that_does_not_match_the_keys_is_refused_naming_the_model():
    source = TimmModel(build("vit_tiny_patch16_224", img_size=64))
    source.special_tokens = ("CLS", "DIST")  # one token more than the model has
    grid = AttentionGrid(source)
    with pytest.raises(UnsupportedModelError, match="vit_tiny_patch16_224: layer 1 attends over 17 keys"):
        grid.run(PICTURE)
    assert grid.status != "done" and grid.layers_done == 0


class Skipped(torch.nn.Module):
    """An attention module's stand-in that computes nothing."""

    def forward(self, x: torch.Tensor, **options) -> torch.Tensor:
        return torch.zeros_like(x)


def test_a_model_whose_attention_never_reaches_the_hooks_is_refused():
    source = TimmModel(build("vit_tiny_patch16_224", img_size=64))
    source.model.blocks[1].attn = Skipped()  # the module found at first no longer runs
    grid = AttentionGrid(source)
    with pytest.raises(UnsupportedModelError, match="only 1 of its 2 attention modules"):
        grid.run(PICTURE)
    assert grid.status != "done"


def test_a_timm_cnn_is_refused_with_what_is_supported_and_grad_cam():
    with pytest.raises(UnsupportedModelError, match=r"resnet18 \(ResNet\).*DeiT.*registers.*Grad-CAM"):
        AttentionGrid(timm.create_model("resnet18", pretrained=False))


def test_registers_without_a_class_token_and_a_dynamic_size_follow_the_input():
    model = build(
        "vit_small_patch14_reg4_dinov2", img_size=56, embed_dim=64, num_heads=2, class_token=False,
        global_pool="avg", dynamic_img_size=True,
    )  # fmt: skip
    transform = create_transform(input_size=(3, 42, 70), crop_pct=1.0, interpolation="bilinear")
    grid = AttentionGrid(model, PICTURE, processor=transform)
    assert grid.status == "done" and grid.grid == [3, 5] and grid.input_size == [42, 70]
    assert grid.special_tokens == ["reg1", "reg2", "reg3", "reg4"] and grid.query == list(range(4, 19))


def test_predictions_name_imagenet_classes_or_number_the_others():
    names = attnwidget.pretrained.imagenet_class_names()
    grid = AttentionGrid(build("vit_tiny_patch16_224", img_size=64), PICTURE)
    assert len(grid.predictions) == 5 and all(p["label"] in names for p in grid.predictions)
    grid = AttentionGrid(build("vit_tiny_patch16_224", img_size=64, num_classes=3), PICTURE)
    assert sorted(p["label"] for p in grid.predictions) == ["class 0", "class 1", "class 2"]
    assert AttentionGrid(build("vit_tiny_patch16_224", img_size=64, num_classes=0), PICTURE).predictions == []


def test_explore_runs_a_timm_model(monkeypatch):
    import IPython.display

    shown: list = []
    monkeypatch.setattr(IPython.display, "display", lambda *objects: shown.extend(objects))
    grid = attnwidget.explore(PICTURE, model=build("deit_tiny_distilled_patch16_224", img_size=64))
    assert shown == [grid] and grid.status == "done" and grid.special_tokens == ["CLS", "DIST"]
    grid.selected = [2, 3]
    assert grid.overlay_to_png().startswith(b"\x89PNG")
    grid.method = "rollout"
    assert grid.method == "attention" and "has no explanation methods" in grid.message


def test_recognising_a_timm_model_does_not_import_timm():
    code = (
        "import sys, torch; from attnwidget.loading import as_source; "
        "from attnwidget.timm_source import is_timm_model; "
        "assert not is_timm_model(torch.nn.Linear(1, 1)); assert 'timm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def marked(size: tuple[int, int], point: tuple[float, float]) -> Image.Image:
    """A grey picture of `size` with a white 7 x 7 marker centred on `point` (pixels)."""
    picture = Image.new("RGB", size, (90, 90, 90))
    x, y = point
    ImageDraw.Draw(picture).rectangle((round(x) - 3, round(y) - 3, round(x) + 3, round(y) + 3), fill="white")
    return picture


def marker_centre(pixel_values: torch.Tensor) -> tuple[float, float]:
    """(x, y) of the centre of the brightest blob of a [C, H, W] tensor in its pixels (0.5: first centre)."""
    brightness = pixel_values.float().mean(0)
    low, high = brightness.median(), brightness.max()
    ys, xs = torch.nonzero(brightness > (low + high) / 2, as_tuple=True)
    weights = brightness[ys, xs] - low
    return (float((xs + 0.5) @ weights / weights.sum()), float((ys + 0.5) @ weights / weights.sum()))


def assert_marker_where_the_box_says(
    transform: Callable, box_of: Callable[[Image.Image], tuple], size: tuple[int, int]
) -> None:
    for fx, fy in [(0.25, 0.3), (0.5, 0.5), (0.8, 0.7)]:
        box = box_of(Image.new("RGB", size))
        point = ((box[0] + fx * (box[2] - box[0])) * size[0], (box[1] + fy * (box[3] - box[1])) * size[1])
        point = (min(max(point[0], 4), size[0] - 5), min(max(point[1], 4), size[1] - 5))
        pixel_values = transform(marked(size, point))
        height, width = pixel_values.shape[-2:]
        expected = (
            ((point[0] + 0.5) / size[0] - box[0]) / (box[2] - box[0]) * width,
            ((point[1] + 0.5) / size[1] - box[1]) / (box[3] - box[1]) * height,
        )
        np.testing.assert_allclose(marker_centre(pixel_values), expected, atol=1.0)


@pytest.mark.parametrize("mode", ["center", "squash", "border"])
@pytest.mark.parametrize("crop_pct", [0.875, 1.0])
@pytest.mark.parametrize("input_size", [(64, 64), (48, 64)])
@pytest.mark.parametrize("size", [(96, 96), (150, 80), (70, 130)])
def test_the_crop_box_finds_a_marker_through_timms_transform(mode, crop_pct, input_size, size):
    transform = create_transform(
        input_size=(3, *input_size), crop_pct=crop_pct, crop_mode=mode, interpolation="bilinear"
    )
    box = transform_crop_box(transform, size)
    assert box is not None
    assert_marker_where_the_box_says(
        transform, lambda picture: transform_crop_box(transform, picture.size), size
    )


@pytest.mark.parametrize("mode", ["center", "squash", "border"])
@pytest.mark.parametrize("size", [(96, 96), (150, 80), (60, 100)])
def test_the_sources_picture_holds_its_input_where_the_crop_box_says(mode, size):
    model = build(
        "vit_tiny_patch16_224", img_size=64, pretrained_cfg_overlay={"crop_mode": mode, "crop_pct": 0.9}
    )
    source = TimmModel(model)
    picture = source.prepare_input(Image.new("RGB", size, "black")).picture
    shown, box = picture.image, picture.crop_box
    assert all(0 <= value <= 1 for value in box)
    # Where the transform pads, the picture shown is grown with timm's padding colour around the original.
    left, top, right, bottom = ImageChops.difference(
        shown, Image.new("RGB", shown.size, (128,) * 3)
    ).getbbox()
    assert (right - left, bottom - top) == size
    assert (shown.size != size) == (mode == "border" and size[0] != size[1])
    in_original = (
        (box[0] * shown.width - left) / size[0],
        (box[1] * shown.height - top) / size[1],
        (box[2] * shown.width - left) / size[0],
        (box[3] * shown.height - top) / size[1],
    )
    np.testing.assert_allclose(in_original, transform_crop_box(source.transform, size), atol=1e-9)
    assert_marker_where_the_box_says(
        lambda image: source.prepare_input(image).model_input[0],
        lambda image: transform_crop_box(source.transform, image.size),
        size,
    )


def test_a_transform_with_an_unknown_step_warns_and_shows_the_whole_picture():
    model = build("vit_tiny_patch16_224", img_size=64)
    transform = create_transform(input_size=(3, 64, 64), crop_border_pixels=3)
    source = TimmModel(model, transform)
    with pytest.warns(UserWarning, match="cannot tell where the transform of vit_tiny_patch16_224 puts"):
        prepared = source.prepare_input(PICTURE)
    assert prepared.picture.crop_box == (0.0, 0.0, 1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per model
        source.prepare_input(PICTURE)
