"""Which architectures of the installed transformers take attnwidget's fast path, by the form of their
eager attention (`attnwidget.eager_forms`). Imports every modeling module that has an
`eager_attention_forward` (about 10 s).

    .venv/bin/python scripts/fast_path_architectures.py
"""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from collections import defaultdict

import transformers
import transformers.models

from attnwidget.eager_forms import form_of_function


def forms() -> dict[str, list[str]]:
    """Form (or why none) -> the families of transformers.models with an eager attention of it."""
    found: dict[str, list[str]] = defaultdict(list)
    for family in sorted(info.name for info in pkgutil.iter_modules(transformers.models.__path__)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
        except Exception:  # no such module, or one needing a package not installed
            continue
        function = getattr(module, "eager_attention_forward", None)
        if function is not None:
            found[form_of_function(function) or "another form: eager attention"].append(family)
    return found


def main() -> None:
    found = forms()
    print(f"transformers {transformers.__version__}")
    print("| form | architectures | families |")
    print("| ---- | ------------- | -------- |")
    for form, families in sorted(found.items()):
        print(f"| {form} | {len(families)} | {', '.join(families)} |")


if __name__ == "__main__":
    main()
