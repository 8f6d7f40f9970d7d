"""The shipped default model: loads offline, and reproduces its model card on scenes it never saw."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from attnwidget.default_model import (
    DEFAULT_MODEL_DIR,
    DEFAULT_MODEL_NAME,
    checkpoint_steps,
    default_model,
)
from attnwidget.models import VisionModel
from attnwidget.scenes import CLASSES, make_scene, pointing_hit

FRESH_SEEDS = range(2_000_000, 2_000_500)  # neither training (< 1,000,000) nor the card (1,000,000+)


def report() -> dict:
    return json.loads((DEFAULT_MODEL_DIR / "training.json").read_text())


def card() -> dict:
    return report()["held_out"]


@pytest.fixture(scope="module")
def vision() -> VisionModel:
    return default_model()


@pytest.fixture(scope="module")
def measured(vision: VisionModel) -> dict:
    """Predictions and last-layer CLS maps on 500 fresh scenes, through the widget's path."""
    scenes = [make_scene(seed) for seed in FRESH_SEEDS]
    pixel_values = torch.cat([vision.prepare(Image.fromarray(scene.image))[0] for scene in scenes])
    last: list[torch.Tensor] = []

    def keep_last_layer(layer: int, weights: torch.Tensor) -> None:
        if layer == vision.layer_count - 1:
            last.append(weights[:, :, 0, 1:].mean(dim=1))  # head mean of the CLS row, over patches

    outputs = vision.run(pixel_values, keep_last_layer)
    logits = outputs.logits
    grid = vision.layout(pixel_values).grid
    maps = last[0].reshape(-1, *grid).numpy()
    return {
        "labels": np.array([scene.label for scene in scenes]),
        "predicted": logits.argmax(-1).numpy(),
        "hits": np.array([pointing_hit(m, scene.mask) for m, scene in zip(maps, scenes, strict=True)]),
        "pixel_values": pixel_values,
        "scenes": scenes,
    }


def test_default_model_is_the_shipped_vit(vision):
    assert isinstance(vision, VisionModel) and vision.name == DEFAULT_MODEL_NAME
    assert (vision.layer_count, vision.head_count, vision.patch_size) == (8, 8, (8, 8))
    assert vision.model.config._attn_implementation == "sdpa" and vision.query_selection  # the fast path
    assert all(p.dtype == torch.float32 for p in vision.model.parameters())
    assert [vision.model.config.id2label[i] for i in range(len(CLASSES))] == list(CLASSES)


def test_shipped_files_are_small_fp16_and_documented():
    weights = DEFAULT_MODEL_DIR / "model.safetensors"
    assert weights.stat().st_size <= 5 * 1024 * 1024
    with safe_open(weights, "pt") as tensors:
        assert {tensors.get_slice(key).get_dtype() for key in tensors.keys()} == {"F16"}  # noqa: SIM118
    for name in ("config.json", "preprocessor_config.json", "README.md", "training.json"):
        assert (DEFAULT_MODEL_DIR / name).is_file(), name
    readme = (DEFAULT_MODEL_DIR / "README.md").read_text()
    assert "scripts/train_default_model.py" in readme and "pointing game" in readme.lower()


def test_processor_matches_the_training_normalisation(vision, measured):
    image = measured["scenes"][0].image
    expected = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(measured["pixel_values"][0], expected, atol=1e-5, rtol=0)


def test_accuracy_and_pointing_game_reproduce_the_model_card(measured):
    accuracy = float((measured["predicted"] == measured["labels"]).mean())
    pointing = float(measured["hits"].mean())
    assert accuracy >= 0.95, accuracy
    assert pointing >= 0.90, pointing
    figures = card()
    assert abs(accuracy - figures["accuracy"]) <= 0.03, (accuracy, figures["accuracy"])
    assert abs(pointing - figures["pointing_game"]) <= 0.04, (pointing, figures["pointing_game"])


def test_checkpoints_sweep_from_wrong_to_right(measured):
    steps = checkpoint_steps()
    assert len(steps) >= 3 and steps == sorted(steps)
    labels, final = measured["labels"], measured["predicted"]
    predicted = {}
    for step in steps:
        checkpoint = default_model(step=step)
        assert checkpoint.name == f"{DEFAULT_MODEL_NAME}@step-{step}"
        with torch.no_grad():
            predicted[step] = (
                checkpoint.model(pixel_values=measured["pixel_values"]).logits.argmax(-1).numpy()
            )
    accuracy = {step: float((predicted[step] == labels).mean()) for step in steps}
    final_accuracy = float((final == labels).mean())
    figures = report()["checkpoint_accuracy"]
    for step in steps:
        assert abs(accuracy[step] - figures[str(step)]) <= 0.05, (step, accuracy[step], figures[str(step)])
    assert accuracy[steps[0]] <= final_accuracy - 0.2, (accuracy, final_accuracy)
    for earlier, later in itertools.pairwise(steps):
        assert accuracy[later] >= accuracy[earlier] - 0.02, accuracy
    # A real sweep: many scenes are wrong at the first checkpoint and right at the end.
    wrong_then_right = (predicted[steps[0]] != labels) & (final == labels)
    assert wrong_then_right.sum() >= 50


def test_unknown_checkpoint_names_the_ones_there_are():
    with pytest.raises(ValueError, match=r"no checkpoint after step 7: choose one of \["):
        default_model(step=7)
