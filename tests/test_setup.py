"""The set-up: the front-end bundle is rebuilt whenever it is missing or stale, and its absence is named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BUNDLES = ("widget.js", "strip.js", "embed-amd.js", "require.js")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the repository's front-end sources and build script, sharing the installed npm packages."""
    if not (ROOT / "js" / "node_modules" / ".package-lock.json").is_file():
        pytest.skip("the npm packages of js/ are not installed (bash scripts/build_frontend.sh --dev)")
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "build_frontend.sh", tmp_path / "scripts")
    shutil.copytree(ROOT / "js", tmp_path / "js", ignore=shutil.ignore_patterns("node_modules"))
    (tmp_path / "js" / "node_modules").symlink_to(ROOT / "js" / "node_modules")
    (tmp_path / "attnwidget").mkdir()
    shutil.copy2(ROOT / "attnwidget" / "colormaps.json", tmp_path / "attnwidget")  # the bundle imports it
    return tmp_path


def build(checkout: Path, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path} if path is not None else None
    return subprocess.run(
        [shutil.which("bash"), str(checkout / "scripts" / "build_frontend.sh")],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip


def inputs(checkout: Path) -> list[Path]:
    """What the bundle is built from: js/ outside node_modules, and the colour tables."""
    js = checkout / "js"
    files = [p for p in js.rglob("*") if p.is_file() and "node_modules" not in p.relative_to(js).parts]
    return [*files, checkout / "attnwidget" / "colormaps.json"]


def assert_fresh(checkout: Path) -> None:
    newest = max(p.stat().st_mtime_ns for p in inputs(checkout))
    for name in BUNDLES:
        bundle = checkout / "attnwidget" / "static" / name
        assert bundle.is_file(), f"{name} was not built"
        assert bundle.stat().st_mtime_ns > newest, f"{name} is older than a file of js/"


def test_a_deleted_bundle_is_rebuilt_even_when_its_folder_is_newer(checkout: Path):
    first = build(checkout)
    assert first.returncode == 0, first.stderr
    assert_fresh(checkout)
    # What a test run used to do: delete the bundle, which leaves the folder newer than js/src.
    static = checkout / "attnwidget" / "static"
    (static / "widget.js").unlink()
    static.touch()
    again = build(checkout)
    assert again.returncode == 0, again.stderr
    assert_fresh(checkout)


@pytest.mark.parametrize("edited", ["js/src/view.ts", "attnwidget/colormaps.json"])
def test_a_bundle_older_than_an_input_is_rebuilt_and_a_fresh_one_is_kept(checkout: Path, edited: str):
    assert build(checkout).returncode == 0
    widget = checkout / "attnwidget" / "static" / "widget.js"
    changed = checkout / edited
    changed.write_text(changed.read_text() + "\n")
    os.utime(widget, ns=(widget.stat().st_atime_ns, changed.stat().st_mtime_ns - 10**9))
    stale = build(checkout)
    assert stale.returncode == 0, stale.stderr
    assert "built attnwidget/static/" in stale.stdout
    assert_fresh(checkout)
    built_at = widget.stat().st_mtime_ns
    fresh = build(checkout)
    assert fresh.returncode == 0 and "built" not in fresh.stdout
    assert widget.stat().st_mtime_ns == built_at, "a fresh bundle was rebuilt for nothing"


def test_a_missing_node_is_named_with_how_to_install_it(checkout: Path, tmp_path: Path):
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("find", "dirname"):  # what the script needs before it looks for Node.js
        (tools / tool).symlink_to(shutil.which(tool))
    result = build(checkout, path=str(tools))
    assert result.returncode == 1
    assert "needs Node.js 18 or newer and npm" in result.stderr
    assert "apt-get install nodejs npm" in result.stderr
    assert not (checkout / "attnwidget" / "static" / "widget.js").exists()


def copy_package(target: Path, *, with_bundle: bool) -> Path:
    """attnwidget's Python package under `target` (without its weights), with or without its bundle."""
    ignored = ["weights", "__pycache__"] + ([] if with_bundle else ["static"])
    shutil.copytree(ROOT / "attnwidget", target / "attnwidget", ignore=shutil.ignore_patterns(*ignored))
    return target


def import_attnwidget(path: Path) -> subprocess.CompletedProcess:
    code = "import attnwidget, pathlib; print(pathlib.Path(attnwidget.__file__).parent)"
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=path, capture_output=True, text=True, env=env, check=False
    )


def test_import_without_a_bundle_names_the_command_that_builds_it(tmp_path: Path):
    package = copy_package(tmp_path, with_bundle=False)
    result = import_attnwidget(package)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("attnwidget.bundle.FrontendBundleMissingError:"), result.stderr
    assert f"{package / 'attnwidget' / 'static' / 'widget.js'} is missing" in last
    assert "bash scripts/setup_env.sh" in last


def test_import_with_a_stale_bundle_warns_with_the_command(tmp_path: Path):
    if not (ROOT / "attnwidget" / "static" / "widget.js").is_file():
        pytest.skip("no bundle built")
    package = copy_package(tmp_path, with_bundle=True)
    js = package / "js"
    (js / "src").mkdir(parents=True)
    (js / "package.json").write_text("{}")
    (js / "src" / "index.ts").write_text("export {};\n")  # newer than the copied bundle
    result = import_attnwidget(package)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(package / "attnwidget")
    assert "StaleFrontendBundleWarning" in result.stderr and "older than" in result.stderr
    assert "bash scripts/setup_env.sh" in result.stderr
    os.utime(js / "src" / "index.ts", ns=(0, 0))
    os.utime(js / "package.json", ns=(0, 0))
    quiet = import_attnwidget(package)
    assert quiet.returncode == 0 and "StaleFrontendBundleWarning" not in quiet.stderr
