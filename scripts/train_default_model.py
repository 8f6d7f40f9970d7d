"""Train the default model shipped in `attnwidget/weights/vit-8x8-shapes/` on `attnwidget.scenes`.

    python scripts/train_default_model.py

A ViTForImageClassification (8 layers x 8 heads, patch 8, hidden 128, 96 x 96 input) learns to name the
target shape of each scene. A ViT trained from scratch on a few hundred thousand images learns slowly,
so besides the class of the scene, training uses the ground truth the scenes come with (all aids are
dropped from the shipped model; the model card lists them):

- token labels: every patch token of the last layer predicts the class of the target under it, or
  "background" (Jiang et al., 2021, "All Tokens Matter");
- mask cells: the patch tokens of layer 3 predict the target's mask on a 4 x 4 grid of cells inside
  their patch, so early layers learn the geometry of edges whatever the colours;
- attention on the target: minus the log of the share of the last layer's head-mean CLS attention
  that falls on the target's patches;
- initialisation: sine-cosine positions and mimetic attention (Trockman & Kolter, 2023).

Checkpoints of the same run (by default after 1000, 2000 and 3000 of its 5000 steps) are saved too,
so that a real sweep exists whose predictions go from wrong to right.

Scenes are drawn once (seeds 0 .. pool-1) and augmented with the 8 flips / quarter turns of the square
and a random permutation of the colour channels, which change no label. Seeded and reproducible: the
same command with the same library versions gives the same weights.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attnwidget.default_model import CHECKPOINTS_DIR  # noqa: E402
from attnwidget.scenes import CLASSES, PATCH_SIZE, pointing_hit, scene_batch  # noqa: E402

IMAGE_SIZE = 96
GRID = IMAGE_SIZE // PATCH_SIZE
MASK_CELLS = 4  # mask cells per patch side
MASK_LAYER = 3  # its patch tokens predict the mask cells
BACKGROUND = len(CLASSES)  # token label of a patch mostly off the target
VALIDATION_SEEDS = range(990_000, 990_384)  # monitoring during training
HELD_OUT_START = 1_000_000  # the model card's figures; tests use seeds from 2,000,000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "attnwidget" / "weights" / "vit-8x8-shapes")
    parser.add_argument("--pool", type=int, default=24_000, help="training scenes (seeds 0 .. pool-1)")
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup", type=float, default=0.05, help="fraction of the steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument(
        "--checkpoints",
        type=lambda text: [int(step) for step in text.split(",")],
        default=[1000, 2000, 3000],
        help="steps after which the model is saved too (comma-separated)",
    )
    parser.add_argument("--held-out", type=int, default=500, help="held-out scenes for the model card")
    return parser.parse_args(argv)


# --- model -----------------------------------------------------------------------------------------


def build_model(hidden: int = 128) -> ViTForImageClassification:
    config = ViTConfig(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=hidden,
        num_hidden_layers=8,
        num_attention_heads=8,
        intermediate_size=2 * hidden,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=len(CLASSES),
        id2label=dict(enumerate(CLASSES)),
        label2id={name: i for i, name in enumerate(CLASSES)},
        attn_implementation="sdpa",
    )
    model = ViTForImageClassification(config)
    with torch.no_grad():
        model.vit.embeddings.position_embeddings[0, 1:] = sincos_positions(GRID, hidden)
        model.vit.embeddings.position_embeddings[0, 0] = 0
    mimetic_init(model)
    return model


def sincos_positions(grid: int, width: int, lowest: float = 1e-4) -> torch.Tensor:
    """2-d sine-cosine position codes [grid * grid, width] (row codes, then column codes), row-major."""
    quarter = width // 4
    frequencies = lowest ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    rows, cols = torch.meshgrid(torch.arange(float(grid)), torch.arange(float(grid)), indexing="ij")
    codes = []
    for coordinate in (rows.flatten(), cols.flatten()):
        angles = coordinate[:, None] * frequencies[None]
        codes += [angles.sin(), angles.cos()]
    return torch.cat(codes, dim=1)


@torch.no_grad()
def mimetic_init(model: ViTForImageClassification, qk: float = 0.7, vo: float = 0.4) -> None:
    """Set W_q^T W_k ~ qk (Z + I) and W_o W_v ~ vo (Z - I), Z ~ N(0, 1/d), in every layer.

    With sine-cosine positions, tokens then attend to their neighbours from the first step, as in
    trained ViTs (Trockman & Kolter, 2023, "Mimetic Initialization of Self-Attention Layers").
    """
    width = model.config.hidden_size
    eye = torch.eye(width)
    for layer in model.vit.layers:
        attention = layer.attention
        u, s, vh = torch.linalg.svd(qk * (torch.randn(width, width) / math.sqrt(width) + eye))
        attention.q_proj.weight.copy_(s.sqrt()[:, None] * u.T)
        attention.k_proj.weight.copy_(s.sqrt()[:, None] * vh)
        u, s, vh = torch.linalg.svd(vo * (torch.randn(width, width) / math.sqrt(width) - eye))
        attention.o_proj.weight.copy_(u * s.sqrt()[None])
        attention.v_proj.weight.copy_(s.sqrt()[:, None] * vh)


class TrainingHeads(nn.Module):
    """The training aids' heads on top of the ViT; they are not shipped."""

    def __init__(self, hidden: int):
        super().__init__()
        self.token_label = nn.Linear(hidden, len(CLASSES) + 1)
        self.mask_cells = nn.Linear(hidden, MASK_CELLS**2)


