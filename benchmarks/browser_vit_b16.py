"""Browser-side cost of attnwidget on ViT-B/16 at 224 x 224 (random init), in JupyterLab 4 + Chromium.

One JupyterLab server, one Chromium page, one kernel; the widget is displayed once, then
`grid.run(image)` is run N times, alternating two photographs. Medians of:
- bytes the browser receives over the kernel's websocket during one run (every frame counted),
- Shift+Enter -> first tile drawn, and -> all 144 tiles drawn (includes the forward pass),
- the kernel's own time for `grid.run` (measured in the cell), for comparison,
- click on a tile -> the full-size overlay drawn, and -> the next frame painted (with the page idle,
  after the runs; the kernel's exact values for the head arrive after that and are not waited for).

    python benchmarks/browser_vit_b16.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics

from lab_notebook import lab_notebook

SETUP = """\
import time, torch, attnwidget
from skimage import data
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil
torch.manual_seed(0)
model = ViTForImageClassification(ViTConfig(attn_implementation="eager")).eval()
vision = attnwidget.VisionModel(model, ViTImageProcessorPil(), name="vit-base-patch16-224 (random init)")
images = [data.chelsea(), data.astronaut()]
grid = attnwidget.AttentionGrid(vision, images[1])
grid"""

#: Alternates between two photographs, so every run sends new maps, matrices and picture.
RUN = (
    "start = time.perf_counter(); grid.run(images[{}]); print(round((time.perf_counter() - start) * 1e3, 1))"
)

#: Watches the grid: when its old tiles are hidden (a new run), the first new tile, the full grid.
WATCH_GRID_JS = """(total) => {
  const canvas = document.querySelector("[data-testid=attnwidget-grid]");
  const watch = { start: performance.now(), cleared: null, first: null, full: null };
  window.__gridWatch = watch;
  const tick = () => {
    const drawn = Number(canvas.dataset.tilesDrawn);
    const now = performance.now();
    if (watch.cleared === null && drawn < total) watch.cleared = now;
    if (watch.cleared !== null && watch.first === null && drawn > 0) watch.first = now;
    if (watch.cleared !== null && drawn === total) { watch.full = now; return; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""

#: Clicks the centre of tile `index` and times the overlay's next drawn frame and the paint after it.
CLICK_TILE_JS = """async (index) => {
  const canvas = document.querySelector("[data-testid=attnwidget-grid]");
  const overlay = document.querySelector("[data-testid=attnwidget-overlay-canvas]");
  const [x, y, w, h] = JSON.parse(canvas.dataset.tileRects)[index];
  const box = canvas.getBoundingClientRect();
  const before = Number(overlay.dataset.draws || 0);
  const start = performance.now();
  const point = { bubbles: true, clientX: box.left + x + w / 2, clientY: box.top + y + h / 2 };
  canvas.dispatchEvent(new MouseEvent("click", point));
  while (Number(overlay.dataset.draws || 0) === before) await new Promise((done) => setTimeout(done, 0));
  const drawn = performance.now();
  await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
  return { drawn: drawn - start, painted: performance.now() - start };
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    received: list[int] = []

    def count_bytes(page) -> None:
        page.on("websocket", lambda ws: ws.on("framereceived", lambda data: received.append(len(data))))

    with lab_notebook(before_open=count_bytes) as notebook:
        notebook.run_cell(SETUP)
        notebook.page.wait_for_selector("[data-testid=attnwidget-grid][data-tiles-drawn='144']")
        rows = measure(notebook, received, args.repeats)
    report(rows, args.repeats)


def measure(notebook, received: list[int], repeats: int) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {
        key: [] for key in ("bytes", "first", "full", "kernel", "drawn", "painted")
    }
    page = notebook.page
    for repeat in range(repeats + 1):  # the first round warms up and is not counted
        received.clear()
        page.evaluate(WATCH_GRID_JS, 144)
        cell = notebook.run_cell(RUN.format(repeat % 2))
        page.wait_for_function("() => window.__gridWatch.full !== null", timeout=60_000)
        watch = page.evaluate("window.__gridWatch")
        kernel_ms = ast.literal_eval(notebook.output_text(cell).strip())
        if repeat > 0:
            rows["bytes"].append(sum(received))
            rows["first"].append(watch["first"] - watch["start"])
            rows["full"].append(watch["full"] - watch["start"])
            rows["kernel"].append(kernel_ms)
    close = page.locator("[data-testid=attnwidget-overlay-close]")
    for repeat in range(repeats + 1):  # clicks on different tiles, each with the page idle
        page.wait_for_timeout(300)
        clicked = page.evaluate(CLICK_TILE_JS, 13 * repeat % 144)
        close.click()
        if repeat > 0:
            rows["drawn"].append(clicked["drawn"])
            rows["painted"].append(clicked["painted"])
    return rows


def report(rows: dict[str, list[float]], repeats: int) -> None:
    median = {key: statistics.median(values) for key, values in rows.items()}
    print(f"ViT-B/16 224 x 224, 12 x 12 heads, JupyterLab 4 + Chromium (headless); median of {repeats}")
    lines = [
        ("bytes received by the browser for one run (all websocket frames)", f"{median['bytes']:,.0f}"),
        ("Shift+Enter -> first tile drawn (ms)", f"{median['first']:.0f}"),
        ("Shift+Enter -> full 12 x 12 grid drawn (ms)", f"{median['full']:.0f}"),
        ("  of which the kernel's grid.run (ms)", f"{median['kernel']:.0f}"),
        ("click on a tile -> overlay drawn (ms)", f"{median['drawn']:.1f}"),
        ("click on a tile -> next frame painted (ms)", f"{median['painted']:.1f}"),
    ]
    width = max(len(label) for label, _ in lines)
    print(f"| {'what':<{width}} | median |")
    print(f"| {'-' * width} | ------ |")
    for label, value in lines:
        print(f"| {label:<{width}} | {value:>6} |")
    print()
    print("raw:", json.dumps({key: [round(v, 1) for v in values] for key, values in rows.items()}))


if __name__ == "__main__":
    main()
