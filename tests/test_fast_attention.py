"""Capture beside the model's own sdpa attention (`attnwidget.fast_attention`): for every text and
vision family tested, full, causal, sliding-window and padded inputs, the weights handed over equal
eager `output_attentions` (fp32, and bf16 within its precision) and the model's outputs are its sdpa
outputs, bit for bit; families attnwidget never names take the path when their eager attention is
the code of a verified one, and equal eager too; only the query rows asked for are computed; a model
whose eager attention is of another form, or that soft-caps, falls back to eager and says why, once."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
import transformers as tf
from PIL import Image
from test_text import STACKS, TARGET, TEXT, eager_reference, text_dirs  # noqa: F401  (text_dirs is a fixture)
from tiny_text_models import byte_level_tokenizer

from attnwidget.capture import AttentionNotReturnedError, Workspace
from attnwidget.eager_forms import (
    OWN_EAGER_REFERENCES,
    PLAIN_SOFTMAX_REFERENCES,
    eager_form,
    takes_softmax_rows,
)
from attnwidget.fast_attention import (
    SCORE_BLOCK_ROWS,
    KeptQueriesKeys,
    LayerInputs,
    fast_path_refusal,
)
from attnwidget.models import VisionModel
from attnwidget.score_blocks import ScoreBlock
from attnwidget.text import TextInput, TextModel, _arguments

from tiny_models import ARCHITECTURES

SMALL = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 64}

#: Tolerances of weights computed beside sdpa against eager's, by the model's dtype: float32's
#: defaults, and for half precision within its rounding (eager rounds its weights to the dtype).
PRECISION = {
    torch.float32: {},
    torch.bfloat16: {"atol": 8e-3, "rtol": 2e-2},
    torch.float16: {"atol": 1e-3, "rtol": 4e-3},
}


def fast_capture(source, model_input, block_bytes: int | None = None, rows=None, scores: bool = False):
    """Each layer's weights as `run_fast` hands them over (blocks joined, checked in order), and the
    outputs. With `scores` the capture accepts `ScoreBlock`s: they are handed over wherever the
    architecture's attention is a plain softmax, and turned into weights here."""
    blocks: dict[int, list[tuple[int, torch.Tensor]]] = {}
    plain = takes_softmax_rows(source.attention_modules[0], ())

    def keep(layer: int, first: int, weights: torch.Tensor | ScoreBlock) -> None:
        assert isinstance(weights, ScoreBlock) == (scores and plain)
        weights = weights.weights() if isinstance(weights, ScoreBlock) else weights.clone()
        blocks.setdefault(layer, []).append((first, weights))

    outputs = source.run_fast(model_input, keep, block_bytes, rows, scores)
    layers = {}
    for layer, parts in blocks.items():
        firsts = [first for first, _ in parts]
        sizes = [weights.shape[2] for _, weights in parts]
        assert firsts == [sum(sizes[:index]) for index in range(len(parts))]  # in order, none missed
        layers[layer] = torch.cat([weights for _, weights in parts], dim=2)
    return layers, outputs


def padded(inputs: TextInput) -> TextInput:
    """The input with its first two tokens masked as padding (left padding, as for generation)."""
    mask = inputs.attention_mask.clone()
    mask[:, :2] = 0
    return replace(inputs, attention_mask=mask)


def check_text(text_model: TextModel, inputs: TextInput, field: str, rows_per_block: int = 3, **tolerance):
    """The fast capture of `inputs` equals eager's `field` attentions; the outputs equal sdpa's."""
    assert text_model.query_selection
    block_bytes = text_model.head_count * rows_per_block * len(inputs.key_tokens) * 4
    expected = eager_reference(text_model.model, **_arguments(inputs))
    # A plain softmax is handed over in float32, eager's softmax dtype, before eager rounds it to the
    # model's; an architecture's own eager attention (T5) hands over what it returns.
    plain = takes_softmax_rows(text_model.attention_modules[0], ())
    for scores in (False, True):
        layers, outputs = fast_capture(text_model, inputs, block_bytes, scores=scores)
        assert len(layers) == text_model.layer_count
        for layer, weights in enumerate(getattr(expected, field)):
            assert layers[layer].dtype == (torch.float32 if plain else weights.dtype)
            torch.testing.assert_close(layers[layer].float(), weights.float(), **tolerance)
    with torch.no_grad():
        sdpa = text_model.model(**_arguments(inputs))
    assert torch.equal(outputs.logits, sdpa.logits)  # the model's own sdpa outputs
    assert text_model.model.config._attn_implementation == "sdpa"  # restored after the run


