"""Attention computed a block of queries at a time (registered with transformers' attention
interface): every block equals the rows of `output_attentions`, the model's outputs equal eager
attention's, and the grid, the head view and zoomed regions come out as from whole layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_text import STACKS, TARGET, TEXT, reference, text_dirs  # noqa: F401  (text_dirs is a fixture)

from attnwidget import AttentionGrid
from attnwidget.encode import decode_rows
from attnwidget.reduce import LayerBlocks, pool_matrix, query_rows
from attnwidget.text import TextModel


def block_bytes_for(text_model: TextModel, queries: int, keys: int) -> int:
    """A budget that holds `queries` rows of one layer's float32 weights."""
    return text_model.head_count * queries * keys * 4


def captured_in_blocks(text_model: TextModel, inputs, block_bytes: int):
    blocks: dict[int, list[tuple[int, torch.Tensor]]] = {}

    def keep(layer: int, first_query: int, weights: torch.Tensor) -> None:
        blocks.setdefault(layer, []).append((first_query, weights.clone()))

    outputs = text_model.run_in_blocks(inputs, keep, block_bytes)
    return blocks, outputs


@pytest.mark.parametrize(("name", "stack", "field"), STACKS)
def test_blocks_equal_output_attentions_and_outputs_equal_eager(text_dirs, name, stack, field):  # noqa: F811
    text_model = TextModel.from_pretrained(text_dirs[name], stack=stack, attn_implementation="eager")
    inputs = text_model.prepare(TEXT, target=TARGET)
    queries, keys = len(inputs.tokens), len(inputs.key_tokens)
    blocks, outputs = captured_in_blocks(text_model, inputs, block_bytes_for(text_model, 3, keys))
    expected = reference(text_model, inputs)
    for layer, weights in enumerate(getattr(expected, field)):
        starts = [first for first, _ in blocks[layer]]
        assert starts == list(range(0, queries, 3))  # blocks of 3 queries, in order, none missed
        whole = torch.cat([block for _, block in blocks[layer]], dim=2)
        torch.testing.assert_close(whole, weights)
    torch.testing.assert_close(outputs.logits, expected.logits)  # eager attention's outputs
    assert text_model.model.config._attn_implementation == "eager"  # restored after the run


def test_minilm_real_weights_in_blocks():
    from attnwidget.pretrained import minilm

    text_model = TextModel(*minilm())
    inputs = text_model.prepare("Attention is all you need, and blocks of queries are enough. " * 3)
    tokens = len(inputs.tokens)
    blocks, outputs = captured_in_blocks(text_model, inputs, block_bytes_for(text_model, 8, tokens))
    expected = reference(text_model, inputs)
    for layer, weights in enumerate(expected.attentions):
        torch.testing.assert_close(torch.cat([block for _, block in blocks[layer]], dim=2), weights)
    torch.testing.assert_close(outputs.last_hidden_state, expected.last_hidden_state)


