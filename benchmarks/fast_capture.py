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
meanwhile back to the system (glibc's `malloc_trim`). Its ratio is left out where the sdpa forward's
own peak is under 16 MiB (the ratio of two small numbers says nothing).

    python benchmarks/fast_capture.py [--cases llama-1024 llama-2048 vit-b16 dinov2-l] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Callable

from long_context import peak_mib_above_live

BASELINE = "sdpa forward"
CONTENDERS = (BASELINE, "grid, pooled matrices", "grid, query rows only", "eager forward")
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

    def grid_run(**options: object) -> Callable[[], None]:
        grid = AttentionGrid(source, **options)
        grid.send = lambda *args, **kwargs: None  # no front-end here: messages go nowhere

        def run() -> None:
            if grid._session.input is None:
                grid.run(data)
            else:
                grid._compute(grid._session.input, rerun=True)

        return run

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
        BEFORE: lambda: on_eager(grid_run()),
    }
    return {name: made[name]() for name in names}


def peak_mib(case: str, contender: str, dinov2_layers: int) -> float:
    """Run one contender once in this (fresh) process: its peak resident memory above the model's."""
    return peak_mib_above_live(contenders(case, [contender], dinov2_layers)[contender])


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
    print("| case | contender | median s | vs sdpa | peak MiB above the model | vs sdpa |")
    print("| ---- | --------- | -------- | ------- | ------------------------ | ------- |")
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
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            peaks[name] = json.loads(done.stdout.strip().splitlines()[-1])
        for name, seconds in times.items():
            memory = f"{peaks[name] / peaks[BASELINE]:.2f}x" if peaks[BASELINE] >= 16 else ""
            cells = [case, name, f"{seconds:.3f}", f"{seconds / times[BASELINE]:.2f}x", f"{peaks[name]:.0f}"]
            print("| " + " | ".join([*cells, memory]) + " |", flush=True)


if __name__ == "__main__":
    main()
