"""Shifted-window models (Swin, Swin v2, Donut-Swin): each stage a grid of its own, each layer's
windowed weights put back on the patch grid exactly where the model's own code took them from.

The placement is proved against the model: the attention put back, times the values of every patch
in the picture's layout, must give the context each window computed, once the model's own
`window_reverse` and reverse roll have put that context back in place.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
import torch
import transformers as tf

import attnwidget
from attnwidget import AttentionGrid, UnsupportedModelError
from attnwidget.encode import decode_rows
from attnwidget.windowed_model import WindowedVisionModel, stage_grids
from attnwidget.windows import WindowGrid, spread_rows, window_tokens

PICTURE = np.random.default_rng(3).integers(0, 256, (50, 70, 3), dtype=np.uint8)
#: family -> (config class, model class, the module holding its window_partition / window_reverse)
FAMILIES = {
    "swin": (tf.SwinConfig, tf.SwinForImageClassification, "transformers.models.swin.modeling_swin"),
    "swinv2": (
        tf.Swinv2Config,
        tf.Swinv2ForImageClassification,
        "transformers.models.swinv2.modeling_swinv2",
    ),
    "donut-swin": (tf.DonutSwinConfig, tf.DonutSwinModel, "transformers.models.donut.modeling_donut_swin"),
}


def build(family: str, image_size: int = 64) -> torch.nn.Module:
    """Three stages of two layers (the second of each shifted): 16 x 16, 8 x 8 and 4 x 4 patches."""
    config_class, model_class, _ = FAMILIES[family]
    torch.manual_seed(0)
    stages = {"depths": [2, 2, 2], "num_heads": [2, 4, 4]}
    config = config_class(image_size=image_size, patch_size=4, embed_dim=16, window_size=4, **stages)
    return model_class._from_config(config, attn_implementation="eager").eval()


def processor(size: int = 64):
    return tf.ViTImageProcessorPil(size={"height": size, "width": size})


def value_and_projection(module: torch.nn.Module):
    """The attention module's value projection and what it applies to the heads' context after
    (an output projection in one-module attention, nothing where the context is its output)."""
    if hasattr(module, "v_proj"):
        return module.v_proj, module.o_proj
    return module.value, torch.nn.Identity()


@pytest.mark.parametrize("shift", [0, 1, 2, 3])
def test_window_tokens_are_the_patches_the_model_cuts_into_each_window(shift):
    modeling = importlib.import_module(FAMILIES["swin"][2])
    rows, columns, window = 8, 12, 4
    token = torch.arange(rows * columns, dtype=torch.float32).view(1, rows, columns, 1)
    rolled = torch.roll(token, shifts=(-shift, -shift), dims=(1, 2))
    expected = modeling.window_partition(rolled, window).reshape(-1, window * window).long()
    assert torch.equal(window_tokens(WindowGrid((rows, columns), window, shift)), expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_put_back_gives_the_context_each_window_computed(family):
    model = build(family)
    source = WindowedVisionModel(model, processor())
    modeling = importlib.import_module(FAMILIES[family][2])
    pixel_values = source.prepare_input(PICTURE).model_input
    shifted = 0
    for stage in range(1, source.stage_count + 1):
        staged = WindowedVisionModel(model, processor(), stage=stage)
        attention: dict[int, torch.Tensor] = {}
        windowed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def keep(layer: int, first: int, weights: torch.Tensor, attention=attention) -> None:
            assert first == 0
            attention[layer] = weights

        def record(layer: int, windowed=windowed):
            def hook(_module, inputs, output):
                windowed[layer] = (inputs[0], output[0])  # windowed hidden states and what they became

            return hook

        handles = [
            module.register_forward_hook(record(layer))
            for layer, module in enumerate(staged.attention_modules)
        ]
        try:
            staged.capture(pixel_values, keep)
        finally:
            for handle in handles:
                handle.remove()
        rows, columns = staged.layout(pixel_values).grid
        for layer, module in enumerate(staged.attention_modules):
            shift = int(staged._window_layers[layer].shift_size)
            shifted += shift > 0
            hidden, context = windowed[layer]
            window = int(np.sqrt(hidden.shape[1]))

            def put_back(
                windows: torch.Tensor, window=window, shift=shift, size=(rows, columns)
            ) -> torch.Tensor:
                """The model's own inverse of its cut: window_reverse, then the roll back."""
                windows = windows.reshape(-1, window, window, windows.shape[-1])
                grid = modeling.window_reverse(windows, window, *size)
                return torch.roll(grid, shifts=(shift, shift), dims=(1, 2)).reshape(size[0] * size[1], -1)

            heads = attention[layer].shape[0]
            value, project = value_and_projection(module)
            values = value(put_back(hidden)).view(rows * columns, heads, -1).transpose(0, 1)
            computed = project((attention[layer] @ values).transpose(0, 1).reshape(rows * columns, -1))
            torch.testing.assert_close(computed, put_back(context), atol=1e-5, rtol=1e-4)
            assert torch.allclose(attention[layer].sum(-1), torch.ones(heads, rows * columns), atol=1e-5)
            # A query attends only within its window: window² keys per row at most.
            assert int((attention[layer] > 1e-30).sum(-1).max()) <= window * window
    assert shifted > 0  # the shifted layers were among those checked


