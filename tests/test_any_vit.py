"""Vision transformers no other test names: their attention is found and measured by running them,
and what cannot be shown faithfully is refused with the reason, never shown wrong or empty."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf

from attnwidget import AttentionGrid, VisionModel
from attnwidget.encode import decode_rows
from attnwidget.errors import UnsupportedModelError
from attnwidget.transformers_support import find_attention_modules

SHAPE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
PICTURE = np.random.default_rng(5).integers(0, 256, (40, 52, 3), dtype=np.uint8)


def processor_32() -> tf.ViTImageProcessorPil:
    return tf.ViTImageProcessorPil(size={"height": 32, "width": 32})


def decoded_maps(grid: AttentionGrid) -> np.ndarray:
    gh, gw = grid.grid
    rows = decode_rows(grid.maps, grid.maps_range, gh * gw)
    return rows.reshape(len(grid.layers), len(grid.heads), gh * gw)


def own_attentions(vision: VisionModel, **inputs) -> tuple[torch.Tensor, ...]:
    pixel_values, _ = vision.prepare(__import__("attnwidget").load_image(PICTURE))
    with torch.no_grad(), vision.eager_attention():
        return vision.forward_module(pixel_values=pixel_values, output_attentions=True, **inputs).attentions


def assert_maps_equal(grid: AttentionGrid, expected: np.ndarray) -> None:
    step = (expected.max(-1, keepdims=True) - expected.min(-1, keepdims=True)) / 255
    assert (np.abs(decoded_maps(grid) - expected) <= step / 2 + 1e-6).all()


def test_a_vit_without_a_class_token_shows_every_patch_as_the_query():
    model = tf.IJepaModel(tf.IJepaConfig(image_size=32, patch_size=8, **SHAPE)).eval()
    grid = AttentionGrid(model, PICTURE, processor=processor_32())
    assert grid.status == "done" and grid.special_tokens == [] and grid.query == list(range(16))
    attentions = own_attentions(grid.vision_model)
    expected = torch.stack([layer[0].mean(dim=1) for layer in attentions]).numpy()  # mean over queries
    assert_maps_equal(grid, expected)


def test_random_patch_masking_is_switched_off_and_every_patch_kept_in_place():
    model = tf.ViTMAEModel(tf.ViTMAEConfig(image_size=32, patch_size=8, mask_ratio=0.75, **SHAPE)).eval()
    grid = AttentionGrid(model, PICTURE, processor=processor_32())
    assert grid.status == "done" and grid.special_tokens == ["CLS"] and grid.token_count == 17
    assert model.config.mask_ratio == 0.75  # as it was, after the probe and the run
    model.config.mask_ratio = 0.0
    attentions = own_attentions(grid.vision_model, noise=torch.arange(16)[None])  # patches in order
    model.config.mask_ratio = 0.75
    expected = torch.stack([layer[0, :, 0, 1:] for layer in attentions]).numpy()
    assert_maps_equal(grid, expected)


class MaskingViT(tf.ViTMAEModel):
    """Drops patches at random with no way to keep them (no `noise` argument)."""

    def forward(self, pixel_values, **kwargs):
        return super().forward(pixel_values=pixel_values, **kwargs)


def test_patches_dropped_beyond_recall_are_refused_with_the_reason():
    model = MaskingViT(tf.ViTMAEConfig(image_size=32, patch_size=8, mask_ratio=0.75, **SHAPE)).eval()
    with pytest.raises(UnsupportedModelError, match=r"attends over 5 tokens, fewer than the 16 patches"):
        AttentionGrid(model, processor=processor_32())


def test_attention_of_an_undeclared_subclass_is_found_by_what_it_returns():
    model = tf.BeitModel._from_config(
        tf.BeitConfig(image_size=32, patch_size=8, **SHAPE), attn_implementation="eager"
    ).eval()
    declared = find_attention_modules(model, model)[0]
    forked = type("ForkedAttention", (type(declared[0]),), {})  # as a fork or a checkpoint's own code
    for module in declared:
        module.__class__ = forked
    grid = AttentionGrid(model, PICTURE, processor=tf.BeitImageProcessorPil(size={"height": 32, "width": 32}))
    assert grid.status == "done" and grid.special_tokens == ["CLS"]
    assert all(isinstance(module, forked) for module in grid.vision_model.attention_modules)
    attentions = own_attentions(grid.vision_model)
    assert_maps_equal(grid, torch.stack([layer[0, :, 0, 1:] for layer in attentions]).numpy())


def test_a_family_that_cannot_leave_its_fused_kernel_names_the_fix():
    model = tf.Data2VecVisionModel(tf.Data2VecVisionConfig(image_size=32, patch_size=8, **SHAPE))
    with pytest.raises(UnsupportedModelError, match="attn_implementation='eager'"):
        AttentionGrid(model, processor=processor_32())
    model = tf.Data2VecVisionModel._from_config(
        tf.Data2VecVisionConfig(image_size=32, patch_size=8, **SHAPE), attn_implementation="eager"
    )
    grid = AttentionGrid(model.eval(), PICTURE, processor=processor_32())
    assert grid.status == "done" and grid.special_tokens == ["CLS"]


@pytest.mark.parametrize(
    "model",
    [
        lambda: tf.SwinModel(
            tf.SwinConfig(
                image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4
            )
        ),
        lambda: tf.Swinv2Model(
            tf.Swinv2Config(
                image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4
            )
        ),
    ],
    ids=["swin", "swinv2"],
)
def test_windowed_attention_is_shown_stage_by_stage_never_a_trait_error(model):
    grid = AttentionGrid(model().eval(), PICTURE, processor=processor_32())
    assert grid.status == "done" and grid.model_name.endswith("stage 1 of 2")
    assert (grid.head_count, grid.grid, grid.patch_size) == (1, [8, 8], 4)
    with pytest.raises(UnsupportedModelError, match=r"in windows .*heads per layer \[1, 2\]"):
        VisionModel(model().eval(), processor=processor_32())  # one grid: it cannot be


def test_a_processor_that_pads_spreads_the_maps_over_the_picture_and_says_so():
    model = tf.ViTModel(tf.ViTConfig(image_size=32, patch_size=8, **SHAPE)).eval()
    padding = tf.Owlv2ImageProcessorPil(size={"height": 32, "width": 32})  # pads to a square first
    with pytest.warns(UserWarning, match="cannot tell where"):
        grid = AttentionGrid(model, PICTURE, processor=padding)
    assert grid.status == "done" and grid.crop_box == [0.0, 0.0, 1.0, 1.0]
    assert "spread over the whole picture" in grid.message
