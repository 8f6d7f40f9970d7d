"""Capture beside the model's own sdpa attention, against the sdpa forward of the same model (CPU).

Models, random weights:
- `llama-<tokens>`: the Llama-shaped decoder of `long_context.py` (32 layers x 32 heads, hidden 256)
  on sdpa, at each of `--tokens`;
- `vit-b16`: ViT-B/16 at 224 x 224 on sdpa;
- `dinov2-l`: DINOv2-L's shape (hidden 1024, 16 heads, patch 14) at 518 x 518 (1,370 tokens), its
  first `--dinov2-layers` of 24 layers (every layer is alike, so the ratios are those of the whole).

Contenders, timed interleaved in one process (`timing.interleaved_times`), medians:
- "sdpa forward": the model's own forward, nothing captured (the baseline);
- "grid, pooled matrices": `AttentionGrid` run (the default `saved_detail`): every head's query rows
  and its token x token matrix pooled to the payload, every row of every layer computed;
- "grid, query rows only": `saved_detail="maps"`: only the query tokens' rows are computed;
- "eager forward": the same model on eager attention, unless `--no-eager`;
- "grid on eager (before)": the pooled grid with the model on eager attention, as attnwidget
  captured before (vision cases, unless `--no-eager`).

Peak memory: each contender runs once more, alone in a fresh process: the peak resident set (VmHWM)
above the resident set after loading the model, preparing the input and handing the memory freed
meanwhile back to the system (glibc's `malloc_trim`). That process runs with glibc's mmap threshold
fixed at 64 KiB (`MALLOC_MMAP_THRESHOLD_`), so every large block goes back to the system when freed
and the resident set follows what is allocated; with glibc's adaptive default it also holds whatever
freed memory the heap happened to keep, and the sdpa forward's own peak at 4K tokens varied from 766
to 1,055 MiB between runs. Its ratio is left out where the sdpa forward's own peak is under 16 MiB
(the ratio of two small numbers says nothing). A grid then holds, within its `cache_budget`, what
answers later questions exactly (the whole attention, or every layer's queries and keys): that is
shown apart, and the last column is the peak less it, the capture's own cost.

    python benchmarks/fast_capture.py [--cases llama-1024 llama-2048 vit-b16 dinov2-l] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable

from long_context import peak_mib_above_live

BASELINE = "sdpa forward"
CONTENDERS = (BASELINE, "grid, pooled matrices", "grid, query rows only", "eager forward")
#: glibc's mmap threshold in the processes measuring memory: blocks from 64 KiB go back when freed.
MMAP_THRESHOLD = 64 * 1024
#: The grid on the model switched to eager, as attnwidget captured before (vision cases only).
BEFORE = "grid on eager (before)"


def dinov2_large(layers: int):
    import torch
    import transformers as tf

    from attnwidget import VisionModel

    torch.manual_seed(0)
    config = tf.Dinov2Config(
        hidden_size=1024,
        num_attention_heads=16,
        num_hidden_layers=layers,
        image_size=518,
        patch_size=14,
        attn_implementation="sdpa",
    )
    processor = tf.BitImageProcessor(size={"shortest_edge": 518}, crop_size={"height": 518, "width": 518})
    return VisionModel(tf.Dinov2Model(config).eval(), processor, name=f"dinov2-l shape, {layers} layers")


def contenders(case: str, names: list[str], dinov2_layers: int) -> dict[str, Callable[[], object]]:
    """The contenders `names` of `case`, each a callable running once (a grid's first call runs it on
    the input, later ones run it again on the prepared input)."""
    import numpy as np
    import torch

    from attnwidget import AttentionGrid

    if case.startswith("llama-"):
        from long_context import build, text_of

        source = build("sdpa")
        data = text_of(source, int(case.split("-")[1]))
        model = source.model
        model_input = source.prepare(data)

        def forward() -> None:
            model(input_ids=model_input.input_ids, attention_mask=model_input.attention_mask)
    else:
        if case == "vit-b16":
            from vit_b16 import random_vit_b16

            source = random_vit_b16("sdpa")
        else:
            source = dinov2_large(dinov2_layers)
        model = source.model
        data = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
        model_input = source.prepare_input(data).model_input

        def forward() -> None:
            model(pixel_values=model_input)

    def sdpa() -> None:
        with torch.no_grad():
            forward()

    def grid_run(**options: object) -> GridRun:
        return GridRun(AttentionGrid(source, **options), data)

    def on_eager(run: Callable[[], None]) -> Callable[[], None]:
        def switched() -> None:
            model.set_attn_implementation("eager")
            try:
                run()
            finally:
                model.set_attn_implementation("sdpa")

        return switched

    made = {
        BASELINE: lambda: sdpa,
        "grid, pooled matrices": grid_run,
        "grid, query rows only": lambda: grid_run(saved_detail="maps"),
        "eager forward": lambda: on_eager(sdpa),
        BEFORE: lambda: GridRun(AttentionGrid(source), data, on=on_eager),
    }
    return {name: made[name]() for name in names}


class GridRun:
    """A grid's run: its first call runs it on the input, later ones again on the prepared input
    (through `on`, such as the model switched to eager, when given)."""

    def __init__(self, grid: object, data: object, on: Callable | None = None):
        self.grid, self.data = grid, data
        grid.send = lambda *args, **kwargs: None  # no front-end here: messages go nowhere
        self._run = on(self._once) if on is not None else self._once

    def __call__(self) -> None:
        self._run()

    def _once(self) -> None:
        if self.grid._session.input is None:
            self.grid.run(self.data)
        else:
            self.grid._compute(self.grid._session.input, rerun=True)

    def kept_mib(self) -> float:
        """What the grid holds for exact answers afterwards (within its `cache_budget`)."""
        return self.grid._session.kept_bytes / 1024**2


def peak_mib(case: str, contender: str, dinov2_layers: int) -> tuple[float, float]:
    """Run one contender once in this (fresh) process: its peak resident memory above the model's,
    and what of it a grid keeps for exact answers."""
    run = contenders(case, [contender], dinov2_layers)[contender]
    peak = peak_mib_above_live(run)
    return peak, run.kept_mib() if isinstance(run, GridRun) else 0.0


def main() -> None:
    from timing import interleaved_times

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["llama-1024", "llama-2048", "vit-b16", "dinov2-l"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dinov2-layers", type=int, default=6)
    parser.add_argument("--no-eager", action="store_true", help="leave out the eager forward")
    parser.add_argument("--contenders", nargs="+", help="only these (the sdpa forward is always run)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(peak_mib(*args.one, args.dinov2_layers)))
        return

    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {args.repeats}, interleaved"
    )
    print(
        "| case | contender | median s | vs sdpa | peak MiB above the model | vs sdpa "
        "| kept for exact answers, MiB | vs sdpa, less what is kept |"
    )
    print("| ---- | --------- | -------- | ------- | ------------------------ | ------- | --- | --- |")
    for case in args.cases:
        names = list(CONTENDERS) if case.startswith("llama-") else [*CONTENDERS, BEFORE]
        names = [name for name in names if not (args.no_eager and name in ("eager forward", BEFORE))]
        names = [name for name in names if name == BASELINE or name in (args.contenders or names)]
        runs = contenders(case, names, args.dinov2_layers)
        times = {
            name: statistics.median(seconds)
            for name, seconds in interleaved_times(runs, args.repeats).items()
        }
        del runs
        peaks = {}
        for name in times:
            command = [
                sys.executable,
                __file__,
                "--one",
                case,
                name,
                "--dinov2-layers",
                str(args.dinov2_layers),
            ]
            environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
            peaks[name] = json.loads(done.stdout.strip().splitlines()[-1])
        sdpa_peak = peaks[BASELINE][0]
        for name, seconds in times.items():
            peak, kept = peaks[name]
            memory = [f"{peak / sdpa_peak:.2f}x", f"{kept:.0f}", f"{(peak - kept) / sdpa_peak:.2f}x"]
            label = f"{case}, {args.dinov2_layers} layers" if case == "dinov2-l" else case
            cells = [label, name, f"{seconds:.3f}", f"{seconds / times[BASELINE]:.2f}x", f"{peak:.0f}"]
            cells += memory if sdpa_peak >= 16 else ["", f"{kept:.0f}", ""]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
