#!/usr/bin/env bash
# Install every test dependency (Debian chromium, npm packages, Python packages) and run every test:
# ruff, the TypeScript type check, vitest, then pytest (unit tests and end-to-end tests in Chromium
# against real JupyterLab, Notebook 7, marimo and Voila servers). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
bash scripts/build_frontend.sh --dev
bash scripts/setup_env.sh test
export HF_HUB_OFFLINE=1
.venv/bin/ruff check attnwidget tests benchmarks scripts
.venv/bin/ruff format --check attnwidget tests benchmarks scripts
(cd js && npm run typecheck && npm test)
.venv/bin/python -m pytest -v "$@"
