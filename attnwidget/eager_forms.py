"""Which eager attention an architecture runs, recognised by its code rather than by its name.

transformers gives every modeling module its own `eager_attention_forward`, most of them copies of a
few originals (Llama's is in well over a hundred). The weights `output_attentions` returns are what
that function computes from the query, key, mask and keyword arguments the layer passes it, so an
architecture whose function is, instruction for instruction, the function of a family verified
against `output_attentions` in the tests (`PLAIN_SOFTMAX_REFERENCES`, `OWN_EAGER_REFERENCES`), with
every global it calls the same object or again the same code, computes the same weights. Anything
else (a changed constant, a helper of its own, soft-capping or attention sinks) is another form.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import types
from collections.abc import Callable
from functools import cache
from typing import Literal

from torch import nn

from .capture import AttentionNotReturnedError, eager_function

#: Families whose eager attention is softmax(query key^T * scaling + attention_mask), with grouped key
#: heads repeated or not, reading no keyword argument but `scaling`, `dropout` and (Gemma 3's) a
#: `softcap` that must be None. Each is verified against `output_attentions` in the tests.
PLAIN_SOFTMAX_REFERENCES = (
    "bert",
    "clip",
    "gemma3",
    "gpt2",
    "gpt_neox",
    "llama",
    "qwen2_vl",
    "siglip",
    "vit",
)
#: Families whose eager attention the fast path calls itself, a block of query rows at a time (T5: its
#: position bias arrives added to the mask).
OWN_EAGER_REFERENCES = ("t5",)
#: Keyword arguments an eager attention of the plain form reads that must be None for it to be plain.
PLAIN_UNLESS_GIVEN = ("softcap",)

EagerForm = Literal["plain softmax", "own eager"]
_REFERENCES: tuple[tuple[EagerForm, tuple[str, ...]], ...] = (
    ("plain softmax", PLAIN_SOFTMAX_REFERENCES),
    ("own eager", OWN_EAGER_REFERENCES),
)


def eager_form(module: nn.Module) -> EagerForm | None:
    """The form of the attention `module`'s eager attention function, or None when it is none the
    fast path reproduces (or the module's architecture has no such function)."""
    try:
        function = eager_function(module)
    except AttentionNotReturnedError:
        return None
    return form_of_function(function)


def takes_softmax_rows(module: nn.Module, args: tuple, kwargs: dict | None = None) -> bool:
    """Whether the attention `module`, called with `args` and `kwargs` beside its query, key, value and
    mask, has weights `softmax_rows` computes exactly: an eager attention of the plain form, given no
    positional extras and no soft-cap, not training (dropout)."""
    given = kwargs or {}
    plain = eager_form(module) == "plain softmax" and not args and not module.training
    return plain and all(given.get(name) is None for name in PLAIN_UNLESS_GIVEN)


def same_code(function: Callable, reference: Callable, depth: int = 2) -> bool:
    """Whether `function` runs the very instructions of `reference`: equal code objects (bytecode,
    constants, names, arguments; nested code alike), equal defaults, and every global name they use
    bound to the same object or, up to `depth` calls deep, to functions of the same code."""
    if function is reference:
        return True
    if not (inspect.isfunction(function) and inspect.isfunction(reference)):
        return False
    if not _same_code_object(function.__code__, reference.__code__):
        return False
    if function.__defaults__ != reference.__defaults__ or function.__kwdefaults__ != reference.__kwdefaults__:
        return False
    for name in function.__code__.co_names:
        mine, theirs = _global(function, name), _global(reference, name)
        if mine is not theirs and not (depth > 0 and same_code(mine, theirs, depth - 1)):
            return False
    return True


@cache
def form_of_function(function: Callable) -> EagerForm | None:
    """The form of the eager attention `function`, or None when it is of none the fast path takes."""
    references = [(form, name) for form, names in _REFERENCES for name in names]
    references.sort(key=lambda reference: reference[1] != _family(function.__module__))  # no import first
    return next((form for form, name in references if same_code(function, _reference(name))), None)


@cache
def _reference(family: str) -> Callable:
    module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    return module.eager_attention_forward


def _family(module_name: str) -> str:
    """transformers.models.<family>.modeling_<family> -> family."""
    return module_name.rpartition(".modeling_")[2]


_UNBOUND = object()


def _global(function: types.FunctionType, name: str) -> object:
    """What `name` means inside `function` as a global, or `_UNBOUND` (an attribute name)."""
    if name in function.__globals__:
        return function.__globals__[name]
    return getattr(builtins, name, _UNBOUND)


def _same_code_object(code: types.CodeType, other: types.CodeType) -> bool:
    fields = (
        "co_code",
        "co_names",
        "co_varnames",
        "co_freevars",
        "co_cellvars",
        "co_argcount",
        "co_posonlyargcount",
        "co_kwonlyargcount",
        "co_flags",
        "co_exceptiontable",
    )
    if any(getattr(code, field, None) != getattr(other, field, None) for field in fields):
        return False
    if len(code.co_consts) != len(other.co_consts):
        return False
    for constant, theirs in zip(code.co_consts, other.co_consts, strict=True):
        if isinstance(constant, types.CodeType) and isinstance(theirs, types.CodeType):
            if not _same_code_object(constant, theirs):
                return False
        elif type(constant) is not type(theirs) or constant != theirs:
            return False
    return True
