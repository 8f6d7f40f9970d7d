"""Real Jupyter servers and a thin driver for their notebook pages, for the browser tests.

`JupyterServer` starts `jupyter lab` or `jupyter notebook` (the same interpreter as the tests) in a
temporary root with its own config, data, settings and runtime folders, so nothing on the machine
leaks in. `Notebook` drives one open notebook page: it types code into the last cell, runs it with
Shift+Enter and waits for the execution count.
"""

from __future__ import annotations

import ast
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
from playwright.sync_api import Browser, Locator, Page, Route, expect

REPO = Path(__file__).resolve().parents[2]
#: Debian's Chromium, driven by Playwright (never a downloaded browser build).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
KERNEL_NAME = "attnwidget-e2e"
#: First kernel start plus the first `import torch, transformers` take 10-20 s on this machine.
KERNEL_TIMEOUT_MS = 120_000
CELL_TIMEOUT_MS = 90_000
_EXECUTED = re.compile(r"\[\d+\]")
VIEWPORT = {"width": 1600, "height": 1200}
#: Makes `image` (256 x 192: gradients, a checkerboard and a red square) where `np` is numpy.
PICTURE = """\
yy, xx = np.mgrid[0:192, 0:256]
image = np.stack([xx, yy * 255 // 191, ((xx // 32 + yy // 32) % 2) * 255], -1).astype(np.uint8)
image[60:130, 90:170] = (255, 40, 40)"""
#: Run in the kernel of every live notebook before the tests: the import pays for torch once.
SETUP = f"""\
import attnwidget
import numpy as np
{PICTURE}
print("ready", attnwidget.__file__)"""


def slow_run(grid: str, delay_s: float) -> str:
    """Code that runs `grid` on `image` with every attention layer sleeping `delay_s` (needs `time`),
    so a run is slow enough to watch its rows stream in; the hooks are removed afterwards."""
    return f"""\
def _slow_layer(module, args, output):
    time.sleep({delay_s})
_hooks = [m.register_forward_hook(_slow_layer) for m in {grid}.vision_model.attention_modules]
try:
    {grid}.run(image)
finally:
    for _hook in _hooks:
        _hook.remove()"""


#: JupyterLab settings for every server: keep widget state in saved notebooks, no news toasts.
OVERRIDES = {
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    """A server process the tests started, with its log; `stop()` ends it."""

    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def launch(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: Path,
    ready: Callable[[], object],
    name: str,
    timeout_s: float = 60,
) -> Service:
    """Start `command` (output to `log`) and wait until `ready()` returns without an OSError."""
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    service = Service(process, log)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()}")
        try:
            ready()
            return service
        except OSError:
            if time.monotonic() > deadline:
                service.stop()
                raise TimeoutError(
                    f"{name} did not answer in {timeout_s:.0f} s:\n{log.read_text()}"
                ) from None
            time.sleep(0.25)