def test_every_stage_is_a_grid_of_its_own():
    model = build("swin")
    grids = stage_grids(model, PICTURE, processor=processor())
    shapes = [(g.grid, g.layer_count, g.head_count, g.patch_size, g.status) for g in grids.children]
    assert shapes == [
        ([16, 16], 2, 2, 4, "done"),
        ([8, 8], 2, 4, 8, "done"),
        ([4, 4], 2, 4, 16, "done"),
    ]
    assert grids.children[1].model_name.endswith("stage 2 of 3")
    assert grids.children[0].special_tokens == []  # no class token: the query is every patch


def test_the_grid_of_a_swin_model_is_its_first_stage_and_holds_its_maps():
    model = build("swin")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = AttentionGrid(model, PICTURE, processor=processor())
    assert isinstance(grid.source, WindowedVisionModel) and grid.model_name.endswith("stage 1 of 3")
    query = [5 * 16 + 6]  # one patch: its row over the grid is its window and zeros elsewhere
    grid.run(PICTURE, query=query)
    source = grid.source
    pixel_values = source.prepare_input(PICTURE).model_input
    expected = []
    source.capture(pixel_values, lambda layer, first, w: expected.append(w[:, query[0]]))
    maps = decode_rows(grid.maps, grid.maps_range, 256).reshape(2, 2, 256)
    step = torch.stack(expected).amax(-1, keepdim=True) / 255
    assert (np.abs(maps - torch.stack(expected).numpy()) <= step.numpy() / 2 + 1e-6).all()
    assert ((maps > 0).sum(-1) <= 16).all()


def test_blocks_of_queries_equal_whole_layers():
    source = WindowedVisionModel(build("swin"), processor())
    pixel_values = source.prepare_input(PICTURE).model_input
    whole: dict[int, torch.Tensor] = {}
    blocks: dict[int, list[torch.Tensor]] = {}
    source.capture(pixel_values, lambda layer, first, w: whole.setdefault(layer, w))
    ten_rows = 2 * 256 * 4 * 10  # bytes of 10 query rows of 2 heads over 256 patches

    def keep(layer: int, first: int, weights: torch.Tensor) -> None:
        blocks.setdefault(layer, []).append(weights)

    source.capture(pixel_values, keep, block_bytes=ten_rows)
    assert len(blocks[0]) == 26  # 10 queries a block
    for layer, weights in whole.items():
        torch.testing.assert_close(torch.cat(blocks[layer], dim=1), weights)


def test_a_padded_grid_is_refused_never_drawn_short():
    model = build("swin", image_size=72)  # 18 x 18 patches: not whole 4 x 4 windows
    with pytest.raises(UnsupportedModelError, match="padding takes attention"):
        AttentionGrid(WindowedVisionModel(model, processor(72)), PICTURE)


def test_bad_stage_and_unplaceable_windows_say_why():
    model = build("swin")
    with pytest.raises(ValueError, match=r"stages 1\.\.3"):
        WindowedVisionModel(model, processor(), stage=4)
    with pytest.raises(UnsupportedModelError, match="WindowedVisionModel"):
        attnwidget.VisionModel(model, processor())  # the plain model points to the windowed one
    vit = tf.ViTModel(
        tf.ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    with pytest.raises(UnsupportedModelError, match="not Swin-style shifted windows"):
        stage_grids(vit, processor=processor(32))


def test_spread_rows_checks_the_shape():
    with pytest.raises(ValueError, match="do not cut"):
        spread_rows(torch.zeros(3, 1, 16, 16), WindowGrid((8, 8), 4, 0))
