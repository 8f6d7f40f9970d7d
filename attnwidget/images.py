"""Turn whatever the user hands us into an RGB picture."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageLike = Any  # str | Path | PIL.Image.Image | np.ndarray | torch.Tensor


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")


def image_sources(images: Iterable[ImageLike] | str | Path) -> list[ImageLike]:
    """The pictures of a folder (its image files, sorted by name) or of a list / iterable, as a list.

    A single picture (a path to a file, an array, a PIL image) is refused: pass a list of them.
    """
    if isinstance(images, (str, Path)):
        folder = Path(images).expanduser()
        if not folder.is_dir():
            raise ValueError(f"{images} is not a folder: give a folder of images or a list of pictures")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise ValueError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return list(files)
    if isinstance(images, Image.Image) or hasattr(images, "shape"):  # one picture: array or tensor
        raise ValueError("give several pictures as a list (or a folder); run(image) takes a single one")
    return list(images)


def load_image(image: ImageLike) -> Image.Image:
    """Return `image` as an RGB `PIL.Image`.

    Accepts a file path, a PIL image, a numpy array (H x W, H x W x 1/3/4; uint8, or float in [0, 1])
    or a torch tensor (C x H x W or H x W x C). EXIF orientation is applied; transparency is
    composited on white. A picture with no pixels is refused.
    """
    if isinstance(image, (str, Path)):
        loaded = _from_path(Path(image))
    elif isinstance(image, Image.Image):
        loaded = _to_rgb(ImageOps.exif_transpose(image))
    elif isinstance(image, np.ndarray):
        loaded = _from_array(image)
    elif type(image).__module__.startswith("torch"):
        loaded = _from_tensor(image)
    else:
        loaded = None
    if loaded is not None:
        if loaded.width == 0 or loaded.height == 0:
            size = f"{loaded.width} x {loaded.height}"
            raise ValueError(f"the picture is empty ({size} pixels): give one with pixels")
        return loaded
    raise TypeError(
        f"cannot use an object of type {type(image).__name__} as an image: pass a file path, "
        "a PIL.Image, a numpy array (H x W x C) or a torch tensor (C x H x W)"
    )


def encode_jpeg(image: Image.Image, max_side: int = 768, quality: int = 90) -> bytes:
    """JPEG bytes of `image`, downscaled so that its longest side is at most `max_side`."""
    scale = max_side / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)  # fast for huge pictures
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _from_path(path: Path) -> Image.Image:
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as opened:
            opened.load()
            return _to_rgb(ImageOps.exif_transpose(opened))
    except UnidentifiedImageError as error:
        raise ValueError(
            f"cannot read {path} as an image: Pillow does not recognise its format; convert it to PNG or JPEG"
        ) from error
    except Image.DecompressionBombError as error:
        raise ValueError(
            f"{path} is larger than Pillow opens by default ({error}): downscale the file, or, if you "
            "trust it, raise the limit with PIL.Image.MAX_IMAGE_PIXELS = None before running"
        ) from error


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;"):  # 16- and 32-bit grey: stretched to 8 bits
        values = np.asarray(image, dtype=np.float64)
        span = values.max() - values.min()
        scaled = (values - values.min()) / span if span > 0 else np.zeros_like(values)
        return Image.fromarray((scaled * 255).round().astype(np.uint8)).convert("RGB")
    if image.mode == "La":  # grey premultiplied by alpha: Pillow converts it only as part of RGBa
        grey, alpha = image.split()
        image = Image.merge("RGBa", (grey, grey, grey, alpha))
    if image.mode in ("RGBA", "RGBa", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(
            f"an image array must be H x W or H x W x C with C in (1, 3, 4); got shape {array.shape}"
        )
    if array.dtype == np.uint8:
        pixels = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("the image array contains NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(
                f"a float image array must hold values in [0, 1]; got [{array.min():.3g}, {array.max():.3g}]"
                " (divide by 255, or pass uint8)"
            )
        pixels = (array * 255).round().astype(np.uint8)
    else:
        raise ValueError(f"an image array must be uint8 or float in [0, 1]; got dtype {array.dtype}")
    return _to_rgb(Image.fromarray(np.ascontiguousarray(pixels)))


def _from_tensor(tensor: Any) -> Image.Image:
    array = tensor.detach().cpu().numpy()
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    return _from_array(array)
