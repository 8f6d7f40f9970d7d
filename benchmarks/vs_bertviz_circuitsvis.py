"""attnwidget against BertViz `model_view` and CircuitsVis `attention_heads`, side by side in JupyterLab 4
and Chromium: the real all-MiniLM-L6-v2 (6 layers x 12 heads = 72 heads) on the same text of 64, 128,
256 and 512 tokens.

Each tool runs as its users run it, in a notebook cell of one JupyterLab server with one kernel (the
model is loaded once): attnwidget displays an `AttentionGrid` and runs it on the text; BertViz
displays `model_view(attentions, tokens)`; CircuitsVis displays `attention_heads` of all 72 heads
in one call (its offline form, which inlines its script). A tool that does not finish is not run
again at that length. The attention is computed in the same cell,
with `output_attentions=True` for the other two. Every measurement opens the notebook in a fresh
Chromium page (same kernel), so no tool slows another. Measured, medians over the repeats:
- bytes the browser receives for the cell: every websocket message (counted in the page), plus the
  scripts BertViz fetches from its CDN (require.js, d3 5.7.0, jquery: served here from local copies,
  since this machine has no internet, and counted),
- Shift+Enter -> every one of the 72 heads drawn (attnwidget: the grid canvas reports 72 tiles
  drawn; BertViz: 72 head thumbnails in its SVG; CircuitsVis: its 72 head thumbnails), then the
  next frame painted,
- whether it finished within `--timeout` seconds at all,
- attnwidget only: click on a tile -> the full-size head drawn (the page is interactive).

    python benchmarks/vs_bertviz_circuitsvis.py [--tokens 64 128 256 512] [--repeats 3] [--timeout 120]

Needs `pip install bertviz==1.4.1 circuitsvis==1.43.3` (the `benchmarks` extra) and npm for the d3
and jquery copies.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "browser"))
from harness import CHROMIUM, CHROMIUM_ARGS, REPO, VIEWPORT, Notebook, start_server, write_notebook

HEADS = 6 * 12
TOOLS = ("attnwidget", "bertviz", "circuitsvis")

SETUP = f"""\
import sys, torch, attnwidget
from IPython.display import display
from bertviz import model_view
from circuitsvis.attention import attention_heads
from attnwidget.pretrained import minilm
from attnwidget.text import TextModel
sys.path.insert(0, {str(REPO / "benchmarks")!r})
from long_context import text_of
model, tokenizer = minilm()
text_model = TextModel(model, tokenizer, name="all-MiniLM-L6-v2")

def attentions(text):
    encoded = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        layers = model(**encoded, output_attentions=True).attentions
    return layers, tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])