@pytest.mark.parametrize("dtype", list(PRECISION))
@pytest.mark.parametrize("padding", ["none", "padded"])
@pytest.mark.parametrize(("name", "stack", "field"), STACKS)
def test_text_families_equal_eager_attentions_and_sdpa_outputs(text_dirs, name, stack, field, padding, dtype):  # noqa: F811
    text_model = TextModel.from_pretrained(text_dirs[name], stack=stack, dtype=dtype)
    assert text_model.model.config._attn_implementation == "sdpa"  # transformers' default is kept
    inputs = text_model.prepare(TEXT, target=TARGET)
    check_text(text_model, padded(inputs) if padding == "padded" else inputs, field, **PRECISION[dtype])


def test_score_blocks_of_a_long_input_equal_eager_attentions():
    tokenizer = byte_level_tokenizer()
    torch.manual_seed(0)
    config = tf.LlamaConfig(
        vocab_size=len(tokenizer), num_key_value_heads=2, max_position_embeddings=256, **SMALL
    )
    text_model = TextModel(tf.LlamaForCausalLM(config), tokenizer)
    inputs = padded(text_model.prepare(" ".join([TEXT] * 8)))
    tokens = len(inputs.tokens)
    firsts: list[int] = []

    def note(layer: int, first: int, weights: torch.Tensor | ScoreBlock) -> None:
        if layer == 0:
            firsts.append(first)

    text_model.run_fast(inputs, note, block_bytes=1, scores=True)
    assert firsts == list(range(0, tokens, SCORE_BLOCK_ROWS)) and len(firsts) >= 3  # blocks of 32 rows
    layers, _ = fast_capture(text_model, inputs, block_bytes=1, scores=True)  # one buffer, reused
    expected = eager_reference(text_model.model, **_arguments(inputs)).attentions
    for layer, weights in enumerate(expected):
        torch.testing.assert_close(layers[layer], weights)


def decoder(family: str, dtype: torch.dtype = torch.float32) -> TextModel:
    tokenizer = byte_level_tokenizer()
    common = {"vocab_size": len(tokenizer), "num_key_value_heads": 2, "max_position_embeddings": 64, **SMALL}
    torch.manual_seed(0)
    if family == "mistral":
        model = tf.MistralForCausalLM(tf.MistralConfig(sliding_window=4, **common))
    else:
        layer_types = ["sliding_attention", "full_attention", "sliding_attention"]
        config = tf.Qwen2Config(use_sliding_window=True, sliding_window=4, layer_types=layer_types, **common)
        model = tf.Qwen2ForCausalLM(config)
    return TextModel(model.to(dtype), tokenizer, name=family)


@pytest.mark.parametrize("dtype", list(PRECISION))
@pytest.mark.parametrize("padding", ["none", "padded"])
@pytest.mark.parametrize("family", ["mistral", "qwen2"])
def test_sliding_windows_equal_eager_attentions(family, padding, dtype):
    text_model = decoder(family, dtype)
    inputs = text_model.prepare(TEXT)
    chosen = padded(inputs) if padding == "padded" else inputs
    check_text(text_model, chosen, "attentions", **PRECISION[dtype])
    layers, _ = fast_capture(text_model, inputs)
    assert torch.all(layers[0][0, :, 10, :6] == 0)  # the window: query 10 sees keys 7 to 10 only


