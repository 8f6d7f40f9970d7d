"""A Swin-T (random weights, the published architecture) stage by stage: what a grid run of each
stage costs beside the model's own forward, and what each grid holds.

    .venv/bin/python benchmarks/swin_stages.py [--repeats 7]

Every contender runs in turn (`timing.interleaved_times`); the table gives medians and the ratio to
the model's default forward (sdpa attention, no weights).
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import numpy as np
import torch
import transformers as tf
from timing import interleaved_times

from attnwidget import AttentionGrid, WindowedVisionModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the switch to eager attention is announced once per grid
    torch.manual_seed(0)
    model = tf.SwinForImageClassification(tf.SwinConfig()).eval()  # swin-tiny-patch4-window7-224
    processor = tf.ViTImageProcessorPil(size={"height": 224, "width": 224})
    picture = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    pixel_values = processor(images=picture, return_tensors="pt")["pixel_values"]
    grids = [AttentionGrid(WindowedVisionModel(model, processor, stage=stage)) for stage in range(1, 5)]

    def forward() -> None:
        with torch.no_grad():
            model(pixel_values=pixel_values)

    contenders = {"forward (sdpa)": forward}
    contenders.update(
        {f"stage {i + 1} grid run": (lambda grid=grid: grid.run(picture)) for i, grid in enumerate(grids)}
    )
    times = {
        name: statistics.median(runs) for name, runs in interleaved_times(contenders, args.repeats).items()
    }
    base = times["forward (sdpa)"]
    columns = ("patches", "layers x heads", "median ms", "x forward", "maps bytes")
    print(f"{'':18s} " + " ".join(f"{c:>{w}s}" for c, w in zip(columns, (9, 15, 10, 10, 11), strict=True)))
    print(f"{'forward (sdpa)':18s} {'':>9s} {'':>15s} {base * 1000:10.0f} {1:10.2f} {'':>11s}")
    for index, grid in enumerate(grids):
        name = f"stage {index + 1} grid run"
        shape = f"{grid.grid[0]} x {grid.grid[1]}"
        cells = f"{grid.layer_count} x {grid.head_count}"
        milliseconds, ratio = times[name] * 1000, times[name] / base
        print(f"{name:18s} {shape:>9s} {cells:>15s} {milliseconds:10.0f} {ratio:10.2f} {len(grid.maps):11d}")


if __name__ == "__main__":
    main()
