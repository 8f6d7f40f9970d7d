#!/usr/bin/env bash
# Set everything up and open the quickstart notebook in JupyterLab, offline, on the built-in model.
#   bash scripts/demo.sh [--port N]   serve on port N (default 8888; the next free one if it is taken)
#   bash scripts/demo.sh --check      set up, start the server, check that it serves the quickstart
#                                     with the widget's front-end, then stop (no browser needed)
set -euo pipefail
cd "$(dirname "$0")/.."
port=8888 check=false
while [ $# -gt 0 ]; do
    case "$1" in
        --check) check=true ;;
        --port) port="${2:?--port needs a number}"; shift ;;
        *) echo "usage: bash scripts/demo.sh [--port N] [--check]" >&2; exit 2 ;;
    esac
    shift
done
bash scripts/setup_env.sh notebook
export HF_HUB_OFFLINE=1
python=.venv/bin/python
asked=$port
port=$("$python" scripts/demo_server.py free-port "$port")
[ "$port" = "$asked" ] || echo "Port $asked is in use; serving on port $port instead."
token=$("$python" -c 'import secrets; print(secrets.token_hex(24))')
url="http://127.0.0.1:$port/lab/tree/quickstart.ipynb?token=$token"
options=(--ServerApp.root_dir=notebooks --ServerApp.ip=127.0.0.1 "--ServerApp.port=$port"
    --ServerApp.port_retries=0 "--IdentityProvider.token=$token")
# Containers, cloud notebooks and CI machines run as root; JupyterLab refuses that unless told.
[ "$(id -u)" -ne 0 ] || options+=(--ServerApp.allow_root=True)
if $check; then
    log=$(mktemp)
    .venv/bin/jupyter lab --no-browser "${options[@]}" >"$log" 2>&1 &
    server=$!
    trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
    if ! "$python" scripts/demo_server.py check "http://127.0.0.1:$port" "$token" "$server"; then
        echo "--- jupyter lab's log:" >&2; cat "$log" >&2
        exit 1
    fi
    exit 0
fi
echo "Opening the quickstart in JupyterLab: $url"
exec .venv/bin/jupyter lab "${options[@]}" notebooks/quickstart.ipynb
