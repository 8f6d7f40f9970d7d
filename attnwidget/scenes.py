"""Synthetic scenes with ground truth, for checking what a saliency method or an attention head shows.

Each scene is one target shape (its class is the label) over a cluttered background: a random crop of
one of scikit-image's real photographs plus distractor strokes and slivers that belong to no target
class, so the label is never ambiguous. Every scene comes with the target's boolean pixel mask. A
scene is a pure function of its seed (and size): the same seed always gives the same pixels.

Classes differ in form, not in colour: size, position, colour and rotation are random for every class.

    >>> scene = make_scene(7)
    >>> scene.image.shape, scene.class_name, int(scene.mask.sum()) > 0
    ((96, 96, 3), 'square', True)

Seeds below 1,000,000 trained the default model; its model card and tests evaluate on seeds above.
"""

from __future__ import annotations

import colorsys
import functools
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
"""Target classes, in label order."""

PATCH_SIZE = 8
"""The smallest image side allowed: one patch of the default model."""

DEFAULT_SIZE = 96

# Colour photographs and grey textures shipped inside the scikit-image wheel (public domain / CC0).
_COLOUR_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")
_GREY_PHOTOS = ("camera", "brick", "grass", "gravel")

_RADIUS = (0.25, 0.35)  # target's circumscribed radius, as a fraction of the image side
_KEEP_OUT = 2  # pixels of background around the target's bounding box kept free of distractors
_MIN_CONTRAST = 100.0  # RGB distance between the target's colour and the background under it


@dataclass(frozen=True, eq=False)
class Scene:
    """One generated scene and its ground truth."""

    image: np.ndarray
    """RGB uint8, (size, size, 3)."""
    label: int
    """Index of `class_name` in `CLASSES`."""
    class_name: str
    mask: np.ndarray
    """bool (size, size): the target's pixels; each has exactly the colour `colour` in `image`."""
    seed: int
    colour: tuple[int, int, int]
    centre: tuple[float, float]
    """(x, y) in pixels, from the image's top-left corner."""
    radius: float
    """Radius in pixels of the circle the target is drawn in."""
    angle: float
    """Rotation in degrees."""
    background: np.ndarray
    """The photo crop alone, before distractors and target were drawn (RGB uint8)."""
    distractor_mask: np.ndarray
    """bool (size, size): pixels covered by distractors; they stay 2 pixels clear of the mask's bbox."""

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the mask, exclusive upper bounds."""
        rows = np.flatnonzero(self.mask.any(axis=1))
        cols = np.flatnonzero(self.mask.any(axis=0))
        return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def make_scene(
    seed: int, size: int = DEFAULT_SIZE, class_name: str | None = None, distractors: int | None = None
) -> Scene:
    """The scene for `seed`: a `size` x `size` RGB image, its label, class name and object mask.

    The class is `CLASSES[seed % len(CLASSES)]` unless `class_name` is given (then everything else
    about the scene stays the same); `distractors` fixes their number (random in 1..5 by default).
    """
    seed = _check_seed(seed)
    size = check_size(size)
    label = class_label(class_name) if class_name is not None else seed % len(CLASSES)
    if distractors is not None and (isinstance(distractors, bool) or int(distractors) != distractors):
        raise ValueError(f"distractors must be a whole number, not {distractors!r}")
    if distractors is not None and distractors < 0:
        raise ValueError(f"distractors must be 0 or more, not {distractors}")

    rng = np.random.default_rng(seed)
    background = _background(rng, size)
    image = background.copy()
    ys, xs = np.mgrid[0:size, 0:size] + 0.5

    radius = float(rng.uniform(*_RADIUS) * size)
    cx, cy = (float(rng.uniform(radius + 1, size - radius - 1)) for _ in range(2))
    angle = float(rng.uniform(0, 360))
    mask = _shape_mask(CLASSES[label], xs - cx, ys - cy, radius, np.deg2rad(angle))
    colour = _target_colour(rng, background[mask] if mask.any() else background.reshape(-1, 3))

    keep_out = _keep_out(mask, np.hypot(xs - cx, ys - cy) <= radius)
    count = int(rng.integers(1, 6)) if distractors is None else int(distractors)
    distractor_mask = np.zeros((size, size), bool)
    for _ in range(count):
        stroke = _distractor(rng, xs, ys, size, keep_out)
        if stroke is not None:
            image[stroke] = _random_colour(rng)
            distractor_mask |= stroke

    image[mask] = colour
    return Scene(
        image=image,
        label=label,
        class_name=CLASSES[label],
        mask=mask,
        seed=seed,
        colour=colour,
        centre=(cx, cy),
        radius=radius,
        angle=angle,
        background=background,
        distractor_mask=distractor_mask,
    )


class SceneDataset(Sequence[Scene]):
    """Scenes for the consecutive seeds `start`, `start + 1`, ..., `start + length - 1`.

    A map-style dataset (usable with `torch.utils.data.DataLoader`): item `i` is
    `make_scene(start + i, size)`. Labels cycle through `CLASSES`, so any `length` that is a
    multiple of `len(CLASSES)` holds each class equally often.
    """

    def __init__(self, start: int = 0, length: int = 600, size: int = DEFAULT_SIZE):
        self.start = _check_seed(start)
        if length < 0:
            raise ValueError(f"length must be 0 or more, not {length}")
        self.length = int(length)
        self.size = check_size(size)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Scene:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("index a SceneDataset with one integer at a time")
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"scene {index} is out of range for a dataset of {self.length}")
        return make_scene(self.start + index, self.size)

    def __iter__(self) -> Iterator[Scene]:
        return (make_scene(self.start + i, self.size) for i in range(self.length))


def scene_batch(seeds: Iterable[int], size: int = DEFAULT_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (B, size, size, 3) uint8, labels (B,) int64 and masks (B, size, size) bool for `seeds`."""
    scenes = [make_scene(seed, size) for seed in seeds]
    if not scenes:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int64), np.zeros((0, size, size), bool)
    return (
        np.stack([scene.image for scene in scenes]),
        np.array([scene.label for scene in scenes], np.int64),
        np.stack([scene.mask for scene in scenes]),
    )


