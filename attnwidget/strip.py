"""The comparison strip: one picture, several model variants, each with its heatmap and prediction.

The layout of Figure 9 of Kusupati et al. (2022, "Matryoshka Representation Learning"): the picture
labelled `GT: <label>`, then one heatmap overlay per variant with its tag at the bottom-left. Above
the overlays, each variant's predicted label; consecutive variants with the same prediction share
one label with a double-headed arrow spanning them, and a thin white line separates the groups.
Several pictures make several rows.

A variant is anything that maps a picture (and the class to explain, or None for its prediction)
to a `Heatmap`: `classifier_variant` (Grad-CAM of a CNN), `vision_variant` (a method of
`attnwidget.explain` on a vision transformer) or any callable of your own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anywidget
import numpy as np
import torch
import traitlets
from PIL import Image, ImageDraw, ImageFont

from .bundle import read_bundle
from .contract import GRADIENT_METHODS, METHODS
from .explain import class_index, explain
from .images import ImageLike, encode_jpeg, load_image
from .models import VisionModel
from .render import overlay_picture, png_bytes, save_png

ExplainedClass = Literal["ground-truth", "prediction"]
TAG_COLOUR = (255, 153, 0)


@dataclass(frozen=True)
class Heatmap:
    """What a variant gives for one picture: a map over the region its model saw, and its prediction."""

    map: np.ndarray
    """[h, w]; any range, scaled to [0, 1] for display."""
    predicted: str
    crop_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    """The region the map covers, as fractions (x0, y0, x1, y1) of the picture."""


Explainer = Callable[[Image.Image, "str | None"], Heatmap]
"""(picture, class to explain or None for the predicted one) -> Heatmap."""


@dataclass(frozen=True)
class Variant:
    """One column of the strip: a tag (like "8" or "step 1000") and how it explains a picture."""

    tag: str
    explain: Explainer
    classes: tuple[str, ...] | None = None
    """The class names the variant knows, to check the ground truth against; None to skip the check."""


def classifier_variant(tag: str, classifier: Any, layer: torch.nn.Module | None = None) -> Variant:
    """Grad-CAM of a CNN `attnwidget.pretrained.ImageClassifier`, at `layer` (default: its last
    feature maps)."""

    def explain_picture(picture: Image.Image, target: str | None) -> Heatmap:
        cam = classifier.grad_cam(picture, target=target, layer=layer, top_k=1)
        return Heatmap(cam.map, cam.predictions[0].label, classifier.crop_box(picture.size))

    return Variant(str(tag), explain_picture, tuple(classifier.labels))


def vision_variant(tag: str, vision: VisionModel, method: str = "rollout") -> Variant:
    """A method of `attnwidget.explain` ("rollout", "head-mean" for the last layer's CLS attention,
    "grad-cam", "gradient-rollout", "chefer", ...) on a vision transformer with a classification head.
    Only the gradient methods depend on the class explained."""
    if method not in METHODS or method == "attention":
        choices = ", ".join(name for name in METHODS if name != "attention")
        raise ValueError(f"unknown method {method!r}: choose one of {choices}")
    labels = dict(getattr(vision.model.config, "id2label", None) or {})
    if not labels or not _has_logits(vision):
        raise ValueError(f"{vision.name} has no classification head: a strip needs each variant's prediction")

    def explain_picture(picture: Image.Image, target: str | None) -> Heatmap:
        pixel_values, geometry = vision.prepare(picture)
        # One forward gives the prediction and the attention the attention methods need.
        attentions: list[torch.Tensor] = []
        outputs = vision.capture_batch(
            pixel_values, lambda _, weights: attentions.append(weights[0].float().cpu())
        )
        predicted = labels[int(outputs.logits[0].argmax())]
        chosen = None if method not in GRADIENT_METHODS else class_index(vision, target or predicted)
        explanation = explain(vision, pixel_values, method, target=chosen, attentions=attentions)
        return Heatmap(explanation.map.float().cpu().numpy(), predicted, geometry.crop_box)

    return Variant(str(tag), explain_picture, tuple(labels[i] for i in sorted(labels)))


def prediction_groups(labels: Sequence[str]) -> list[tuple[int, int, str]]:
    """Runs of equal consecutive labels as (start, stop, label), stop exclusive.

    [A, A, B] -> [(0, 2, A), (2, 3, B)]; [A, B, A] -> three runs.
    """
    groups: list[tuple[int, int, str]] = []
    for index, label in enumerate(labels):
        if groups and groups[-1][2] == label:
            groups[-1] = (groups[-1][0], index + 1, label)
        else:
            groups.append((index, index + 1, label))
    return groups


@dataclass(frozen=True)
class StripRow:
    """One picture of a strip: its ground-truth label and each variant's heatmap."""

    picture: Image.Image
    ground_truth: str
    heatmaps: tuple[Heatmap, ...]


