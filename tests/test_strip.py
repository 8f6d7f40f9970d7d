"""The comparison strip: grouping of predictions, where each part is drawn, and real variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from attnwidget import VisionModel, default_model, load_image
from attnwidget.explain import class_index, explain
from attnwidget.render import colormap_table
from attnwidget.strip import (
    TAG_COLOUR,
    Heatmap,
    Variant,
    comparison_strip,
    prediction_groups,
    strip_layout,
    vision_variant,
)

GREY = (128, 128, 128)
HALF_BRIGHT = np.concatenate([np.ones((4, 2)), np.zeros((4, 2))], axis=1)  # left half 1, right half 0


def near(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    """Which pixels lie within `tolerance` (sum of channel differences) of `colour`."""
    return np.abs(pixels.astype(int) - np.array(colour)).sum(axis=-1) <= tolerance


def fixed(tag: str, predicted: str, values: np.ndarray = HALF_BRIGHT, crop=(0.0, 0.0, 1.0, 1.0)) -> Variant:
    """A variant that always answers the same map and prediction, and records what it was asked."""
    asked: list[str | None] = []

    def explain_picture(picture: Image.Image, target: str | None) -> Heatmap:
        asked.append(target)
        return Heatmap(values, predicted, crop)

    variant = Variant(tag, explain_picture, ("A", "B", "truth"))
    object.__setattr__(variant, "asked", asked)
    return variant


@pytest.mark.parametrize(
    ("labels", "groups"),
    [
        (["A", "A", "B", "B"], [(0, 2, "A"), (2, 4, "B")]),
        (["A", "B", "A"], [(0, 1, "A"), (1, 2, "B"), (2, 3, "A")]),
        (["A"], [(0, 1, "A")]),
        ([], []),
    ],
)
def test_consecutive_equal_predictions_share_a_group(labels, groups):
    assert prediction_groups(labels) == groups


@pytest.fixture
def strip():
    variants = [fixed("8", "A"), fixed("16", "A"), fixed("32", "B"), fixed("2048", "B")]
    return comparison_strip(Image.new("RGB", (120, 80), GREY), variants, "truth")


def test_panels_groups_and_separators_lie_where_the_layout_says(strip):
    layout = strip_layout(strip, panel_height=120)
    (boxes,) = layout.panel_boxes
    assert len(boxes) == 5  # the picture, then one panel per variant
    assert all((x1 - x0, y1 - y0) == (180, 120) for x0, y0, x1, y1 in boxes)  # the picture's 3:2 kept
    picture, first, second, third, fourth = boxes
    assert first[0] > picture[2] and third[0] > second[2]  # a separator before each group
    assert second[0] == first[2] and fourth[0] == third[2]  # none inside a group
    (labels,) = layout.label_boxes
    assert [(x0, x1, label) for x0, _, x1, _, label in labels] == [
        (first[0], second[2], "A"),
        (third[0], fourth[2], "B"),
    ]
    image = np.asarray(strip.picture(panel_height=120))
    assert image.shape == (layout.size[1], layout.size[0], 3)
    separator_x = (picture[2] + first[0]) // 2
    assert (image[boxes[0][1] : boxes[0][3], separator_x] == 255).all()  # a thin white line


def test_heatmaps_use_the_colormap_over_the_picture(strip):
    layout = strip_layout(strip, panel_height=120)
    image = np.asarray(strip.picture(panel_height=120, alpha=1.0))
    viridis = colormap_table("viridis")
    for x0, y0, x1, y1 in layout.panel_boxes[0][1:]:
        quarter = (y1 - y0) // 4
        assert image[y0 + quarter, x0 + (x1 - x0) // 8].tolist() == viridis[255].tolist()  # the bright half
        assert image[y0 + quarter, x1 - (x1 - x0) // 8].tolist() == viridis[0].tolist()  # the dark half
    x0, y0, x1, y1 = layout.panel_boxes[0][0]
    assert image[y1 - 5, x1 - 5].tolist() == list(GREY)  # the first panel is the picture itself

    half = comparison_strip(
        Image.new("RGB", (120, 80), GREY), [fixed("crop", "A", crop=(0.5, 0, 1, 1))], "truth"
    )
    image = np.asarray(half.picture(panel_height=120, alpha=1.0))
    x0, y0, x1, y1 = strip_layout(half, panel_height=120).panel_boxes[0][1]
    assert image[y0 + 30, x0 + 20].tolist() == list(GREY)  # outside the crop the model saw
    assert image[y0 + 30, x0 + 100].tolist() == viridis[255].tolist()  # the map's left half, in the crop


def test_labels_are_drawn_in_their_places(strip):
    layout = strip_layout(strip, panel_height=240)
    image = np.asarray(strip.picture(panel_height=240)).astype(int)
    boxes = layout.panel_boxes[0]

    def region(box, fx0, fy0, fx1, fy1):
        x0, y0, x1, y1 = box[:4]
        w, h = x1 - x0, y1 - y0
        return image[y0 + int(fy0 * h) : y0 + int(fy1 * h), x0 + int(fx0 * w) : x0 + int(fx1 * w)]

    gt = region(boxes[0], 0, 0, 0.5, 0.3)  # "GT: truth", white on a black stroke, top-left
    assert (gt.min(axis=-1) > 230).sum() > 20 and (gt.max(axis=-1) < 30).sum() > 20
    assert (region(boxes[0], 0.5, 0.5, 1, 1) == GREY).all()
    for box in boxes[1:]:
        tag = region(box, 0, 0.75, 0.5, 1)  # the variant's tag in orange, bottom-left
        assert near(tag, TAG_COLOUR).sum() > 10
        assert not near(region(box, 0.5, 0, 1, 0.5), TAG_COLOUR).any()
    for x0, y0, x1, y1, _ in layout.label_boxes[0]:
        band = image[y0:y1, x0:x1]
        dark = band.max(axis=-1) < 100
        assert dark[: (y1 - y0) // 2, (x1 - x0) // 3 : 2 * (x1 - x0) // 3].sum() > 10  # the label, centred
        rows = dark.sum(axis=1)
        assert rows.max() > 0.9 * (x1 - x0)  # the double-headed arrow spans the group
        assert dark[:, :3].sum() == 0 and dark[:, -3:].sum() == 0  # and stops short of its edges


def test_several_pictures_make_several_rows_and_the_explained_class_is_chosen():
    variants = [fixed("a", "A"), fixed("b", "B")]
    pictures = [Image.new("RGB", (64, 64), GREY), Image.new("RGB", (32, 64), GREY)]
    strip = comparison_strip(pictures, variants, ["truth", "A"])
    layout = strip_layout(strip, panel_height=100)
    first, second = layout.panel_boxes
    assert second[0][1] > first[0][3]  # the second row below the first
    assert (second[1][2] - second[1][0]) == 50  # its own aspect (1:2)
    assert variants[0].asked == ["truth", "A"]  # the ground truth of each picture
    comparison_strip(pictures[0], variants, "truth", explained="prediction")
    assert variants[0].asked[-1] is None  # the variant explains its own prediction


def test_bad_strips_are_refused_and_nothing_is_half_written(strip, tmp_path):
    picture = Image.new("RGB", (32, 32))
    with pytest.raises(ValueError, match="at least one variant"):
        comparison_strip(picture, [], "truth")
    with pytest.raises(ValueError, match="'cat' is not a class of variant '8'"):
        comparison_strip(picture, [fixed("8", "A")], "cat")
    with pytest.raises(ValueError, match="2 pictures but 1 ground-truth labels"):
        comparison_strip([picture, picture], [fixed("8", "A")], ["truth"])
    with pytest.raises(ValueError, match="tags must differ"):
        comparison_strip(picture, [fixed("8", "A"), fixed("8", "B")], "truth")
    with pytest.raises(ValueError, match="explained must be"):
        comparison_strip(picture, [fixed("8", "A")], "truth", explained="gt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        strip.to_png(tmp_path / "missing" / "strip.png")
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(OSError):
        strip.to_png(tmp_path / "taken" / "strip.png")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken"]

    written = strip.to_png(tmp_path / "strip.png", dpi=300, panel_height=96)
    with Image.open(written) as image:
        assert image.size == strip_layout(strip, panel_height=96).size
        assert round(image.info["dpi"][0]) == 300
    assert sorted(path.name for path in tmp_path.iterdir()) == ["strip.png", "taken"]


def test_checkpoints_of_the_built_in_model_as_variants():
    from attnwidget.scenes import make_scene

    scene = make_scene(4_000_000)  # a cross the step-1000 checkpoint takes for a triangle
    picture = load_image(scene.image)
    models = {"step 1000": default_model(step=1000), "final": default_model()}
    variants = [vision_variant(tag, vision, "chefer") for tag, vision in models.items()]
    strip = comparison_strip(picture, variants, scene.class_name)
    for heatmap, vision in zip(strip.rows[0].heatmaps, models.values(), strict=True):
        pixel_values, geometry = vision.prepare(picture)
        with torch.no_grad():
            logits = vision.model(pixel_values=pixel_values).logits
        assert heatmap.predicted == vision.model.config.id2label[int(logits.argmax())]
        expected = explain(vision, pixel_values, "chefer", target=class_index(vision, scene.class_name))
        np.testing.assert_allclose(heatmap.map, expected.map.numpy(), rtol=1e-5, atol=1e-7)
        assert heatmap.crop_box == geometry.crop_box
    assert [h.predicted for h in strip.rows[0].heatmaps] == ["triangle", "cross"]


def test_a_vision_variant_needs_a_classification_head(tiny_model_dirs):
    headless = VisionModel.from_pretrained(tiny_model_dirs["clip-vision"])
    with pytest.raises(ValueError, match="no classification head"):
        vision_variant("clip", headless)
    with pytest.raises(ValueError, match="unknown method 'saliency'"):
        vision_variant("vit", VisionModel.from_pretrained(tiny_model_dirs["vit"]), "saliency")


def test_efficientnet_grad_cam_as_a_variant():
    from skimage import data

    from attnwidget.pretrained import efficientnet_lite0
    from attnwidget.strip import classifier_variant

    classifier = efficientnet_lite0()
    strip = comparison_strip(data.chelsea(), [classifier_variant("lite0", classifier)], "tiger cat")
    (heatmap,) = strip.rows[0].heatmaps
    expected = classifier.grad_cam(data.chelsea(), target="tiger cat")
    np.testing.assert_allclose(heatmap.map, expected.map, atol=1e-6)
    assert heatmap.predicted == expected.predictions[0].label
    assert heatmap.crop_box == pytest.approx((80 / 385, 16 / 256, 304 / 385, 240 / 256))
    with pytest.raises(ValueError, match="'sweatshirtt' is not a class of variant 'lite0'"):
        comparison_strip(data.chelsea(), [classifier_variant("lite0", classifier)], "sweatshirtt")


def test_the_strip_widget_holds_every_panel_full_size_with_its_caption(strip):
    import io

    widget = strip.widget(panel_height=120, full_size=200)
    layout = strip_layout(strip, panel_height=120)
    assert widget.boxes == [list(box) for box in layout.panel_boxes[0]]
    with Image.open(io.BytesIO(widget.picture)) as picture:
        assert picture.size == layout.size
    assert len(widget.panels) == len(widget.captions) == 5
    for panel in widget.panels:
        with Image.open(io.BytesIO(panel)) as image:
            assert image.size == (300, 200)  # the picture's 3:2, full size
    assert widget.captions[0] == "GT: truth"
    assert widget.captions[3] == "32: predicts B; the heatmap explains the ground truth"
    assert widget.selected == -1
