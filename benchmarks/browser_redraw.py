"""Redraw of a 32 x 32 = 1024-head grid in Chromium when the colormap or the normalisation changes.

A ViT with 32 layers x 32 heads (random init, hidden size 256, 224 x 224, 197 tokens) in JupyterLab
4; the grid shows every head. For each view (query -> patch maps, 14 x 14 per tile; token x token
matrices, pooled to fit the payload budget) the toolbar's colormap and normalisation menus are
changed repeatedly, with the page idle between changes. Medians and maxima of:
- the grid's draw (recolouring all 1024 tiles and copying them to the canvas): must fit a frame,
  16 ms;
- the change event -> the next frame painted (includes waiting for the animation frame).

    python benchmarks/browser_redraw.py [--repeats 12]
"""

from __future__ import annotations

import argparse
import json
import statistics

from lab_notebook import lab_notebook

TILES = 32 * 32
FULL_GRID = f"[data-testid=attnwidget-grid][data-tiles-drawn='{TILES}']"
SETUP = """\
import torch, attnwidget
from skimage import data
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil
torch.manual_seed(0)
config = ViTConfig(num_hidden_layers=32, num_attention_heads=32, hidden_size=256, intermediate_size=512,
                   attn_implementation="eager")
vision = attnwidget.VisionModel(ViTForImageClassification(config).eval(), ViTImageProcessorPil(),
                                name="vit 32 x 32 heads (random init)")
grid = attnwidget.AttentionGrid(vision, data.chelsea())
grid"""

#: Moves a toolbar menu to the next of `values` (never its current value), then times the grid's
#: next draw and the frame painted after it.
CHANGE_JS = """async ([testId, values]) => {
  const canvas = document.querySelector("[data-testid=attnwidget-grid]");
  const select = document.querySelector(`[data-testid=${testId}]`);
  const value = values[(values.indexOf(select.value) + 1) % values.length];
  const before = Number(canvas.dataset.draws || 0);
  const start = performance.now();
  select.value = value;
  select.dispatchEvent(new Event("change", { bubbles: true }));
  while (Number(canvas.dataset.draws || 0) === before) await new Promise((done) => setTimeout(done, 0));
  await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
  return { draw: Number(canvas.dataset.drawMs), painted: performance.now() - start };
}"""

CHANGES = {
    "colormap": ("attnwidget-colormap", ["magma", "viridis", "inferno", "gray"]),
    "normalisation": ("attnwidget-normalize", ["layer", "global", "head"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=12)
    args = parser.parse_args()

    with lab_notebook() as notebook:
        notebook.run_cell(SETUP, timeout_ms=300_000)
        notebook.page.wait_for_selector(FULL_GRID, timeout=300_000)
        rows = measure(notebook.page, args.repeats)
    report(rows, args.repeats)


def measure(page, repeats: int) -> dict[tuple[str, str], dict[str, list[float]]]:
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for view in ("query", "matrix"):
        if view == "matrix":
            page.evaluate(CHANGE_JS, ["attnwidget-view", ["query", "matrix"]])
        page.wait_for_selector(FULL_GRID, timeout=60_000)
        for name, (test_id, values) in CHANGES.items():
            times: dict[str, list[float]] = {"draw": [], "painted": []}
            for repeat in range(repeats + 1):  # the first change warms up and is not counted
                page.wait_for_timeout(150)  # an idle page between changes, as a user's clicks
                result = page.evaluate(CHANGE_JS, [test_id, values])
                if repeat > 0:
                    times["draw"].append(result["draw"])
                    times["painted"].append(result["painted"])
            rows[(view, name)] = times
    return rows


def report(rows: dict[tuple[str, str], dict[str, list[float]]], repeats: int) -> None:
    print(f"32 x 32 = {TILES} heads, JupyterLab 4 + Chromium (headless), 2 CPU cores; {repeats} changes each")
    print("| view | change | draw median ms | draw max ms | change -> painted median ms |")
    print("| ---- | ------ | -------------- | ----------- | --------------------------- |")
    for (view, name), times in rows.items():
        draw, painted = times["draw"], times["painted"]
        cells = [f"{statistics.median(draw):.1f}", f"{max(draw):.1f}", f"{statistics.median(painted):.1f}"]
        print(f"| {view} | {name} | " + " | ".join(cells) + " |")
    print()
    raw = {
        f"{view}/{name}": {k: [round(v, 1) for v in vs] for k, vs in t.items()}
        for (view, name), t in rows.items()
    }
    print("raw:", json.dumps(raw))


if __name__ == "__main__":
    main()
