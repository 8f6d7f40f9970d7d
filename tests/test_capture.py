"""Captured attention must equal transformers' own `output_attentions` (eager, fp32)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf

from attnwidget.capture import AttentionNotReturnedError, StopCapture, capture_attention
from attnwidget.models import UnsupportedModelError, VisionModel

from tiny_models import ARCHITECTURES, attnwidget_hooks


def picture(width: int = 50, height: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_captured_attention_equals_output_attentions(name, tiny_model_dirs):
    vision = VisionModel.from_pretrained(tiny_model_dirs[name])
    pixel_values, _ = vision.prepare(__import__("PIL.Image").Image.fromarray(picture()))
    captured: dict[int, torch.Tensor] = {}
    outputs = vision.run(pixel_values, lambda layer, weights: captured.__setitem__(layer, weights.clone()))

    reference = vision.forward_module(pixel_values=pixel_values, output_attentions=True)
    assert len(captured) == len(reference.attentions) == vision.layer_count == 3
    for layer, expected in enumerate(reference.attentions):
        torch.testing.assert_close(captured[layer], expected, rtol=1e-5, atol=1e-6)
    # Capturing changes nothing the model computes.
    torch.testing.assert_close(outputs[0], reference[0])


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_token_layout_matches_the_sequence(name, tiny_model_dirs):
    vision = VisionModel.from_pretrained(tiny_model_dirs[name])
    pixel_values, _ = vision.prepare(__import__("PIL.Image").Image.fromarray(picture()))
    layout = vision.layout(pixel_values)
    shapes = []
    vision.run(pixel_values, lambda layer, weights: shapes.append(weights.shape))
    assert layout.special_tokens == ARCHITECTURES[name][1]
    assert shapes[0] == (1, vision.head_count, layout.token_count, layout.token_count)


def test_sdpa_model_is_switched_to_eager_for_the_capture_and_back(tiny_model_dirs):
    """`run` reads eager's weights: a ViT on sdpa switches for it and back, silently, since its
    captures go beside sdpa and only what needs eager's weights (gradient methods) switches; a model
    off that path says so once (`test_fast_attention`)."""
    import warnings

    model = tf.ViTForImageClassification.from_pretrained(tiny_model_dirs["vit"], attn_implementation="sdpa")
    vision = VisionModel(model, tf.ViTImageProcessor.from_pretrained(tiny_model_dirs["vit"]))
    pixel_values = torch.zeros(1, 3, 32, 32)
    implementations, layers = [], []

    def seen(layer, weights):
        implementations.append(model.config._attn_implementation)
        layers.append(layer)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vision.run(pixel_values, seen)
    assert layers == [0, 1, 2] and set(implementations) == {"eager"}
    assert model.config._attn_implementation == "sdpa"


def test_hooks_are_removed_even_when_the_forward_raises(tiny_model_dirs):
    vision = VisionModel.from_pretrained(tiny_model_dirs["vit"])

    def stop(layer, weights):
        raise StopCapture

    with pytest.raises(StopCapture):
        vision.run(torch.zeros(1, 3, 32, 32), stop)
    assert attnwidget_hooks(vision.model) == []


def test_module_returning_no_weights_is_named():
    module = torch.nn.Identity()
    with (
        pytest.raises(AttentionNotReturnedError, match="attn_implementation='eager'"),
        capture_attention([module], 1, lambda layer, weights: None),
    ):
        module((torch.zeros(1), None))


def test_model_without_attention_is_refused():
    cnn = tf.ResNetModel(tf.ResNetConfig(embedding_size=8, hidden_sizes=[8, 8], depths=[1, 1]))
    with pytest.raises(UnsupportedModelError, match="Grad-CAM"):
        VisionModel(cnn, processor=object())


def test_missing_directory_and_unknown_id_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model directory"):
        VisionModel.from_pretrained(tmp_path / "missing")
    with pytest.raises(OSError, match="not a local model directory"):
        VisionModel.from_pretrained("attnwidget-tests/no-such-model")


def test_a_given_processor_replaces_the_saved_one(tiny_model_dirs):
    processor = tf.ViTImageProcessorPil(size={"height": 32, "width": 32}, image_mean=0.2, image_std=0.3)
    vision = VisionModel.from_pretrained(tiny_model_dirs["vit"], processor=processor)
    assert vision.processor is processor
