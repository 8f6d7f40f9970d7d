"""What the grid is given as a model, turned into a `Source`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .models import UnsupportedModelError, VisionModel
from .source import Source
from .timm_source import TimmModel, is_timm_model
from .windowed_model import WindowedVisionModel, has_shifted_windows


def as_source(model: Any, processor: Any = None) -> Source:
    """The `Source` given (a `VisionModel`, a `TextModel` or any other), a `TimmModel` for a timm
    model (`processor`: its transform, timm's eval transform by default), or a `VisionModel` from a hub
    id, a local directory, a loaded transformers model (with its `processor`), or None (the built-in
    default)."""
    if isinstance(model, Source):
        return model
    if model is None:
        from .default_model import default_model

        return default_model()
    if isinstance(model, (str, Path)):
        if _names_vision_language_model(model):
            from .vlm import VisionLanguageModel

            return VisionLanguageModel.from_pretrained(model, processor=processor)
        return VisionModel.from_pretrained(model, processor)
    if is_timm_model(model):
        return TimmModel(model, processor)
    from .pretrained import ImageClassifier

    if isinstance(model, ImageClassifier):
        raise UnsupportedModelError(
            f"{type(model.model).__name__} is a CNN: it has no attention for the grid to show. "
            "Its Grad-CAM: `classifier.grad_cam(image)`"
        )
    from .vlm import VisionLanguageModel, is_vision_language_model
    from .vlm.families import family_of

    if is_vision_language_model(model):
        if processor is None:
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(model.name_or_path)
        return VisionLanguageModel(model, processor)
    if _generates_from_pictures(model):  # a family not mapped: its reason, not a vision encoder's
        family_of(model)
    if has_shifted_windows(model):
        return WindowedVisionModel(model, processor)
    return VisionModel(model, processor)


def _names_vision_language_model(name_or_path: str | Path) -> bool:
    """Whether the config at a hub id or directory is of a vision-language family attnwidget maps."""
    from .transformers_support import load_config
    from .vlm.families import FAMILIES

    try:
        config = load_config(name_or_path)
    except Exception:  # VisionModel.from_pretrained names the problem
        return False
    return getattr(config, "model_type", None) in FAMILIES


def _generates_from_pictures(model: Any) -> bool:
    """Whether `model` writes text about a picture (a vision tower inside a model that generates)."""
    can_generate = getattr(model, "can_generate", None)
    config = getattr(model, "config", None)
    return hasattr(config, "vision_config") and callable(can_generate) and bool(can_generate())
