"""Text models: captured attention equals transformers' own `output_attentions`, for encoders
(MiniLM, real weights), decoders (GPT-2, Llama) and encoder-decoders (T5, BART: encoder, decoder and
cross attention); outputs are unchanged by the capture; bad text gets clear errors."""

from __future__ import annotations

import pytest
import torch
from tiny_text_models import TEXT_ARCHITECTURES, byte_level_tokenizer, save_tiny_text_models

from attnwidget.models import UnsupportedModelError
from attnwidget.text import TextModel, _arguments

TEXT = 'The cat sat on the mat <b> & "quotes".'
TARGET = "the dog sat on the log"


@pytest.fixture(scope="module")
def text_dirs(tmp_path_factory):
    return save_tiny_text_models(tmp_path_factory.mktemp("text-models"))


def captured(text_model: TextModel, inputs) -> tuple[list[torch.Tensor], object]:
    layers: list[torch.Tensor] = []
    outputs = text_model.run(inputs, lambda layer, weights: layers.append(weights.clone()))
    return layers, outputs


def eager_reference(model: torch.nn.Module, forward: torch.nn.Module | None = None, **arguments):
    """`forward` (default: the model) with eager attention and `output_attentions`, as transformers
    computes them; the model's attention implementation is restored afterwards."""
    current = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            return (forward or model)(**arguments, output_attentions=True)
    finally:
        model.set_attn_implementation(current)


def reference(text_model: TextModel, inputs):
    arguments = {"input_ids": inputs.input_ids, "attention_mask": inputs.attention_mask}
    if inputs.decoder_input_ids is not None:
        arguments["decoder_input_ids"] = inputs.decoder_input_ids
    return eager_reference(text_model.model, **arguments)


#: (architecture, stack, field of the model's output holding that stack's attention)
STACKS = [
    ("gpt2", "auto", "attentions"),
    ("llama", "auto", "attentions"),
    ("t5", "encoder", "encoder_attentions"),
    ("t5", "decoder", "decoder_attentions"),
    ("t5", "cross", "cross_attentions"),
    ("bart", "encoder", "encoder_attentions"),
    ("bart", "decoder", "decoder_attentions"),
    ("bart", "cross", "cross_attentions"),
]


@pytest.mark.parametrize(("name", "stack", "field"), STACKS)
def test_captured_attention_equals_output_attentions(text_dirs, name, stack, field):
    text_model = TextModel.from_pretrained(text_dirs[name], stack=stack, attn_implementation="eager")
    inputs = text_model.prepare(TEXT, target=TARGET)
    layers, outputs = captured(text_model, inputs)
    expected = getattr(reference(text_model, inputs), field)
    assert len(layers) == len(expected) == text_model.layer_count
    for layer, weights in zip(layers, expected, strict=True):
        torch.testing.assert_close(layer, weights)
        assert weights.shape[1] == text_model.head_count
        assert weights.shape[-2:] == (len(inputs.tokens), len(inputs.key_tokens))
    logits = reference(text_model, inputs).logits
    torch.testing.assert_close(outputs.logits, logits)  # the capture changes nothing
    if stack == "decoder" or name in ("gpt2", "llama"):
        assert text_model.causal
        assert torch.all(layers[0][0].triu(diagonal=1) == 0)  # no query sees a later key


def test_minilm_real_weights_through_the_wrapper():
    from attnwidget.pretrained import minilm

    model, tokenizer = minilm()
    text_model = TextModel(model, tokenizer)
    assert (text_model.stack, text_model.causal, text_model.layer_count, text_model.head_count) == (
        "encoder",
        False,
        6,
        12,
    )
    inputs = text_model.prepare(TEXT)
    assert inputs.tokens[0] == "[CLS]" and inputs.tokens[-1] == "[SEP]"
    layers, _ = captured(text_model, inputs)
    for layer, weights in zip(layers, reference(text_model, inputs).attentions, strict=True):
        torch.testing.assert_close(layer, weights)


