"""The ViT-B/16 the benchmarks measure: google/vit-base-patch16-224 shapes, seeded random init, eager."""

from __future__ import annotations

import torch
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

from attnwidget import VisionModel


def random_vit_b16(implementation: str = "eager") -> VisionModel:
    """ViT-B/16 at 224 x 224 (12 layers x 12 heads) with seeded random weights and its processor, on
    attention `implementation`."""
    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(attn_implementation=implementation)).eval()
    return VisionModel(model, ViTImageProcessorPil(), name="vit-base-patch16-224 (random init)")
