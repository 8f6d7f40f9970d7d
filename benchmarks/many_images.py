"""Many pictures: `AttentionGrid.run_many` against the forward passes it needs, and browsing the result.

For each model, side by side in one run: the model's bare forward pass over the same pictures (no
capture), `run_many` (capture, reduction, encoding, predictions and per-head statistics of every
picture), and then moving the `image_index` slider to each picture, which restores the kept grid
without running the model. Also reports what the kept grids hold per picture.

    python benchmarks/many_images.py [--pictures 64] [--vit-b16-pictures 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from vit_b16 import random_vit_b16

from attnwidget import AttentionGrid, VisionModel, default_model, load_image
from attnwidget.scenes import make_scene


def bare_forwards(vision: VisionModel, pictures: list[np.ndarray]) -> list[float]:
    """Seconds of preprocessing plus one forward without attention, for each picture."""
    times = []
    for picture in pictures:
        start = time.perf_counter()
        pixel_values, _ = vision.prepare(load_image(picture))
        with torch.no_grad():
            vision.model(pixel_values=pixel_values)
        times.append(time.perf_counter() - start)
    return times


def browse(grid: AttentionGrid) -> list[float]:
    """Seconds to show each kept picture again with the slider."""
    times = []
    for index in range(grid.image_count):
        start = time.perf_counter()
        grid.image_index = index
        times.append(time.perf_counter() - start)
    return times


def kept_bytes(grid: AttentionGrid) -> int:
    """Bytes of grid data (maps, matrices, picture, explanation) kept for browsing, all pictures together."""
    return sum(
        len(value)
        for snapshot in grid._gallery.snapshots
        for value in snapshot.traits.values()
        if isinstance(value, bytes)
    )


def measure(name: str, vision: VisionModel, pictures: list[np.ndarray]) -> None:
    grid = AttentionGrid(vision)
    grid.run(pictures[0])  # warm-up
    bare_forwards(vision, pictures[:2])

    forwards = bare_forwards(vision, pictures)
    start = time.perf_counter()
    grid.run_many(pictures, progress=False)
    many = time.perf_counter() - start
    slider = browse(grid)

    count = len(pictures)
    forward_ms = statistics.median(forwards) * 1000
    rows = [
        ("bare forward (median)", sum(forwards), forward_ms),
        ("run_many", many, many / count * 1000),
        ("slider to a kept picture (median)", sum(slider), statistics.median(slider) * 1000),
    ]
    print(f"\n{name}: {count} pictures; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| step | total s | per picture ms | vs bare forward |")
    print("| ---- | ------- | -------------- | --------------- |")
    for step, total, per_picture in rows:
        print(f"| {step} | {total:.2f} | {per_picture:.1f} | {per_picture / forward_ms:.2f}x |")
    print(f"kept for browsing: {kept_bytes(grid) / count / 1024:.0f} KiB per picture")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=64, help="scenes for the built-in model")
    parser.add_argument("--vit-b16-pictures", type=int, default=8, help="photographs for ViT-B/16")
    args = parser.parse_args()

    scenes = [make_scene(seed).image for seed in range(3_000_000, 3_000_000 + args.pictures)]
    measure("built-in model (8 x 8 heads, 96 x 96)", default_model(), scenes)
    rng = np.random.default_rng(0)
    photographs = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(args.vit_b16_pictures)]
    measure("ViT-B/16 224 x 224 (random init)", random_vit_b16(), photographs)


if __name__ == "__main__":
    main()
