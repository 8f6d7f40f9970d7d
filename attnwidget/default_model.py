"""The model the widget uses when the user gives none; it needs no download."""

from __future__ import annotations

import torch
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

from .models import VisionModel

DEFAULT_MODEL_NAME = "attnwidget/vit-8x8-untrained"


def default_model() -> VisionModel:
    """A seeded random-init ViT (8 layers x 8 heads, patch 8, 96 x 96 input).

    Its weights are untrained, so its attention shows the plumbing, not learned structure; it is
    built in memory the same way every time and leaves the global random state untouched.
    """
    config = ViTConfig(
        image_size=96,
        patch_size=8,
        hidden_size=128,
        num_hidden_layers=8,
        num_attention_heads=8,
        intermediate_size=256,
        attn_implementation="eager",
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ViTForImageClassification(config)
    processor = ViTImageProcessorPil(size={"height": 96, "width": 96}, image_mean=0.5, image_std=0.5)
    return VisionModel(model, processor, name=DEFAULT_MODEL_NAME)
