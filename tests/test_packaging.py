"""A built wheel carries the front-end bundle and the colormap tables; nothing else is needed at runtime."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_wheel_carries_the_bundle(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("attnwidget-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "attnwidget/static/widget.js" in names
    assert "attnwidget/colormaps.json" in names
    bundle = zipfile.ZipFile(wheel).read("attnwidget/static/widget.js").decode()
    assert "export" in bundle and "http://" not in bundle.replace("http://www.w3.org", "")
    assert "https://" not in bundle
