"""Cost of capturing a timm ViT-B/16's attention against its fused forward (random init, 224 x 224).

Side by side in one run, interleaved, median of N repetitions, batch 1:
- timm's forward with fused attention (`F.scaled_dot_product_attention`, no weights), as timm runs it,
- the same forward unfused (`fused_attn` off: the softmax weights are computed, then dropped),
- `TimmModel.capture` with a callback that does nothing (unfused, hooks on `attn_drop`),
- `AttentionGrid.run` without the JPEG step: capture, reduce per layer, encode, stream.

    python benchmarks/timm_capture.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import timm
import torch
from skimage import data
from timing import interleaved_times

from attnwidget import AttentionGrid
from attnwidget.timm_source import TimmModel, unfused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
    source = TimmModel(model)
    widget = AttentionGrid(source)
    widget.send = lambda content, buffers=None: None
    widget.run(data.chelsea())  # a 451 x 300 photograph shipped with scikit-image
    pixel_values = widget._session.input.model_input
    fused = all(module.fused_attn for module in source.attention_modules)

    def fused_forward() -> None:
        with torch.no_grad():
            model(pixel_values)

    def unfused_forward() -> None:
        with unfused(source.attention_modules), torch.no_grad():
            model(pixel_values)

    contenders: dict[str, Callable[[], object]] = {
        "forward, fused attention": fused_forward,
        "forward, unfused": unfused_forward,
        "TimmModel.capture (no-op callback)": lambda: source.capture(pixel_values, lambda *block: None),
        "attnwidget run (grid)": lambda: widget._compute(widget._session.input, rerun=True),
    }
    times = interleaved_times(contenders, args.repeats)

    base = statistics.median(times["forward, fused attention"])
    print(
        f"timm vit_base_patch16_224 (random init) 224 x 224, batch 1: {source.layer_count} x "
        f"{source.head_count} heads, {widget.token_count} tokens; fused_attn {fused}; "
        f"timm {timm.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"median of {args.repeats}"
    )
    print(f"| {'what':<34} | median ms | vs fused forward |")
    print(f"| {'-' * 34} | --------- | ---------------- |")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name:<34} | {median * 1000:9.1f} | {median / base:15.2f}x |")


if __name__ == "__main__":
    main()
