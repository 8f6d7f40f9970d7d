"""A vision-language model's generated tokens in JupyterLab: the transcript shows them as text, a
click on a word makes it the kernel's query and redraws the tiles, a shift-click makes a span, and
the plot of each token's attention shares shows the numbers it was given; Save PNG holds them, and
a page written by `to_html` shows them from the saved state. A real (tiny, random-init) LLaVA
generating in the kernel: the transcript grows while it generates, a word redraws the grid, a tile
opens the overlay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from harness import Notebook, offline_page
from PIL import Image
from playwright.sync_api import Browser, expect
from widget_dom import DRAW_TIMEOUT_MS, Widget, expect_overlay_drawn

import attnwidget
from attnwidget.export import to_html

pytestmark = pytest.mark.browser

LAYERS, HEADS, GRID = 3, 4, (6, 8)
WORDS = ["A", " red", " square", "\n", "<img src=x onerror=alert(1)>"]
SHOWN = ["A", " red", " square", "↵", "<img src=x onerror=alert(1)>"]


def shares() -> np.ndarray:
    """[token, layer, (image, text, sink)]: image (t + l + 1) / 16, text 1/4, sink the rest, so the
    means over layers are exact in float32 too."""
    tokens, layers = np.mgrid[0 : len(WORDS), 0:LAYERS]
    image = (tokens + layers + 1) / 16
    return np.stack([image, np.full_like(image, 0.25), 0.75 - image], -1).astype(np.float32)


CODE = f"""\
import torch
torch.manual_seed(0)
generated = torch.rand({LAYERS}, {HEADS}, {len(WORDS)}, 1 + {GRID[0] * GRID[1]}).mul(4).softmax(-1)
vlm = attnwidget.show(generated, image=image, grid={GRID}, prefix_tokens=1, query_tokens={WORDS!r},
                      query_shares=np.array({shares().tolist()!r}, dtype=np.float32))
print(vlm.status, vlm.query)"""


def bar_centre(plot, token: int) -> dict:
    x, y, w, h = json.loads(plot.get_attribute("data-bar-rects"))[token]
    return {"x": x + w / 2, "y": y + h / 2}


@pytest.mark.parametrize("jupyter_server", ["lab"], indirect=True)
def test_the_transcript_queries_generated_tokens_and_the_plot_shows_their_shares(
    live_notebook: Notebook, artifacts: Path
):
    cell = live_notebook.run_cell(CODE)
    assert "done [4]" in live_notebook.output_text(cell)
    widget = Widget(cell)
    expect(widget.grid).to_have_attribute("data-tiles-drawn", str(LAYERS * HEADS), timeout=DRAW_TIMEOUT_MS)
    words = widget.root.locator("[data-testid=attnwidget-transcript-words] [data-index]")
    expect(words).to_have_text(SHOWN)
    assert widget.root.locator("img").count() == 0  # a token is text, never markup
    expect(words.nth(4)).to_have_attribute("aria-selected", "true")
    expect(widget.status).to_contain_text('query "<img src=x onerror=alert(1)>"')

    # A word: the kernel's query, and its maps drawn.
    before = widget.tile_pixels().hashes
    words.nth(1).click()
    widget.wait_for_tiles_to_change(before, LAYERS * HEADS // 2, DRAW_TIMEOUT_MS)
    expect(widget.status).to_contain_text('query " red"')
    # Shift-click: the span from it, averaged.
    before = widget.tile_pixels().hashes
    words.nth(3).click(modifiers=["Shift"])
    widget.wait_for_tiles_to_change(before, LAYERS * HEADS // 2, DRAW_TIMEOUT_MS)
    expect(widget.status).to_contain_text('query " red square↵" (tokens 1\u20133)')
    assert [words.nth(i).get_attribute("aria-selected") for i in range(len(WORDS))] == [
        "false",
        "true",
        "true",
        "true",
        "false",
    ]

    # The shares: one bar per token; hovering one reads its numbers, for the mean and for one layer.
    plot = widget.root.locator("[data-testid=attnwidget-shares]")
    readout = widget.root.locator("[data-testid=attnwidget-shares-readout]")
    expect(plot).to_have_attribute("data-layer", "mean")
    assert len(json.loads(plot.get_attribute("data-bar-rects"))) == len(WORDS)
    plot.hover(position=bar_centre(plot, 2))
    image = (2 + 2) / 16  # token 2: (2 + l + 1) / 16 over l = 0, 1, 2
    expect(readout).to_have_text(
        f'token 2 " square" · image {image:.4g} · text 0.25 · sink {0.75 - image:.4g} (mean over layers)'
    )
    widget.root.locator("[data-testid=attnwidget-shares-layer]").select_option(label="l=3")
    expect(plot).to_have_attribute("data-layer", "3")
    plot.hover(position=bar_centre(plot, 0))
    expect(readout).to_have_text('token 0 "A" · image 0.1875 · text 0.25 · sink 0.5625 (l=3)')
    live_notebook.page.screenshot(path=artifacts / "vision-language-transcript.png")

    # Save PNG: the transcript, the plot and the grid, as shown.
    with widget.root.page.expect_download() as download:
        widget.root.locator("[data-testid=attnwidget-save-png]").click()
    download.value.save_as(artifacts / "vision-language-saved.png")
    with Image.open(artifacts / "vision-language-saved.png") as picture:
        saved_height = picture.height
    top = words.nth(0).bounding_box()["y"]
    grid = widget.grid.bounding_box()
    assert saved_height >= grid["y"] + grid["height"] - top - 1

    # A click on a bar queries its token, as the word does; the kernel holds it.
    plot.click(position=bar_centre(plot, 0))
    expect(words.nth(0)).to_have_attribute("aria-selected", "true")
    assert live_notebook.evaluate("vlm.query") == [0]


def test_an_exported_page_shows_the_transcript_and_the_shares(
    browser: Browser, tmp_path: Path, artifacts: Path
):
    generated = torch.rand(LAYERS, HEADS, len(WORDS), 1 + GRID[0] * GRID[1]).softmax(-1)
    picture = Image.new("RGB", (64, 48), "teal")
    grid = attnwidget.AttentionGrid.from_attention(
        generated, image=picture, grid=GRID, prefix_tokens=1, query_tokens=WORDS, query_shares=shares()
    )
    page, refused = offline_page(browser, lambda url: None)
    page.goto(to_html(grid, tmp_path / "generated.html").as_uri())
    widget = Widget(page.locator("body"))
    expect(widget.grid).to_have_attribute("data-tiles-drawn", str(LAYERS * HEADS), timeout=DRAW_TIMEOUT_MS)
    words = widget.root.locator("[data-testid=attnwidget-transcript-words] [data-index]")
    expect(words).to_have_text(SHOWN)
    expect(words.nth(4)).to_have_attribute("aria-selected", "true")
    plot = widget.root.locator("[data-testid=attnwidget-shares]")
    plot.hover(position=bar_centre(plot, 4))
    image = (4 + 2) / 16
    expect(widget.root.locator("[data-testid=attnwidget-shares-readout]")).to_have_text(
        f'token 4 "{WORDS[4]}" · image {image:.4g} · text 0.25 · sink {0.75 - image:.4g} (mean over layers)'
    )
    words.nth(0).click()  # no kernel: the word is chosen, the maps wait for one
    expect(words.nth(0)).to_have_attribute("aria-selected", "true")
    expect(widget.status).to_contain_text("until a running kernel recomputes them")
    page.screenshot(path=artifacts / "vision-language-exported.png")
    assert refused == []
    page.close()


TESTS = Path(__file__).resolve().parent.parent
GENERATED_TOKENS = 6

BUILD_LLAVA = f"""\
import sys
sys.path.insert(0, {str(TESTS)!r})
from tiny_vlm_models import PROMPTS, llava
llava_model, llava_processor = llava()
llava_grid = attnwidget.AttentionGrid(
    attnwidget.VisionLanguageModel(llava_model, llava_processor),
    prompt=PROMPTS["llava"],
    max_new_tokens={GENERATED_TOKENS},
)
llava_grid"""

#: Each step of the language model sleeps, so the generation is slow enough to watch.
SLOW_GENERATION = """\
import time
_step = llava_model.model.language_model.register_forward_pre_hook(lambda module, args: time.sleep(0.6))
try:
    llava_grid.run(image)