@pytest.mark.parametrize(
    "tokens, size, step",
    [(37, 9, 5), (36, 9, 5), (36, 9, 4), (36, 9, 11), (36, 12, 2)],
    ids=["uneven windows", "windows of 4 rows, blocks of 5", "aligned", "blocks over 2 windows", "small"],
)
def test_layer_blocks_reduce_as_the_whole_layer(tokens, size, step):
    torch.manual_seed(0)
    attention = torch.softmax(torch.randn(4, tokens, tokens), dim=-1)
    query = [0, 5, tokens - 1]
    for pooling in ("max", "mean"):
        expected = F.adaptive_max_pool2d if pooling == "max" else F.adaptive_avg_pool2d
        blocks = LayerBlocks(query, size, pooling, queries=tokens)
        for first in range(0, tokens, step):
            assert not blocks.complete
            blocks.add(first, attention[:, first : first + step])
            pending = sum(columns.shape[1] for columns in blocks._pooled_columns)
            assert pending <= step + -(-tokens // size)  # a block and at most a window's rows wait
        assert blocks.complete
        torch.testing.assert_close(blocks.query_rows(), query_rows(attention, query))
        torch.testing.assert_close(blocks.matrices(), expected(attention, (size, size)))
        whole = LayerBlocks(query, size, pooling, queries=tokens)
        whole.add(0, attention)
        torch.testing.assert_close(whole.matrices(), expected(attention, (size, size)))
    with pytest.raises(ValueError, match="blocks must follow"):
        LayerBlocks(query, 9, queries=37).add(5, attention[:, 5:10])


def test_a_grid_in_blocks_shows_what_whole_layers_show(text_dirs):  # noqa: F811
    text_model = TextModel.from_pretrained(text_dirs["llama"], attn_implementation="eager")
    tokens = len(text_model.prepare(TEXT).tokens)
    whole = AttentionGrid(text_model, TEXT, saved_detail="full")
    blocked = AttentionGrid(
        text_model, TEXT, saved_detail="full", block_bytes=block_bytes_for(text_model, 5, tokens)
    )
    assert blocked._session.in_blocks(blocked._session.input.layout) and not whole._session.in_blocks(
        whole._session.input.layout
    )
    for name in ("maps", "matrices", "specials"):
        assert getattr(blocked, name) == getattr(whole, name), name
    assert blocked.predictions == whole.predictions

    pooled = AttentionGrid(
        text_model, TEXT, matrix_budget=64 * 16, block_bytes=block_bytes_for(text_model, 5, tokens)
    )
    assert 0 < pooled.matrix_size < tokens
    tiles = len(pooled.layers) * len(pooled.heads)
    size = pooled.matrix_size
    matrices = decode_rows(pooled.matrices, pooled.matrices_range, size).reshape(tiles, size, size)
    exact = pool_matrix(reference(text_model, text_model.prepare(TEXT)).attentions[2][0], size)
    spread = exact.amax(dim=(1, 2), keepdim=True)
    first_tile = 2 * len(pooled.heads)
    assert (abs(torch.from_numpy(matrices[first_tile : first_tile + 4]) - exact) <= spread / 255 + 1e-6).all()


def test_head_regions_are_exact_blocks_of_the_layer(text_dirs):  # noqa: F811
    text_model = TextModel.from_pretrained(text_dirs["gpt2"], attn_implementation="eager")
    inputs = text_model.prepare(TEXT)
    tokens = len(inputs.tokens)
    expected = reference(text_model, inputs).attentions[1][0, 2]
    for block_bytes in (256 * 1024**2, block_bytes_for(text_model, 4, tokens)):
        grid = AttentionGrid(text_model, TEXT, block_bytes=block_bytes, cache_budget=0)
        region = grid.head_region(2, 3, (5, 12), (2, 11))
        torch.testing.assert_close(region, expected[5:12, 2:11])
        pooled = grid.head_region(2, 3, (0, tokens), (0, tokens), limit=8)
        torch.testing.assert_close(pooled, pool_matrix(expected[None], 8)[0])
        torch.testing.assert_close(grid.full_attention(2)[2], expected)
    with pytest.raises(ValueError, match="not inside the"):
        grid.head_region(2, 3, (5, 2), (0, 4))
    with pytest.raises(ValueError, match="not inside the"):
        grid.head_region(2, 3, (0, tokens + 1), (0, 4))


def test_the_front_end_asks_for_a_region_and_gets_it(text_dirs):  # noqa: F811
    text_model = TextModel.from_pretrained(text_dirs["gpt2"])
    grid = AttentionGrid(text_model, TEXT)
    sent: list[tuple[dict, list]] = []
    grid.send = lambda content, buffers=None: sent.append((content, buffers))
    grid._handle_message(
        grid, {"type": "request_region", "layer": 1, "head": 2, "rows": [3, 9], "columns": [0, 4]}, []
    )
    ((content, buffers),) = sent
    assert (content["type"], content["height"], content["width"]) == ("region", 6, 4)
    values = torch.frombuffer(bytearray(buffers[0]), dtype=torch.float32).reshape(6, 4)
    torch.testing.assert_close(values, grid.full_attention(1)[1, 3:9, 0:4])
    grid._handle_message(
        grid, {"type": "request_region", "layer": 1, "head": 2, "rows": [9, 3], "columns": [0, 4]}, []
    )
    assert "not inside the" in grid.message and len(sent) == 1  # refused with a message, the kernel lives
