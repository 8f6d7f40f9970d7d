"""Vision-language models: the attention of each generated token over the picture.

`token_maps` and `anyres` (pure): every image token mapped back onto a picture-aligned canvas;
`families`: the rules of each supported family and where its canvas lies in the picture;
`generation`: the rows of each generated token over the image tokens, captured while the model
generates; `model`: `VisionLanguageModel`, the `Source` the grid shows; `looked`: head means per
layer and over layers, laid onto the picture (rollout does not apply: see `looked`).
"""

from .families import FAMILIES, SUPPORTED
from .model import Generation, VisionLanguageModel, is_vision_language_model
from .token_maps import ImageTokenMap, ImageTokenMismatchError

__all__ = [
    "FAMILIES",
    "SUPPORTED",
    "Generation",
    "ImageTokenMap",
    "ImageTokenMismatchError",
    "VisionLanguageModel",
    "is_vision_language_model",
]