finally:
    _step.remove()
print("generated", len(llava_grid.query_labels), llava_grid.status)"""


@pytest.mark.parametrize("jupyter_server", ["lab"], indirect=True)
def test_a_generation_grows_the_transcript_and_its_words_and_tiles_open_their_maps(
    live_notebook: Notebook, artifacts: Path
):
    cell = live_notebook.run_cell(BUILD_LLAVA)
    live_notebook.output_text(cell)  # no traceback
    widget = Widget(cell)
    expect(widget.grid).to_be_visible()
    words = widget.root.locator("[data-testid=attnwidget-transcript-words] [data-index]")
    live_notebook.page.evaluate(
        """(root) => {
          window.wordsSeen = [];
          const note = () => {
            const n = root.querySelectorAll("[data-testid=attnwidget-transcript-words] [data-index]").length;
            if (window.wordsSeen.at(-1) !== n) window.wordsSeen.push(n);
          };
          new MutationObserver(note).observe(root, { childList: true, subtree: true });
        }""",
        widget.root.element_handle(),
    )
    running = live_notebook.run_cell(SLOW_GENERATION, wait=False)
    # Words arrive while the cell still runs.
    live_notebook.page.wait_for_function(
        f"() => window.wordsSeen.some((n) => n > 0 && n < {GENERATED_TOKENS})", timeout=DRAW_TIMEOUT_MS
    )
    assert running.locator(".jp-InputArea-prompt").inner_text().strip() == "[*]:"
    live_notebook.wait_for_cell(running)
    count = int(live_notebook.output_text(running).split()[1])
    assert live_notebook.output_text(running).strip().endswith("done")
    expect(words).to_have_count(count)
    seen = live_notebook.page.evaluate("window.wordsSeen")
    growing = [n for n in seen if 0 < n < count]
    assert len(growing) >= 2 and growing == sorted(growing), (
        f"the transcript did not grow word by word: {seen}"
    )
    expect(words.nth(count - 1)).to_have_attribute("aria-selected", "true")  # the latest word is the query
    labels = live_notebook.evaluate("llava_grid.query_labels")
    expect(words).to_have_count(len(labels))
    tiles = live_notebook.evaluate("llava_grid.layer_count * llava_grid.head_count")
    expect(widget.grid).to_have_attribute("data-tiles-drawn", str(tiles), timeout=DRAW_TIMEOUT_MS)

    # A word: the kernel's query becomes that token, and the tiles show its maps.
    before = widget.tile_pixels().hashes
    words.nth(0).click()
    widget.wait_for_tiles_to_change(before, tiles // 2, DRAW_TIMEOUT_MS)
    assert live_notebook.evaluate("llava_grid.query") == [0]
    # A tile: that head's map over the picture.
    widget.click_tile(1, 2)  # layer 2, head 3
    expect(widget.overlay_canvas).to_have_attribute("data-layer", "2")
    expect(widget.overlay_canvas).to_have_attribute("data-head", "3")
    expect_overlay_drawn(widget)
    widget.root.screenshot(path=artifacts / "vision-language-llava.png")
