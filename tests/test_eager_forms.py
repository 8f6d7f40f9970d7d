"""Eager attention recognised by its code (`attnwidget.eager_forms`): copies of a verified function are
its form, whatever module holds them; a changed constant, a helper of its own or another formula
(float32 scores, sinks, a softmax in the model's dtype) is not; the plain form is plain only without
a soft-cap, extra arguments or training."""

from __future__ import annotations

import importlib
import inspect
import textwrap
import types

import pytest
import transformers as tf

from attnwidget.eager_forms import eager_form, same_code, takes_softmax_rows


def modeling(family: str) -> types.ModuleType:
    return importlib.import_module(f"transformers.models.{family}.modeling_{family}")


#: The imports of a modeling module, never run: the compiler reads a name bound by a module's import as
#: a module (its calls then compile to other instructions).
IMPORTED = "if False:\n    import torch\n    from torch import nn\n"


def copied(function: types.FunctionType, replace: tuple[str, str] = ("", ""), **globals_changed):
    """`function` compiled again from its source (with `replace` applied) in a module of its own that
    holds its module's globals, but for `globals_changed`."""
    source = IMPORTED + textwrap.dedent(inspect.getsource(function)).replace(*replace)
    namespace = {**function.__globals__, "__name__": "elsewhere.modeling_elsewhere", **globals_changed}
    exec(compile(source, "<copy>", "exec", dont_inherit=True), namespace)  # not this file's futures
    return namespace[function.__name__]


@pytest.mark.parametrize(
    ("family", "form"),
    [
        ("mistral", "plain softmax"),  # Llama's copy
        ("qwen3", "plain softmax"),
        ("opt", "plain softmax"),  # SigLIP's
        ("dinov2", "plain softmax"),  # BERT's
        ("swin", "plain softmax"),  # ViT's
        ("gemma2", "plain softmax"),  # Gemma 3's (its soft-cap is an argument)
        ("mt5", "own eager"),  # T5's
        ("gptj", None),  # scores in float32 whatever the model's dtype
        ("gpt_oss", None),  # attention sinks
        ("llama4", None),  # its softmax in the model's dtype
    ],
)
def test_families_are_recognised_by_the_code_of_their_eager_attention(family, form):
    class Attention(types.SimpleNamespace):
        pass

    Attention.__module__ = modeling(family).__name__
    assert eager_form(Attention(training=False)) == form


def test_a_copy_is_its_original_and_a_change_is_not():
    llama = modeling("llama").eager_attention_forward
    assert same_code(copied(llama), llama)
    assert not same_code(copied(llama, ("transpose(2, 3)", "transpose(-1, -2)")), llama)  # a constant
    assert not same_code(copied(llama, ("dim=-1, dtype", "dim=-2, dtype")), llama)
    assert not same_code(copied(llama, ("scaling: float,", "scaling: float = 1.0,")), llama)  # a default
    assert not same_code(
        copied(llama, ("attn_weights = nn.functional.softmax", "attn_weights = 2 * nn.functional.softmax")),
        llama,
    )


def test_the_helpers_it_calls_must_be_the_same_too():
    llama = modeling("llama")
    function = llama.eager_attention_forward
    same_helper = copied(llama.repeat_kv)
    assert same_code(copied(function, repeat_kv=same_helper), function)  # another module's copy
    other_helper = copied(llama.repeat_kv, ("n_rep == 1", "n_rep == 2"))
    assert not same_code(copied(function, repeat_kv=other_helper), function)
    assert not same_code(copied(function, torch=types.SimpleNamespace(**vars(llama.torch))), function)


def test_the_plain_form_is_plain_without_a_soft_cap_extra_arguments_or_training():
    config = tf.Gemma2Config(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        head_dim=8,
        num_key_value_heads=2,
    )
    module = tf.Gemma2ForCausalLM(config).eval().model.layers[0].self_attn
    assert takes_softmax_rows(module, (), {"scaling": 0.3, "softcap": None, "sliding_window": 4})
    assert not takes_softmax_rows(module, (), {"softcap": 50.0})
    assert not takes_softmax_rows(module, (0.1,))
    assert not takes_softmax_rows(module.train(), ())
