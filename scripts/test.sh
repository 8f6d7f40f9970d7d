#!/usr/bin/env bash
# Install every test dependency (Debian chromium, npm packages, Python packages) and run every test:
# ruff, the TypeScript type check, vitest, then pytest (unit tests and end-to-end tests in Chromium
# against real JupyterLab and Notebook 7 servers).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi
(cd js && npm ci --no-audit --no-fund --loglevel=error)
rm -f attnwidget/static/widget.js  # always test a fresh bundle
bash scripts/setup_env.sh test
export HF_HUB_OFFLINE=1
.venv/bin/ruff check attnwidget tests benchmarks scripts
.venv/bin/ruff format --check attnwidget tests benchmarks scripts
(cd js && npm run typecheck && npm test)
.venv/bin/python -m pytest -v "$@"