#: Decoder families not named anywhere in attnwidget, taken by the fast path because their eager
#: attention is the code of a verified one (`eager_forms`), each with what sets its attention apart.
RECOGNISED_FAMILIES = {
    "qwen3": (tf.Qwen3Config, {"head_dim": 8}),  # normed queries and keys
    "phi3": (tf.Phi3Config, {}),  # one fused projection
    "olmo2": (tf.Olmo2Config, {}),  # normed queries and keys over all heads
    "mixtral": (tf.MixtralConfig, {"num_local_experts": 4, "num_experts_per_tok": 2}),
    "stablelm": (tf.StableLmConfig, {}),  # rotary embeddings on a quarter of each head
    "cohere": (tf.CohereConfig, {}),  # interleaved rotary embeddings
    "granite": (tf.GraniteConfig, {"attention_multiplier": 0.3}),  # its own scaling
    "starcoder2": (tf.Starcoder2Config, {}),
    "smollm3": (tf.SmolLM3Config, {}),
    "gemma3": (  # a sliding window on two of three layers, its own scaling
        tf.Gemma3TextConfig,
        {
            "head_dim": 8,
            "sliding_window": 4,
            "query_pre_attn_scalar": 16,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
        },
    ),
    "gpt_neox": (tf.GPTNeoXConfig, {"rotary_pct": 0.5}),  # Pythia's architecture
    "phi": (tf.PhiConfig, {}),
    "opt": (tf.OPTConfig, {"word_embed_proj_dim": 32, "ffn_dim": 64}),
    "diffllama": (tf.DiffLlamaConfig, {}),  # two attention calls a layer: eager returns the first's
}
#: Families of RECOGNISED_FAMILIES whose configuration has no grouped key heads.
UNGROUPED = {"gpt_neox", "phi", "opt"}


def recognised(family: str, dtype: torch.dtype = torch.float32, **changes) -> TextModel:
    """A random-init decoder of `family` (RECOGNISED_FAMILIES), on transformers' default attention."""
    tokenizer = byte_level_tokenizer()
    config_class, own = RECOGNISED_FAMILIES[family]
    grouping = {} if family in UNGROUPED else {"num_key_value_heads": 2}
    tokens = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    config = config_class(
        vocab_size=len(tokenizer), max_position_embeddings=64, **SMALL, **grouping, **tokens, **own, **changes
    )
    torch.manual_seed(0)
    model = tf.AutoModelForCausalLM.from_config(config)
    return TextModel(model.to(dtype), tokenizer, name=family)


@pytest.mark.parametrize("dtype", list(PRECISION))
@pytest.mark.parametrize("padding", ["none", "padded"])
@pytest.mark.parametrize("family", sorted(RECOGNISED_FAMILIES))
def test_families_whose_eager_attention_is_a_verified_form_equal_eager_attentions(family, padding, dtype):
    text_model = recognised(family, dtype)
    assert eager_form(text_model.attention_modules[0]) == "plain softmax"
    assert text_model.model.config._attn_implementation == "sdpa"
    inputs = text_model.prepare(TEXT)
    check_text(
        text_model, padded(inputs) if padding == "padded" else inputs, "attentions", **PRECISION[dtype]
    )


def test_a_layer_calling_its_attention_twice_hands_over_its_first_call_in_blocks_on_eager():
    text_model = recognised("diffllama")
    text_model.model.set_attn_implementation("eager")
    inputs = text_model.prepare(TEXT)
    tokens = len(inputs.tokens)
    blocks: dict[int, list[tuple[int, torch.Tensor]]] = {}
    text_model.capture(
        inputs,
        lambda layer, first, weights: blocks.setdefault(layer, []).append((first, weights.clone())),
        block_bytes=text_model.head_count * 4 * tokens * 4,  # 4 query rows a block
    )
    expected = eager_reference(text_model.model, **_arguments(inputs)).attentions
    for layer, weights in enumerate(expected):
        assert [first for first, _ in blocks[layer]] == list(range(0, tokens, 4))  # each row once
        torch.testing.assert_close(torch.cat([part for _, part in blocks[layer]], dim=1), weights[0])