def pointing_hit(saliency: np.ndarray, mask: np.ndarray) -> bool:
    """The pointing game for one map: does the centre pixel of the arg-max cell lie inside `mask`?

    `saliency` is a (gh, gw) map on any grid laid evenly over the image (for a ViT, the patch grid);
    cell (r, c) covers rows r * H / gh .. (r + 1) * H / gh of the (H, W) `mask`. Ties go to the
    first cell in row-major order.
    """
    saliency = np.asarray(saliency)
    mask = np.asarray(mask, bool)
    if saliency.ndim != 2 or mask.ndim != 2:
        raise ValueError(f"expected a 2-d map and a 2-d mask, got shapes {saliency.shape} and {mask.shape}")
    row, col = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    y = int((row + 0.5) * mask.shape[0] / saliency.shape[0])
    x = int((col + 0.5) * mask.shape[1] / saliency.shape[1])
    return bool(mask[y, x])


def class_label(class_name: str) -> int:
    """The label of `class_name`; a ValueError names the classes there are."""
    if class_name not in CLASSES:
        raise ValueError(f"unknown scene class {class_name!r}: choose one of {', '.join(CLASSES)}")
    return CLASSES.index(class_name)


def check_size(size: int) -> int:
    """`size` as an int, or a ValueError saying what to pass instead."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ValueError(f"the image size must be a whole number of pixels, not {size!r}")
    if size < PATCH_SIZE:
        raise ValueError(
            f"image size {size} is smaller than one {PATCH_SIZE}-pixel patch: use size >= {PATCH_SIZE} "
            f"(the default model expects {DEFAULT_SIZE})"
        )
    return int(size)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"the seed must be a whole number >= 0, not {seed!r}")
    return int(seed)


# --- shapes -----------------------------------------------------------------------------------------


def _shape_mask(name: str, dx: np.ndarray, dy: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Pixels (given by offsets from the centre) inside shape `name`, drawn in a circle of `radius`."""
    cos, sin = np.cos(angle), np.sin(angle)
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    r = np.hypot(u, v)
    if name == "circle":
        return r <= 0.9 * radius
    if name == "ring":
        return (r <= 0.95 * radius) & (r >= 0.5 * radius)
    if name == "square":
        return _regular_polygon(u, v, 4, radius)
    if name == "triangle":
        return _regular_polygon(u, v, 3, radius)
    if name == "star":
        return _star(u, v, radius, inner=0.5)
    if name == "cross":
        arm = 0.3 * radius
        return ((np.abs(u) <= 0.95 * radius) & (np.abs(v) <= arm)) | (
            (np.abs(v) <= 0.95 * radius) & (np.abs(u) <= arm)
        )
    raise ValueError(f"unknown scene class {name!r}: choose one of {', '.join(CLASSES)}")


def _regular_polygon(u: np.ndarray, v: np.ndarray, sides: int, radius: float) -> np.ndarray:
    """Regular polygon with circumradius `radius`, one vertex pointing up (-v), as half-planes."""
    inside = np.ones(u.shape, bool)
    inradius = radius * np.cos(np.pi / sides)
    for k in range(sides):
        normal = np.pi / 2 + np.pi / sides + 2 * np.pi * k / sides  # edge normals lie between vertices
        inside &= u * np.cos(normal) + v * np.sin(normal) <= inradius
    return inside


def _star(u: np.ndarray, v: np.ndarray, radius: float, inner: float) -> np.ndarray:
    """Five-pointed star: outer vertices on `radius`, inner vertices on `inner * radius`."""
    sector = 2 * np.pi / 5
    phi = np.mod(np.arctan2(v, u) + np.pi / 2, sector)  # 0 at an outer vertex
    phi = np.minimum(phi, sector - phi)  # fold onto [0, sector / 2]
    r = np.hypot(u, v)
    px, py = r * np.cos(phi), r * np.sin(phi)
    ax, ay = radius, 0.0
    bx, by = inner * radius * np.cos(sector / 2), inner * radius * np.sin(sector / 2)
    # Inside when on the same side of the edge A-B as the centre.
    side = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    origin_side = (bx - ax) * (0 - ay) - (by - ay) * (0 - ax)
    return side * np.sign(origin_side) >= 0


