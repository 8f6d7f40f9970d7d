"""Cost of each method in `attnwidget.methods` against the forward (and backward) pass it needs.

Two models, each measured side by side in one run, interleaved, median of N repetitions:
ViT-B/16 at 224 x 224 (random init, google/vit-base-patch16-224 shapes) and the built-in model
(8 x 8 heads, 96 x 96). Attention methods need one forward with capture; gradient methods need one
forward and one backward, whatever the number of layers and heads.

    python benchmarks/methods.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from PIL import Image
from skimage import data
from vit_b16 import random_vit_b16

from attnwidget import VisionModel, default_model, methods
from attnwidget.scenes import make_scene


def contenders(vision: VisionModel, image: Image.Image) -> dict[str, Callable[[], object]]:
    model = vision.model
    pixel_values, _ = vision.prepare(image)
    layout = vision.layout(pixel_values)
    special, grid = layout.special_count, layout.grid
    last_norm = model.vit.layers[-1].layernorm_before
    to_maps = methods.vit_tokens_to_maps(special, grid)

    def logits() -> torch.Tensor:
        return model(pixel_values=pixel_values).logits

    def forward() -> None:
        with torch.no_grad():
            logits()

    def forward_backward() -> None:
        logits()[0].max().backward()
        model.zero_grad(set_to_none=True)

    def captured() -> torch.Tensor:
        layers: list[torch.Tensor] = []
        vision.run(pixel_values, lambda layer, weights: layers.append(weights[0]))
        return torch.stack(layers)

    def gradients() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        with vision.eager_attention():  # as `explain` runs them: sdpa returns no weights
            attentions, grads, _ = methods.attention_gradients(
                vision.attention_modules, vision.output_index, logits
            )
        model.zero_grad(set_to_none=True)
        return attentions, grads

    def rollout() -> torch.Tensor:
        return methods.token_map(methods.attention_rollout(captured(), discard_ratio=0.9), special, grid)

    def gradient_rollout() -> torch.Tensor:
        return methods.token_map(methods.gradient_rollout(*gradients(), discard_ratio=0.9), special, grid)

    def chefer() -> torch.Tensor:
        return methods.token_map(methods.chefer_relevance(*gradients()), special, grid)

    def grad_cam() -> torch.Tensor:
        cam, _ = methods.grad_cam_for(last_norm, logits, None, to_maps)
        model.zero_grad(set_to_none=True)
        return cam

    def statistics_per_head() -> None:
        attention = captured()
        methods.mean_attention_distance(attention, special, grid, vision.patch_size)
        methods.attention_entropy(attention)

    def dino_masks() -> None:
        attention = captured()
        for head_map in attention[-1, :, 0, special:]:
            methods.dino_mask(head_map, 0.6)

    return {
        "forward (no grad)": forward,
        "forward + backward": forward_backward,
        "capture (attnwidget hooks)": captured,
        "rollout": rollout,
        "gradient rollout": gradient_rollout,
        "Chefer": chefer,
        "Grad-CAM (last block's first norm)": grad_cam,
        "distance + entropy, every head": statistics_per_head,
        "DINO masks, last layer's heads": dino_masks,
    }


def measure(name: str, runs: dict[str, Callable[[], object]], repeats: int) -> None:
    times: dict[str, list[float]] = {key: [] for key in runs}
    for run in runs.values():  # warm-up
        run()
    for _ in range(repeats):
        for key, run in runs.items():
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    base = statistics.median(times["forward (no grad)"])
    print(f"\n{name}; torch {torch.__version__}, {torch.get_num_threads()} threads; median of {repeats}")
    print(f"| {'method':<36} | median ms | vs forward |")
    print(f"| {'-' * 36} | --------- | ---------- |")
    for key, values in times.items():
        median = statistics.median(values)
        print(f"| {key:<36} | {median * 1000:9.1f} | {median / base:9.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    vision = random_vit_b16()
    measure(
        "ViT-B/16 224 x 224, 12 x 12 heads", contenders(vision, Image.fromarray(data.chelsea())), args.repeats
    )
    scene = Image.fromarray(make_scene(1_000_000).image)
    measure("built-in model 96 x 96, 8 x 8 heads", contenders(default_model(), scene), args.repeats)


if __name__ == "__main__":
    main()