def test_token_labels_read_as_the_text(text_dirs):
    gpt2 = TextModel.from_pretrained(text_dirs["gpt2"])
    inputs = gpt2.prepare(TEXT)
    assert "".join(inputs.tokens) == TEXT  # byte-level marks ("Ġ") turned back into spaces
    assert any("<" in token for token in inputs.tokens) and any("&" in token for token in inputs.tokens)


def test_bad_text_gets_clear_errors(text_dirs):
    gpt2 = TextModel.from_pretrained(text_dirs["gpt2"])
    with pytest.raises(ValueError, match="the text is empty"):
        gpt2.prepare("   ")
    with pytest.raises(ValueError, match=r"more than .* context of 64: shorten it"):
        gpt2.prepare("the cat " * 80)
    with pytest.raises(TypeError, match="as a str"):
        gpt2.prepare(["a list"])
    with pytest.raises(UnsupportedModelError, match="not an encoder-decoder"):
        TextModel.from_pretrained(text_dirs["gpt2"], stack="cross")
    with pytest.raises(ValueError, match="stack must be"):
        TextModel.from_pretrained(text_dirs["t5"], stack="middle")

    from attnwidget.pretrained import minilm

    model, _ = minilm()  # a BERT vocabulary of 30522 ids
    small = TextModel(gpt2.model, model and byte_level_tokenizer())
    assert small.prepare("the cat")  # the tokenizer that belongs to it
    mismatched = TextModel(gpt2.model, minilm()[1])
    with pytest.raises(ValueError, match="does not belong to this model"):
        mismatched.prepare("Transformers attend everywhere")


@pytest.mark.parametrize("name", TEXT_ARCHITECTURES)
def test_sdpa_models_are_switched_to_eager_for_the_capture(text_dirs, name):
    import transformers as tf

    loader = tf.AutoModelForCausalLM if name in ("gpt2", "llama") else tf.AutoModelForSeq2SeqLM
    model = loader.from_pretrained(text_dirs[name], attn_implementation="sdpa")
    text_model = TextModel(model, tf.AutoTokenizer.from_pretrained(text_dirs[name]))
    inputs = text_model.prepare(TEXT)
    with pytest.warns(UserWarning, match="switches it to 'eager'"):
        layers, _ = captured(text_model, inputs)
    assert len(layers) == text_model.layer_count
    assert model.config._attn_implementation == "sdpa"  # restored


def test_a_text_grid_shows_each_heads_token_by_token_attention(text_dirs):
    from attnwidget import AttentionGrid
    from attnwidget.encode import decode_rows

    grid = AttentionGrid(TextModel.from_pretrained(text_dirs["gpt2"]), TEXT, saved_detail="full")
    inputs = grid.text_model.prepare(TEXT)
    tokens = len(inputs.tokens)
    assert (grid.view, grid.causal, grid.grid, grid.token_count) == ("matrix", True, [1, tokens], tokens)
    assert grid.token_labels == list(inputs.tokens) and "".join(grid.token_labels) == TEXT
    assert grid.query == [tokens - 1]  # a decoder: attention from the last token
    expected = reference(grid.text_model, inputs).attentions
    tiles = len(grid.layers) * len(grid.heads)
    matrices = decode_rows(grid.matrices, grid.matrices_range, tokens).reshape(tiles, tokens, tokens)
    maps = decode_rows(grid.maps, grid.maps_range, tokens).reshape(tiles, tokens)
    for tile in range(tiles):
        layer, head = divmod(tile, len(grid.heads))
        exact = expected[layer][0, head].numpy()
        spread = exact.max(axis=1, keepdims=True) - exact.min(axis=1, keepdims=True)
        assert (abs(matrices[tile] - exact) <= spread / 255 + 1e-6).all()
        last = exact[-1]
        assert abs(maps[tile] - last).max() <= (last.max() - last.min()) / 255 + 1e-6
    top = grid.predictions  # the next token after the text
    assert len(top) == 5 and all(isinstance(p["label"], str) for p in top)
    assert [p["probability"] for p in top] == sorted((p["probability"] for p in top), reverse=True)

    grid.method = "rollout"
    assert grid.method == "attention" and "for vision models" in grid.message
    with pytest.raises(TypeError, match="for vision models"):
        grid.head_statistics()
    with pytest.raises(TypeError, match="no picture"):
        grid.overlay_to_png()
    assert grid.to_png()  # the token x token grid as a picture


