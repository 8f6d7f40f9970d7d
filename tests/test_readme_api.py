"""The README's API table names real functions with their real parameters, defaults and order."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import attnwidget

README = Path(__file__).parent.parent / "README.md"
UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def api_calls() -> list[str]:
    """Every `name(arguments)` code span of the first column of the README's API table."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| API | what it does |") :].split("\n\n", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines()[2:]]
    return [span for row in rows for span in re.findall(r"`([\w.]+\(.*?\))`", row)]


def resolve(dotted: str) -> Any:
    """`name`, `module.name` or `Class.method` under attnwidget; a module stands for its namesake function."""
    target: Any = attnwidget
    for part in dotted.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            target = importlib.import_module(f"{target.__name__}.{part}")
        if inspect.ismodule(target) and hasattr(target, part) and callable(getattr(target, part)):
            target = getattr(target, part)
    return target


def split_arguments(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [part for part in [*parts, current.strip()] if part]


def documented_default(text: str) -> Any:
    size = re.fullmatch(r"(\d+) (KiB|MiB|GiB)", text)
    return int(size.group(1)) * UNITS[size.group(2)] if size else ast.literal_eval(text)


@pytest.mark.parametrize("call", api_calls())
def test_the_readme_names_real_parameters(call: str):
    name, arguments = re.fullmatch(r"([\w.]+)\((.*)\)", call).groups()
    target = resolve(name)
    signature = inspect.signature(target)
    parameters = list(signature.parameters.values())
    positions = []
    for argument in split_arguments(arguments):
        if argument in ("*", "..."):
            continue
        if argument.startswith("**"):
            assert any(p.kind is p.VAR_KEYWORD for p in parameters), f"{call}: {target} takes no **keywords"
            continue
        if argument.startswith("("):  # a positional tuple, named by its place
            positions.append(len(positions))
            continue
        key, _, default = argument.partition("=")
        if key not in signature.parameters and "..." in arguments:  # a trait set through **view
            trait = target.class_traits()[key] if isinstance(target, type) else None
            assert trait is not None, f"{call}: {key} is neither a parameter nor a trait"
            assert default == "" or trait.default_value == documented_default(default), call
            continue
        assert key in signature.parameters, f"{call}: {name} has no parameter {key!r} ({signature})"
        parameter = signature.parameters[key]
        positions.append(list(signature.parameters).index(key))
        if default not in ("", "..."):
            assert parameter.default == documented_default(default), (
                f"{call}: {key} defaults to {parameter.default!r}"
            )
    assert positions == sorted(positions), f"{call}: the parameters are not in the order of {signature}"


def test_the_table_covers_the_public_api():
    documented = {re.match(r"[\w]+", call).group(0) for call in api_calls()}
    public = {"explore", "AttentionGrid", "to_html", "VisionModel", "capture_attention", "input_geometry"}
    assert public <= documented
    assert len(api_calls()) >= 20