def test_a_run_that_hands_over_too_few_layers_is_refused_with_the_count():
    text_model = recognised("qwen3")  # 3 layers
    inputs = text_model.prepare(TEXT)
    text_model.model.model.layers = text_model.model.model.layers[:2]  # the last layer does not run
    with pytest.raises(
        AttentionNotReturnedError, match=r"for 2 of its 3 layers: .* did not run on this input$"
    ):
        text_model.run_fast(inputs, lambda layer, first, weights: None)
    with pytest.raises(AttentionNotReturnedError, match=r"2 of its 3 layers: .*block_bytes"):
        text_model.run_in_blocks(inputs, lambda layer, first, weights: None, block_bytes=1024)


@pytest.mark.parametrize("capture", ["fast", "eager", "blocks"])
def test_a_layer_run_twice_in_one_forward_is_refused_not_drawn_twice(capture):
    from attnwidget import AttentionGrid

    text_model = recognised("qwen3")
    first_layer = text_model.model.model.layers[0]
    once = first_layer.forward

    def looped(hidden_states, *args, cache=None, **kwargs):  # a second cycle, as HRM's
        return once(once(hidden_states, *args, **kwargs), *args, **kwargs)

    first_layer.forward = looped
    if capture == "eager":
        text_model.model.set_attn_implementation("eager")
    options = {"block_bytes": 1024} if capture == "blocks" else {}
    with pytest.raises(RuntimeError, match=r"ran the attention of layer 1 again .* not drawn$"):
        AttentionGrid(text_model, TEXT, **options)
    first_layer.forward = once
    assert AttentionGrid(text_model, TEXT, **options).status == "done"


def test_a_soft_capped_gemma_2_on_flash_attention_is_refused_the_fast_path():
    config = tf.Gemma2Config(vocab_size=64, head_dim=8, num_key_value_heads=2, **SMALL)
    model = tf.Gemma2ForCausalLM(config)  # its eager attention is Gemma 3's: the plain form, soft-capped
    module = model.model.layers[0].self_attn
    assert (
        eager_form(module) == "plain softmax"
        and fast_path_refusal(model, module) == "it runs 'eager' attention"
    )
    model.config._attn_implementation = "flash_attention_2"  # as loaded on a GPU (sdpa cannot soft-cap)
    assert "soft-caps its attention scores" in fast_path_refusal(model, module)
    module.attn_logit_softcapping = None
    assert fast_path_refusal(model, module) is None


def test_only_the_rows_asked_for_are_computed(text_dirs):  # noqa: F811
    text_model = TextModel.from_pretrained(text_dirs["gpt2"])
    inputs = text_model.prepare(TEXT)
    rows = (1, 4, 9)
    layers, _ = fast_capture(text_model, inputs, rows=rows)
    expected = eager_reference(text_model.model, **_arguments(inputs)).attentions
    for layer, weights in enumerate(expected):
        assert layers[layer].shape[2] == len(rows)
        torch.testing.assert_close(layers[layer], weights[:, :, list(rows)])


def picture() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))


@pytest.mark.parametrize("dtype", list(PRECISION))
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_vision_families_equal_eager_attentions_and_sdpa_outputs(name, dtype, tiny_model_dirs):
    saved = VisionModel.from_pretrained(tiny_model_dirs[name])
    model = type(saved.model).from_pretrained(tiny_model_dirs[name], attn_implementation="sdpa", dtype=dtype)
    vision = VisionModel(model, saved.processor)
    assert vision.query_selection
    pixel_values = vision.prepare(picture())[0].to(dtype)
    expected = eager_reference(model, vision.forward_module, pixel_values=pixel_values)
    for scores in (False, True):
        layers, outputs = fast_capture(vision, pixel_values, vision.head_count * 5 * 4 * 30, scores=scores)
        for layer, weights in enumerate(expected.attentions):
            torch.testing.assert_close(layers[layer], weights.float(), **PRECISION[dtype])
    with torch.no_grad():
        assert torch.equal(outputs[0], vision.forward_module(pixel_values=pixel_values)[0])