@pytest.mark.parametrize("name", ["t5", "bart"])
def test_a_cross_attention_grid_shows_decoder_tokens_against_encoder_tokens(text_dirs, name):
    from attnwidget import AttentionGrid
    from attnwidget.encode import decode_rows

    cross = TextModel.from_pretrained(text_dirs[name], stack="cross")
    grid = AttentionGrid(cross, saved_detail="full")
    grid.run(TEXT, decoder_text=TARGET)
    inputs = cross.prepare(TEXT, TARGET)
    queries, keys = len(inputs.tokens), len(inputs.key_tokens)
    assert queries != keys and not grid.causal
    assert (grid.grid, grid.token_count) == ([1, keys], keys)
    assert grid.token_labels == list(inputs.key_tokens) and grid.query_labels == list(inputs.tokens)
    assert grid.query == [queries - 1]  # the decoder's last token
    expected = reference(cross, inputs).cross_attentions
    tiles = len(grid.layers) * len(grid.heads)
    matrices = decode_rows(grid.matrices, grid.matrices_range, keys).reshape(tiles, queries, keys)
    maps = decode_rows(grid.maps, grid.maps_range, keys)
    for tile in range(tiles):
        layer, head = divmod(tile, len(grid.heads))
        exact = expected[layer][0, head].numpy()
        spread = exact.max(axis=1, keepdims=True) - exact.min(axis=1, keepdims=True)
        assert (abs(matrices[tile] - exact) <= spread / 255 + 1e-6).all()
        assert abs(maps[tile] - exact[-1]).max() <= (exact[-1].max() - exact[-1].min()) / 255 + 1e-6
    assert grid.to_png() and "image/png" in grid._repr_mimebundle_()[0]  # rectangular tiles
    region = grid.head_region(2, 1, (1, queries), (2, keys - 1))
    torch.testing.assert_close(region, expected[1][0, 0, 1:, 2 : keys - 1])
    with pytest.raises(ValueError, match=f"inside the {queries} x {keys} tokens"):
        grid.head_region(2, 1, (0, keys), (0, keys))  # more rows than decoder tokens
    grid.query = [0]
    assert grid.query == [0] and grid.message == ""
    grid.query = [queries]  # one past the decoder's tokens: refused with a message, the query stays
    assert grid.query == [0] and "out of range" in grid.message


def test_an_encoder_grid_asks_from_its_cls_token():
    from attnwidget import AttentionGrid
    from attnwidget.pretrained import minilm

    grid = AttentionGrid(TextModel(*minilm()), "Attention is all you need.")
    assert grid.token_labels[0] == "[CLS]" and grid.query == [0] and not grid.causal
    assert grid.predictions == []  # a sentence encoder predicts no next token


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_are_captured_and_shown(text_dirs, dtype):
    import transformers as tf

    from attnwidget import AttentionGrid

    model = tf.AutoModelForCausalLM.from_pretrained(
        text_dirs["llama"], attn_implementation="eager", dtype=dtype
    )
    text_model = TextModel(model, tf.AutoTokenizer.from_pretrained(text_dirs["llama"]))
    inputs = text_model.prepare(TEXT)
    layers, _ = captured(text_model, inputs)
    for layer, weights in zip(layers, reference(text_model, inputs).attentions, strict=True):
        assert layer.dtype == dtype
        torch.testing.assert_close(layer, weights)
    grid = AttentionGrid(text_model, TEXT)
    assert grid.status == "done" and grid.maps and grid.message == ""
    exact = grid.full_attention(1)
    assert exact.dtype == torch.float32  # reductions and replies are float32 whatever the model's dtype
    torch.testing.assert_close(exact, layers[0][0].float())