def _keep_out(mask: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """The target's bounding box grown by `_KEEP_OUT` pixels: no distractor may enter it."""
    if not mask.any():
        mask = fallback
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    keep_out = np.zeros_like(mask)
    y0, x0 = max(rows[0] - _KEEP_OUT, 0), max(cols[0] - _KEEP_OUT, 0)
    keep_out[y0 : rows[-1] + 1 + _KEEP_OUT, x0 : cols[-1] + 1 + _KEEP_OUT] = True
    return keep_out


# --- distractors ----------------------------------------------------------------------------------


def _distractor(
    rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, size: int, keep_out: np.ndarray
) -> np.ndarray | None:
    """A stroke, zigzag or thin sliver that belongs to no target class and stays off the target."""
    kind = int(rng.integers(3))
    for _ in range(8):
        if kind == 0:  # straight stroke
            x0, y0 = rng.uniform(0, size, 2)
            length = rng.uniform(0.15, 0.5) * size
            theta = rng.uniform(0, np.pi)
            points = [(x0, y0), (x0 + length * np.cos(theta), y0 + length * np.sin(theta))]
            stroke = _polyline(xs, ys, points, rng.uniform(0.75, 1.6))
        elif kind == 1:  # zigzag
            x, y = rng.uniform(0, size, 2)
            step = rng.uniform(0.06, 0.14) * size
            theta = rng.uniform(0, 2 * np.pi)
            points = [(x, y)]
            for k in range(int(rng.integers(3, 6))):
                turn = theta + (0.9 if k % 2 else -0.9)
                x, y = x + step * np.cos(turn), y + step * np.sin(turn)
                points.append((x, y))
            stroke = _polyline(xs, ys, points, rng.uniform(0.6, 1.3))
        else:  # thin sliver (an ellipse at least 4 times longer than wide)
            cx, cy = rng.uniform(0, size, 2)
            a = rng.uniform(0.07, 0.18) * size
            b = a / rng.uniform(4, 7)
            theta = rng.uniform(0, np.pi)
            u = (xs - cx) * np.cos(theta) + (ys - cy) * np.sin(theta)
            v = -(xs - cx) * np.sin(theta) + (ys - cy) * np.cos(theta)
            stroke = (u / a) ** 2 + (v / b) ** 2 <= 1
        if stroke.any() and not (stroke & keep_out).any():
            return stroke
    return None


def _polyline(xs: np.ndarray, ys: np.ndarray, points: list, half_width: float) -> np.ndarray:
    """Pixels within `half_width` of the polyline through `points`."""
    inside = np.zeros(xs.shape, bool)
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        inside |= np.hypot(xs - x0 - t * dx, ys - y0 - t * dy) <= half_width
    return inside


# --- colours and backgrounds ----------------------------------------------------------------------


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    h, s, v = rng.uniform(0, 1), rng.uniform(0.3, 1), rng.uniform(0.35, 1)
    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _target_colour(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    """A random colour that stands out from the mean background under the target."""
    mean = under.reshape(-1, 3).mean(axis=0)
    best, best_distance = (0, 0, 0), -1.0
    for _ in range(20):
        colour = _random_colour(rng)
        distance = float(np.linalg.norm(np.array(colour) - mean))
        if distance >= _MIN_CONTRAST:
            return colour
        if distance > best_distance:
            best, best_distance = colour, distance
    return best


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random crop of a random photograph, flipped, tinted and resized to `size` x `size`."""
    photos = _photos()
    index = int(rng.integers(len(photos)))
    photo, grey = photos[index]
    side_max = min(photo.size)
    side = rng.uniform(0.2, 0.9) * side_max
    x0 = rng.uniform(0, photo.size[0] - side)
    y0 = rng.uniform(0, photo.size[1] - side)
    crop = photo.resize((size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side))
    array = np.asarray(crop, np.float32)
    array = array[..., :1] * (0.4 + 0.6 * rng.uniform(0, 1, 3)) / 0.7 if grey else array.copy()
    if rng.uniform() < 0.5:
        array = array[:, ::-1]
    array = array * rng.uniform(0.7, 1.2) + rng.uniform(-25, 25)
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


@functools.cache
def _photos() -> tuple[tuple[Image.Image, bool], ...]:
    """scikit-image's bundled photographs as (RGB image, is grey) pairs, loaded once."""
    try:
        from skimage import data
    except ImportError as error:
        raise ImportError(
            "attnwidget.scenes draws its backgrounds from scikit-image's photographs: "
            "pip install scikit-image"
        ) from error
    photos = [(Image.fromarray(getattr(data, name)()).convert("RGB"), False) for name in _COLOUR_PHOTOS]
    photos += [(Image.fromarray(getattr(data, name)()).convert("RGB"), True) for name in _GREY_PHOTOS]
    return tuple(photos)