# --- data ------------------------------------------------------------------------------------------


class ScenePool:
    """Scenes for seeds 0 .. size-1 as tensors: images, labels, token labels and mask cells."""

    def __init__(self, size: int):
        images, labels, masks = scene_batch(range(size), IMAGE_SIZE)
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # uint8 [N, 3, H, W]
        self.labels = torch.from_numpy(labels)
        cells = F.avg_pool2d(torch.from_numpy(masks).float()[:, None], PATCH_SIZE // MASK_CELLS)[:, 0]
        cells = cells.reshape(size, GRID, MASK_CELLS, GRID, MASK_CELLS).permute(0, 1, 3, 2, 4)
        self.cells = cells.to(torch.float16).contiguous()  # [N, GRID, GRID, cells, cells]

    def batch(self, generator: torch.Generator, size: int) -> dict[str, torch.Tensor]:
        """A random augmented batch: the same flip / quarter turn for image and mask, shuffled channels."""
        index = torch.randint(len(self.labels), (size,), generator=generator)
        images, cells = self.images[index].clone(), self.cells[index].float()
        symmetry = torch.randint(8, (size,), generator=generator)
        for transform in range(8):
            chosen = symmetry == transform
            if chosen.any():
                images[chosen], cells[chosen] = _dihedral(images[chosen], cells[chosen], transform)
        channels = torch.argsort(torch.rand(size, 3, generator=generator), dim=1)
        images = torch.gather(images, 1, channels[:, :, None, None].expand_as(images))
        coverage = cells.mean(dim=(-1, -2)).flatten(1)  # share of each patch on the target
        labels = self.labels[index]
        token_labels = torch.where(coverage >= 0.5, labels[:, None], BACKGROUND)
        return {
            "pixel_values": to_pixel_values(images),
            "labels": labels,
            "token_labels": token_labels,
            "coverage": coverage,
            "cells": cells.flatten(3).flatten(1, 2),  # [B, patches, cells**2]
        }


def _dihedral(images: torch.Tensor, cells: torch.Tensor, transform: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Quarter turns `transform % 4` then a left-right flip when `transform >= 4`, on both tensors.

    `cells` is [B, GRID, GRID, c, c]: turning the image turns the patch grid and each patch's cells.
    """
    turns = transform % 4
    images = torch.rot90(images, turns, (2, 3))
    cells = torch.rot90(torch.rot90(cells, turns, (1, 2)), turns, (3, 4))
    if transform >= 4:
        images, cells = images.flip(3), cells.flip(2).flip(4)
    return images, cells


def to_pixel_values(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 [B, 3, H, W] (or [B, H, W, 3] numpy) -> float in [-1, 1], as the shipped processor does."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images).permute(0, 3, 1, 2)
    return images.float() / 127.5 - 1.0


# --- training --------------------------------------------------------------------------------------


def cls_attention_on_target(model: ViTForImageClassification, hidden: torch.Tensor, coverage: torch.Tensor):
    """Share of the last layer's head-mean CLS attention over patches that falls on the target.

    Recomputes only the CLS row of the last layer from its input `hidden`, so training can run the
    model with sdpa (which returns no weights).
    """
    layer = model.vit.layers[-1]
    heads = model.config.num_attention_heads
    normed = layer.layernorm_before(hidden)
    batch, tokens, width = normed.shape
    query = layer.attention.q_proj(normed[:, :1]).view(batch, 1, heads, -1).transpose(1, 2)
    keys = layer.attention.k_proj(normed).view(batch, tokens, heads, -1).transpose(1, 2)
    weights = (query @ keys.transpose(-1, -2) / math.sqrt(width // heads)).softmax(-1)
    to_patches = weights[:, :, 0, 1:].mean(dim=1)
    return (to_patches * coverage).sum(-1)


def losses(model: ViTForImageClassification, heads: TrainingHeads, batch: dict) -> dict[str, torch.Tensor]:
    out = model.vit(pixel_values=batch["pixel_values"], output_hidden_states=True)
    tokens = out.last_hidden_state
    cls = tokens[:, 0]
    labels = batch["labels"]
    logits = model.classifier(cls)
    on_target = cls_attention_on_target(model, out.hidden_states[-2], batch["coverage"])
    mask_logits = heads.mask_cells(out.hidden_states[MASK_LAYER][:, 1:])
    return {
        "class": F.cross_entropy(logits, labels),
        "tokens": F.cross_entropy(heads.token_label(tokens[:, 1:]).transpose(1, 2), batch["token_labels"]),
        "mask": F.binary_cross_entropy_with_logits(mask_logits, batch["cells"]),
        "attention": -torch.log(on_target.clamp_min(1e-6)).mean(),
        "correct": (logits.argmax(-1) == labels).float().mean().detach(),
    }


def learning_rate(step: int, args: argparse.Namespace) -> float:
    warmup = max(1, int(args.warmup * args.steps))
    if step < warmup:
        return args.lr * (step + 1) / warmup
    return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))


def train(args: argparse.Namespace) -> tuple[ViTForImageClassification, list[str]]:
    torch.manual_seed(args.seed)
    model, heads = build_model(), TrainingHeads(128)
    parameters = [*model.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": args.weight_decay},
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=args.lr,
    )
    generator = torch.Generator().manual_seed(args.seed)
    start = time.time()
    pool = ScenePool(args.pool)
    log = [f"drew {args.pool} scenes in {time.time() - start:.0f}s"]
    print(log[-1], flush=True)
    totals: dict[str, float] = {}
    model.train()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        terms = losses(model, heads, pool.batch(generator, args.batch))
        loss = sum(value for key, value in terms.items() if key != "correct")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        for key, value in terms.items():
            totals[key] = totals.get(key, 0.0) + float(value.detach()) / args.eval_every
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            metrics = evaluate(model, VALIDATION_SEEDS)
            model.train()
            line = (
                f"step {step + 1:5d}/{args.steps} {time.time() - start:5.0f}s "
                + " ".join(f"{key} {value:.3f}" for key, value in totals.items())
                + f" | validation accuracy {metrics['accuracy']:.3f} pointing {metrics['pointing_game']:.3f}"
            )
            print(line, flush=True)
            log.append(line)
            totals = {}
        if step + 1 in args.checkpoints:
            save_model(model, args.out / CHECKPOINTS_DIR / f"step-{step + 1}")
            model.train()
    return model.eval(), log


# --- evaluation and saving -------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: ViTForImageClassification, seeds: range) -> dict:
    """Accuracy, confusion and pointing game per layer (CLS row, head mean) on the scenes of `seeds`."""
    model.eval()
    implementation = model.config._attn_implementation
    model.set_attn_implementation("eager")
    correct = 0
    confusion = np.zeros((len(CLASSES), len(CLASSES)), int)
    hits = np.zeros(model.config.num_hidden_layers, int)
    for first in range(seeds.start, seeds.stop, 100):
        images, labels, masks = scene_batch(range(first, min(first + 100, seeds.stop)), IMAGE_SIZE)
        out = model(pixel_values=to_pixel_values(images), output_attentions=True)
        predicted = out.logits.argmax(-1).numpy()
        correct += int((predicted == labels).sum())
        np.add.at(confusion, (labels, predicted), 1)
        for layer, attention in enumerate(out.attentions):
            maps = attention[:, :, 0, 1:].mean(1).reshape(-1, GRID, GRID).numpy()
            hits[layer] += sum(pointing_hit(m, mask) for m, mask in zip(maps, masks, strict=True))
    model.set_attn_implementation(implementation)
    total = len(seeds)
    return {
        "scenes": total,
        "seeds": [seeds.start, seeds.stop],
        "accuracy": correct / total,
        "pointing_game": hits[-1] / total,
        "pointing_game_by_layer": [round(h / total, 4) for h in hits],
        "confusion": {"classes": list(CLASSES), "rows_true_columns_predicted": confusion.tolist()},
    }


def save_model(model: ViTForImageClassification, out: Path) -> None:
    """The ViT as fp16 safetensors with its config (eager attention, as `evaluate` reads it;
    `attnwidget.default_model` loads it on sdpa)."""
    implementation = model.config._attn_implementation
    model.config._attn_implementation = "eager"
    model.to(torch.float16).save_pretrained(out)
    model.to(torch.float32)
    model.config._attn_implementation = implementation


def load_model(directory: Path) -> ViTForImageClassification:
    """Saved fp16 weights, loaded back as fp32: what users get."""
    return ViTForImageClassification.from_pretrained(
        directory, attn_implementation="eager", dtype=torch.float32
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    model, log = train(args)
    wall = time.time() - start
    save_model(model, args.out)
    ViTImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(args.out)
    held_out = range(HELD_OUT_START, HELD_OUT_START + args.held_out)
    metrics = evaluate(load_model(args.out), held_out)
    checkpoints = {
        str(step): evaluate(load_model(args.out / CHECKPOINTS_DIR / f"step-{step}"), held_out)["accuracy"]
        for step in args.checkpoints
    }
    report = {
        "command": " ".join(["python scripts/train_default_model.py", *(argv or sys.argv[1:])]),
        "arguments": {key: str(value) for key, value in vars(args).items() if key != "out"},
        "steps": args.steps,
        "train_seconds": round(wall),
        "train_images": args.steps * args.batch,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
        },
        "threads": args.threads,
        "held_out": metrics,
        "checkpoint_accuracy": checkpoints,
        "log": log,
    }
    (args.out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "README.md").write_text(model_card(report))
    print(json.dumps(metrics, indent=2))


def model_card(report: dict) -> str:
    """The model card, written from the training report so that every figure in it is measured."""
    held_out, arguments = report["held_out"], report["arguments"]
    checkpoints = {**report["checkpoint_accuracy"], str(report["steps"]): held_out["accuracy"]}
    confusion = held_out["confusion"]
    classes = confusion["classes"]
    confusion_rows = "\n".join(
        f"| {name} | " + " | ".join(str(count) for count in row) + " |"
        for name, row in zip(classes, confusion["rows_true_columns_predicted"], strict=True)
    )
    first, last = held_out["seeds"][0], held_out["seeds"][1] - 1
    by_layer = ", ".join(f"{value:.2f}" for value in held_out["pointing_game_by_layer"])
    return f"""# attnwidget/vit-8x8-shapes

The default model of attnwidget: what the widget shows when no model is given. A
`ViTForImageClassification` with 8 layers x 8 heads (hidden size 128, MLP 256, patch 8, 96 x 96
input), trained from scratch to name the target shape of `attnwidget.scenes` ({", ".join(classes)}):
one shape of random size, position, colour and rotation over crops of scikit-image's photographs,
with distractor strokes. Its attention is learned, and the scenes give the ground truth to check it
against. It is a demonstration and test model, not a general vision model: on photographs its
predictions mean nothing.

## Files

- `model.safetensors`, `config.json`: the ViT in fp16 (loaded as fp32), eager attention.
- `preprocessor_config.json`: resize to 96 x 96, then `(x / 255 - 0.5) / 0.5`.
- `{CHECKPOINTS_DIR}/step-N/`: the same run after N steps (`default_model(step=N)`), a sweep whose
  predictions go from wrong to right.
- `training.json`: the command, arguments, library versions, training log and held-out figures.

## Training

    {report["command"]}

{report["train_images"]:,} augmented images drawn from {int(arguments["pool"]):,} scenes (seeds 0 ..
{int(arguments["pool"]) - 1}), {report["train_seconds"] / 60:.0f} minutes on {report["threads"]} CPU threads
(torch {report["versions"]["torch"]}, transformers {report["versions"]["transformers"]}). AdamW,
learning rate {arguments["lr"]} with warm-up and cosine decay, batch {arguments["batch"]}, weight decay
{arguments["weight_decay"]}. The training aids, all dropped from the shipped model:

- token labels: each last-layer patch token predicts the class under it, or background;
- mask cells: layer-3 patch tokens predict the target's mask on a 4 x 4 grid inside their patch;
- attention on the target: the loss includes minus the log of the share of the last layer's
  head-mean CLS attention that falls on the target's patches. **The last layer's CLS attention was
  trained to point at the target**, so its pointing game measures how well that holds on unseen
  scenes; the other layers were not (see the pointing game by layer);
- sine-cosine position and mimetic attention initialisation (Trockman & Kolter, 2023).

## Held-out figures: {held_out["scenes"]} scenes never seen in training (seeds {first:,} .. {last:,})

| measure | value |
|---|---|
| accuracy | {held_out["accuracy"]:.3f} |
| pointing game: arg-max of the last layer's head-mean CLS attention inside the mask | \
{held_out["pointing_game"]:.3f} |
| pointing game by layer, 1 to 8 | {by_layer} |

Accuracy of the checkpoints of the same run, on the same scenes:

| after step | {" | ".join(checkpoints)} |
|{"---|" * (len(checkpoints) + 1)}
| accuracy | {" | ".join(f"{value:.3f}" for value in checkpoints.values())} |

Confusion of the final model (rows: true class, columns: predicted):

| true \\ predicted | {" | ".join(classes)} |
|{"---|" * (len(classes) + 1)}
{confusion_rows}

`tests/test_default_model.py` measures the shipped files again on 500 other scenes (seeds from
2,000,000) and checks them against these figures.
"""


if __name__ == "__main__":
    main()
