"""The region the model saw, mapped back to the original picture, must line up with its content."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import transformers as tf
from PIL import Image

from attnwidget.geometry import input_geometry

PROCESSORS = {
    "vit (224 x 224, no crop)": lambda: tf.ViTImageProcessorPil(),
    "deit (256 x 256, centre crop 224)": lambda: tf.DeiTImageProcessorPil(),
    "clip (shortest edge 224, centre crop)": lambda: tf.CLIPImageProcessorPil(),
    "dinov2 (shortest edge 256, centre crop 224)": lambda: tf.BitImageProcessorPil(
        size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}
    ),
    "convnext (shortest edge 224 / crop_pct, centre crop)": lambda: tf.ConvNextImageProcessorPil(),
    "convnext (384: warped, no crop)": lambda: tf.ConvNextImageProcessorPil(size={"shortest_edge": 384}),
    "levit (shortest edge 256/224 x 224, centre crop)": lambda: tf.LevitImageProcessorPil(),
    "poolformer (crop_pct 0.9)": lambda: tf.PoolFormerImageProcessorPil(),
    "perceiver (centre crop, then resize)": lambda: tf.PerceiverImageProcessorPil(),
    "glpn (rounded to a multiple of 32)": lambda: tf.GLPNImageProcessorPil(),
}
SIZES = [(256, 256), (400, 240), (240, 400), (333, 517)]


def marker_picture(width: int, height: int, centre: tuple[int, int], side: int) -> Image.Image:
    pixels = np.full((height, width, 3), 40, dtype=np.uint8)
    x, y = centre
    pixels[y - side // 2 : y + side // 2, x - side // 2 : x + side // 2] = (255, 30, 30)
    return Image.fromarray(pixels)


def marker_centre(pixel_values: np.ndarray) -> tuple[float, float]:
    red = pixel_values[0] - pixel_values[1]
    ys, xs = np.nonzero(red > 0.5 * red.max())
    return xs.mean() + 0.5, ys.mean() + 0.5  # pixel centres


@pytest.mark.parametrize("name", PROCESSORS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_model_input_maps_back_onto_the_original(name, size):
    processor = PROCESSORS[name]()
    width, height = size
    centre = (int(width * 0.4), int(height * 0.55))  # inside every centre crop used here
    side = max(12, min(width, height) // 10)
    picture = marker_picture(width, height, centre, side)
    pixel_values = processor(images=picture, return_tensors="np")["pixel_values"][0]
    geometry = input_geometry(processor, picture.size)

    model_h, model_w = pixel_values.shape[1:]
    assert geometry.crop[2:] == (model_w, model_h)
    x0, y0, x1, y1 = geometry.crop_box
    found_x, found_y = marker_centre(pixel_values)
    back_x = (x0 + found_x / model_w * (x1 - x0)) * width
    back_y = (y0 + found_y / model_h * (y1 - y0)) * height
    tolerance = 1.5 * max(width / geometry.resized[0], height / geometry.resized[1])
    assert abs(back_x - centre[0]) <= tolerance
    assert abs(back_y - centre[1]) <= tolerance


@pytest.mark.parametrize("name", PROCESSORS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_patch_holding_the_object_covers_it_in_the_original(name, size):
    """A map bright only at the patch that holds an object lands on that object in the original."""
    processor = PROCESSORS[name]()
    width, height = size
    centre = (int(width * 0.6), int(height * 0.45))
    picture = marker_picture(width, height, centre, side=6)
    pixel_values = processor(images=picture, return_tensors="np")["pixel_values"][0]
    geometry = input_geometry(processor, picture.size)
    patch = 16
    grid = (pixel_values.shape[1] // patch, pixel_values.shape[2] // patch)
    found_x, found_y = marker_centre(pixel_values)
    row, col = int(found_y // patch), int(found_x // patch)

    bx0, by0, bx1, by1 = geometry.patch_box(grid, row, col)
    assert bx0 - 1 <= centre[0] <= bx1 + 1
    assert by0 - 1 <= centre[1] <= by1 + 1


def test_crop_box_of_a_centre_crop_is_centred_and_proportional():
    geometry = input_geometry(tf.CLIPImageProcessorPil(), (448, 224))
    assert geometry.resized == (448, 224)
    assert geometry.crop == (112, 0, 224, 224)
    assert geometry.crop_box == (0.25, 0.0, 0.75, 1.0)


def test_a_processor_that_pads_gives_a_warning_and_no_crop_box():
    processor = tf.Owlv2ImageProcessorPil(size={"height": 96, "width": 96})  # pads to a square
    with pytest.warns(UserWarning, match="cannot tell where Owlv2ImageProcessorPil's input lies"):
        geometry = input_geometry(processor, (120, 60))
    assert not geometry.known and geometry.crop_box == (0.0, 0.0, 1.0, 1.0)


def test_a_processor_that_fails_gives_a_warning_and_no_crop_box():
    def broken(images, return_tensors):
        raise KeyError("pixel_values")

    with pytest.warns(UserWarning, match=r"failed on a plain picture \(KeyError"):
        assert not input_geometry(broken, (10, 10)).known


def single_picture_processors() -> list[str]:
    """Every Pillow image processor of transformers' auto mapping (one class each)."""
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    names = {entry.get("pil") for entry in IMAGE_PROCESSOR_MAPPING_NAMES.values() if isinstance(entry, dict)}
    return sorted(name for name in names if name and hasattr(tf, name))


@pytest.mark.parametrize("name", single_picture_processors())
def test_every_processor_is_placed_where_its_input_lies_or_refused_with_a_warning(name):
    """Known: the marker is found where the geometry says. Unknown: a warning and no crop box."""
    try:
        processor = getattr(tf, name)()
        picture = marker_picture(400, 240, (180, 120), 24)
        pixel_values = np.asarray(processor(images=picture, return_tensors="np")["pixel_values"])
    except Exception as error:  # needs other inputs (pairs, boxes, text), another library, clusters...
        pytest.skip(f"{name} does not take a plain picture: {type(error).__name__}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        geometry = input_geometry(processor, picture.size)
    if not geometry.known:
        assert any("cannot tell where" in str(warning.message) for warning in caught)
        assert geometry.crop_box == (0.0, 0.0, 1.0, 1.0)
        return
    assert pixel_values.ndim == 4 and pixel_values.shape[:2] == (1, 3)
    model_h, model_w = pixel_values.shape[2:]
    assert geometry.crop[2:] == (model_w, model_h)
    x0, y0, x1, y1 = geometry.crop_box
    found_x, found_y = marker_centre(pixel_values[0])
    tolerance = 1.5 * max(400 / geometry.resized[0], 240 / geometry.resized[1]) + 1
    assert abs((x0 + found_x / model_w * (x1 - x0)) * 400 - 180) <= tolerance
    assert abs((y0 + found_y / model_h * (y1 - y0)) * 240 - 120) <= tolerance
