"""Each method against an independent reference written here from the papers' formulas (numpy loops)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import transformers as tf

from attnwidget import methods
from attnwidget.models import VisionModel

# Pointing game floors of rollout and gradient rollout on the built-in model (class = ground truth).
# Measured on held-out scenes 1,000,000 .. 1,000,499: rollout 0.978, gradient rollout 0.980 (Chefer
# 0.978, ViT Grad-CAM 0.692); the floors leave room for the 100 scenes tested here.
ROLLOUT_POINTING_FLOOR = 0.92
GRADIENT_ROLLOUT_POINTING_FLOOR = 0.92


def random_attention(layers: int, heads: int, tokens: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(layers, heads, tokens, tokens, generator=generator).mul(2).softmax(-1)


def reference_rollout(
    attention: np.ndarray, discard: float = 0.0, start: int = 1, gradients: np.ndarray | None = None
) -> np.ndarray:
    """Abnar & Zuidema: fuse (or weight by gradients), discard, (A + I) / 2, rows to 1, multiply."""
    tokens = attention.shape[-1]
    result = np.eye(tokens)
    for layer in range(start - 1, attention.shape[0]):
        if gradients is None:
            fused = attention[layer].mean(axis=0)
        else:
            fused = np.maximum(attention[layer] * gradients[layer], 0).mean(axis=0)
        fused = fused.copy()
        if discard:
            entries = [(fused[i, j], i, j) for i in range(tokens) for j in range(1, tokens)]  # never column 0
            entries.sort()
            for _, i, j in entries[: math.floor(discard * len(entries))]:
                fused[i, j] = 0.0
        mixed = 0.5 * fused + 0.5 * np.eye(tokens)
        for i in range(tokens):
            mixed[i] = mixed[i] / mixed[i].sum()
        result = mixed @ result
    return result


@pytest.mark.parametrize(("discard", "start"), [(0.0, 1), (0.5, 1), (0.9, 2), (0.3, 4)])
def test_rollout_matches_the_formula(discard, start):
    attention = random_attention(4, 3, 10)
    rolled = methods.attention_rollout(attention, discard_ratio=discard, start_layer=start)
    np.testing.assert_allclose(
        rolled.numpy(), reference_rollout(attention.double().numpy(), discard, start), atol=1e-6
    )
    np.testing.assert_allclose(
        rolled.sum(-1).numpy(), np.ones(10), atol=1e-6
    )  # every row stays a distribution


def test_rollout_renormalises_rows_not_columns():
    """A popular implementation divides by the row sums without keepdim, which scales columns instead."""
    attention = random_attention(3, 2, 6, seed=3)
    rolled = methods.attention_rollout(attention, discard_ratio=0.5)
    wrong = torch.eye(6)
    for layer in attention:
        fused = layer.mean(0)
        mixed = 0.5 * fused + 0.5 * torch.eye(6)
        wrong = (mixed / mixed.sum(dim=-1)) @ wrong
    assert not torch.allclose(rolled, wrong, atol=1e-3)


def test_rollout_head_fusion_and_list_input():
    attention = random_attention(2, 4, 5, seed=1)
    for fusion, reduce in (("max", np.max), ("min", np.min), ("mean", np.mean)):
        fused = reduce(attention.numpy(), axis=1)
        reference = np.eye(5)
        for layer in fused:
            mixed = 0.5 * layer + 0.5 * np.eye(5)
            reference = (mixed / mixed.sum(1, keepdims=True)) @ reference
        rolled = methods.attention_rollout(list(attention), fusion=fusion)
        np.testing.assert_allclose(rolled.numpy(), reference, atol=1e-6)
    with pytest.raises(ValueError, match="head fusion"):
        methods.attention_rollout(attention, fusion="median")


def test_gradient_rollout_and_chefer_match_the_formulas():
    attention = random_attention(3, 2, 7, seed=2)
    gradients = torch.randn(attention.shape, generator=torch.Generator().manual_seed(9))
    rolled = methods.gradient_rollout(attention, gradients, discard_ratio=0.2)
    expected = reference_rollout(attention.double().numpy(), 0.2, gradients=gradients.double().numpy())
    np.testing.assert_allclose(rolled.numpy(), expected, atol=1e-6)

    relevance = np.eye(7)
    for a, g in zip(attention.double().numpy(), gradients.double().numpy(), strict=True):
        relevance = relevance + np.maximum(a * g, 0).mean(axis=0) @ relevance
    np.testing.assert_allclose(methods.chefer_relevance(attention, gradients).numpy(), relevance, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_vit(tiny_model_dirs) -> VisionModel:
    return VisionModel.from_pretrained(tiny_model_dirs["vit"])


def test_attention_gradients_are_paired_with_their_own_layer(tiny_vit):
    """Each gradient must be d(logit) / d(that layer's attention), as autograd gives on output_attentions."""
    pixel_values = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model = tiny_vit.model
    attentions, gradients, logits = methods.attention_gradients(
        tiny_vit.attention_modules, tiny_vit.output_index, lambda: model(pixel_values=pixel_values).logits, 1
    )
    outputs = model(pixel_values=pixel_values, output_attentions=True)
    expected = torch.autograd.grad(outputs.logits[0, 1], outputs.attentions)
    assert len(gradients) == len(expected) == 3
    for layer, (gradient, reference) in enumerate(zip(gradients, expected, strict=True)):
        torch.testing.assert_close(gradient, reference[0], msg=f"layer {layer + 1}")
        torch.testing.assert_close(attentions[layer], outputs.attentions[layer][0].detach())
    # The layers' gradients differ, so pairing them with the wrong layer would fail the check above.
    assert not torch.allclose(gradients[0], gradients[-1])
    torch.testing.assert_close(logits, outputs.logits.detach())
    with pytest.raises(ValueError, match="out of range"):
        methods.attention_gradients(
            tiny_vit.attention_modules,
            tiny_vit.output_index,
            lambda: model(pixel_values=pixel_values).logits,
            99,
        )


def test_token_map_takes_the_cls_row_or_averages_without_cls():
    matrix = torch.arange(1 + 6, dtype=torch.float32).repeat(7, 1) + torch.arange(7.0)[:, None] * 10
    np.testing.assert_allclose(methods.token_map(matrix, 1, (2, 3)).numpy(), np.arange(1, 7).reshape(2, 3))
    no_cls = matrix[1:, 1:]
    np.testing.assert_allclose(
        methods.token_map(no_cls, 0, (2, 3)).numpy(), no_cls.mean(0).reshape(2, 3).numpy(), rtol=1e-6
    )
    with pytest.raises(ValueError, match="patch grid"):
        methods.token_map(matrix, 1, (3, 3))


def pairwise_mean_distance(rows: int, cols: int, step: float) -> float:
    """Mean Euclidean distance over all ordered pairs of patch centres (self-pairs included)."""
    centres = list(itertools.product(range(rows), range(cols)))
    total = sum(step * math.hypot(a[0] - b[0], a[1] - b[1]) for a in centres for b in centres)
    return total / len(centres) ** 2


def test_mean_attention_distance_identity_uniform_and_local():
    grid, patch, special = (4, 5), 16, 1
    tokens = special + 20
    identity = torch.eye(tokens)[None]
    assert methods.mean_attention_distance(identity, special, grid, patch).item() == pytest.approx(0.0)

    uniform = torch.full((1, tokens, tokens), 1.0 / tokens)  # CLS mass has no position: renormalised away
    expected = pairwise_mean_distance(*grid, patch)
    assert methods.mean_attention_distance(uniform, special, grid, patch).item() == pytest.approx(
        expected, rel=1e-5
    )

    local = torch.zeros(
        1, tokens, tokens
    )  # every patch attends equally to its 4-neighbours: distance = patch
    for r, c in itertools.product(range(4), range(5)):
        neighbours = [(r + dr, c + dc) for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0))]
        neighbours = [(a, b) for a, b in neighbours if 0 <= a < 4 and 0 <= b < 5]
        for a, b in neighbours:
            local[0, special + r * 5 + c, special + a * 5 + b] = 1.0 / len(neighbours)
    local[0, 0, 0] = 1.0
    assert methods.mean_attention_distance(local, special, grid, patch).item() == pytest.approx(16.0)


