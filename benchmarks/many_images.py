"""Many pictures: `AttentionGrid.run_many` and `head_statistics_over` against the model's bare batched
forward over the same pictures, then browsing the sample `run_many` kept.

    .venv/bin/python benchmarks/many_images.py [--pictures 128] [--vit-b16-pictures 32] [--batch-size 16]

Models: the built-in ViT (96 px) and ViT-B/16 at 224 px (random weights, the published architecture).
The bare forward runs on inputs already made (no reading, no processor), in batches of `--batch-size`,
on the model's sdpa attention (as both are loaded; the capture computes the weights beside it) and on
eager attention. `run_many` and
`head_statistics_over` read the pictures, put them through the processor (in this process) and count
every statistic of every head; `run_many` also keeps its sample (default 64 pictures) with their
attention within the grid's `cache_budget` and shows the last one ("no attention kept": a grid with
`cache_budget=0`, whose kept pictures run the model again when shown). Contenders run in turn
(`timing.interleaved_times`); medians, as pictures a second. Then the slider is moved to each kept
picture (no model run where its attention was kept).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import torch
from timing import interleaved_times
from vit_b16 import random_vit_b16

import attnwidget
from attnwidget import AttentionGrid, VisionModel
from attnwidget.scenes import SceneDataset


def bare_forward(vision: VisionModel, batches: list[torch.Tensor], implementation: str):
    """The model's forward over `batches` on attention `implementation`; the model is left on the
    attention it was loaded with (sdpa), so the runs that follow capture it as loaded."""

    def run() -> None:
        loaded = vision.model.config._attn_implementation
        vision.model.set_attn_implementation(implementation)
        try:
            with torch.no_grad():
                for batch in batches:
                    vision.model(pixel_values=batch)
        finally:
            vision.model.set_attn_implementation(loaded)

    return run


def browse(grid: AttentionGrid) -> list[float]:
    """Seconds to show each kept picture with the slider."""
    times = []
    for index in range(grid.image_count):
        start = time.perf_counter()
        grid.image_index = index
        times.append(time.perf_counter() - start)
    return times


def measure(name: str, vision: VisionModel, pictures: list, batch_size: int, repeats: int) -> None:
    transform = vision.picture_transform()
    batches = list(torch.stack([transform(attnwidget.load_image(p)) for p in pictures]).split(batch_size))
    grid = AttentionGrid(vision)
    keeping_none = AttentionGrid(vision, cache_budget=0)

    def run_many(grid: AttentionGrid = grid) -> None:
        grid.run_many(pictures, batch_size=batch_size, progress=False)

    def over() -> None:
        attnwidget.head_statistics_over(vision, pictures, batch_size=batch_size, progress=False)

    contenders = {
        "bare forward, sdpa": bare_forward(vision, batches, "sdpa"),
        "bare forward, eager": bare_forward(vision, batches, "eager"),
        "head_statistics_over": over,
        "run_many": run_many,
        "run_many, no attention kept": lambda: run_many(keeping_none),
    }
    times = {key: statistics.median(runs) for key, runs in interleaved_times(contenders, repeats).items()}
    rate = {key: len(pictures) / seconds for key, seconds in times.items()}
    print(
        f"\n{name}: {len(pictures)} pictures in batches of {batch_size}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; median of {repeats} interleaved runs"
    )
    print("| contender | pictures/s | x bare sdpa | x bare eager |")
    print("| --- | --- | --- | --- |")
    for key, value in rate.items():
        sdpa, eager = value / rate["bare forward, sdpa"], value / rate["bare forward, eager"]
        print(f"| {key} | {value:.1f} | {sdpa:.2f} | {eager:.2f} |")
    kept = grid._gallery.kept
    slider = browse(grid)
    with_attention = sum(picture.attention is not None for picture in kept)
    print(
        f"run_many kept {len(kept)} pictures, {with_attention} with their attention "
        f"({sum(picture.bytes for picture in kept) / 2**20:.0f} MiB); slider to a kept picture: median "
        f"{statistics.median(slider) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=128, help="scenes for the built-in model")
    parser.add_argument("--vit-b16-pictures", type=int, default=32, help="scenes for ViT-B/16")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"load average {', '.join(f'{value:.2f}' for value in os.getloadavg())} at the start")
    scenes = [scene.image for scene in SceneDataset(0, max(args.pictures, args.vit_b16_pictures))]
    measure(
        "built-in model (8 x 8 heads, 96 x 96)",
        attnwidget.default_model(),
        scenes[: args.pictures],
        args.batch_size,
        args.repeats,
    )
    measure(
        "ViT-B/16 224 x 224 (random init)",
        random_vit_b16("sdpa"),
        scenes[: args.vit_b16_pictures],
        args.batch_size,
        args.repeats,
    )
    print(f"load average {', '.join(f'{value:.2f}' for value in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