@dataclass(frozen=True)
class Strip:
    """A computed comparison strip: variant tags and one row per picture. Draw it with `picture()`."""

    tags: tuple[str, ...]
    rows: tuple[StripRow, ...]
    explained: ExplainedClass

    def picture(self, **options: Any) -> Image.Image:
        """The strip as an RGB picture; `options` go to `strip_picture`."""
        return strip_picture(self, **options)

    def _repr_png_(self) -> bytes:
        return png_bytes(self.picture())

    def widget(self, *, panel_height: int = 224, full_size: int = 512, **options: Any) -> StripWidget:
        """The strip as a widget: click a panel to see it `full_size` pixels high; "Save PNG" downloads it.

        `options` go to `strip_picture` (`alpha`, `colormap`, `font_size`).
        """
        return StripWidget(self, panel_height=panel_height, full_size=full_size, **options)

    def to_png(self, path: str | Path, *, dpi: int = 300, **options: Any) -> Path:
        """Write the strip as a PNG at `dpi`; an unwritable path raises and leaves no partial file."""
        return save_png(self.picture(**options), path, dpi=dpi)


def comparison_strip(
    images: ImageLike | Sequence[ImageLike],
    variants: Sequence[Variant],
    ground_truth: str | Sequence[str],
    *,
    explained: ExplainedClass = "ground-truth",
) -> Strip:
    """Explain each picture with each variant: the heatmap explains the ground-truth class (as in the
    figure) or each variant's own prediction (`explained="prediction"`).

    `images` is one picture or a list (one row each); `ground_truth` one label or one per picture.
    """
    if not variants:
        raise ValueError("a strip needs at least one variant: give a list of Variant")
    if explained not in ("ground-truth", "prediction"):
        raise ValueError(f"explained must be 'ground-truth' or 'prediction', not {explained!r}")
    pictures = [images] if _is_single_image(images) else list(images)  # type: ignore[arg-type]
    truths = [ground_truth] * len(pictures) if isinstance(ground_truth, str) else list(ground_truth)
    if not pictures:
        raise ValueError("a strip needs at least one picture")
    if len(truths) != len(pictures):
        raise ValueError(
            f"{len(pictures)} pictures but {len(truths)} ground-truth labels: give one per picture"
        )
    tags = [variant.tag for variant in variants]
    if len(set(tags)) != len(tags):
        raise ValueError(f"variant tags must differ, got {tags}")
    for variant in variants:
        unknown = sorted(
            {truth for truth in truths if variant.classes is not None and truth not in variant.classes}
        )
        if unknown:
            raise ValueError(
                f"ground truth {', '.join(map(repr, unknown))} is not a class of variant {variant.tag!r}: "
                "every variant must know the ground-truth class (variants with other label spaces "
                "cannot share a strip)"
            )
    rows = []
    for image, truth in zip(pictures, truths, strict=True):
        picture = load_image(image)
        target = truth if explained == "ground-truth" else None
        heatmaps = tuple(variant.explain(picture, target) for variant in variants)
        rows.append(StripRow(picture, truth, heatmaps))
    return Strip(tuple(tags), tuple(rows), explained)


# --- drawing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StripLayout:
    """Where the parts of a strip picture lie, in pixels (boxes are x0, y0, x1, y1, exclusive)."""

    panel_boxes: tuple[tuple[tuple[int, int, int, int], ...], ...]
    """Per row: the picture panel, then one panel per variant."""
    label_boxes: tuple[tuple[tuple[int, int, int, int, str], ...], ...]
    """Per row: the band above each group of equal predictions, with its label."""
    size: tuple[int, int]
    font_size: int
    """Of every label."""


