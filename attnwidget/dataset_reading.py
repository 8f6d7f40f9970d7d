"""Reading a dataset for the batched runs (`head_statistics_over`, `AttentionGrid.run_many`): pictures
read and put through the model's processor or transform in loader workers, in batches grouped by input
size; a picture that cannot be read is skipped and named, never fatal."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .images import IMAGE_SUFFIXES, load_image

Batch = tuple[list[torch.Tensor], list[tuple[str, str]], list[list[int]]]
"""Model inputs grouped by size ([B, C, H, W] each), the pictures skipped, (name, reason), and the
positions of each group's pictures among the batch's items."""


class PictureDataset(torch.utils.data.Dataset):
    """Items of a sequence as model inputs [C, H, W], or the reason they cannot be read."""

    def __init__(self, items: Sequence[Any], transform: Callable[[Any], torch.Tensor]):
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor | None, str]:
        try:
            item = self.items[index]
        except Exception as error:  # a dataset whose item cannot be read: skipped, like a bad file
            return f"item {index}", None, f"{type(error).__name__}: {error}"
        return read_item(index, item, self.transform)


def read_item(
    index: int, item: Any, transform: Callable[[Any], torch.Tensor]
) -> tuple[str, torch.Tensor | None, str]:
    """(name, model input [C, H, W], "") for a readable item; (name, None, reason) for another."""
    name = f"item {index}"
    try:
        picture = picture_of(item)
        if isinstance(picture, (str, Path)):
            name = str(picture)
        return name, transform(load_image(picture)), ""
    except Exception as error:  # an unreadable picture is skipped and reported, never fatal
        return name, None, f"{type(error).__name__}: {error}"


def read_batches(
    images: Any, transform: Callable[[Any], torch.Tensor], batch_size: int, workers: int
) -> tuple[Iterable[Batch], int | None]:
    """The batches of `images` and how many pictures there are (None when unknown)."""
    loader_class = torch.utils.data.DataLoader
    if isinstance(images, loader_class):
        total = len(images.dataset) if hasattr(images.dataset, "__len__") else None
        return (_ready_batch(batch, transform) for batch in images), total
    items = as_sequence(images)
    if items is None:  # an iterable of unknown length: read in this process, a batch at a time
        return (collate(chunk) for chunk in _chunks(images, transform, batch_size)), None
    dataset = PictureDataset(items, transform)
    loader = loader_class(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    return loader, len(items)


def as_sequence(images: Any) -> Sequence[Any] | None:
    """`images` as an indexable sequence (a folder's files, a list, a map-style dataset), or None."""
    if isinstance(images, (str, Path)):
        folder = Path(images).expanduser()
        if not folder.is_dir():
            raise ValueError(f"{images} is not a folder: give a folder of images or a list of pictures")
        return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if hasattr(images, "__getitem__") and hasattr(images, "__len__") and not isinstance(images, Mapping):
        return images
    return None


def _chunks(images: Iterable[Any], transform: Callable, batch_size: int) -> Iterable[list]:
    chunk = []
    for index, item in enumerate(images):
        chunk.append(read_item(index, item, transform))
        if len(chunk) == batch_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def collate(results: list[tuple[str, torch.Tensor | None, str]]) -> Batch:
    """Stack the inputs read, grouped by size; keep the names and reasons of the others."""
    groups: dict[tuple[int, ...], list[torch.Tensor]] = {}
    positions: dict[tuple[int, ...], list[int]] = {}
    skipped = []
    for position, (name, tensor, reason) in enumerate(results):
        if tensor is None:
            skipped.append((name, reason))
        else:
            groups.setdefault(tuple(tensor.shape), []).append(tensor)
            positions.setdefault(tuple(tensor.shape), []).append(position)
    return [torch.stack(group) for group in groups.values()], skipped, list(positions.values())


def _ready_batch(batch: Any, transform: Callable) -> Batch:
    """A DataLoader's batch: model inputs [B, C, H, W] (alone or first of a tuple, or a dict's
    "pixel_values"), or a list of pictures to read."""
    if isinstance(batch, Mapping):
        batch = batch.get("pixel_values", batch.get("image", batch.get("img")))
    elif (
        isinstance(batch, (tuple, list))
        and batch
        and isinstance(batch[0], torch.Tensor)
        and batch[0].ndim == 4
    ):
        batch = batch[0]
    if isinstance(batch, torch.Tensor) and batch.ndim == 4:
        return [batch], [], [list(range(len(batch)))]
    if isinstance(batch, (list, tuple)):
        return collate([read_item(index, item, transform) for index, item in enumerate(batch)])
    raise TypeError(
        f"a DataLoader batch of {type(batch).__name__} is neither model inputs [B, C, H, W] nor a list of "
        "pictures: use collate_fn=list for pictures"
    )


def picture_of(item: Any) -> Any:
    """The picture in a dataset item: the item, the first of a tuple, a dict's image entry or an
    object's `image`."""
    if isinstance(item, Mapping):
        for key in ("image", "img", "picture", "pixel_values"):
            if key in item:
                return item[key]
        raise KeyError(f"no picture in an item with keys {sorted(item)}: name it 'image'")
    if isinstance(item, tuple):
        return item[0]
    picture = getattr(item, "image", None)  # an object holding its picture (attnwidget.scenes.Scene)
    return item if picture is None or isinstance(item, Image.Image) else picture
