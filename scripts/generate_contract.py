"""Write js/src/contract.ts from attnwidget/contract.py and the synced traits of the widgets.

Every public constant of `attnwidget.contract` becomes a `const` (a tuple of strings also a union
type), every message `TypedDict` an interface, and the synced traits of `AttentionGrid` (declared
on `attnwidget.grid_traits.GridTraits`) and `StripWidget` the interfaces `GridTraits` and
`StripTraits` with their defaults. Docstrings become doc comments. `tests/test_contract.py` fails
when the file is not what this script writes; run after changing the contract or a synced trait:

    .venv/bin/python scripts/generate_contract.py
"""

from __future__ import annotations

import ast
import inspect
import json
import typing
from pathlib import Path
from typing import Any

import traitlets

from attnwidget import contract
from attnwidget.grid_traits import GridTraits
from attnwidget.strip import StripWidget

OUT = Path(__file__).resolve().parent.parent / "js" / "src" / "contract.ts"

#: Tuples of names whose values type a trait, and the name of that type in TypeScript.
ENUM_TYPES = {
    "VIEWS": "View",
    "COLORMAPS": "ColormapName",
    "NORMALIZE_SCOPES": "NormalizeScope",
    "INTERPOLATIONS": "Interpolation",
    "POOLINGS": "Pooling",
    "SAVED_DETAILS": "SavedDetail",
    "ROLLOUT_FUSIONS": "RolloutFusion",
    "STATUSES": "Status",
    "METHODS": "Method",
    "VALUE_KINDS": "ValueKind",
}


def attribute_docs(owner: Any) -> dict[str, str]:
    """The docstring under each assignment of a module's or a class's body."""
    tree = ast.parse(inspect.getsource(owner))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else tree.body
    docs, previous = {}, None
    for node in body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and previous:
            docs[previous] = inspect.cleandoc(node.value.value)
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        previous = target.id if isinstance(target, ast.Name) else None
    return docs


def doc_comment(text: str | None, indent: str = "") -> list[str]:
    if not text:
        return []
    lines = inspect.cleandoc(text).splitlines()
    if len(lines) == 1:
        return [f"{indent}/** {lines[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {line}".rstrip() for line in lines), f"{indent} */"]


def literal(value: Any) -> str:
    """A JSON value as TypeScript: tuples and lists become readonly arrays."""
    return json.dumps(value, ensure_ascii=False)


def constants() -> list[str]:
    docs = attribute_docs(contract)
    lines: list[str] = []
    for name, value in vars(contract).items():
        is_message_group = isinstance(value, tuple) and value and isinstance(value[0], type)
        if not name.isupper() or name.startswith("_") or is_message_group:
            continue
        lines += doc_comment(docs.get(name))
        if isinstance(value, tuple):
            lines.append(f"export const {name} = {literal(value)} as const;")
            if name in ENUM_TYPES:
                lines.append(f"export type {ENUM_TYPES[name]} = (typeof {name})[number];")
        elif isinstance(value, dict):
            lines.append(f"export const {name} = {literal(value)} as const;")
        else:
            lines.append(f"export const {name} = {literal(value)};")
        lines.append("")
    return lines


def message_type(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(literal(arg) for arg in args)
    if origin is list:
        return f"readonly {message_type(args[0])}[]"
    if origin is tuple:
        return f"readonly [{', '.join(message_type(arg) for arg in args)}]"
    return {int: "number", float: "number", str: "string", bool: "boolean"}[annotation]


def messages() -> list[str]:
    lines: list[str] = []
    for group, classes in (
        ("KernelMessage", contract.KERNEL_MESSAGES),
        ("FrontendRequest", contract.FRONTEND_REQUESTS),
    ):
        for cls in classes:
            lines += doc_comment(cls.__doc__)
            lines.append(f"export interface {cls.__name__} {{")
            for field, annotation in typing.get_type_hints(cls).items():
                lines.append(f"  readonly {field}: {message_type(annotation)};")
            lines += ["}", ""]
        lines.append(f"export type {group} = {' | '.join(cls.__name__ for cls in classes)};")
        lines.append("")
    return lines


def enum_type(values: tuple[str, ...]) -> str:
    for name, type_name in ENUM_TYPES.items():
        if tuple(getattr(contract, name)) == tuple(values):
            return type_name
    return " | ".join(literal(value) for value in values)


def trait_type(trait: traitlets.TraitType) -> str:
    if isinstance(trait, traitlets.Enum):
        return enum_type(tuple(trait.values))
    if isinstance(trait, traitlets.List):
        item = trait._trait
        return f"{trait_type(item)}[]" if item is not None else "unknown[]"
    if isinstance(trait, traitlets.Bytes):
        return "DataView"
    if isinstance(trait, traitlets.Bool):
        return "boolean"
    if isinstance(trait, traitlets.Int | traitlets.Float):
        return "number"
    if isinstance(trait, traitlets.Unicode):
        return "string"
    if isinstance(trait, traitlets.Dict):
        return "Record<string, unknown>"
    return "unknown"  # a widget reference, deserialised by the widget manager


def synced_traits(widget: type[traitlets.HasTraits]) -> dict[str, traitlets.TraitType]:
    """The widget's own synced traits, by name (not ipywidgets' private ones, nor its layout)."""
    return {
        name: trait
        for name, trait in sorted(widget.class_traits(sync=True).items())
        if not name.startswith("_") and name not in ("layout", "tabbable", "tooltip")
    }


def traits(name: str, widget: type[traitlets.HasTraits], python_name: str) -> list[str]:
    synced = synced_traits(widget)
    docs = attribute_docs(widget)
    lines = [f"/** The synced traits of `{python_name}`, as the front-end receives them. */"]
    lines.append(f"export interface {name} {{")
    for trait_name, trait in synced.items():
        lines += doc_comment(docs.get(trait_name), "  ")
        lines.append(f"  {trait_name}: {trait_type(trait)};")
    lines += ["}", ""]
    prefix = name.replace("Traits", "").upper()
    lines.append(f"/** The names of the synced traits of `{python_name}`. */")
    lines.append(f"export const {prefix}_TRAIT_NAMES = {literal(list(synced))} as const;")
    lines.append("")
    defaults = {
        trait_name: trait.default()
        for trait_name, trait in synced.items()
        if isinstance(trait, traitlets.Container)
        or not isinstance(trait, traitlets.Bytes | traitlets.Instance)
    }
    lines.append(
        f"/** Defaults of the synced traits of `{python_name}` (binary traits and widgets: none). */"
    )
    lines.append(f"export const {prefix}_DEFAULTS = {{")
    lines += [f"  {trait_name}: {literal(value)}," for trait_name, value in defaults.items()]
    lines += ["} as const;", ""]
    return lines


def render() -> str:
    header = [
        "// Generated by scripts/generate_contract.py from attnwidget/contract.py and the widgets' synced",
        "// traits: do not edit. Change the Python side and run the script.",
        "",
    ]
    body = [
        *constants(),
        *messages(),
        *traits("GridTraits", GridTraits, "attnwidget.AttentionGrid"),
        *traits("StripTraits", StripWidget, "attnwidget.strip.StripWidget"),
    ]
    return "\n".join(header + body).rstrip() + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
