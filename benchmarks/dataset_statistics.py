"""Pictures a second of `head_statistics_over` against the model's bare batched forward.

    .venv/bin/python benchmarks/dataset_statistics.py [--pictures 64] [--batch-size 16] [--repeats 3]
        [--device cuda] [--workers 8]

Models: the built-in ViT (96 px) and ViT-B/16 at 224 px (random weights, the published
architecture). The bare forward runs on inputs already made (no reading, no processor), with the
model's default sdpa attention and with eager attention; the statistics run reads the pictures,
puts them through the processor (in `--workers` loader processes) and reduces every head of every
layer, its weights computed on the model's sdpa path (whole layers into one reused buffer, the
layer's output from them: `fast_attention`); "statistics, ready inputs" is the same
count over a `DataLoader` of the inputs already made, its cost without reading and processing.
Contenders run in turn (`timing.interleaved_times`); medians.
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import torch
import transformers as tf
from timing import interleaved_times

import attnwidget
from attnwidget.scenes import SceneDataset


def bare_forward(model: torch.nn.Module, batches: list[torch.Tensor], implementation: str):
    """The model's forward over `batches` on attention `implementation`; the model is left on the
    attention it was loaded with (sdpa)."""

    def run() -> None:
        loaded = model.config._attn_implementation
        model.set_attn_implementation(implementation)
        try:
            with torch.no_grad():
                for batch in batches:
                    model(pixel_values=batch)
            synchronize(batches[0].device)
        finally:
            model.set_attn_implementation(loaded)

    return run


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=0, help="loader processes of the statistics run")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    pictures = [scene.image for scene in SceneDataset(0, args.pictures)]
    torch.manual_seed(0)
    vit_b = tf.ViTForImageClassification(tf.ViTConfig()).eval()
    models = {
        "built-in (96 px)": attnwidget.default_model(),
        "ViT-B/16 (224 px)": attnwidget.VisionModel(vit_b, tf.ViTImageProcessorPil()),
    }
    print(
        f"{args.pictures} pictures, batches of {args.batch_size}, {args.device}, {args.workers} loader "
        f"workers; medians of {args.repeats} runs (pictures/s)"
    )
    header = ("sdpa forward", "eager forward", "statistics", "x sdpa", "x eager", "ready inputs", "x sdpa")
    widths = (13, 14, 11, 7, 8, 13, 7)
    print(f"{'model':20s} " + " ".join(f"{h:>{w}s}" for h, w in zip(header, widths, strict=True)))
    for name, source in models.items():
        source.model.to(args.device)
        transform = source.picture_transform()
        inputs = torch.stack([transform(attnwidget.load_image(p)) for p in pictures]).to(args.device)
        batches = list(inputs.split(args.batch_size))

        def statistics_run(source=source) -> None:
            attnwidget.head_statistics_over(
                source, pictures, batch_size=args.batch_size, num_workers=args.workers, progress=False
            )

        def ready_run(source=source, inputs=inputs) -> None:
            loader = torch.utils.data.DataLoader(inputs, batch_size=args.batch_size)
            attnwidget.head_statistics_over(source, loader, progress=False)

        contenders = {
            "sdpa": bare_forward(source.model, batches, "sdpa"),
            "eager": bare_forward(source.model, batches, "eager"),
            "statistics": statistics_run,
            "ready": ready_run,
        }
        times = {
            key: statistics.median(runs) for key, runs in interleaved_times(contenders, args.repeats).items()
        }
        rate = {key: args.pictures / seconds for key, seconds in times.items()}
        print(
            f"{name:20s} {rate['sdpa']:13.1f} {rate['eager']:14.1f} {rate['statistics']:11.1f} "
            f"{rate['statistics'] / rate['sdpa']:7.2f} {rate['statistics'] / rate['eager']:8.2f} "
            f"{rate['ready']:13.1f} {rate['ready'] / rate['sdpa']:7.2f}"
        )


if __name__ == "__main__":
    main()