def test_attention_entropy():
    tokens = 9
    uniform = torch.full((2, tokens, tokens), 1.0 / tokens)
    np.testing.assert_allclose(methods.attention_entropy(uniform).numpy(), [math.log(tokens)] * 2, rtol=1e-6)
    assert methods.attention_entropy(torch.eye(tokens)[None]).item() == 0.0  # 0 log 0 = 0, no NaN
    attention = random_attention(1, 3, tokens)[0].double().numpy()
    expected = [np.mean([-sum(p * math.log(p) for p in row if p > 0) for row in head]) for head in attention]
    np.testing.assert_allclose(methods.attention_entropy(torch.from_numpy(attention)).numpy(), expected)


def test_dino_mask_keeps_the_top_tokens_holding_the_mass():
    cls_map = torch.tensor([[0.05, 0.5], [0.15, 0.3]])
    assert methods.dino_mask(cls_map, 0.6).tolist() == [[False, True], [False, True]]
    assert methods.dino_mask(cls_map, 0.85).tolist() == [[False, True], [True, True]]
    assert methods.dino_mask(cls_map, 1.0).all()

    values = torch.rand(100, generator=torch.Generator().manual_seed(4))
    for mass in (0.1, 0.5, 0.9):
        kept = methods.dino_mask(values, mass)
        ordered = sorted(values.tolist(), reverse=True)  # descending: keep while the mass above is < mass
        total, expected = sum(ordered), []
        above = 0.0
        for value in ordered:
            if above / total < mass:
                expected.append(value)
            above += value
        assert sorted(values[kept].tolist(), reverse=True) == pytest.approx(expected)
    with pytest.raises(ValueError, match="mass"):
        methods.dino_mask(cls_map, 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        methods.dino_mask(torch.zeros(2, 2), 0.5)


def test_grad_cam_matches_the_formula():
    generator = torch.Generator().manual_seed(5)
    activations, gradients = (
        torch.randn(6, 4, 3, generator=generator),
        torch.randn(6, 4, 3, generator=generator),
    )
    a, g = activations.double().numpy(), gradients.double().numpy()
    cam = np.zeros((4, 3))
    for k in range(6):
        cam += g[k].mean() * a[k]
    cam = np.maximum(cam, 0)
    cam = (cam - cam.min()) / (cam.max() - cam.min())
    np.testing.assert_allclose(methods.grad_cam(activations, gradients).numpy(), cam, atol=1e-6)
    assert not methods.grad_cam(activations, -gradients * 0).any()


def test_vit_grad_cam_needs_the_last_blocks_first_norm(tiny_model_dirs):
    model = tf.ViTForImageClassification.from_pretrained(tiny_model_dirs["vit"], attn_implementation="eager")
    pixel_values = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    to_maps = methods.vit_tokens_to_maps(1, (4, 4))
    last = model.vit.layers[-1]
    cam, _ = methods.grad_cam_for(
        last.layernorm_before, lambda: model(pixel_values=pixel_values).logits, None, to_maps
    )
    assert cam.shape == (4, 4) and float(cam.max()) == 1.0 and float(cam.min()) == 0.0
    with pytest.raises(methods.NoGradientError, match="first norm of the last block"):
        methods.grad_cam_for(last, lambda: model(pixel_values=pixel_values).logits, None, to_maps)


def test_high_norm_tokens_flags_outliers_but_never_special_tokens():
    norms = torch.ones(2, 1 + 9)
    norms[:, 0] = 100.0  # CLS
    norms[1, 4] = 60.0
    flags = methods.high_norm_tokens(norms, special=1)
    assert flags.nonzero().tolist() == [[1, 4]]
    states = [torch.randn(1, 10, 8) for _ in range(3)]
    np.testing.assert_allclose(
        methods.token_norms(states).numpy(), np.stack([s[0].norm(dim=-1).numpy() for s in states]), rtol=1e-6
    )


def test_grad_cam_on_efficientnet_finds_the_cats_face():
    from skimage import data

    from attnwidget.pretrained import efficientnet_lite0

    classifier = efficientnet_lite0()
    pixel_values = classifier.preprocess(
        data.chelsea()
    )  # 451 x 300 -> resize 385 x 256 -> crop 224 at (80, 16)

    def forward():
        return classifier.model(pixel_values)

    layer = methods.last_spatial_layer(classifier.model, forward)
    cam, logits = methods.grad_cam_for(layer, forward)
    assert classifier.labels[int(logits.argmax())] in {"tabby", "tiger cat", "Egyptian cat"}
    assert cam.shape == (7, 7)  # the last feature maps before global pooling
    row, col = np.unravel_index(int(cam.argmax()), cam.shape)
    scale = 256 / 300
    x = ((col + 0.5) * 32 + 80) / scale  # centre of the arg-max cell, in the original picture
    y = ((row + 0.5) * 32 + 16) / scale
    assert 110 <= x <= 360 and 60 <= y <= 290, (
        x,
        y,
    )  # the face: eyes at (170, 115), (320, 135); nose (265, 240)
    with pytest.raises(ValueError, match="out of range"):
        methods.grad_cam_for(layer, forward, class_index=1000)


def test_pointing_game_of_rollout_and_gradient_rollout_on_the_built_in_model():
    """Measured on scenes the model never saw; the floors sit a few points under the measured figures
    (benchmarks and the model card give the full numbers)."""
    from PIL import Image

    from attnwidget.default_model import default_model
    from attnwidget.scenes import make_scene, pointing_hit

    vision = default_model()
    hits = {"rollout": 0, "gradient rollout": 0}
    scenes = [make_scene(seed) for seed in range(3_000_000, 3_000_100)]
    for scene in scenes:
        pixel_values, _ = vision.prepare(Image.fromarray(scene.image))

        def logits(pixel_values=pixel_values):
            return vision.model(pixel_values=pixel_values).logits

        with vision.eager_attention():  # it is loaded on sdpa, whose attention returns no weights
            attentions, gradients, _ = methods.attention_gradients(
                vision.attention_modules, vision.output_index, logits, scene.label
            )
        rollout = methods.token_map(methods.attention_rollout(attentions), 1, (12, 12))
        weighted = methods.token_map(methods.gradient_rollout(attentions, gradients), 1, (12, 12))
        hits["rollout"] += pointing_hit(rollout.numpy(), scene.mask)
        hits["gradient rollout"] += pointing_hit(weighted.numpy(), scene.mask)
    rates = {name: count / len(scenes) for name, count in hits.items()}
    print("pointing game on 100 held-out scenes:", rates)
    assert rates["rollout"] >= ROLLOUT_POINTING_FLOOR, rates
    assert rates["gradient rollout"] >= GRADIENT_ROLLOUT_POINTING_FLOOR, rates
