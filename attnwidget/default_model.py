"""The model the widget uses when the user gives none: a small ViT trained on `attnwidget.scenes`.

It ships inside the package (`attnwidget/weights/vit-8x8-shapes/`, fp16 safetensors, about 2 MB), so
it needs no download. `scripts/train_default_model.py` trains it; its model card (`README.md` in
that directory) gives the recipe and the measured accuracy and pointing game.

Checkpoints of the same training run ship too (`checkpoint_steps()`): `default_model(step=1000)` is
the model after 1000 steps. Their predictions go from often wrong to right, a real sweep for
comparison strips.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .models import VisionModel
from .transformers_support import quiet_weight_loading

DEFAULT_MODEL_NAME = "attnwidget/vit-8x8-shapes"
"""The name the widget shows for the default model."""

DEFAULT_MODEL_DIR = Path(__file__).parent / "weights" / "vit-8x8-shapes"
"""Where the weights, configs and model card live inside the installed package."""

CHECKPOINTS_DIR = "checkpoints"
"""Folder of `DEFAULT_MODEL_DIR` with the checkpoints, one `step-N` directory each."""


def checkpoint_steps() -> list[int]:
    """The training steps after which a checkpoint of the default model was saved, ascending."""
    folder = DEFAULT_MODEL_DIR / CHECKPOINTS_DIR
    steps = [int(path.name.removeprefix("step-")) for path in folder.glob("step-*") if path.is_dir()]
    return sorted(steps)


def default_model(step: int | None = None) -> VisionModel:
    """The shipped ViT (8 layers x 8 heads, patch 8, 96 x 96 input, six shape classes), fp32, on sdpa
    attention (its weights are computed beside it: `fast_attention`).

    Its labels are `attnwidget.scenes.CLASSES`; feed it scenes from `attnwidget.scenes.make_scene`.
    `step` picks one of the checkpoints saved during training (`checkpoint_steps()`) instead of the
    final model.
    """
    from transformers import ViTForImageClassification, ViTImageProcessorPil

    directory, name = DEFAULT_MODEL_DIR, DEFAULT_MODEL_NAME
    if step is not None:
        steps = checkpoint_steps()
        if step not in steps:
            raise ValueError(
                f"the default model has no checkpoint after step {step!r}: choose one of {steps}, "
                "or step=None for the final model"
            )
        directory, name = directory / CHECKPOINTS_DIR / f"step-{step}", f"{name}@step-{step}"
    with quiet_weight_loading():
        model = ViTForImageClassification.from_pretrained(
            directory, attn_implementation="sdpa", dtype=torch.float32
        )
    processor = ViTImageProcessorPil.from_pretrained(DEFAULT_MODEL_DIR)
    return VisionModel(model, processor, name=name)