def test_a_model_spread_by_accelerate_is_captured_as_a_whole_one(text_dirs, tmp_path):
    import transformers as tf

    from attnwidget import AttentionGrid

    whole = TextModel.from_pretrained(text_dirs["llama"])
    spread = tf.AutoModelForCausalLM.from_pretrained(
        text_dirs["llama"],
        attn_implementation="eager",
        device_map="auto",
        max_memory={"cpu": "150KB"},  # the first layer fits; the rest is offloaded to disk
        offload_folder=str(tmp_path),
    )
    assert "disk" in spread.hf_device_map.values()  # accelerate's hooks load those layers per forward
    text_model = TextModel(spread, tf.AutoTokenizer.from_pretrained(text_dirs["llama"]))
    inputs = text_model.prepare(TEXT)
    layers, outputs = captured(text_model, inputs)
    expected = reference(whole, whole.prepare(TEXT))
    for layer, weights in zip(layers, expected.attentions, strict=True):
        torch.testing.assert_close(layer, weights)
    torch.testing.assert_close(outputs.logits, expected.logits)
    tokens = len(inputs.tokens)
    blocked = AttentionGrid(text_model, TEXT, block_bytes=text_model.head_count * 4 * tokens * 4)
    assert blocked._session.in_blocks(blocked._session.input.layout)
    torch.testing.assert_close(
        blocked.head_region(3, 2, (0, tokens), (0, tokens)), expected.attentions[2][0, 1]
    )


def test_a_language_model_with_a_vision_tower_inside_is_captured_on_its_own_layers():
    """LLaVA holds a CLIP tower beside its Llama: a text-only run captures the language model's
    layers, as its `output_attentions` returns them, not the tower's, which do not run on text."""
    from tiny_vlm_models import llava

    model, processor = llava()
    text_model = TextModel(model, processor.tokenizer)
    tower = set(model.model.vision_tower.modules())
    assert text_model.layer_count == model.config.text_config.num_hidden_layers == 3
    assert text_model.causal and text_model.head_count == 4  # a decoder, as its Llama config says
    assert not tower & set(text_model.attention_modules)
    inputs = text_model.prepare("the cat sat on the mat")
    expected = eager_reference(model, **_arguments(inputs))
    blocks: dict[int, list[torch.Tensor]] = {}
    text_model.run_fast(inputs, lambda layer, first, weights: blocks.setdefault(layer, []).append(weights))
    assert sorted(blocks) == list(range(3))
    for layer, weights in enumerate(expected.attentions):
        torch.testing.assert_close(torch.cat(blocks[layer], dim=2), weights)


def test_a_prefix_language_model_on_text_alone_shows_the_attention_its_forward_ran(monkeypatch):
    """PaliGemma's language model declares bidirectional attention (a prefix LM): on text alone its sdpa
    forward lets every token see every other, so the grid does not grey the later tokens as a
    decoder's, and its weights are softmax(q k^T * scaling) of the very q and k sdpa was given."""
    import transformers.integrations.sdpa_attention as sdpa
    from tiny_vlm_models import paligemma

    model, processor = paligemma()
    text_model = TextModel(model, processor.tokenizer)
    assert text_model.stack == "decoder" and not text_model.causal
    given: list[tuple[torch.Tensor, torch.Tensor, float]] = []
    forward = sdpa.sdpa_attention_forward

    def recorded(module, query, key, value, attention_mask, *args, **kwargs):
        assert attention_mask is None  # no mask: every key for every query
        given.append((query, key, kwargs["scaling"]))
        return forward(module, query, key, value, attention_mask, *args, **kwargs)

    monkeypatch.setattr(sdpa, "sdpa_attention_forward", recorded)
    blocks: dict[int, list[torch.Tensor]] = {}
    inputs = text_model.prepare("the cat sat on the mat")
    text_model.run_fast(inputs, lambda layer, first, weights: blocks.setdefault(layer, []).append(weights))
    assert len(given) == text_model.layer_count == 3
    for layer, (query, key, scaling) in enumerate(given):
        key = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
        expected = torch.softmax(query @ key.transpose(-1, -2) * scaling, dim=-1)
        torch.testing.assert_close(torch.cat(blocks[layer], dim=2), expected)
        assert expected[0, :, 0, 1:].min() > 0  # the first token attends to later ones