def isolated_environment(home: Path, overrides: dict[str, dict] | None = None) -> dict[str, str]:
    """Environment variables that keep a Jupyter-family server's config, data and settings under `home`.

    The data folder holds the e2e kernel (this interpreter), and the app settings keep widget state
    in saved notebooks (`OVERRIDES`, plus `overrides` by plugin id); attnwidget is importable from
    the repository.
    """
    kernel_dir = home / "data" / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "attnwidget e2e",
                "language": "python",
            }
        )
    )
    app_settings = home / "app-settings"
    app_settings.mkdir()
    (app_settings / "overrides.json").write_text(json.dumps({**OVERRIDES, **(overrides or {})}))
    return {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


def jupyter_api(base: str, token: str, path: str, method: str = "GET") -> object:
    """Call the Jupyter server REST API at `base` (`path` below `/api/`); the decoded JSON reply."""
    request = urllib.request.Request(
        f"{base}/api/{path}", method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


@dataclass
class JupyterServer:
    flavor: str  # "lab" or "notebook"
    root: Path
    port: int
    token: str
    service: Service

    @property
    def log(self) -> Path:
        return self.service.log

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        """The page of notebook `name`; in JupyterLab in a new workspace, so no other tab comes back."""
        if self.flavor == "lab":
            return f"{self.base}/lab/workspaces/e2e-{secrets.token_hex(4)}/tree/{name}?token={self.token}"
        return f"{self.base}/notebooks/{name}?token={self.token}"

    def api(self, path: str, method: str = "GET") -> object:
        return jupyter_api(self.base, self.token, path, method)

    def shut_down_sessions(self, path: str) -> None:
        """Delete the sessions of `path`, which shuts their kernels down."""
        for session in self.api("sessions"):
            if session["path"] == path:
                self.api(f"sessions/{session['id']}", "DELETE")

    def stop(self) -> None:
        self.service.stop()


def start_server(flavor: str, workdir: Path, overrides: dict[str, dict] | None = None) -> JupyterServer:
    """Start `jupyter lab|notebook` with everything under `workdir` and wait until it answers.

    `overrides` adds settings defaults by plugin id (see `isolated_environment`).
    """
    root, home = workdir / "root", workdir / "home"
    root.mkdir(parents=True)
    env = isolated_environment(home, overrides)
    app_settings = home / "app-settings"
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyter", flavor,
        "--no-browser", "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
        # Both apps run in either server (Notebook 7 serves its settings through JupyterLab's handler).
        *(f"--{app}.app_settings_dir={app_settings}" for app in ("LabApp", "JupyterNotebookApp")),
        *(f"--{app}.expose_app_in_browser=True" for app in ("LabApp", "JupyterNotebookApp")),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    service = launch(
        command,
        cwd=root,
        env=env,
        log=workdir / "server.log",
        ready=lambda: jupyter_api(base, token, "status"),
        name=f"jupyter {flavor}",
    )
    return JupyterServer(flavor, root, port, token, service)


def write_notebook(path: Path, cells: Sequence[str] = ("",)) -> Path:
    """A notebook on disk for the e2e kernel, with code cells of `cells` (one empty cell by default)."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "attnwidget e2e",
        "language": "python",
    }
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(notebook, path)
    return path


def open_notebook(browser: Browser, server: JupyterServer, name: str) -> Notebook:
    """Open `name` (already in the server's root) in a new page and wait for its kernel."""
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(30_000)
    page.goto(server.notebook_url(name))
    notebook = Notebook(page, name)
    notebook.wait_for_kernel_idle()
    return notebook


class Notebook:
    """One notebook open in a page: run cells in it as a user would."""

    def __init__(self, page: Page, name: str):
        self.page = page
        page.wait_for_function(
            "(name) => { const panel = window.jupyterapp?.shell?.currentWidget;"
            " if (panel?.context?.path !== name) return false;"
            " panel.node.dataset.e2eNotebook = name; return true; }",
            arg=name,
            timeout=KERNEL_TIMEOUT_MS,
        )
        self.panel = page.locator(f".jp-NotebookPanel[data-e2e-notebook='{name}']")

    def wait_for_kernel_idle(self, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
        """Wait until the notebook's kernel is started, connected and idle."""
        self.page.wait_for_function(_KERNEL_IDLE_JS, timeout=timeout_ms)

    def kernel_id(self) -> str | None:
        return self.page.evaluate(
            "() => window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.id ?? null"
        )

    @property
    def cells(self) -> Locator:
        return self.panel.locator(".jp-Notebook .jp-Cell")

    def run_cell(self, code: str, *, wait: bool = True, timeout_ms: int = CELL_TIMEOUT_MS) -> Locator:
        """Type `code` into the last cell, press Shift+Enter; return that cell (after it ran if `wait`)."""
        cell = self.cells.nth(self.cells.count() - 1)  # pinned: Shift+Enter appends a new last cell
        editor = cell.locator(".cm-content")
        editor.click()
        # insert_text puts the code in as one edit, so CodeMirror adds no brackets or indentation.
        self.page.keyboard.insert_text(code)
        # The cell's model, not only its editor, holds the code (no reload swallowed the edit).
        self.page.wait_for_function(_ACTIVE_CELL_HOLDS_JS, arg=code, timeout=10_000)
        self.page.keyboard.press("Shift+Enter")
        # Lab shows [*] as soon as the execution is requested: [ ] means the key press was lost.
        expect(cell.locator(".jp-InputArea-prompt")).not_to_have_text("[ ]:", timeout=15_000)
        if wait:
            self.wait_for_cell(cell, timeout_ms)
        return cell

    def wait_for_cell(self, cell: Locator, timeout_ms: int = CELL_TIMEOUT_MS) -> None:
        """Wait until `cell` shows an execution count, `[n]:`, instead of `[*]:`."""
        expect(cell.locator(".jp-InputArea-prompt")).to_have_text(_EXECUTED, timeout=timeout_ms)

    def output_text(self, cell: Locator) -> str:
        """The text of the cell's outputs; fails the test on a Python traceback."""
        text = "\n".join(cell.locator(".jp-OutputArea-output").all_inner_texts())
        assert "Traceback" not in text, f"the cell failed:\n{text}"
        return text

    def evaluate(self, expression: str) -> object:
        """Evaluate a Python literal-valued `expression` in the kernel (in a new cell); return its value."""
        cell = self.run_cell(f"print(repr({expression}))")
        return ast.literal_eval(self.output_text(cell).strip())

    def shut_down_kernel(self) -> None:
        """Kernel menu > Shut Down Kernel, as a user would; wait until the notebook has no kernel."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
        self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Shut Down Kernel")).click()
        dialog = self.page.locator(".jp-Dialog")
        self.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel"
            " || !!document.querySelector('.jp-Dialog')"
        )
        if dialog.count():  # a confirmation, where the app asks for one
            dialog.locator(".jp-mod-accept").click()
        self.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel"
        )

    def save(self) -> None:
        """Ctrl+S, then wait until the document is no longer dirty (it is on disk)."""
        self.page.keyboard.press("Escape")  # command mode
        self.page.keyboard.press("Control+s")
        self.page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " return !!w && !!w.context && !w.context.model.dirty; }",
            timeout=30_000,
        )


_KERNEL_IDLE_JS = """() => {
  const panel = window.jupyterapp?.shell?.currentWidget;
  const kernel = panel?.sessionContext?.session?.kernel;
  return !!panel?.context?.isReady && !!kernel
    && kernel.status === "idle" && kernel.connectionStatus === "connected";
}"""
_ACTIVE_CELL_HOLDS_JS = """(code) => {
  const cell = window.jupyterapp.shell.currentWidget.content.activeCell;
  return !!cell && cell.model.sharedModel.getSource() === code;
}"""


def offline_page(browser: Browser, answer: Callable[[str], bytes | None]) -> tuple[Page, list[str]]:
    """A page whose requests outside the file system get `answer(url)`, or are refused when it is None.

    Returns the page and the list of refused URLs.
    """
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    refused: list[str] = []

    def route(route: Route) -> None:
        url = route.request.url
        if url.startswith(("file:", "blob:", "data:")):
            route.continue_()
            return
        body = answer(url)
        if body is None:
            refused.append(url)
            route.abort()
        else:
            route.fulfill(status=200, body=body, content_type="text/javascript")

    page.route("**/*", route)
    return page, refused
