"""attnwidget against BertViz, CircuitsVis and Inspectus on the same attention at hand: the real
all-MiniLM-L6-v2's `output_attentions` (6 layers x 12 heads = 72 heads) for texts of 64 and 256
tokens, each tool given the tensors the user already holds; no tool runs the model.

- attnwidget: a JupyterLab 4 cell `attnwidget.show(attentions, tokens=labels)` in a kernel that holds
  the attention (made in a set-up cell, not timed). Bytes: every websocket message the page receives
  during the cell; time: Shift+Enter -> all 72 tiles drawn and the next frame painted. Also: a click
  on a tile -> the full-size head drawn.
- BertViz `model_view(attentions, tokens)`, CircuitsVis `attention_heads` (all 72 heads, its offline
  form) and Inspectus `attention(attentions, tokens)` (the HTML it hands to `display`): made from the
  same tensors in this process (timed) and opened from disk as pages of their own (pages of tens of MB
  are more than a notebook's websocket carries: see vs_bertviz_circuitsvis.py). Time: making the HTML
  + page load -> drawn and painted: 72 heads for BertViz and CircuitsVis; Inspectus shows one n x n
  matrix at a time (a head or a mean, chosen in its page), so that matrix drawn.

    python benchmarks/attention_at_hand.py [--tokens 64 256] [--repeats 3] [--timeout 120]

Needs `pip install bertviz==1.4.1 circuitsvis==1.43.3 inspectus==0.2.0` (the `benchmarks` extra) and npm
for the copies of the scripts BertViz fetches from its CDN.
"""

from __future__ import annotations

import time

import torch
from vs_bertviz_circuitsvis import SETUP, arguments, measure_all, report

TOOLS = ("attnwidget", "bertviz", "circuitsvis", "inspectus")

#: The kernel holds the attention of each length (`held_attention`, below) before anything is timed.
HELD_SETUP = f"""\
{SETUP.rsplit("print(", 1)[0]}from attention_at_hand import held_attention
held = {{n: held_attention(text_model, n) for n in TOKENS}}
print("ready")"""

#: One call, as a user makes it (the ";" keeps the cell from displaying the grid a second time).
CELL = "grid = attnwidget.show(held[{n}][0], tokens=held[{n}][1]);"

#: Inspectus draws the chosen matrix as n x n SVG rects (its page says n x n in `window.cells`): 72
#: stands for "drawn" in the shared watch.
INSPECTUS_DRAWN_JS = (
    "() => (document.querySelectorAll('svg rect').length >= (window.cells || Infinity) ? 72 : 0)"
)


def held_attention(text_model, tokens: int) -> tuple[tuple[torch.Tensor, ...], list[str]]:
    from long_context import text_of

    encoded = text_model.tokenizer(text_of(text_model, tokens), return_tensors="pt")
    with torch.no_grad():
        layers = text_model.model(**encoded, output_attentions=True).attentions
    return layers, text_model.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])


def peer_html(tool: str, layers: tuple[torch.Tensor, ...], labels: list[str]) -> tuple[str, float]:
    """A peer's page for attention at hand, and the seconds making its HTML took."""
    start = time.perf_counter()
    if tool == "bertviz":
        from bertviz import model_view

        body = model_view(layers, labels, html_action="return").data
    elif tool == "circuitsvis":
        from circuitsvis.attention import attention_heads

        body = attention_heads(torch.cat([layer[0] for layer in layers]), labels)._repr_html_()
    else:
        body = f"<script>window.cells = {len(labels) ** 2};</script>{inspectus_html(layers, labels)}"
    return f"<!doctype html><html><body>{body}</body></html>", time.perf_counter() - start


def inspectus_html(layers: tuple[torch.Tensor, ...], labels: list[str]) -> str:
    """What `inspectus.attention` displays (its script and the chart), caught from `display`."""
    import inspectus
    import IPython.display

    shown: list = []
    display = IPython.display.display
    IPython.display.display = lambda *objects, **_: shown.extend(objects)
    try:
        inspectus.attention(layers, labels)
    finally:
        IPython.display.display = display
    return "".join(getattr(shown_object, "data", "") or "" for shown_object in shown)


def main() -> None:
    args = arguments([64, 256], TOOLS)

    from attnwidget.pretrained import minilm
    from attnwidget.text import TextModel

    text_model = TextModel(*minilm(), name="all-MiniLM-L6-v2")
    held = {tokens: held_attention(text_model, tokens) for tokens in args.tokens}
    setup = HELD_SETUP.replace("TOKENS", repr(list(args.tokens)))
    results = measure_all(
        args,
        setup,
        CELL,
        lambda tool, tokens: peer_html(tool, *held[tokens]),
        {"inspectus": INSPECTUS_DRAWN_JS},
    )
    report(results, args, "all-MiniLM-L6-v2's output_attentions at hand, 6 x 12 = 72 heads")


if __name__ == "__main__":
    main()
