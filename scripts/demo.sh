#!/usr/bin/env bash
# Set everything up and open the quickstart notebook in JupyterLab, offline, on the built-in model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh notebook
export HF_HUB_OFFLINE=1
exec .venv/bin/jupyter lab notebooks/quickstart.ipynb
