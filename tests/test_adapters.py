"""TransformerLens and nnsight: what the grid holds equals the library's own attention patterns, from a
random-init TransformerLens model built offline and an nnsight-wrapped tiny GPT-2 from a local folder;
transformers' `output_attentions` (what BertViz takes) goes in the same way."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import transformers as tf
from tiny_text_models import byte_level_tokenizer

from attnwidget import AttentionGrid
from attnwidget.adapters import transformer_lens as lens

pytest.importorskip("transformer_lens")
TEXT = "The cat sat on the mat."


def full(grid: AttentionGrid) -> torch.Tensor:
    return torch.stack([grid.full_attention(layer) for layer in range(1, grid.layer_count + 1)])


@pytest.fixture(scope="module")
def bridge():
    from transformer_lens.model_bridge import TransformerBridge

    config = {
        "n_layers": 3,
        "d_model": 32,
        "n_heads": 4,
        "d_head": 8,
        "d_mlp": 64,
        "n_ctx": 32,
        "d_vocab": 50,
        "act_fn": "gelu",
        "seed": 0,
    }
    return TransformerBridge.boot_native(config)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    config = tf.GPT2Config(vocab_size=400, n_embd=32, n_layer=3, n_head=4, n_positions=64)
    tf.GPT2LMHeadModel(config).save_pretrained(folder)
    byte_level_tokenizer().save_pretrained(folder)
    return folder


def test_an_activation_cache_goes_in_as_it_is(bridge):
    tokens = torch.tensor([[1, 5, 7, 9, 3, 2]])
    _, cache = bridge.run_with_cache(tokens)
    grid = AttentionGrid.from_attention(cache, tokens=[str(t) for t in tokens[0].tolist()])
    patterns = torch.stack([cache["pattern", layer][0] for layer in range(3)])
    torch.testing.assert_close(full(grid), patterns)
    assert (grid.layer_count, grid.head_count, grid.causal) == (3, 4, True)


def test_hooks_on_hook_pattern_stream_every_layer_while_run_with_hooks_runs(bridge):
    tokens = torch.tensor([[4, 8, 15, 16, 23]])
    _, cache = bridge.run_with_cache(tokens)
    seen = []
    original = lens.pattern_hooks

    def watched(live):
        def hook(pattern, hook, hand_over):
            hand_over(pattern, hook)
            seen.append(live.grid.status)

        return [(name, partial(hook, hand_over=hand_over)) for name, hand_over in original(live)]

    lens.pattern_hooks = watched
    try:
        grid = lens.stream_run(bridge, tokens, tokens=list("abcde"), display=False)
    finally:
        lens.pattern_hooks = original
    assert seen == ["running", "running", "done"]  # drawn layer by layer, inside the forward pass
    torch.testing.assert_close(full(grid), torch.stack([cache["pattern", layer][0] for layer in range(3)]))
    assert grid.token_labels == list("abcde") and grid.causal


def test_a_cache_without_patterns_is_refused(bridge):
    _, cache = bridge.run_with_cache(torch.tensor([[1, 2, 3]]), names_filter=lambda name: "resid" in name)
    with pytest.raises(ValueError, match="holds no attention patterns"):
        AttentionGrid.from_attention(cache)


def test_transformers_output_attentions_as_bertviz_takes_it(gpt2_dir):
    model = tf.GPT2LMHeadModel.from_pretrained(gpt2_dir, attn_implementation="eager")
    tokenizer = byte_level_tokenizer()
    encoded = tokenizer(TEXT, return_tensors="pt")
    attentions = model(**encoded, output_attentions=True).attentions  # a tuple of [1, heads, n, n]
    labels = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    grid = AttentionGrid.from_attention(attentions, labels, causal=True)
    torch.testing.assert_close(full(grid), torch.cat(attentions))


def test_attention_saved_from_an_nnsight_trace_goes_in(gpt2_dir):
    pytest.importorskip("nnsight")
    from nnsight import LanguageModel

    from attnwidget.adapters import nnsight as adapter

    tokenizer = byte_level_tokenizer()
    model = LanguageModel(str(gpt2_dir), tokenizer=tokenizer, attn_implementation="eager", dispatch=True)
    assert adapter.attention_paths(model) == ([f"transformer.h.{layer}.attn" for layer in range(3)], 1)
    saved = adapter.trace_attention(model, TEXT)
    by_hand = []
    with model.trace(TEXT):
        for layer in range(3):
            by_hand.append(model.transformer.h[layer].attn.output[1].save())
    grid = AttentionGrid.from_attention(saved, adapter.token_labels(model, TEXT), causal=True)
    torch.testing.assert_close(full(grid), torch.cat(by_hand))
    reference = tf.GPT2LMHeadModel.from_pretrained(gpt2_dir, attn_implementation="eager")
    expected = reference(**tokenizer(TEXT, return_tensors="pt"), output_attentions=True).attentions
    torch.testing.assert_close(full(grid), torch.cat(expected))
    assert grid.token_labels[:2] == ["The", " cat"]
