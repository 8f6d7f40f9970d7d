"""Write the drawing fixtures that the Python and TypeScript tests both read, so the two sides draw alike.

`js/tests/fixtures/colour-index.json`: normalised values and the colour-table entry each one takes
(`attnwidget.render.colour_index`); vitest checks the front-end's `lutIndex` against it, and
`tests/test_render.py` fails when the file is not what this script writes. Run after changing the rule:

    .venv/bin/python scripts/generate_fixtures.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from attnwidget.render import colour_index

FIXTURES = Path(__file__).resolve().parent.parent / "js" / "tests" / "fixtures"


def colour_index_fixture() -> str:
    """Bin edges and their neighbours, a sweep of [0, 1], and values outside it."""
    edges = np.arange(257) / 256
    near_edges = np.concatenate([np.nextafter(edges, -1), edges, np.nextafter(edges, 2)])
    sweep = np.linspace(0, 1, 1001)
    outside = np.array([-1.0, -1e-9, 1 + 1e-9, 2.0, 1e30, -1e30])
    values = np.unique(np.concatenate([near_edges, sweep, outside]))
    return json.dumps({"values": values.tolist(), "index": colour_index(values).tolist()}) + "\n"


def write() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "colour-index.json").write_text(colour_index_fixture())


if __name__ == "__main__":
    write()
    print(f"wrote {FIXTURES / 'colour-index.json'}")
