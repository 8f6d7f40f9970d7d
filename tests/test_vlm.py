"""Vision-language models (LLaVA 1.5, Qwen2-VL, Qwen2.5-VL, PaliGemma, Idefics3, SmolVLM), random-init
from configs with their real processor classes: the image-token map is checked by construction (a
marked patch of the picture found among the image tokens through the model's own path into the
language model), the captured rows against `generate(output_attentions=True)`, bad input raises
before generating, and a finished grid streams, answers new queries and exports."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import transformers as tf
from PIL import Image
from tiny_vlm_models import FAMILY_BUILDERS, PROMPTS, llava, paligemma, qwen2_vl

import attnwidget
from attnwidget import AttentionGrid, fast_attention
from attnwidget.contract import SHARE_KINDS
from attnwidget.encode import decode_rows
from attnwidget.errors import UnsupportedModelError
from attnwidget.fast_attention import FAST_ATTENTION
from attnwidget.vlm import ImageTokenMismatchError, VisionLanguageModel
from attnwidget.vlm.generation import share_kinds
from attnwidget.vlm.token_maps import merged_grid_map, square_grid_map

FAMILIES = tuple(FAMILY_BUILDERS)

#: family -> (picture size (W, H), mark boxes (x0, y0, x1, y1) in picture pixels)
MARKS = {
    "llava": ((80, 56), [(45, 17, 52, 24), (15, 43, 22, 52)]),  # centre crop: x 12..68 is seen
    "llava_next": ((100, 60), [(52, 32, 60, 40), (89, 7, 98, 15)]),  # base 4 x 4, then 4 x 8 unpadded
    "qwen2_vl": ((100, 60), [(57, 38, 67, 52), (5, 4, 18, 22)]),  # warped to 112 x 56, 2 x 4 merged
    "qwen2_5_vl": ((100, 60), [(57, 38, 67, 52), (80, 5, 95, 22), (30, 35, 45, 55)]),  # two windows
    "paligemma": ((90, 60), [(51, 33, 61, 41), (70, 3, 86, 12)]),  # warped to 56 x 56, 4 x 4
    "idefics3": ((100, 60), [(57, 38, 67, 48), (5, 4, 18, 12)]),  # 2 x 2 tiles of 2 x 2, global 2 x 2
    "smolvlm": ((100, 40), [(57, 23, 67, 35), (5, 3, 18, 15)]),  # 1 x 2 tiles of 2 x 2, global 2 x 2
}


@pytest.fixture(scope="module")
def built():
    return {family: build() for family, build in FAMILY_BUILDERS.items()}


def picture(size: tuple[int, int], mark: tuple[int, int, int, int] | None = None) -> Image.Image:
    pixels = np.full((size[1], size[0], 3), 110, dtype=np.uint8)
    if mark is not None:
        x0, y0, x1, y1 = mark
        pixels[y0:y1, x0:x1] = 250
    return Image.fromarray(pixels)


def language_inputs(model: torch.nn.Module, encoded: dict) -> torch.Tensor:
    """The embeddings the language model receives (image features scattered into the image tokens), with
    the vision tower's attention silenced so each image token depends only on its own pixels."""
    seen: list[torch.Tensor] = []
    inner = model.model
    vision = getattr(inner, "visual", None) or getattr(inner, "vision_tower", None) or inner.vision_model
    handles = [
        module.register_forward_hook(
            lambda module, args, output: (
                (torch.zeros_like(output[0]), *output[1:])
                if isinstance(output, tuple)
                else torch.zeros_like(output)
            )
        )
        for module in vision.modules()
        if type(module).__name__.endswith("Attention")
    ]
    language = getattr(inner, "language_model", None) or inner.text_model
    handles.append(
        language.register_forward_pre_hook(
            lambda module, args, kwargs: seen.append(kwargs["inputs_embeds"].clone()), with_kwargs=True
        )
    )
    try:
        with torch.no_grad():
            model(**encoded)
    finally:
        for handle in handles:
            handle.remove()
    return seen[0][0]


