"""Every vision architecture of the installed transformers that has an image processor, as a small
random-init model, and what attnwidget makes of it: shown or refused with its reason.

The families come from transformers' auto mappings, so the matrix follows new releases by itself.
Vision-language models (a config with a text part) are left to their own tests. Print the table:

    .venv/bin/python tests/vision_matrix.py
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import transformers as tf
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    MODEL_MAPPING_NAMES,
)

from attnwidget import AttentionGrid
from attnwidget.attention_probe import patches_in_order
from attnwidget.capture import capture_attention
from attnwidget.encode import decode_rows
from attnwidget.errors import UnsupportedModelError
from attnwidget.windowed_model import WindowedVisionModel

#: What a small model of any family is shrunk to, where its config has these numbers.
SMALL = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 8,
    "embed_dim": 16,
}
_WINDOWS = {
    "image_size": 32,
    "patch_size": 4,
    "embed_dim": 16,
    "depths": [2, 1],  # the second layer of the first stage shifts its windows
    "num_heads": [1, 2],
    "window_size": 4,
}
_STAGES = {"hidden_sizes": [8, 16], "depths": [1, 1], "num_stages": 2}
#: Families whose config the generic shrinking breaks, built from these settings instead.
FAMILY_CONFIGS = {
    "swin": _WINDOWS,
    "donut-swin": _WINDOWS,
    "swinv2": _WINDOWS,
    "convnext": _STAGES,
    "convnextv2": _STAGES,
    "levit": {
        "image_size": 64,
        "hidden_sizes": [16, 32, 48],
        "num_attention_heads": [1, 2, 3],
        "depths": [1, 1, 1],
        "key_dim": [8, 8, 8],
    },
    "pixtral": {**{key: SMALL[key] for key in SMALL if key != "embed_dim"}, "head_dim": 16},
}
#: Larger models (the config keeps them large) are left out: they would not fit a test machine.
MAX_PARAMETERS = 40_000_000
PICTURE = np.random.default_rng(11).integers(0, 256, (40, 52, 3), dtype=np.uint8)


@dataclass(frozen=True)
class Outcome:
    family: str
    kind: str  # "shown", "refused" or "not built"
    detail: str


def vision_families() -> list[str]:
    """Model types with an image processor and a model class, whose config has no text part."""
    families = []
    for family in sorted(IMAGE_PROCESSOR_MAPPING_NAMES):
        if family not in MODEL_MAPPING_NAMES or family not in CONFIG_MAPPING:
            continue
        if getattr(CONFIG_MAPPING[family](), "text_config", None) is None:
            families.append(family)
    return families


def small_model(family: str) -> torch.nn.Module:
    """A random-init model of `family` (its classifier where it has one), shrunk where it can be;
    one that stays over `MAX_PARAMETERS` is not built (its size is read on the meta device first)."""
    settings = FAMILY_CONFIGS.get(family)
    config = CONFIG_MAPPING[family](**settings) if settings else _shrunk(CONFIG_MAPPING[family]())
    names = MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES.get(family) or MODEL_MAPPING_NAMES[family]
    model_class = getattr(tf, names[0] if isinstance(names, (tuple, list)) else names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.device("meta"):
            parameters = sum(p.numel() for p in model_class._from_config(config).parameters())
        if parameters > MAX_PARAMETERS:
            raise MemoryError(f"{parameters / 1e6:.0f}M parameters even when shrunk")
        return model_class._from_config(config, attn_implementation="eager").eval()


def outcome(family: str) -> Outcome:
    """Shown (and checked against the model's own attention), refused with its reason, or not built."""
    try:
        model = small_model(family)
    except Exception as error:  # an optional library, or a config that cannot be this small
        return Outcome(family, "not built", f"{type(error).__name__}: {_first_line(error)}")
    size = _pair(getattr(getattr(model, "config", None), "image_size", None) or 224)
    processor = tf.ViTImageProcessorPil(size={"height": size[0], "width": size[1]})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grid = AttentionGrid(model, PICTURE, processor=processor)
    except UnsupportedModelError as error:
        return Outcome(family, "refused", _first_line(error))
    check_shown(grid)
    return Outcome(family, "shown", f"{grid.special_tokens} + {grid.grid[0]} x {grid.grid[1]} patches")


def check_shown(grid: AttentionGrid) -> None:
    """The grid's maps equal the model's own `output_attentions`, and its layout accounts for every key."""
    vision = grid.vision_model
    pixel_values, _ = vision.prepare(__import__("attnwidget").load_image(PICTURE))
    raw: list[torch.Tensor] = []
    with (
        torch.no_grad(),
        vision.eager_attention(),
        patches_in_order(vision.model, vision.forward_module) as extra_inputs,  # MAE: as captured
        capture_attention(vision.attention_modules, vision.output_index, lambda _, w: raw.append(w)),
    ):
        outputs = vision.forward_module(
            pixel_values=pixel_values, output_attentions=True, **extra_inputs(pixel_values)
        )
    assert grid.status == "done", grid.message
    special = len(grid.special_tokens)
    gh, gw = grid.grid
    assert grid.token_count == special + gh * gw
    query = grid.query
    if isinstance(vision, WindowedVisionModel):
        # Some families report one layer a stage: that one is what the capture took of it.
        assert any(torch.equal(raw[-1], reported) for reported in outputs.attentions)
        assert all(layer.shape[0] * layer.shape[-1] == gh * gw for layer in raw)  # whole windows
        layers = [vision.spread(layer, pixel_values, weights) for layer, weights in enumerate(raw)]
    else:
        layers = [layer[0] for layer in outputs.attentions]
        assert all(layer.shape[-1] == grid.token_count for layer in layers)
    expected = torch.stack([layer[:, query].mean(dim=1)[:, special:] for layer in layers]).numpy()
    maps = decode_rows(grid.maps, grid.maps_range, gh * gw).reshape(expected.shape)
    step = (expected.max(-1, keepdims=True) - expected.min(-1, keepdims=True)) / 255
    assert (np.abs(maps - expected) <= step / 2 + 1e-6).all()


def _shrunk(config):
    for key, value in SMALL.items():
        if isinstance(getattr(config, key, None), int):
            setattr(config, key, value)
    if isinstance(getattr(config, "depths", None), (list, tuple)):
        config.depths = [1] * len(config.depths)
    if isinstance(getattr(config, "num_heads", None), (list, tuple)):
        config.num_heads = [1] + [2] * (len(config.num_heads) - 1)
    for part in ("vision_config", "backbone_config"):
        if hasattr(getattr(config, part, None), "to_dict"):
            _shrunk(getattr(config, part))
    return config


def _pair(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _table_row(family: str) -> Outcome:
    try:
        return outcome(family)
    except Exception as error:  # the test fails on these; the table shows them
        return Outcome(family, "error", f"{type(error).__name__}: {_first_line(error)}")


if __name__ == "__main__":
    results = [_table_row(family) for family in vision_families()]
    for kind in ("shown", "refused", "not built", "error"):
        chosen = [result for result in results if result.kind == kind]
        print(f"\n{kind}: {len(chosen)}")
        for result in chosen:
            print(f"  {result.family:22s} {result.detail[:150]}")
