"""Every accepted image form becomes the same RGB picture; bad input gets an actionable error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from attnwidget.images import encode_jpeg, load_image

PIXELS = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


def test_all_forms_give_the_same_picture(tmp_path):
    path = tmp_path / "picture.png"
    Image.fromarray(PIXELS).save(path)
    forms = [
        path,
        str(path),
        Image.fromarray(PIXELS),
        PIXELS,
        PIXELS.astype(np.float32) / 255,
        torch.from_numpy(PIXELS).permute(2, 0, 1),  # C x H x W
        torch.from_numpy(PIXELS),  # H x W x C
        torch.from_numpy(PIXELS).permute(2, 0, 1)[None],  # 1 x C x H x W
    ]
    for form in forms:
        picture = load_image(form)
        assert picture.mode == "RGB" and picture.size == (30, 20)
        np.testing.assert_array_equal(np.asarray(picture), PIXELS)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_other_modes_become_rgb(mode):
    picture = load_image(Image.fromarray(PIXELS).convert(mode))
    assert picture.mode == "RGB" and picture.size == (30, 20)


def test_transparency_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    assert np.asarray(load_image(rgba)).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    Image.fromarray(PIXELS).save(path, exif=exif)
    assert load_image(path).size == (20, 30)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((4, 4, 2), dtype=np.uint8), "H x W x C"),
        (np.full((4, 4, 3), 2.0), r"\[0, 1\]"),
        (np.full((4, 4, 3), np.nan), "NaN"),
        (np.zeros((4, 4, 3), dtype=np.int64), "uint8 or float"),
        ({"not": "an image"}, "file path"),
        (np.zeros((0, 0, 3), dtype=np.uint8), "empty"),
        (Image.new("RGB", (0, 5)), "empty"),
    ],
)
def test_bad_arrays_and_objects_are_named(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        load_image(bad)


def test_jpeg_is_downscaled_to_the_longest_side():
    data = encode_jpeg(Image.fromarray(np.zeros((1000, 2000, 3), dtype=np.uint8)), max_side=500)
    assert data[:2] == b"\xff\xd8"
    import io

    assert Image.open(io.BytesIO(data)).size == (500, 250)
