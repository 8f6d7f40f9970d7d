"""The scene generator: deterministic, masks match what is drawn, balanced labels, clear errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from attnwidget.scenes import (
    CLASSES,
    SceneDataset,
    class_label,
    make_scene,
    pointing_hit,
    scene_batch,
)


def test_same_seed_same_scene_and_different_seeds_differ():
    first, again, other = make_scene(123), make_scene(123), make_scene(124)
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.mask, again.mask)
    assert (first.label, first.class_name, first.colour) == (again.label, again.class_name, again.colour)
    assert not np.array_equal(first.image, other.image)


@pytest.mark.parametrize("size", [96, 128])
def test_scene_has_the_promised_types_and_shapes(size):
    scene = make_scene(5, size=size)
    assert scene.image.shape == (size, size, 3) and scene.image.dtype == np.uint8
    assert scene.mask.shape == (size, size) and scene.mask.dtype == bool
    assert scene.background.shape == scene.image.shape
    assert CLASSES[scene.label] == scene.class_name
    assert scene.mask.sum() > 0.01 * size * size


@pytest.mark.parametrize("seed", range(0, 60, 7))
def test_mask_matches_the_drawn_object(seed):
    scene = make_scene(seed)
    # Every mask pixel has exactly the object's colour.
    assert (scene.image[scene.mask] == scene.colour).all()
    # Outside the mask and the distractors the image is the untouched background photo...
    rest = ~scene.mask & ~scene.distractor_mask
    assert np.array_equal(scene.image[rest], scene.background[rest])
    # ...and within the object's bounding box nothing but the object and the background is drawn.
    x0, y0, x1, y1 = scene.bbox
    assert not scene.distractor_mask[y0:y1, x0:x1][~scene.mask[y0:y1, x0:x1]].any()
    # Distractors keep clear of the object: no distractor pixel touches the mask.
    grown = scene.mask.copy()
    grown[1:] |= scene.mask[:-1]
    grown[:-1] |= scene.mask[1:]
    grown[:, 1:] |= scene.mask[:, :-1]
    grown[:, :-1] |= scene.mask[:, 1:]
    assert not (grown & scene.distractor_mask).any()


def test_the_mask_has_the_form_of_its_class():
    ring = make_scene(0, class_name="ring", distractors=0)
    cx, cy = ring.centre
    assert not ring.mask[int(cy), int(cx)]  # a ring has a hole in its middle
    circle = make_scene(0, class_name="circle", distractors=0)
    assert circle.mask[int(cy), int(cx)]
    # Same seed, other class: the background, place and colour stay, only the form changes.
    assert np.array_equal(ring.background, circle.background) and ring.colour == circle.colour
    masks = [make_scene(3, class_name=name).mask for name in CLASSES]
    for i, first in enumerate(masks):  # six different forms in the same place
        for second in masks[i + 1 :]:
            assert (first & second).sum() < 0.85 * (first | second).sum()


def test_labels_are_balanced_over_many_seeds():
    counts = Counter(make_scene(seed).label for seed in range(1000, 1600))
    assert sorted(counts) == list(range(len(CLASSES)))
    assert set(counts.values()) == {100}


def test_dataset_and_batch_agree_with_make_scene():
    dataset = SceneDataset(start=40, length=12)
    assert len(dataset) == 12
    assert np.array_equal(dataset[3].image, make_scene(43).image)
    assert np.array_equal(dataset[-1].mask, make_scene(51).mask)
    assert [scene.label for scene in dataset] == [make_scene(s).label for s in range(40, 52)]
    images, labels, masks = scene_batch(range(40, 46))
    assert images.shape == (6, 96, 96, 3) and masks.shape == (6, 96, 96)
    assert labels.tolist() == [4, 5, 0, 1, 2, 3]
    with pytest.raises(IndexError):
        dataset[12]


def test_pointing_hit_uses_the_centre_of_the_arg_max_cell():
    mask = np.zeros((96, 96), bool)
    mask[8:16, 16:24] = True  # patch (1, 2) of an 8-pixel grid
    saliency = np.zeros((12, 12))
    saliency[1, 2] = 1
    assert pointing_hit(saliency, mask)
    saliency[5, 5] = 2
    assert not pointing_hit(saliency, mask)


def test_unknown_class_names_the_classes():
    with pytest.raises(ValueError, match=r"unknown scene class 'hexagon'.*circle, square"):
        make_scene(0, class_name="hexagon")
    with pytest.raises(ValueError, match="choose one of"):
        class_label("Circle")


@pytest.mark.parametrize("size", [0, 4, 7])
def test_image_smaller_than_a_patch_says_what_to_use(size):
    with pytest.raises(ValueError, match=r"smaller than one 8-pixel patch: use size >= 8"):
        make_scene(0, size=size)
    with pytest.raises(ValueError, match="smaller than one 8-pixel patch"):
        SceneDataset(size=size)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed must be a whole number >= 0"),
        ({"seed": 1.5}, "seed must be a whole number >= 0"),
        ({"seed": 0, "size": 96.0}, "whole number of pixels"),
        ({"seed": 0, "distractors": -2}, "distractors must be 0 or more"),
    ],
)
def test_other_bad_inputs_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_scene(**kwargs)


def test_smallest_size_still_draws_an_object():
    scene = make_scene(2, size=8)
    assert scene.image.shape == (8, 8, 3) and scene.mask.any()
