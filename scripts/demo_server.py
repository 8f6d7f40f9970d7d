"""Helpers of `scripts/demo.sh`: pick a free port, and check a started JupyterLab serves the demo."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

#: The quickstart, relative to the server's root (notebooks/).
NOTEBOOK = "quickstart.ipynb"
#: Front-end extensions the quickstart's widgets need in JupyterLab.
EXTENSIONS = ("anywidget", "@jupyter-widgets/jupyterlab-manager")


def free_port(wanted: int, tries: int = 50) -> int:
    """`wanted` when nothing listens on it, else the next free port after it."""
    for port in range(wanted, wanted + tries):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(
        f"error: ports {wanted}-{wanted + tries - 1} are all in use; pass --port with a free one"
    )


def get(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def check(base: str, token: str, server_pid: int, timeout_s: float = 120) -> None:
    """Wait for the server, then check it serves the quickstart with the widget's front-end."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            get(f"{base}/api/status", token)
            break
        except (urllib.error.URLError, OSError):
            if not _alive(server_pid):
                raise SystemExit("error: jupyter lab exited before it answered") from None
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"error: jupyter lab did not answer at {base} in {timeout_s:.0f} s"
                ) from None
            time.sleep(0.5)
    notebook = json.loads(get(f"{base}/api/contents/{NOTEBOOK}", token))
    if notebook["type"] != "notebook" or not notebook["content"]["cells"]:
        raise SystemExit(f"error: the server does not serve {NOTEBOOK}")
    page = get(f"{base}/lab/tree/{NOTEBOOK}", token).decode()
    config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S).group(1))
    installed = {extension["name"] for extension in config.get("federated_extensions", [])}
    missing = [name for name in EXTENSIONS if name not in installed]
    if missing:
        raise SystemExit(f"error: JupyterLab lacks the front-end extensions {missing}: run the setup again")
    loaded = subprocess.run(
        [sys.executable, "-c", "import attnwidget; attnwidget.default_model(); print('imported')"],
        capture_output=True,
        text=True,
        check=False,
    )
    if loaded.returncode != 0:
        raise SystemExit(f"error: the notebook's Python cannot load attnwidget:\n{loaded.stderr}")
    print(
        f"ok: JupyterLab answers at {base}, serves {NOTEBOOK} with {', '.join(EXTENSIONS)}, "
        "and attnwidget loads its built-in model"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command == "free-port":
        print(free_port(int(arguments[0])))
    elif command == "check":
        base, token, pid = arguments
        check(base, token, int(pid))
    else:
        raise SystemExit(f"unknown command {command!r}")