#: Vision families not named anywhere in attnwidget, taken by the fast path because their eager
#: attention is the code of a verified one (`eager_forms`).
RECOGNISED_VISION = {
    "dinov3": lambda: tf.DINOv3ViTModel(  # rotary embeddings on the patches, registers
        tf.DINOv3ViTConfig(image_size=32, patch_size=8, num_register_tokens=2, **SMALL)
    ),
    "ijepa": lambda: tf.IJepaModel(tf.IJepaConfig(image_size=32, patch_size=8, **SMALL)),  # no CLS token
    "aimv2": lambda: tf.Aimv2VisionModel(tf.Aimv2VisionConfig(image_size=32, patch_size=8, **SMALL)),
    "vit_msn": lambda: tf.ViTMSNModel(tf.ViTMSNConfig(image_size=32, patch_size=8, **SMALL)),
}


@pytest.mark.parametrize("dtype", list(PRECISION))
@pytest.mark.parametrize("name", sorted(RECOGNISED_VISION))
def test_vision_families_whose_eager_attention_is_a_verified_form_equal_eager_attentions(name, dtype):
    torch.manual_seed(0)
    model = RECOGNISED_VISION[name]().to(dtype).eval()
    processor = tf.BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    vision = VisionModel(model, processor)
    assert model.config._attn_implementation == "sdpa" and vision.query_selection
    pixel_values = vision.prepare(picture())[0].to(dtype)
    expected = eager_reference(model, pixel_values=pixel_values)
    for scores in (False, True):
        layers, outputs = fast_capture(vision, pixel_values, vision.head_count * 5 * 4 * 30, scores=scores)
        assert len(layers) == len(expected.attentions)
        for layer, weights in enumerate(expected.attentions):
            torch.testing.assert_close(layers[layer], weights.float(), **PRECISION[dtype])
    with torch.no_grad():
        assert torch.equal(outputs[0], model(pixel_values=pixel_values)[0])


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_a_batch_captured_into_a_workspace_equals_eager_in_the_same_memory(name, tiny_model_dirs):
    """Whole layers of a batch computed into one reused buffer: each equals eager's attentions, and
    the layer's output, computed from those weights, equals sdpa's to float rounding."""
    saved = VisionModel.from_pretrained(tiny_model_dirs[name])
    model = type(saved.model).from_pretrained(tiny_model_dirs[name], attn_implementation="sdpa")
    vision = VisionModel(model, saved.processor)
    pixel_values = torch.cat([vision.prepare(picture())[0], torch.randn_like(vision.prepare(picture())[0])])
    expected = eager_reference(model, vision.forward_module, pixel_values=pixel_values)
    workspace, seen = Workspace(), []

    def keep(layer: int, weights: torch.Tensor) -> None:
        seen.append((layer, weights.data_ptr(), weights.clone()))

    for _ in range(2):  # the second batch reuses the first's buffer
        outputs = vision.capture_batch(pixel_values, keep, workspace)
    buffer = workspace.buffer(0, pixel_values.device).data_ptr()
    assert [layer for layer, _, _ in seen] == 2 * list(range(vision.layer_count))
    assert {pointer for _, pointer, _ in seen} == {buffer}  # no layer took new memory
    for layer, _, weights in seen:
        torch.testing.assert_close(weights, expected.attentions[layer])
    with torch.no_grad():
        sdpa = vision.forward_module(pixel_values=pixel_values)[0]
    torch.testing.assert_close(outputs[0], sdpa, atol=1e-5, rtol=1e-4)