def token_box(prepared, token: int) -> tuple[float, float, float, float]:
    """Where the canvas cells of image token `token` lie in the picture, in pixels (x0, y0, x1, y1)."""
    picture_ = prepared.placed.picture
    gh, gw = prepared.placed.token_map.grid
    x0, y0, x1, y1 = picture_.crop_box
    width, height = picture_.image.size
    cells = prepared.placed.token_map.cells_of(token)
    rows, cols = [cell // gw for cell in cells], [cell % gw for cell in cells]
    return (
        (x0 + (x1 - x0) * min(cols) / gw) * width,
        (y0 + (y1 - y0) * min(rows) / gh) * height,
        (x0 + (x1 - x0) * (max(cols) + 1) / gw) * width,
        (y0 + (y1 - y0) * (max(rows) + 1) / gh) * height,
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_the_map_names_the_token_that_holds_a_marked_patch(built, family):
    model, processor = built[family]
    vlm = VisionLanguageModel(model, processor)
    size, marks = MARKS[family]
    plain = vlm.prepare(picture(size), PROMPTS[family])
    assert plain.placed.picture.placed
    base = language_inputs(model, plain.encoded)
    token_map = plain.placed.token_map
    # Views: tokens of one cell (the patches, or tiles), and coarse ones (a global view over tiles).
    cell_counts = torch.tensor([len(token_map.cells_of(token)) for token in range(token_map.token_count)])
    views = [cell_counts == count for count in cell_counts.unique().tolist() if count]  # 0: newlines
    for mark in marks:
        marked = vlm.prepare(picture(size, mark), PROMPTS[family])
        assert torch.equal(marked.placed.token_map.positions, token_map.positions)
        change = (language_inputs(model, marked.encoded) - base)[token_map.positions].norm(dim=-1)
        centre = ((mark[0] + mark[2]) / 2, (mark[1] + mark[3]) / 2)
        for view in views:  # the token of each view that changed most lies over the mark
            assert change[view].max() > 0
            token = int(torch.where(view, change, torch.full_like(change, -1)).argmax())
            x0, y0, x1, y1 = token_box(plain, token)
            assert x0 <= centre[0] <= x1 and y0 <= centre[1] <= y1, (family, mark, token)
        # Every token the mark changed lies over the mark or next to it (resampling blurs a pixel or two).
        for other in torch.nonzero(change > 1e-3 * change.max()).flatten().tolist():
            ox0, oy0, ox1, oy1 = token_box(plain, other)
            assert ox0 - 3 <= mark[2] and mark[0] <= ox1 + 3 and oy0 - 3 <= mark[3] and mark[1] <= oy1 + 3


def test_llava_next_places_the_unpadded_rows_exactly(built):
    """The canvas's first row starts 5.3 pixels into a 100 x 60 picture (the model keeps a feature row
    of padding on each side): a mark at y 14..17 is in canvas row 0, where a canvas spread over the whole
    picture would put it in row 1."""
    model, processor = built["llava_next"]
    vlm = VisionLanguageModel(model, processor)
    plain = vlm.prepare(picture((100, 60)), PROMPTS["llava_next"])
    x0, y0, x1, y1 = plain.placed.picture.crop_box
    assert (x0, x1) == (0.0, 1.0) and y0 == pytest.approx(6 / 68) and y1 == pytest.approx(62 / 68)
    marked = vlm.prepare(picture((100, 60), (40, 14, 48, 17)), PROMPTS["llava_next"])
    token_map = plain.placed.token_map
    change = (language_inputs(model, marked.encoded) - language_inputs(model, plain.encoded))[
        token_map.positions
    ]
    fine = torch.tensor([len(token_map.cells_of(token)) == 1 for token in range(token_map.token_count)])
    token = int(torch.where(fine, change.norm(dim=-1), torch.full((len(fine),), -1.0)).argmax())
    assert token_map.cells_of(token) == [3]  # row 0, col 3 of the 4 x 8 canvas


def test_a_centre_crop_is_placed_where_the_processor_cuts():
    model, processor = llava()
    prepared = VisionLanguageModel(model, processor).prepare(picture((80, 56)), PROMPTS["llava"])
    assert prepared.placed.picture.crop_box == pytest.approx((12 / 80, 0.0, 68 / 80, 1.0), abs=1e-3)
    assert prepared.placed.token_map.grid == (4, 4)


def test_qwen2_vl_canvas_follows_image_grid_thw():
    model, processor = qwen2_vl()
    prepared = VisionLanguageModel(model, processor).prepare(picture((100, 60)), PROMPTS["qwen2_vl"])
    assert prepared.encoded["image_grid_thw"].tolist() == [[1, 4, 8]]
    assert prepared.placed.token_map.grid == (2, 4)
    assert prepared.placed.picture.input_size == (56, 112)


@pytest.mark.parametrize(
    ("family", "tiles_grid", "tokens"), [("idefics3", (4, 4), 20), ("smolvlm", (2, 4), 12)]
)
def test_tiles_and_the_global_view_cover_the_whole_picture(built, family, tiles_grid, tokens):
    model, processor = built[family]
    prepared = VisionLanguageModel(model, processor).prepare(picture(MARKS[family][0]), PROMPTS[family])
    token_map = prepared.placed.token_map
    assert (token_map.grid, token_map.token_count) == (tiles_grid, tokens)
    assert prepared.placed.picture.crop_box == (0.0, 0.0, 1.0, 1.0)
    # Each global-view token (the last 4) spreads evenly over the tiles' cells it covers: mass is kept.
    torch.testing.assert_close(token_map.matrix().sum(1), torch.ones(tokens))
    assert [len(token_map.cells_of(token)) for token in range(tokens - 4, tokens)] == [tokens // 4 - 1] * 4


def test_fold_keeps_mass_and_order():
    positions = torch.arange(5, 11)
    token_map = merged_grid_map(positions, (1, 4, 6), 2)
    assert token_map.grid == (2, 3)
    values = torch.rand(2, 6)
    assert torch.allclose(token_map.fold(values), values)
    with pytest.raises(ImageTokenMismatchError, match="6 image tokens"):
        square_grid_map(positions, (3, 3))
    with pytest.raises(ValueError, match="video"):
        merged_grid_map(positions, (2, 4, 6), 2)


@pytest.mark.parametrize("family", FAMILIES)
def test_captured_rows_equal_output_attentions(built, family):
    model, processor = built[family]
    vlm = VisionLanguageModel(model, processor)
    prompt = vlm.prepare(picture(MARKS[family][0], MARKS[family][1][0]), PROMPTS[family], max_new_tokens=5)
    before = model.config.get_text_config()._attn_implementation
    vision_before = model.config.vision_config._attn_implementation
    generation = vlm.generate(prompt)
    assert model.config.get_text_config()._attn_implementation == before
    assert model.config.vision_config._attn_implementation == vision_before
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            reference = model.generate(
                **prompt.encoded,
                max_new_tokens=5,
                do_sample=False,
                output_attentions=True,
                return_dict_in_generate=True,
            )
    finally:
        model.set_attn_implementation(before)
    generated = reference.sequences[0, prompt.prompt_length :].tolist()
    assert [step.token_id for step in generation.steps] == generated
    assert len(generation.steps) == len(reference.attentions) > 0
    positions = prompt.placed.token_map.positions
    image_mask = torch.zeros(reference.attentions[-1][0].shape[-1], dtype=torch.bool)
    image_mask[positions] = True
    for step, layers in zip(generation.steps, reference.attentions, strict=True):
        assert step.rows.shape == (vlm.layer_count, vlm.head_count, len(positions))
        for layer, weights in enumerate(layers):
            row = weights[0, :, -1].float()
            torch.testing.assert_close(step.rows[layer], row[:, positions], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(step.shares[layer], share_kinds(row, image_mask, prompt.prompt_length))
        torch.testing.assert_close(step.shares.sum(-1), torch.ones(vlm.layer_count, vlm.head_count))


def test_not_a_vision_language_model_is_refused():
    import transformers as tf
    from tiny_text_models import byte_level_tokenizer

    tokenizer = byte_level_tokenizer()
    text = tf.LlamaForCausalLM(
        tf.LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
        )
    )
    with pytest.raises(UnsupportedModelError, match=r"LLaVA 1\.5, LLaVA-NeXT, PaliGemma, Qwen2-VL"):
        VisionLanguageModel(text, tokenizer)


def test_a_prompt_without_the_placeholder_raises_before_generating(built):
    model, processor = built["llava"]
    vlm = VisionLanguageModel(model, processor)
    calls = []
    handle = model.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match="no image placeholder '<image>'"):
            vlm.prepare_input(picture((56, 56)), prompt="USER: what is it? ASSISTANT:")
        with pytest.raises(ValueError, match="give a prompt"):
            vlm.prepare_input(picture((56, 56)))
    finally:
        handle.remove()
    assert not calls


def test_image_tokens_that_do_not_match_the_map_raise(built):
    model, processor = built["llava"]
    processor.patch_size = 28  # the processor now expands <image> into 4 tokens, the tower makes 16
    try:
        with pytest.raises(ImageTokenMismatchError, match="4 image tokens but the picture makes 16"):
            VisionLanguageModel(model, processor).prepare(picture((56, 56)), PROMPTS["llava"])
    finally:
        processor.patch_size = 14


def decoded_maps(grid) -> np.ndarray:
    """The grid's `maps` trait as [layers, heads, cells]."""
    cells = grid.grid[0] * grid.grid[1]
    rows = decode_rows(grid.maps, grid.maps_range, cells)
    return rows.reshape(len(grid.layers), len(grid.heads), cells)


def test_the_grid_streams_the_generation_then_answers_new_queries(built, tmp_path):
    model, processor = built["llava"]
    vlm = VisionLanguageModel(model, processor)
    grid = AttentionGrid(vlm, prompt=PROMPTS["llava"], max_new_tokens=5)
    seen: list[tuple[int, int, list[int], int]] = []
    grid.observe(
        lambda change: seen.append(
            (len(grid.query_labels), len(grid.query_shares), list(grid.query), len(grid.maps))
        ),
        "specials",  # the last trait each token sets
    )
    grid.run(picture((80, 56), MARKS["llava"][1][0]))
    generation = grid._current().model_input
    tokens = len(generation.steps)
    assert tokens == 5 and grid.status == "done"
    assert grid.query_labels == list(generation.labels) and grid.query == [tokens - 1]
    # The transcript and the shares grew a token at a time, the maps following the latest token.
    per_token = grid.layer_count * len(SHARE_KINDS) * 4
    cells = 16
    assert [entry[:3] for entry in seen[:tokens]] == [
        (count, count * per_token, [count - 1]) for count in range(1, tokens + 1)
    ]
    assert all(entry[3] == grid.layer_count * grid.head_count * cells for entry in seen[:tokens])
    shares = np.frombuffer(grid.query_shares, "<f4").reshape(tokens, grid.layer_count, len(SHARE_KINDS))
    np.testing.assert_allclose(shares, generation.shares().numpy(), rtol=1e-6)
    np.testing.assert_allclose(shares.sum(-1), 1.0, rtol=1e-5)
    folded = torch.stack([generation.layer_rows(layer) for layer in range(grid.layer_count)])  # [L, H, T, 18]
    np.testing.assert_allclose(decoded_maps(grid), folded[:, :, -1, 2:].numpy(), atol=2e-3)
    # A span of generated tokens averages their rows, from the kept rows (the model does not run again).
    calls = []
    handle = model.register_forward_pre_hook(lambda *args: calls.append(1))
    try:
        grid.query = [1, 3]
    finally:
        handle.remove()
    assert not calls and grid.status == "done"
    expected = folded[:, :, [1, 3], 2:].mean(2)
    np.testing.assert_allclose(decoded_maps(grid), expected.numpy(), atol=2e-3)
    looked = grid.where_it_looked()
    assert looked.tokens == (1, 3)
    np.testing.assert_allclose(looked.per_layer, expected.mean(1).reshape(-1, 4, 4).numpy(), rtol=1e-5)
    np.testing.assert_allclose(looked.overall, expected.mean((0, 1)).reshape(4, 4).numpy(), rtol=1e-5)
    laid = looked.on_picture()
    assert laid.shape == (56, 80) and np.isnan(laid[:, :12]).all() and np.isnan(laid[:, 68:]).all()
    assert laid[20, 48] == pytest.approx(looked.overall[1, 2])  # the pixel (48, 20) lies in cell (1, 2)
    # Exports work as for every grid.
    assert grid.to_png()[:8] == b"\x89PNG\r\n\x1a\n"
    assert grid.overlay_to_png(layer=2, head=1)[:8] == b"\x89PNG\r\n\x1a\n"
    page = attnwidget.to_html(grid, tmp_path / "page.html").read_text()
    assert "query_shares" in page and grid.query_labels[0] in page


def test_explore_takes_a_loaded_model_its_processor_and_a_prompt(built):
    model, processor = built["qwen2_vl"]
    grid = attnwidget.explore(
        picture((100, 60)), model=model, processor=processor, prompt=PROMPTS["qwen2_vl"]
    )
    assert grid.status == "done" and grid.grid == [2, 4] and grid.query_labels
    assert isinstance(grid.source, VisionLanguageModel)
    assert len(grid.query_shares) == len(grid.query_labels) * grid.layer_count * len(SHARE_KINDS) * 4


def implementations_while_generating(vlm: VisionLanguageModel, **options) -> set[tuple[str, str]]:
    """The (language model, vision tower) attention implementations seen as the language model runs."""
    config, seen = vlm.model.config, []
    handle = vlm.model.model.language_model.register_forward_pre_hook(
        lambda *args: seen.append(
            (config.get_text_config()._attn_implementation, config.vision_config._attn_implementation)
        )
    )
    try:
        vlm.generate(vlm.prepare(picture((90, 60)), PROMPTS["paligemma"], max_new_tokens=2), **options)
    finally:
        handle.remove()
    assert (config.get_text_config()._attn_implementation, config.vision_config._attn_implementation) == (
        "sdpa",
        "sdpa",
    )  # restored
    return set(seen)


def test_the_language_model_keeps_its_sdpa_attention_while_it_generates(built):
    model, processor = built["paligemma"]
    vlm = VisionLanguageModel(model, processor)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is switched, so nothing is said
        assert implementations_while_generating(vlm) == {(FAST_ATTENTION, "sdpa")}
    prompt = vlm.prepare(picture((90, 60)), PROMPTS["paligemma"], max_new_tokens=4)
    with torch.no_grad():
        own = model.generate(**prompt.encoded, max_new_tokens=4, do_sample=False)
    assert [step.token_id for step in vlm.generate(prompt).steps] == own[0, prompt.prompt_length :].tolist()


def test_a_language_model_off_the_fast_path_runs_eager_and_says_why_once(built, monkeypatch):
    monkeypatch.setattr(fast_attention, "form_of_function", lambda function: None)  # an unknown form
    model, processor = built["paligemma"]
    vlm = VisionLanguageModel(model, processor)
    with pytest.warns(
        UserWarning, match="computes its weights otherwise.*switches the language model to 'eager'"
    ):
        assert implementations_while_generating(vlm) == {("eager", "sdpa")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        assert implementations_while_generating(vlm) == {("eager", "sdpa")}


def test_a_token_picked_while_it_generates_stays_the_query(built):
    model, processor = built["llava"]
    grid = AttentionGrid(VisionLanguageModel(model, processor), prompt=PROMPTS["llava"], max_new_tokens=5)
    queries: list[list[int]] = []

    def pick(change: dict) -> None:
        queries.append(list(grid.query))
        if len(grid.query_labels) == 2 and grid.query != [0]:
            grid.query = [0]  # as the front-end would: the user clicks the first token of the transcript

    grid.observe(pick, "specials")
    grid.run(picture((80, 56)))
    assert queries[:2] == [[0], [1]] and all(query == [0] for query in queries[2:])
    assert grid.query == [0] and grid.status == "done" and len(grid.query_labels) == 5
    folded = torch.stack([grid._current().model_input.layer_rows(layer) for layer in range(grid.layer_count)])
    np.testing.assert_allclose(decoded_maps(grid), folded[:, :, 0, 2:].numpy(), atol=2e-3)


def test_a_saved_model_loads_by_its_directory(built, tmp_path):
    model, processor = built["qwen2_vl"]
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    grid = AttentionGrid(str(tmp_path), picture((100, 60)), prompt=PROMPTS["qwen2_vl"], max_new_tokens=3)
    assert isinstance(grid.source, VisionLanguageModel) and grid.source.family == "qwen2_vl"
    assert grid.status == "done" and len(grid.query_labels) == 3 and grid.grid == [2, 4]


def test_a_vision_language_family_not_mapped_is_refused_as_such():
    """Gemma 3 (from transformers' own list of image-text-to-text models) writes about pictures, but
    attnwidget does not map its image tokens: the grid says so, not that a processor is missing."""
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4}
    config = tf.Gemma3Config(
        text_config={**small, "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 300},
        vision_config={**small, "image_size": 56, "patch_size": 14},
        mm_tokens_per_image=4,
    )
    model = tf.Gemma3ForConditionalGeneration(config).eval()
    with pytest.raises(
        UnsupportedModelError, match="'gemma3' model is not a vision-language model attnwidget"
    ):
        AttentionGrid(model, picture((40, 40)), prompt="<start_of_image> what is it?")


def test_a_processor_that_pads_to_a_square_gives_no_place(built):
    model, _ = built["llava"]
    _, processor = llava()
    processor.image_processor = tf.LlavaImageProcessor(
        size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}, do_pad=True
    )
    with pytest.warns(UserWarning):
        grid = AttentionGrid(
            VisionLanguageModel(model, processor),
            picture((80, 56)),
            prompt=PROMPTS["llava"],
            max_new_tokens=2,
        )
    assert grid.crop_box == [0.0, 0.0, 1.0, 1.0] and "unknown" in grid.message


def test_a_generation_that_fails_shows_the_last_grid_again(built):
    model, processor = built["llava"]
    grid = AttentionGrid(VisionLanguageModel(model, processor), prompt=PROMPTS["llava"], max_new_tokens=2)
    grid.run(picture((80, 56)))
    shown = {name: getattr(grid, name) for name in ("query_labels", "query_shares", "maps", "image", "query")}

    steps = []

    def fail_on_the_second_token(*args):
        steps.append(1)
        if len(steps) == 2:  # the first token is in the transcript by then
            raise RuntimeError("out of memory")

    handle = model.model.language_model.layers[1].register_forward_hook(fail_on_the_second_token)
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            grid.run(picture((80, 56), MARKS["llava"][1][0]))
    finally:
        handle.remove()
    assert grid.status == "done" and "out of memory" in grid.message
    assert {name: getattr(grid, name) for name in shown} == shown
    grid.query = [0]  # the last good generation still answers
    assert grid.status == "done" and grid.query == [0]


def test_a_half_precision_model_is_captured_in_its_dtype():
    model, processor = paligemma()
    model = model.to(torch.bfloat16)
    vlm = VisionLanguageModel(model, processor)
    prompt = vlm.prepare(picture((90, 60)), PROMPTS["paligemma"], max_new_tokens=3)
    assert prompt.encoded["pixel_values"].dtype == torch.bfloat16
    generation = vlm.generate(prompt)
    model.set_attn_implementation({"text_config": "eager"})  # the vision tower on sdpa, as while capturing
    with torch.no_grad():
        reference = model.generate(
            **prompt.encoded,
            max_new_tokens=3,
            do_sample=False,
            output_attentions=True,
            return_dict_in_generate=True,
        )
    positions = prompt.placed.token_map.positions
    for step, layers in zip(generation.steps, reference.attentions, strict=True):
        assert step.rows.dtype == torch.bfloat16
        for layer, weights in enumerate(layers):  # computed beside sdpa: within bf16's precision
            torch.testing.assert_close(step.rows[layer], weights[0, :, -1, positions], atol=8e-3, rtol=2e-2)