print("ready")"""

CELLS = {
    "attnwidget": (
        "grid = attnwidget.AttentionGrid(text_model); display(grid); grid.run(text_of(text_model, {n}))"
    ),
    "bertviz": "layers, tokens = attentions(text_of(text_model, {n})); model_view(layers, tokens)",
    "circuitsvis": (
        "layers, tokens = attentions(text_of(text_model, {n}))\n"
        "display(attention_heads(torch.cat([layer[0] for layer in layers]), tokens))"
    ),
}

#: How many of the 72 heads each tool has drawn, from its DOM.
DRAWN_HEADS_JS = {
    "attnwidget": """() => {
      const grid = document.querySelector("[data-testid=attnwidget-grid]");
      const status = document.querySelector("[data-testid=attnwidget-status]");
      return grid && status?.dataset.status === "done" ? Number(grid.dataset.tilesDrawn || 0) : 0;
    }""",
    "bertviz": """() => document.querySelectorAll("rect.attn_background").length""",
    # 72 thumbnails and the selected head's large pattern, each a canvas.
    "circuitsvis": """() => Math.max(0, document.querySelectorAll("[id^=circuits-vis] canvas").length - 1)""",
}

#: Counts what the page's websockets receive, in the page (frames of hundreds of MB must not travel to
#: the test driver): characters of text frames (the JSON is ASCII), bytes of binary ones.
COUNT_WEBSOCKET_JS = """(() => {
  window.__received = 0;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        const data = event.data;
        window.__received += typeof data === "string" ? data.length : data.byteLength ?? data.size ?? 0;
      });
    }
  };
})();"""

#: Polls `drawn()` every animation frame from now; records when it reaches `total` and the paint after.
WATCH_JS = """([drawnSource, total]) => {
  const drawn = eval(drawnSource);
  const watch = { start: performance.now(), drawn: null, painted: null };
  window.__watch = watch;
  const tick = () => {
    if (drawn() >= total) {
      watch.drawn = performance.now();
      requestAnimationFrame(() => setTimeout(() => { watch.painted = performance.now(); }, 0));
      return;
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""

CLICK_TILE_JS = """async () => {
  const canvas = document.querySelector("[data-testid=attnwidget-grid]");
  const overlay = document.querySelector("[data-testid=attnwidget-overlay-canvas]");
  const [x, y, w, h] = JSON.parse(canvas.dataset.tileRects)[13];
  const box = canvas.getBoundingClientRect();
  const before = Number(overlay.dataset.draws || 0);
  const start = performance.now();
  const point = { bubbles: true, clientX: box.left + x + w / 2, clientY: box.top + y + h / 2 };
  canvas.dispatchEvent(new MouseEvent("click", point));
  while (Number(overlay.dataset.draws || 0) === before) await new Promise((done) => setTimeout(done, 0));
  return performance.now() - start;
}"""


def cdn_copies(folder: Path) -> dict[str, bytes]:
    """The scripts BertViz asks cdnjs for, from npm (jquery 2.0.0 is not on npm: 2.1.0 stands in)."""
    packages = ["d3@5.7.0", "jquery@2.1.0", "requirejs@2.3.6"]
    subprocess.run(
        [
            "npm",
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
            str(folder),
            *packages,
        ],
        check=True,
        capture_output=True,
    )
    modules = folder / "node_modules"
    return {
        "require.min.js": (modules / "requirejs" / "require.js").read_bytes(),
        "d3.min.js": (modules / "d3" / "dist" / "d3.min.js").read_bytes(),
        "jquery.min.js": (modules / "jquery" / "dist" / "jquery.min.js").read_bytes(),
    }


def measure_once(
    browser, server, tool: str, tokens: int, scripts: dict[str, bytes], timeout_s: float
) -> dict:
    """One cell of `tool` at `tokens` tokens in a fresh page: bytes, times, whether it finished."""
    page = browser.new_page(viewport=VIEWPORT)
    page.add_init_script(COUNT_WEBSOCKET_JS)
    served: list[int] = []
    crashed: list[bool] = []

    def serve_cdn(route) -> None:
        name = route.request.url.rsplit("/", 1)[-1]
        body = scripts.get(name if name.endswith(".js") else f"{name}.js")
        if body is None:
            route.abort()
            return
        served.append(len(body))
        route.fulfill(body=body, content_type="application/javascript")

    page.route("https://cdnjs.cloudflare.com/**", serve_cdn)
    page.on("crash", lambda _: crashed.append(True))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error).splitlines()[0]))
    try:
        page.goto(server.notebook_url("bench.ipynb"))
        notebook = Notebook(page, "bench.ipynb")
        notebook.wait_for_kernel_idle()
        page.wait_for_timeout(500)
        page.evaluate("window.__received = 0")
        page.evaluate(WATCH_JS, [DRAWN_HEADS_JS[tool], HEADS])
        notebook.run_cell(CELLS[tool].format(n=tokens), wait=False)
        page.wait_for_function("() => window.__watch.painted !== null", timeout=timeout_s * 1000)
        watch = page.evaluate("window.__watch")
        result = {"finished": True, "bytes": page.evaluate("window.__received"), "library": sum(served)}
        result["drawn_ms"] = watch["painted"] - watch["start"]
        if tool == "attnwidget":
            page.wait_for_timeout(300)
            result["click_ms"] = page.evaluate(CLICK_TILE_JS)
        return result
    except PlaywrightError as error:
        reason = "page crashed" if crashed else f"not drawn in {timeout_s:.0f} s"
        try:
            received = page.evaluate("window.__received")
        except PlaywrightError:
            received = float("nan")
        return {
            "finished": False,
            "why": reason,
            "bytes": received,
            "detail": str(error).splitlines()[0],
            "page_errors": errors[:3],
            "cdn_scripts_served": len(served),
        }
    finally:
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir, sync_playwright() as playwright:
        scripts = cdn_copies(Path(workdir) / "cdn")
        server = start_server("lab", Path(workdir) / "lab")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            write_notebook(server.root / "bench.ipynb")
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(server.notebook_url("bench.ipynb"))
            setup = Notebook(page, "bench.ipynb")
            setup.wait_for_kernel_idle()
            setup.run_cell(SETUP, timeout_ms=300_000)
            page.close()
            results = {}
            for tokens in args.tokens:
                for tool in args.tools:
                    runs = results[(tool, tokens)] = []
                    while len(runs) < args.repeats and all(run["finished"] for run in runs):
                        runs.append(measure_once(browser, server, tool, tokens, scripts, args.timeout))
                        print("measured:", tool, tokens, json.dumps(runs[-1]), flush=True)
        finally:
            browser.close()
            server.stop()
    report(results, args)


def report(results: dict, args) -> None:
    print(
        f"all-MiniLM-L6-v2, 6 x 12 = 72 heads, JupyterLab 4 + Chromium (headless); median of {args.repeats}"
    )
    columns = [
        "tokens",
        "tool",
        "finished",
        "bytes to the browser",
        "vs attnwidget",
        "Shift+Enter -> 72 heads drawn, ms",
        "vs attnwidget",
        "click -> head drawn, ms",
    ]
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("-" * len(column) for column in columns) + " |")
    for tokens in args.tokens:
        ours = results.get(("attnwidget", tokens), [])
        ours_done = [run for run in ours if run["finished"]]
        base_bytes = (
            statistics.median([run["bytes"] + run["library"] for run in ours_done]) if ours_done else None
        )
        base_ms = statistics.median([run["drawn_ms"] for run in ours_done]) if ours_done else None
        for tool in args.tools:
            runs = results[(tool, tokens)]
            done = [run for run in runs if run["finished"]]
            if not done:
                reasons = sorted({run["why"] for run in runs})
                sent = statistics.median([run["bytes"] for run in runs])
                cells = [str(tokens), tool, f"no ({', '.join(reasons)})", f"{sent:,.0f} received by then"]
                print("| " + " | ".join(cells) + " | | | | |")
                continue
            total = statistics.median([run["bytes"] + run["library"] for run in done])
            drawn = statistics.median([run["drawn_ms"] for run in done])
            click = statistics.median([run["click_ms"] for run in done]) if tool == "attnwidget" else None
            cells = [
                str(tokens),
                tool,
                f"{len(done)}/{len(runs)}",
                f"{total:,.0f}",
                f"{total / base_bytes:.1f}x" if base_bytes else "",
                f"{drawn:,.0f}",
                f"{drawn / base_ms:.1f}x" if base_ms else "",
                f"{click:.0f}" if click is not None else "",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
    print()
    print("raw:", json.dumps({f"{tool} {tokens}": runs for (tool, tokens), runs in results.items()}))


if __name__ == "__main__":
    main()
