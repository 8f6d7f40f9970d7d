"""Attention the user already has goes into the grid: every accepted layout and array kind round-trips,
bad input is refused naming the expected and the given shape (the grid keeps its state), signed
values are drawn centred on zero, and layers handed over by a loop are drawn as they arrive."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import attnwidget
from attnwidget import AttentionGrid
from attnwidget.arrays import as_tensor
from attnwidget.encode import decode_rows

LAYERS, HEADS, TOKENS = 2, 3, 5
WORDS = ["<b>", "cat", "&amp;", "sat", "."]


def attention(layers: int = LAYERS, heads: int = HEADS, queries: int = TOKENS, keys: int = TOKENS):
    return torch.rand(layers, heads, queries, keys, generator=torch.Generator().manual_seed(7)).softmax(-1)


def grid_matrices(grid: AttentionGrid) -> np.ndarray:
    """The token x token matrices the grid holds (full resolution), [layers, heads, q, k]."""
    queries = len(grid.query_labels) or grid.token_count
    rows = decode_rows(grid.matrices, grid.matrices_range, grid.token_count)
    return rows.reshape(grid.layer_count, grid.head_count, queries, grid.token_count)


def full(grid: AttentionGrid) -> torch.Tensor:
    return torch.stack([grid.full_attention(layer) for layer in range(1, grid.layer_count + 1)])


class ArrayLike:
    """An array of some other library that numpy reads through `__array__`."""

    def __init__(self, values: np.ndarray):
        self.values = values

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)


class DLPackOnly:
    """An array of some other library (JAX) that shares its memory through DLPack only."""

    def __init__(self, values: torch.Tensor):
        self.values = values

    def __dlpack__(self, **kwargs):
        return self.values.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.values.__dlpack_device__()


EXPECTED = attention()
LAYOUTS = {
    "stacked [l, h, q, k] (Inspectus)": lambda a: a,
    "tuple of [1, h, q, k] (BertViz, output_attentions)": lambda a: tuple(layer[None] for layer in a),
    "list of [h, q, k]": lambda a: list(a),
    "[l, batch, h, q, k] (stacked cache)": lambda a: torch.stack([torch.zeros_like(a), a], dim=1),
    "numpy": lambda a: a.numpy(),
    "float16 numpy": lambda a: a.numpy().astype(np.float16),
    "bfloat16 torch": lambda a: a.to(torch.bfloat16),
    "float64 torch needing grad": lambda a: a.double().requires_grad_(),
    "__array__": lambda a: ArrayLike(a.numpy()),
    "__dlpack__": lambda a: DLPackOnly(a.clone()),
    "list of numpy layers": lambda a: [layer.numpy() for layer in a],
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_accepted_layout_and_array_kind_round_trips(layout):
    given = LAYOUTS[layout](EXPECTED.clone())
    batch = 1 if "batch" in layout else 0
    grid = AttentionGrid.from_attention(given, WORDS, batch_index=batch, saved_detail="full")
    atol = 1e-2 if "16" in layout else 1e-6
    torch.testing.assert_close(full(grid), EXPECTED, atol=atol, rtol=0)
    np.testing.assert_allclose(grid_matrices(grid), EXPECTED.numpy(), atol=1 / 255 + atol)
    assert (grid.status, grid.view, grid.token_labels) == ("done", "matrix", WORDS)


def test_one_head_and_one_layer_shapes_of_circuitsvis_and_inspectus():
    heads = EXPECTED[0]  # CircuitsVis: [heads, dest, src]
    grid = AttentionGrid.from_attention(heads, WORDS)
    assert (grid.layer_count, grid.head_count) == (1, HEADS)
    torch.testing.assert_close(grid.full_attention(1), heads)
    single = AttentionGrid.from_attention(heads[1].numpy(), WORDS)  # Inspectus: [q, k]
    assert (single.layer_count, single.head_count) == (1, 1)
    torch.testing.assert_close(single.full_attention(1)[0], heads[1])


def test_a_torch_tensor_on_another_device_comes_to_the_cpu():
    device = "cuda" if torch.cuda.is_available() else "meta"
    if device == "meta":
        with pytest.raises((NotImplementedError, RuntimeError)):  # a tensor without data cannot be drawn
            as_tensor(torch.empty(2, 2, device="meta"))
        return
    torch.testing.assert_close(as_tensor(EXPECTED.to(device)), EXPECTED)


def test_held_attention_is_copied_so_later_changes_do_not_reach_the_grid():
    mine = EXPECTED.clone()
    grid = AttentionGrid.from_attention(mine, WORDS)
    mine.zero_()
    torch.testing.assert_close(grid.full_attention(1), EXPECTED[0])


def test_cross_attention_names_queries_and_keys():
    cross = attention(queries=3, keys=TOKENS)
    grid = AttentionGrid.from_attention(
        cross, query_tokens=["a", "b", "c"], key_tokens=WORDS, saved_detail="full"
    )
    assert (grid.query_labels, grid.token_labels, grid.query) == (["a", "b", "c"], WORDS, [2])
    np.testing.assert_allclose(grid_matrices(grid), cross.numpy(), atol=1 / 255)


def test_a_held_grid_saves_and_exports_like_any_other(tmp_path):
    grid = AttentionGrid.from_attention(EXPECTED, WORDS)
    state = grid.get_state()
    assert state["maps"] and state["matrices"] and state["status"] == "done"
    page = attnwidget.to_html(grid, tmp_path / "page.html")
    assert "application/vnd.jupyter.widget-state+json" in page.read_text()


def test_causal_head_names_and_tokens_shown_as_text_are_kept():
    causal = torch.tril(torch.ones(TOKENS, TOKENS)) / torch.arange(1, TOKENS + 1)[:, None]
    grid = AttentionGrid.from_attention(
        causal.expand(1, 2, -1, -1), WORDS, causal=True, head_names=["x", "y"]
    )
    assert (grid.causal, grid.head_names, grid.token_labels[0], grid.query) == (True, ["x", "y"], "<b>", [4])
    assert grid.to_png() and grid.get_state()["token_labels"] == WORDS  # text, as given


def test_a_picture_grid_places_the_patches_after_the_prefix_tokens():
    vision = attention(queries=1 + 6, keys=1 + 6)  # CLS and a 2 x 3 patch grid
    picture = Image.new("RGB", (60, 40), "white")
    grid = AttentionGrid.from_attention(
        vision, image=picture, grid=(2, 3), prefix_tokens=1, crop_box=(0.1, 0, 0.9, 1)
    )
    assert (grid.view, grid.grid, grid.special_tokens, grid.query) == ("query", [2, 3], ["CLS"], [0])
    assert grid.crop_box == pytest.approx([0.1, 0, 0.9, 1]) and grid.image_size == [60, 40]
    maps = decode_rows(grid.maps, grid.maps_range, 6).reshape(LAYERS, HEADS, 6)
    np.testing.assert_allclose(maps, vision[:, :, 0, 1:].numpy(), atol=1 / 255)
    grid.selected = [1, 2]
    assert grid.overlay_to_png() and grid.to_png()
    square = AttentionGrid.from_attention(attention(queries=9, keys=9), image=picture)  # no prefix: 3 x 3
    assert square.grid == [3, 3] and square.special_tokens == []


def test_generated_tokens_over_a_picture_query_its_patches_with_their_shares():
    """A vision-language model's generated tokens (rows) over CLS and a 2 x 3 patch grid (keys)."""
    words = ["A", " cat", "\n", "<img src=x onerror=alert(1)>"]
    vlm = attention(queries=len(words), keys=1 + 6)
    shares = np.random.default_rng(3).dirichlet(np.ones(3), size=(len(words), LAYERS)).astype(np.float32)
    picture = Image.new("RGB", (60, 40), "white")
    grid = AttentionGrid.from_attention(
        vlm, image=picture, grid=(2, 3), prefix_tokens=1, query_tokens=words, query_shares=shares
    )
    assert (grid.view, grid.query_labels, grid.query, grid.token_count) == ("query", words, [3], 7)
    assert np.frombuffer(grid.query_shares, "<f4").tolist() == shares.ravel().tolist()
    grid.query = [1, 2]  # a span of generated tokens: their rows averaged
    maps = decode_rows(grid.maps, grid.maps_range, 6).reshape(LAYERS, HEADS, 6)
    np.testing.assert_allclose(maps, vlm[:, :, 1:3, 1:].mean(2).numpy(), atol=1 / 255)
    with pytest.raises(ValueError, match=r"query_shares: expected .* = \[4, 2, 3\], given \[4, 1, 3\]"):
        AttentionGrid.from_attention(
            vlm, image=picture, grid=(2, 3), prefix_tokens=1, query_tokens=words, query_shares=shares[:, :1]
        )
    with pytest.raises(ValueError, match=r"give query_tokens="):
        AttentionGrid.from_attention(vlm, image=picture, grid=(2, 3), prefix_tokens=1)


