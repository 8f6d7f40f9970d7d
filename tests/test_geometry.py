"""The region the model saw, mapped back to the original picture, must line up with its content."""

from __future__ import annotations

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


def test_unsupported_size_rule_is_named():
    class Odd:
        do_resize = True

        def __init__(self):
            self.size = {"max_pixels": 10}

    with pytest.raises(ValueError, match="unsupported processor size"):
        input_geometry(Odd(), (10, 10))
