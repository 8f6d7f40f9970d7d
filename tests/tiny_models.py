"""Random-init vision transformers of the real architectures, small enough for CPU tests.

Each is saved with `save_pretrained` and loaded back with `from_pretrained(dir)`, so tests go
through the same loading path as a hub checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as tf

SHAPE = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 64}


def _vit():
    config = tf.ViTConfig(image_size=32, patch_size=8, num_labels=5, **SHAPE)
    return tf.ViTForImageClassification(config), tf.ViTImageProcessor(size={"height": 32, "width": 32})


def _deit_distilled():
    config = tf.DeiTConfig(image_size=32, patch_size=8, num_labels=5, **SHAPE)
    processor = tf.DeiTImageProcessor(size={"height": 40, "width": 40}, crop_size={"height": 32, "width": 32})
    return tf.DeiTForImageClassificationWithTeacher(config), processor


def _dinov2_registers():
    config = tf.Dinov2WithRegistersConfig(image_size=28, patch_size=7, num_register_tokens=4, **SHAPE)
    processor = tf.BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28})
    return tf.Dinov2WithRegistersModel(config), processor


def _beit():
    config = tf.BeitConfig(
        image_size=32, patch_size=8, use_relative_position_bias=True, num_labels=5, **SHAPE
    )
    return tf.BeitForImageClassification(config), tf.BeitImageProcessor(size={"height": 32, "width": 32})


def _clip_vision():
    config = tf.CLIPVisionConfig(image_size=32, patch_size=8, **SHAPE)
    processor = tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return tf.CLIPVisionModel(config), processor


def _siglip_vision():
    config = tf.SiglipVisionConfig(image_size=32, patch_size=8, **SHAPE)
    return tf.SiglipVisionModel(config), tf.SiglipImageProcessor(size={"height": 32, "width": 32})


ARCHITECTURES = {
    "vit": (_vit, ("CLS",)),
    "deit-distilled": (_deit_distilled, ("CLS", "DIST")),
    "dinov2-registers": (_dinov2_registers, ("CLS", "reg1", "reg2", "reg3", "reg4")),
    "beit": (_beit, ("CLS",)),
    "clip-vision": (_clip_vision, ("CLS",)),
    "siglip-vision": (_siglip_vision, ()),
}


def save_tiny_model(name: str, directory: Path, seed: int = 0, labels: list[str] | None = None) -> Path:
    """Build architecture `name` with seeded random weights and save it (model + processor) to `directory`.

    `labels` replace a classifier's class names (one per class).
    """
    build, _ = ARCHITECTURES[name]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model, processor = build()
    if labels is not None:
        assert len(labels) == model.config.num_labels, f"{name} has {model.config.num_labels} classes"
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {label: index for index, label in enumerate(labels)}
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def attnwidget_hooks(model: torch.nn.Module) -> list[str]:
    """Modules of `model` that still hold a forward hook of attnwidget's (transformers' own output
    recorders, installed once a model is asked for its attentions, are not counted)."""
    return [
        name
        for name, module in model.named_modules()
        if any(
            getattr(hook, "__module__", "").startswith("attnwidget")
            for hook in module._forward_hooks.values()
        )
    ]
