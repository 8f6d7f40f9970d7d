"""Kernel-side cost of attnwidget on ViT-B/16 at 224 x 224 (random init, google/vit-base-patch16-224 shapes).

Side by side in one run, interleaved, median of N repetitions on this machine:
- the plain eager forward (no attention kept),
- the eager forward with `output_attentions=True` (every layer's attention returned at once),
- `AttentionGrid.run` without the JPEG step: capture with hooks, reduce per layer, encode, stream,
and the bytes the grid sends to the browser.

    python benchmarks/kernel_vit_b16.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from skimage import data
from timing import interleaved_times
from vit_b16 import random_vit_b16

from attnwidget import AttentionGrid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    vision = random_vit_b16()
    model = vision.model
    image = data.chelsea()  # a 451 x 300 photograph shipped with scikit-image
    widget = AttentionGrid(vision)
    sent: list[int] = []
    widget.send = lambda content, buffers=None: sent.append(sum(len(b) for b in buffers or []))
    widget.run(image)
    pixel_values = widget._session.input.model_input

    def plain() -> None:
        with torch.no_grad():
            model(pixel_values=pixel_values)

    def all_attentions() -> None:
        with torch.no_grad():
            model(pixel_values=pixel_values, output_attentions=True)

    def attnwidget_capture() -> None:
        widget._compute(widget._session.input, rerun=True)

    contenders = {
        "eager forward": plain,
        "output_attentions=True": all_attentions,
        "attnwidget run": attnwidget_capture,
    }
    times = interleaved_times(contenders, args.repeats, warmups=3)

    base = statistics.median(times["eager forward"])
    print(
        f"ViT-B/16 224 x 224: {widget.layer_count} x {widget.head_count} heads, {widget.token_count} tokens; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats}"
    )
    print_table(
        ("what", "median ms", "vs eager"),
        [
            (name, f"{statistics.median(v) * 1e3:.1f}", f"{statistics.median(v) / base:.2f}x")
            for name, v in times.items()
        ],
    )

    sent.clear()
    attnwidget_capture()
    state = widget.get_state()
    maps = sum(len(state[key]) for key in ("maps", "maps_range", "specials"))
    matrices = len(state["matrices"]) + len(state["matrices_range"])
    values = len(state["maps"]) + len(state["matrices"])
    size = widget.matrix_size
    print()
    print_table(
        ("bytes to the browser", "bytes"),
        [
            ("grid state: CLS -> patch maps + special-token mass", f"{maps:,}"),
            (f"grid state: {size} x {size} pooled token matrices", f"{matrices:,}"),
            (f"streamed while running ({len(sent)} messages)", f"{sum(sent):,}"),
            ("picture (JPEG, longest side 768)", f"{len(state['image']):,}"),
            ("total for one run", f"{maps + matrices + sum(sent) + len(state['image']):,}"),
            ("the same grid values as JSON floats (~23 B each)", f"{23 * values:,}"),
        ],
    )


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for line in (header, tuple("-" * w for w in widths), *rows):
        print("| " + " | ".join(f"{cell:<{w}}" for cell, w in zip(line, widths, strict=True)) + " |")


if __name__ == "__main__":
    main()