def strip_layout(strip: Strip, panel_height: int = 224, font_size: int | None = None) -> StripLayout:
    """The layout of `strip_picture` for the same arguments."""
    font_size = font_size or max(10, panel_height // 10)
    separator = max(2, panel_height // 112)
    band = 2 * font_size + 3 * separator + 6
    panel_rows, label_rows = [], []
    width = 0
    y = 0
    for row in strip.rows:
        aspect = row.picture.width / row.picture.height
        panel_width = max(1, round(panel_height * aspect))
        groups = prediction_groups([heatmap.predicted for heatmap in row.heatmaps])
        top = y + band
        boxes = [(0, top, panel_width, top + panel_height)]
        x = panel_width
        labels = []
        for start, stop, label in groups:
            x += separator
            first = x
            for _ in range(start, stop):
                boxes.append((x, top, x + panel_width, top + panel_height))
                x += panel_width
            labels.append((first, y, x, top, label))
        panel_rows.append(tuple(boxes))
        label_rows.append(tuple(labels))
        width = max(width, x)
        y = top + panel_height + separator
    return StripLayout(tuple(panel_rows), tuple(label_rows), (width, y - separator), font_size)


def strip_picture(
    strip: Strip,
    *,
    panel_height: int = 224,
    alpha: float = 0.5,
    colormap: str = "viridis",
    font_size: int | None = None,
) -> Image.Image:
    """The strip as an RGB picture: panels `panel_height` pixels high (the picture's aspect kept), the
    heatmaps blended over the picture with opacity `alpha` in `colormap`, labels in `font_size` px."""
    layout = strip_layout(strip, panel_height, font_size)
    font_size = layout.font_size
    font = ImageFont.load_default(size=font_size)
    stroke = max(1, font_size // 8)
    canvas = Image.new("RGB", layout.size, "white")
    draw = ImageDraw.Draw(canvas)
    for row, boxes, labels in zip(strip.rows, layout.panel_boxes, layout.label_boxes, strict=True):
        size = (boxes[0][2] - boxes[0][0], boxes[0][3] - boxes[0][1])
        base = row.picture.resize(size, Image.Resampling.LANCZOS)
        canvas.paste(base, boxes[0][:2])
        margin = font_size // 2
        draw.text(
            (boxes[0][0] + margin, boxes[0][1] + margin),
            f"GT: {row.ground_truth}",
            fill="white",
            font=font,
            stroke_width=stroke,
            stroke_fill="black",
        )
        for tag, heatmap, box in zip(strip.tags, row.heatmaps, boxes[1:], strict=True):
            canvas.paste(
                overlay_picture(base, heatmap.map, heatmap.crop_box, alpha=alpha, colormap=colormap), box[:2]
            )
            draw.text(
                (box[0] + margin, box[3] - margin),
                tag,
                fill=TAG_COLOUR,
                font=font,
                anchor="ld",
                stroke_width=stroke,
                stroke_fill="black",
            )
        for x0, y0, x1, y1, label in labels:
            _label_with_arrow(draw, (x0, y0, x1, y1), label, font)
    return canvas


def _label_with_arrow(
    draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], label: str, font: ImageFont.FreeTypeFont
) -> None:
    """`label` centred at the top of `box`, above a double-headed arrow spanning the box."""
    x0, y0, x1, y1 = box
    size = int(font.size)
    draw.text(((x0 + x1) / 2, y0 + 2), label, fill="black", font=font, anchor="ma")
    y = y1 - size // 2 - 2
    head = max(4, size // 3)
    left, right = x0 + head, x1 - head  # apart from the next group's arrow
    draw.line([(left + head, y), (right - head, y)], fill="black", width=max(1, size // 10))
    draw.polygon(
        [(left, y), (left + head, y - head // 2 - 1), (left + head, y + head // 2 + 1)], fill="black"
    )
    draw.polygon(
        [(right, y), (right - head, y - head // 2 - 1), (right - head, y + head // 2 + 1)], fill="black"
    )


def _has_logits(vision: VisionModel) -> bool:
    """Whether the model returns class logits (runs it once on a blank picture)."""
    pixel_values, _ = vision.prepare(Image.new("RGB", (64, 64)))
    with torch.no_grad():
        return getattr(vision.model(pixel_values=pixel_values), "logits", None) is not None


def _is_single_image(images: Any) -> bool:
    if isinstance(images, (str, Path, Image.Image)):
        return True
    return isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim in (2, 3)


class StripWidget(anywidget.AnyWidget):
    """A comparison strip in a notebook: the picture of `strip_picture`, each panel full size on a
    click, with its caption as text, and a "Save PNG" button that downloads the strip."""

    # The module's text, not its path: for a path anywidget keeps every instance alive (to reload the
    # file when it changes), so closed widgets would never be freed.
    _esm = read_bundle("strip.js")

    picture = traitlets.Bytes(b"").tag(sync=True)
    """The strip as PNG bytes."""
    boxes = traitlets.List(traitlets.List(traitlets.Int())).tag(sync=True)
    """[x0, y0, x1, y1] of every panel in the picture's pixels, row by row."""
    panels = traitlets.List(traitlets.Bytes()).tag(sync=True)
    """Each panel full size, as JPEG bytes, in the order of `boxes`."""
    captions = traitlets.List(traitlets.Unicode()).tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    """The panel shown full size, -1 for none."""
    file_name = traitlets.Unicode("comparison-strip").tag(sync=True)

    def __init__(self, strip: Strip, *, panel_height: int = 224, full_size: int = 512, **options: Any):
        super().__init__()
        layout = strip_layout(strip, panel_height, options.get("font_size"))
        blend = {"alpha": options.get("alpha", 0.5), "colormap": options.get("colormap", "viridis")}
        panels, captions = [], []
        for row in strip.rows:
            scale = full_size / row.picture.height
            large = row.picture.resize(
                (max(1, round(row.picture.width * scale)), full_size), Image.Resampling.LANCZOS
            )
            panels.append(encode_jpeg(large, max_side=max(large.size)))
            captions.append(f"GT: {row.ground_truth}")
            explained = "the ground truth" if strip.explained == "ground-truth" else "its prediction"
            for tag, heatmap in zip(strip.tags, row.heatmaps, strict=True):
                overlay = overlay_picture(large, heatmap.map, heatmap.crop_box, **blend)
                panels.append(encode_jpeg(overlay, max_side=max(overlay.size)))
                captions.append(f"{tag}: predicts {heatmap.predicted}; the heatmap explains {explained}")
        with self.hold_sync():
            self.picture = png_bytes(strip.picture(panel_height=panel_height, **options))
            self.boxes = [list(box) for row in layout.panel_boxes for box in row]
            self.panels = panels
            self.captions = captions

    def close(self) -> None:
        """Close the widget and its Layout widget (ipywidgets keeps every open widget alive)."""
        self.layout.close()
        super().close()
