"""A built wheel carries the front-end bundle, data tables and the default model: all it needs at runtime."""

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
    assert "attnwidget/imagenet_classes.txt" in names
    for name in (
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "checkpoints/step-1000/model.safetensors",
    ):
        assert f"attnwidget/weights/vit-8x8-shapes/{name}" in names, name
    bundle = zipfile.ZipFile(wheel).read("attnwidget/static/widget.js").decode()
    assert "export" in bundle and "http://" not in bundle.replace("http://www.w3.org", "")
    assert "https://" not in bundle
