"""Methods in the widget: the `method` trait's map equals the pure function on the model's own attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets

from attnwidget import AttentionGrid, load_image, methods
from attnwidget.explain import class_index, explain, first_norm_of_last_block

PICTURE = np.random.default_rng(2).integers(0, 256, (40, 52, 3), dtype=np.uint8)


def explanation(widget: AttentionGrid) -> np.ndarray:
    return np.frombuffer(widget.explanation, dtype="<f4").reshape(widget.grid)


def output_attentions(widget: AttentionGrid) -> list[torch.Tensor]:
    vision = widget.vision_model
    pixel_values, _ = vision.prepare(load_image(PICTURE))
    with torch.no_grad():
        out = vision.forward_module(pixel_values=pixel_values, output_attentions=True)
    return [layer[0] for layer in out.attentions]


@pytest.fixture
def vit(tiny_model_dirs) -> AttentionGrid:
    widget = AttentionGrid(tiny_model_dirs["vit"])
    widget.run(PICTURE)
    return widget


def test_predictions_follow_each_run(vit):
    assert len(vit.predictions) == 5  # the tiny model has five classes
    probabilities = [entry["probability"] for entry in vit.predictions]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) == pytest.approx(
        1, abs=1e-5
    )
    assert {entry["label"] for entry in vit.predictions} == set(
        vit.vision_model.model.config.id2label.values()
    )


def test_rollout_and_head_fusion_equal_the_pure_functions(vit):
    assert vit.explanation == b"" and vit.method == "attention"
    attentions = output_attentions(vit)
    vit.method = "rollout"
    expected = methods.token_map(methods.attention_rollout(attentions), 1, (4, 4))
    np.testing.assert_allclose(explanation(vit), expected.numpy(), rtol=1e-5, atol=1e-7)
    assert vit.explanation_title == "attention rollout"

    vit.method = "head-max"
    vit.selected = [2, 1]  # head fusion follows the selected layer
    np.testing.assert_allclose(
        explanation(vit), attentions[1].amax(0)[0, 1:].reshape(4, 4).numpy(), rtol=1e-5
    )
    assert vit.explanation_title == "max over heads, layer 2"


def test_gradient_methods_explain_the_chosen_class(vit):
    vit.method = "chefer"
    predicted = explanation(vit).copy()
    assert "for class" in vit.explanation_title
    label = vit.predictions[-1]["label"]  # the least probable class, not the predicted one
    vit.target = label
    assert vit.explanation_title == f"Chefer et al. relevance for class {label!r}"
    assert not np.allclose(explanation(vit), predicted)
    vit.method = "grad-cam"
    cam = explanation(vit)
    assert cam.min() == 0.0 and cam.max() == 1.0


def test_a_bad_class_name_is_refused_and_the_view_kept(vit):
    vit.method = "gradient-rollout"
    before = vit.explanation
    vit.target = "LABEL_9"
    assert vit.target == "" and vit.explanation == before
    assert "'LABEL_9' is not a class" in vit.message and "did you mean" in vit.message


def test_gradient_methods_need_a_classifier(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["clip-vision"])
    widget.run(PICTURE)
    assert widget.predictions == []
    widget.method = "grad-cam"
    assert widget.method == "attention" and "no classification head" in widget.message
    widget.method = "rollout"  # attention methods still work
    assert explanation(widget).shape == (4, 4)


def test_rollout_without_cls_averages_the_patch_queries(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["siglip-vision"])
    widget.run(PICTURE)
    widget.method = "rollout"
    matrix = methods.attention_rollout(output_attentions(widget))
    np.testing.assert_allclose(explanation(widget), matrix.mean(0).reshape(4, 4).numpy(), rtol=1e-5)
    assert "no CLS token" in widget.explanation_title


def test_explain_checks_its_arguments(vit):
    vision = vit.vision_model
    pixel_values, _ = vision.prepare(load_image(PICTURE))
    with pytest.raises(ValueError, match="unknown method 'saliency'"):
        explain(vision, pixel_values, "saliency")
    with pytest.raises(ValueError, match="layer 9 is out of range"):
        explain(vision, pixel_values, "head-mean", layer=9)
    with pytest.raises(ValueError, match="out of range"):
        class_index(vision, 7)
    assert first_norm_of_last_block(vision, pixel_values) is vision.model.vit.layers[-1].layernorm_before


def test_token_norms_flag_a_high_norm_token_and_its_share_of_cls_attention(vit):
    layers = vit.vision_model.model.vit.layers
    boost = 3 + 4 * 2  # token 11: patch (2, 2)

    def loud_token(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden[:, boost] *= 50
        return output

    handle = layers[1].register_forward_hook(loud_token)  # after layer 2
    try:
        vit.run(PICTURE)  # the cached attention sees the loud token too
        vit.selected = [2, 1]
        vit.method = "token-norms"
        vision = vit.vision_model
        pixel_values, _ = vision.prepare(load_image(PICTURE))
        with torch.no_grad():
            out = vision.forward_module(
                pixel_values=pixel_values, output_hidden_states=True, output_attentions=True
            )
    finally:
        handle.remove()
    norms = out.hidden_states[2][0].norm(dim=-1)
    np.testing.assert_allclose(explanation(vit), norms[1:].reshape(4, 4).numpy(), rtol=1e-5)
    share = float(out.attentions[1][0].mean(0)[0, boost])
    assert vit.explanation_title == (
        f"token norms after layer 2: 1 high-norm token receives {share:.0%} of the layer's CLS attention "
        "(norm > 4x the median)"
    )
    vit.selected = [1, 1]
    assert vit.explanation_title == "token norms after layer 1: no high-norm tokens"


def test_rollout_options_reach_the_method(vit):
    attentions = output_attentions(vit)
    vit.method = "rollout"
    vit.rollout_fusion, vit.discard_ratio, vit.start_layer = "max", 0.9, 2
    matrix = methods.attention_rollout(attentions, fusion="max", discard_ratio=0.9, start_layer=2)
    np.testing.assert_allclose(explanation(vit), methods.token_map(matrix, 1, (4, 4)).numpy(), rtol=1e-5)
    vit.start_layer = 9
    assert vit.start_layer == 2 and "start_layer must lie in 1..3" in vit.message
    with pytest.raises(traitlets.TraitError):
        vit.discard_ratio = 1.0
