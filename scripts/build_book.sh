#!/usr/bin/env bash
# Build the executed HTML book into _build/html. Any cell error or Sphinx warning fails the build.
# With CI set, the build starts from an empty _build so a warm cache cannot hide a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

if [ -n "${CI:-}" ]; then
    rm -rf _build
fi
"$VENV/bin/jupyter-book" build . --warningiserror --keep-going
echo "book: open _build/html/index.html"