def test_the_grid_of_an_sdpa_model_equals_the_grid_of_its_eager_twin(text_dirs, monkeypatch):  # noqa: F811
    from attnwidget import AttentionGrid

    fast = TextModel.from_pretrained(text_dirs["llama"])
    eager = TextModel.from_pretrained(text_dirs["llama"], attn_implementation="eager")
    assert fast.query_selection and not eager.query_selection
    tokens = len(fast.prepare(TEXT).tokens)
    in_blocks = fast.head_count * 5 * tokens * 4
    asked_rows = []
    run_fast = fast.run_fast
    fast.run_fast = lambda inputs, on_block, block_bytes, rows, scores: (
        asked_rows.append(rows) or run_fast(inputs, on_block, block_bytes, rows, scores)
    )
    pooled_from_scores = []
    max_pooled_keys = ScoreBlock.max_pooled_keys
    monkeypatch.setattr(
        ScoreBlock,
        "max_pooled_keys",
        lambda block, size: pooled_from_scores.append(size) or max_pooled_keys(block, size),
    )
    for options in (
        {"saved_detail": "full"},
        {"saved_detail": "full", "block_bytes": in_blocks},
        {"saved_detail": "full", "block_bytes": in_blocks, "cache_budget": 0},  # from sdpa's log-sum-exp
        {"saved_detail": "pooled", "matrix_budget": 12 * 7 * 7, "cache_budget": 0},  # uneven windows
        {"saved_detail": "maps", "cache_budget": 0},
    ):
        grids = [AttentionGrid(source, TEXT, **options) for source in (fast, eager)]
        for trait in ("maps", "matrices", "specials"):
            assert getattr(grids[0], trait) == getattr(grids[1], trait), (options, trait)
        labels = [[prediction["label"] for prediction in grid.predictions] for grid in grids]
        assert labels[0] == labels[1]
    assert asked_rows == [None, None, None, None, (tokens - 1,)]  # maps alone: the last token's rows only
    assert set(pooled_from_scores) == {tokens, 7}  # the runs with no cache pooled from the scores
    grid = AttentionGrid(fast, TEXT, cache_budget=0, block_bytes=in_blocks)  # exact values re-run
    expected = eager_reference(fast.model, **_arguments(fast.prepare(TEXT))).attentions[1][0]
    torch.testing.assert_close(grid.full_attention(2), expected)
    torch.testing.assert_close(grid.head_region(2, 3, (5, 12), (2, 11)), expected[2, 5:12, 2:11])


def test_an_architecture_of_another_eager_form_falls_back_to_eager_and_says_why_once():
    tokenizer = byte_level_tokenizer()
    config = tf.GPTJConfig(  # its eager attention scores in float32 whatever the model's dtype
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=64
    )
    model = tf.GPTJForCausalLM(config)
    assert model.config._attn_implementation == "sdpa"
    text_model = TextModel(model, tokenizer)
    assert eager_form(text_model.attention_modules[0]) is None and not text_model.query_selection
    inputs = text_model.prepare(TEXT)
    layers: list[torch.Tensor] = []
    warning = (
        r"cannot compute them beside it \(its attention \(GPTJAttention\) computes its weights otherwise"
    )
    with pytest.warns(UserWarning, match=warning):
        text_model.capture(inputs, lambda layer, first, weights: layers.append(weights))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text_model.capture(inputs, lambda layer, first, weights: None)  # said once
    expected = eager_reference(model, **_arguments(inputs)).attentions
    torch.testing.assert_close(layers[1], expected[1][0])
    with pytest.raises(ValueError, match="does not take the fast path"):
        text_model.capture(inputs, lambda layer, first, weights: None, rows=(0,))


def test_a_model_loaded_eager_keeps_eager_attention(tiny_model_dirs):
    vision = VisionModel.from_pretrained(tiny_model_dirs["vit"])
    assert not vision.query_selection
    calls = []
    vision.capture(torch.zeros(1, 3, 32, 32), lambda layer, first, weights: calls.append(first))
    assert calls == [0, 0, 0] and vision.model.config._attn_implementation == "eager"


def test_minilm_real_weights_on_sdpa():
    from attnwidget.pretrained import minilm_directory

    directory = minilm_directory()
    text_model = TextModel(
        tf.AutoModel.from_pretrained(directory), tf.AutoTokenizer.from_pretrained(directory)
    )
    inputs = text_model.prepare(TEXT)
    layers, outputs = fast_capture(text_model, padded(inputs), block_bytes=12 * 4 * len(inputs.tokens) * 4)
    expected = eager_reference(text_model.model, **_arguments(padded(inputs)))
    for layer, weights in enumerate(expected.attentions):
        torch.testing.assert_close(layers[layer], weights)
    with torch.no_grad():
        sdpa = text_model.model(**_arguments(padded(inputs)))
    assert torch.equal(outputs.last_hidden_state, sdpa.last_hidden_state)


