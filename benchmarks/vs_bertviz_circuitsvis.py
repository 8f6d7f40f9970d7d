"""attnwidget against BertViz `model_view` and CircuitsVis `attention_heads`, side by side in Chromium:
the real all-MiniLM-L6-v2 (6 layers x 12 heads = 72 heads) on the same text of 64, 128, 256 and 512
tokens.

- attnwidget runs as its users run it, in a notebook cell of JupyterLab 4 (the kernel already has the
  model loaded): display an `AttentionGrid` and run it on the text. Every measurement opens the
  notebook in a fresh page. Bytes: every websocket message the page receives during the cell
  (counted in the page). Time: Shift+Enter -> all 72 tiles drawn (the grid canvas says so) and the
  next frame painted; this includes the forward pass. Also: click on a tile -> full-size head drawn.
- BertViz (`model_view(attentions, tokens)`) and CircuitsVis (`attention_heads` of all 72 heads in
  one call, its offline form, which inlines its script) get `output_attentions=True` from the same
  model and text in this process, and their HTML is opened as a page of its own. Their HTML runs to
  tens or hundreds of MB, more than a notebook's websocket and the browser driver's protocol carry
  here, so a standalone page is the most favourable way to show it: it is read from disk. Bytes: the
  HTML, plus the scripts BertViz fetches from its CDN (require.js, d3 5.7.0, jquery; served here from
  npm copies, since this machine has no internet; jquery 2.0.0 is not on npm, 2.1.0 stands in).
  Time: the attention and the HTML in Python, plus page load -> 72 heads drawn (BertViz: 72 head
  thumbnails in its SVG; CircuitsVis: 72 thumbnails and the large pattern, each a canvas) and the
  next frame painted.
- A tool that does not draw within `--timeout` seconds, or whose page crashes, did not finish; it is
  not run again at that length.

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
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "browser"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_vit_b16 import CLICK_TILE_JS
from harness import CHROMIUM, CHROMIUM_ARGS, REPO, VIEWPORT, Notebook, start_server, write_notebook

HEADS = 6 * 12
TOOLS = ("attnwidget", "bertviz", "circuitsvis")

SETUP = f"""\
import sys, attnwidget
from IPython.display import display
from attnwidget.pretrained import minilm
from attnwidget.text import TextModel
sys.path.insert(0, {str(REPO / "benchmarks")!r})
from long_context import text_of
text_model = TextModel(*minilm(), name="all-MiniLM-L6-v2")
print("ready")"""

#: Display the grid, then run it: the layers stream into the view. (`run` returns the grid; the ";" keeps
#: the cell from displaying it a second time.)
CELL = "grid = attnwidget.AttentionGrid(text_model); display(grid); grid.run(text_of(text_model, {n}));"


def other_tool_html(tool: str, text_model, tokens: int) -> tuple[str, float]:
    """BertViz's or CircuitsVis's page for a text of `tokens` tokens, and the seconds making it took."""
    import torch
    from bertviz import model_view
    from circuitsvis.attention import attention_heads
    from long_context import text_of

    start = time.perf_counter()
    encoded = text_model.tokenizer(text_of(text_model, tokens), return_tensors="pt")
    with torch.no_grad():
        layers = text_model.model(**encoded, output_attentions=True).attentions
    labels = text_model.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    if tool == "bertviz":
        body = model_view(layers, labels, html_action="return").data
    else:
        body = attention_heads(torch.cat([layer[0] for layer in layers]), labels)._repr_html_()
    return f"<!doctype html><html><body>{body}</body></html>", time.perf_counter() - start


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
WATCH_JS = """([drawnSource, total, start]) => {
  const drawn = eval(drawnSource);
  const watch = { start: start ?? performance.now(), drawn: null, painted: null };
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


def measure_attnwidget(browser, server, tokens: int, timeout_s: float, cell: str = CELL) -> dict:
    """One cell of attnwidget (`cell`, formatted with `n`) at `tokens` tokens in a fresh JupyterLab page."""
    page = browser.new_page(viewport=VIEWPORT)
    page.add_init_script(COUNT_WEBSOCKET_JS)
    try:
        page.goto(server.notebook_url("bench.ipynb"))
        notebook = Notebook(page, "bench.ipynb")
        notebook.wait_for_kernel_idle()
        page.wait_for_timeout(500)
        page.evaluate("window.__received = 0")
        page.evaluate(WATCH_JS, [DRAWN_HEADS_JS["attnwidget"], HEADS, None])
        notebook.run_cell(cell.format(n=tokens), wait=False)
        page.wait_for_function("() => window.__watch.painted !== null", timeout=timeout_s * 1000)
        watch = page.evaluate("window.__watch")
        page.wait_for_timeout(300)
        return {
            "finished": True,
            "bytes": page.evaluate("window.__received"),
            "drawn_ms": watch["painted"] - watch["start"],
            "click_ms": page.evaluate(CLICK_TILE_JS, 13)["drawn"],
        }
    except PlaywrightError as error:
        return {
            "finished": False,
            "why": f"not drawn in {timeout_s:.0f} s",
            "bytes": float("nan"),
            "detail": str(error).splitlines()[0],
        }
    finally:
        page.close()


def measure_page(
    browser, tool: str, html: Path, making_s: float, scripts: dict, timeout_s: float, drawn_js: str = ""
) -> dict:
    """A peer's page, opened fresh: bytes, time to 72 heads drawn (`drawn_js` counts them, BertViz's
    or CircuitsVis' count by default), or why not."""
    page = browser.new_page(viewport=VIEWPORT)
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
    drawn = drawn_js or DRAWN_HEADS_JS[tool]
    page.add_init_script(f"({WATCH_JS})([{json.dumps(drawn)}, {HEADS}, 0])")
    try:
        page.goto(html.as_uri(), wait_until="commit", timeout=timeout_s * 1000)
        page.wait_for_function("() => window.__watch.painted !== null", timeout=timeout_s * 1000)
        painted = page.evaluate("window.__watch.painted")  # from the navigation's start
        return {
            "finished": True,
            "bytes": html.stat().st_size + sum(served),
            "library": sum(served),
            "drawn_ms": making_s * 1000 + painted,
            "python_ms": making_s * 1000,
        }
    except PlaywrightError as error:
        reason = "page crashed" if crashed else f"not drawn in {timeout_s:.0f} s"
        return {
            "finished": False,
            "why": reason,
            "bytes": html.stat().st_size,
            "detail": str(error).splitlines()[0],
        }
    finally:
        page.close()


def arguments(tokens: list[int], tools: tuple[str, ...]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=tokens)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--tools", nargs="+", choices=tools, default=list(tools))
    return parser.parse_args()


def measure_all(
    args: argparse.Namespace,
    setup: str,
    cell: str,
    peer_html: Callable[[str, int], tuple[str, float]],
    drawn_js: dict[str, str] | None = None,
) -> dict:
    """Every tool at every length, `args.repeats` times (a tool that does not finish is not run again
    at that length): attnwidget runs `cell` in a JupyterLab kernel prepared by `setup`; a peer's page
    is `peer_html(tool, tokens)` (its HTML and the seconds making it took), its heads counted by
    `drawn_js[tool]` where given."""
    with tempfile.TemporaryDirectory() as workdir, sync_playwright() as playwright:
        scripts = cdn_copies(Path(workdir) / "cdn")
        server = start_server("lab", Path(workdir) / "lab")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            write_notebook(server.root / "bench.ipynb")
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(server.notebook_url("bench.ipynb"))
            notebook = Notebook(page, "bench.ipynb")
            notebook.wait_for_kernel_idle()
            notebook.run_cell(setup, timeout_ms=300_000)
            page.close()
            results: dict = {}
            for tokens in args.tokens:
                for tool in args.tools:
                    runs = results[(tool, tokens)] = []
                    while len(runs) < args.repeats and all(run["finished"] for run in runs):
                        if tool == "attnwidget":
                            runs.append(measure_attnwidget(browser, server, tokens, args.timeout, cell))
                        else:
                            body, making_s = peer_html(tool, tokens)
                            html = Path(workdir) / f"{tool}-{tokens}.html"
                            html.write_text(body)
                            del body
                            drawn = (drawn_js or {}).get(tool, "")
                            runs.append(
                                measure_page(browser, tool, html, making_s, scripts, args.timeout, drawn)
                            )
                        print("measured:", tool, tokens, json.dumps(runs[-1]), flush=True)
        finally:
            browser.close()
            server.stop()
    return results


def main() -> None:
    args = arguments([64, 128, 256, 512], TOOLS)

    from attnwidget.pretrained import minilm
    from attnwidget.text import TextModel

    text_model = TextModel(*minilm(), name="all-MiniLM-L6-v2")
    results = measure_all(args, SETUP, CELL, lambda tool, tokens: other_tool_html(tool, text_model, tokens))
    report(results, args)


def report(results: dict, args, title: str = "all-MiniLM-L6-v2, 6 x 12 = 72 heads") -> None:
    print(f"{title}, JupyterLab 4 + Chromium (headless); median of {args.repeats}")
    columns = [
        "tokens",
        "tool",
        "finished",
        "bytes to the browser",
        "vs attnwidget",
        "input -> 72 heads drawn, ms",
        "vs attnwidget",
        "click -> head drawn, ms",
    ]
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("-" * len(column) for column in columns) + " |")
    for tokens in args.tokens:
        ours = results.get(("attnwidget", tokens), [])
        ours_done = [run for run in ours if run["finished"]]
        base_bytes = statistics.median([run["bytes"] for run in ours_done]) if ours_done else None
        base_ms = statistics.median([run["drawn_ms"] for run in ours_done]) if ours_done else None
        for tool in args.tools:
            runs = results[(tool, tokens)]
            done = [run for run in runs if run["finished"]]
            if not done:
                reasons = sorted({run["why"] for run in runs})
                sent = statistics.median([run["bytes"] for run in runs])
                cells = [str(tokens), tool, f"no ({', '.join(reasons)})", f"page of {sent:,.0f}"]
                print("| " + " | ".join(cells) + " | | | | |")
                continue
            total = statistics.median([run["bytes"] for run in done])
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
