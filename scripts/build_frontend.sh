#!/usr/bin/env bash
# Build the widget's front-end (js/ -> attnwidget/static/) when it is missing or older than any of its
# inputs (the files of js/ outside node_modules, and the colour tables it imports from the package); install the npm packages first when they are missing or older than the lock
# file. With --dev the npm packages are brought up to date even when the bundle is (the type check and
# the unit tests of js/ need them). Needs Node.js 18+ and npm, and says so when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bundles=(widget.js strip.js embed-amd.js require.js)
inputs=(js attnwidget/colormaps.json)

needs_build() {
    local name
    for name in "${bundles[@]}"; do
        [ -f "attnwidget/static/$name" ] || return 0
        # Any input newer than this bundle file (node_modules left out: npm rewrites it).
        if [ -n "$(find "${inputs[@]}" -path js/node_modules -prune -o -type f -newer "attnwidget/static/$name" -print -quit)" ]; then
            return 0
        fi
    done
    return 1
}

require_node() {
    local major
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "error: building attnwidget's front-end needs Node.js 18 or newer and npm, and" \
            "$(command -v node >/dev/null 2>&1 && echo npm || echo Node.js) is not on PATH." >&2
        echo "Install them (Debian/Ubuntu: apt-get install nodejs npm; macOS: brew install node;" \
            "Windows: winget install OpenJS.NodeJS.LTS), then run this command again." >&2
        exit 1
    fi
    major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$major" -lt 18 ]; then
        echo "error: building attnwidget's front-end needs Node.js 18 or newer; this is $(node --version)." >&2
        exit 1
    fi
}

packages_stale() {
    [ ! -f js/node_modules/.package-lock.json ] || [ js/package-lock.json -nt js/node_modules/.package-lock.json ]
}

dev=false; [ "${1:-}" = "--dev" ] && dev=true
if needs_build; then build=true; else build=false; fi
if ! $build && ! { $dev && packages_stale; }; then
    exit 0
fi
require_node
if packages_stale; then
    (cd js && npm ci --no-audit --no-fund --loglevel=error)
fi
$build || exit 0
(cd js && npm run --silent build)
echo "built attnwidget/static/ from js/"
