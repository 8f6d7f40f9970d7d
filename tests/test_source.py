"""The `Source` protocol: a source written outside attnwidget goes into the grid with no change to it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from attnwidget import AttentionGrid, VisionModel
from attnwidget.encode import decode_rows
from attnwidget.source import Picture, Source, SourceInput, TokenLayout
from attnwidget.text import TextModel


class HeldAttention:
    """Attention tensors already at hand: [layers, heads, tokens, tokens], no model at all."""

    name = "held attention"
    query_blocks = False
    methods = frozenset()

    def __init__(self, attention: torch.Tensor, grid: tuple[int, int] | None = None):
        self.attention = attention
        self.layer_count, self.head_count = attention.shape[:2]
        self.grid = grid
        self.grid_kind = "patches" if grid else "tokens"

    def prepare_input(self, data: str | Image.Image) -> SourceInput:
        tokens = self.attention.shape[-1]
        if self.grid is None:
            return SourceInput(self.attention, TokenLayout((), (1, tokens), tuple(data.split())))
        layout = TokenLayout(("CLS",), self.grid)
        return SourceInput(self.attention, layout, Picture(data, patch_size=(8, 8), input_size=(16, 24)))

    def capture(self, attention: torch.Tensor, on_block, block_bytes=None) -> None:
        for layer, weights in enumerate(attention):
            on_block(layer, 0, weights)

    def predictions(self, outputs: None) -> list:
        return []


def random_attention(layers: int, heads: int, tokens: int) -> torch.Tensor:
    return torch.rand(layers, heads, tokens, tokens, generator=torch.Generator().manual_seed(3)).softmax(-1)


def test_the_models_of_attnwidget_are_sources(tiny_model_dirs):
    from attnwidget.pretrained import minilm

    assert isinstance(VisionModel.from_pretrained(tiny_model_dirs["vit"]), Source)
    assert isinstance(TextModel(*minilm()), Source)
    assert isinstance(HeldAttention(random_attention(1, 1, 2)), Source)


def test_a_source_of_tokens_written_elsewhere_is_drawn_token_by_token():
    attention = random_attention(2, 3, 4)
    grid = AttentionGrid(HeldAttention(attention), "the cat sat down", saved_detail="full")
    assert (grid.status, grid.view, grid.model_name) == ("done", "matrix", "held attention")
    assert grid.token_labels == ["the", "cat", "sat", "down"] and grid.query == [0, 1, 2, 3]
    matrices = decode_rows(grid.matrices, grid.matrices_range, 4).reshape(2, 3, 4, 4)
    np.testing.assert_allclose(matrices, attention.numpy(), atol=1 / 255)
    torch.testing.assert_close(grid.full_attention(2), attention[1])
    assert grid.to_png()
    grid.method = "rollout"
    assert grid.method == "attention" and "no explanation methods" in grid.message
    with pytest.raises(TypeError, match="no picture"):
        grid.overlay_to_png()


def test_a_source_of_patches_written_elsewhere_is_drawn_over_its_picture():
    attention = random_attention(2, 2, 7)  # CLS and a 2 x 3 patch grid
    picture = Image.new("RGB", (24, 16), "white")
    grid = AttentionGrid(HeldAttention(attention, grid=(2, 3)), picture, layers=[2])
    assert (grid.view, grid.grid, grid.special_tokens, grid.query) == ("query", [2, 3], ["CLS"], [0])
    assert (grid.image_size, grid.input_size, grid.patch_size) == ([24, 16], [16, 24], 8)
    maps = decode_rows(grid.maps, grid.maps_range, 6)
    np.testing.assert_allclose(maps, attention[1, :, 0, 1:].numpy(), atol=1 / 255)
    grid.selected = [2, 1]
    assert grid.overlay_to_png() and grid.head_statistics().distance.shape == (2, 2)


class SilentAttention(HeldAttention):
    """A source whose capture hands over no layer at all (hooks that never fire)."""

    def capture(self, attention: torch.Tensor, on_block, block_bytes=None) -> None:
        return None


def test_a_run_that_hands_over_no_attention_never_says_done():
    grid = AttentionGrid(SilentAttention(random_attention(2, 3, 5)))
    with pytest.raises(RuntimeError, match="handed over attention for 0 of the 2 layers"):
        grid.run("a b c d e")
    assert grid.status == "error" and "0 of the 2 layers" in grid.message
    assert grid.maps == b"" and grid.matrices == b""