def test_dinov2_on_sdpa():
    torch.manual_seed(0)
    model = tf.Dinov2Model(tf.Dinov2Config(image_size=28, patch_size=7, **SMALL))
    processor = tf.BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28})
    vision = VisionModel(model, processor)
    pixel_values, _ = vision.prepare(picture())
    layers, outputs = fast_capture(vision, pixel_values)
    expected = eager_reference(model, pixel_values=pixel_values)
    for layer, weights in enumerate(expected.attentions):
        torch.testing.assert_close(layers[layer], weights)
    with torch.no_grad():
        assert torch.equal(outputs.last_hidden_state, model(pixel_values=pixel_values).last_hidden_state)


def test_every_form_the_fast_path_takes_is_verified_here():
    verified = {"gpt2", "llama", "bert", "gemma3", "gpt_neox"}  # STACKS, MiniLM, RECOGNISED_FAMILIES
    verified |= {"vit", "clip", "siglip"}  # ARCHITECTURES (DeiT, BEiT: ViT's; DINOv2: BERT's)
    verified |= {"qwen2_vl"}  # the language model of test_vlm.py's Qwen2-VL
    assert verified == set(PLAIN_SOFTMAX_REFERENCES)
    assert set(OWN_EAGER_REFERENCES) == {"t5"}  # STACKS


def test_exact_questions_are_answered_from_kept_queries_and_keys_without_a_rerun(text_dirs):  # noqa: F811
    from attnwidget import AttentionGrid

    text_model = TextModel.from_pretrained(text_dirs["llama"])
    text = " ".join([TEXT] * 3)
    inputs = text_model.prepare(text)
    tokens = len(inputs.tokens)
    whole_cache = text_model.layer_count * text_model.head_count * tokens * tokens * 4
    expected = eager_reference(text_model.model, **_arguments(inputs)).attentions
    forwards = []
    text_model.model.register_forward_pre_hook(lambda *args: forwards.append(1))
    grid = AttentionGrid(text_model, text, cache_budget=whole_cache // 2, block_bytes=4 * 5 * tokens * 4)
    session = grid._session
    assert session.cache is None and session.kept is not None and len(forwards) == 1
    torch.testing.assert_close(grid.full_attention(3), expected[2][0])
    torch.testing.assert_close(grid.head_region(2, 3, (5, 12), (2, 11)), expected[1][0, 2, 5:12, 2:11])
    head = grid._head_reductions(1, 4, tokens)
    torch.testing.assert_close(head.matrices()[0], expected[0][0, 3])
    assert len(forwards) == 1  # no question ran the model again

    small = AttentionGrid(text_model, text, cache_budget=1)  # nothing fits: questions re-run the model
    assert small._session.cache is None and small._session.kept is None
    torch.testing.assert_close(small.full_attention(3), expected[2][0])
    assert len(forwards) == 3


def test_kept_queries_and_keys_hold_nothing_once_the_first_layer_says_the_run_will_not_fit():
    def layer_inputs() -> LayerInputs:
        query, key = torch.zeros(1, 2, 8, 4), torch.zeros(1, 2, 8, 4)  # 256 bytes each
        return LayerInputs(torch.nn.Identity(), query, key, (1, 2, 8), None, (), {})

    fits = KeptQueriesKeys(budget=4 * 512, layer_count=4)
    for layer in range(4):
        fits.add(layer, layer_inputs())
    assert fits.complete() and len(fits.layers) == 4

    short = KeptQueriesKeys(budget=3 * 512, layer_count=4)  # room for three of the four layers
    short.add(0, layer_inputs())
    assert short.overflowed and not short.layers  # the first layer is not held for nothing
    short.add(1, layer_inputs())
    assert not short.layers and not short.complete()