BAD = {
    "rank 6": (
        torch.rand(1, 1, 1, 1, 2, 2),
        {},
        r"expected .*\[queries, keys\].*got shape \[1, 1, 1, 1, 2, 2\]",
    ),
    "unequal layers": (
        [torch.rand(3, 5, 5), torch.rand(3, 4, 4)],
        {},
        r"layer 1 has \[3, 5, 5\], layer 2 has \[3, 4, 4\]",
    ),
    "too many tokens": (
        EXPECTED,
        {"tokens": [*WORDS, "!"]},
        r"tokens: 6 given, but the attention has 5 queries x 5 keys",
    ),
    "query tokens": (
        attention(queries=3),
        {"query_tokens": ["a"], "key_tokens": WORDS},
        r"query_tokens: 1 given.*3 queries x 5 keys",
    ),
    "NaN": (
        EXPECTED.clone().index_put_((torch.tensor([1]),), torch.tensor(float("nan"))),
        {},
        r"layer 2 holds 75 NaN and 0 infinite",
    ),
    "infinite": (
        EXPECTED.clone().index_fill_(0, torch.tensor([0]), float("inf")),
        {},
        r"layer 1 holds 0 NaN and 75 infinite",
    ),
    "negative probabilities": (EXPECTED - 0.5, {}, r"negative values .*values= 'scores'"),
    "grid and tokens": (
        attention(queries=7, keys=7),
        {"image": Image.new("RGB", (8, 8)), "grid": (2, 2), "prefix_tokens": 1},
        r"grid=\(2, 2\) with 1 prefix tokens makes 5 tokens, but the attention has 7 keys",
    ),
    "not a square": (
        attention(queries=7, keys=7),
        {"image": Image.new("RGB", (8, 8))},
        r"7 patches make no square grid; give grid=",
    ),
    "batch index": (
        tuple(EXPECTED[:, None]),
        {"batch_index": 2},
        r"batch_index=2 is out of range: .*batch of 1",
    ),
    "head names": (EXPECTED, {"head_names": ["a"]}, r"head_names: 1 given, but the attention has 3 heads"),
    "values": (EXPECTED, {"values": "probability"}, r"values must be one of attention, scores"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_names_what_was_expected_and_leaves_the_grid_as_it_was(case):
    given, options, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        AttentionGrid.from_attention(given, **options)
    grid = AttentionGrid.from_attention(EXPECTED, WORDS)
    before = grid.get_state()
    if not options:  # the input itself is bad
        with pytest.raises(ValueError, match=message):
            grid.run(given)  # the same input given to a grid already drawn
    assert grid.get_state() == before and grid.status == "done"


def test_a_grid_takes_new_attention_of_its_shape_only():
    grid = AttentionGrid.from_attention(EXPECTED, WORDS)
    grid.run(EXPECTED.flip(0))
    torch.testing.assert_close(grid.full_attention(1), EXPECTED[1])
    with pytest.raises(
        ValueError, match=r"shows \[layers, heads, queries, keys\] = \[2, 3, 5, 5\], given \[1, 3, 5, 5\]"
    ):
        grid.run(EXPECTED[:1])


def test_signed_values_open_with_the_diverging_colormap_centred_on_zero():
    difference = attention() - attention().flip(-1)
    grid = AttentionGrid.from_attention(difference, WORDS, values="difference")
    assert (grid.value_kind, grid.colormap, grid.pooling) == ("difference", "rdbu_r", "mean")
    torch.testing.assert_close(grid.full_attention(2), difference[1])
    assert AttentionGrid.from_attention(difference, values="scores", colormap="gray").colormap == "gray"
    picture = np.asarray(Image.open(__import__("io").BytesIO(grid.to_png())).convert("RGB"))
    blue, red = (0x05, 0x30, 0x61), (0x67, 0x00, 0x1F)  # rdbu_r's ends: each tile spans -max .. +max
    colours = {tuple(pixel) for pixel in picture.reshape(-1, 3)}
    assert blue in colours or red in colours


def test_show_displays_the_grid(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    grid = attnwidget.show(EXPECTED, WORDS)
    assert shown == [grid] and grid.status == "done"


def test_a_loop_hands_over_layers_that_are_drawn_as_they_arrive():
    drawn = []
    with attnwidget.stream(LAYERS, WORDS, display=False) as live:
        for layer in range(LAYERS):
            live.add_layer(layer, EXPECTED[layer][None])  # [batch, heads, q, k], as a hook sees it
            drawn.append(live.grid.layers_done if live.grid.status == "done" else "streaming")
    assert drawn == ["streaming", LAYERS] and live.grid.status == "done"
    torch.testing.assert_close(full(live.grid), EXPECTED)


def test_a_stream_refuses_bad_layers_and_draws_nothing_when_it_ends_early():
    with (
        pytest.raises(RuntimeError, match="closed with 1 of its 2 layers missing"),
        attnwidget.stream(LAYERS, WORDS, display=False) as live,
    ):
        live.add_layer(0, EXPECTED[0])
        with pytest.raises(
            ValueError, match=r"layer 1: expected \[heads, queries, keys\] = \[3, 5, 5\], got \[3, 4, 4\]"
        ):
            live.add_layer(1, torch.rand(3, 4, 4))
        with pytest.raises(ValueError, match="expected layer 1, got layer 0"):
            live.add_layer(0, EXPECTED[0])
    assert live.grid.status == "error" and live.grid.maps == b""
    with pytest.raises(RuntimeError, match="this stream has ended"):
        live.add_layer(1, EXPECTED[1])
