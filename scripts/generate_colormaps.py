"""Write attnwidget/colormaps.json: 256-entry RGB lookup tables shared by Python and the front-end.

viridis, magma and inferno are the perceptually uniform maps of van der Walt and Smith (CC0), taken
from matplotlib; gray is the linear ramp; rdbu_r is matplotlib's RdBu_r (ColorBrewer's RdBu, blue for
negative values, white at zero, red for positive: the diverging map of signed values). Run once when a
colormap is added:

    python scripts/generate_colormaps.py
"""

import json
from pathlib import Path

import numpy as np
from matplotlib import colormaps

NAMES = ("viridis", "magma", "inferno", "gray", "RdBu_r")
OUT = Path(__file__).resolve().parent.parent / "attnwidget" / "colormaps.json"


def lookup_table(name: str) -> str:
    rgb = np.round(colormaps[name].resampled(256)(np.arange(256))[:, :3] * 255).astype(int)
    return "".join(f"{r:02x}{g:02x}{b:02x}" for r, g, b in rgb)


if __name__ == "__main__":
    tables = {name.lower(): lookup_table(name) for name in NAMES}
    OUT.write_text(json.dumps(tables, indent=1) + "\n")
    print(f"wrote {OUT}")
