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
        return VisionModel.from_pretrained(model, processor)
    if is_timm_model(model):
        return TimmModel(model, processor)
    from .pretrained import ImageClassifier

    if isinstance(model, ImageClassifier):
        raise UnsupportedModelError(
            f"{type(model.model).__name__} is a CNN: it has no attention for the grid to show. "
            "Its Grad-CAM: `classifier.grad_cam(image)`"
        )
    if has_shifted_windows(model):
        return WindowedVisionModel(model, processor)
    return VisionModel(model, processor)
