#!/usr/bin/env bash
# Create or reuse the virtual environment, install labkit with pinned dependencies, and fetch the
# real models and vocabularies. Safe to run again: each step is skipped when already done.
#
# Environment: PYTHON (interpreter for the venv, default python3), VENV (default .venv),
# LABKIT_CACHE (models, downloads and the built llama-cpp-python wheel; default ~/.cache/labkit).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
CACHE=${LABKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/labkit}
LLAMA_CPP_VERSION=0.3.36
WHEELS="$CACHE/wheels"
DOWNLOADS="$CACHE/downloads"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating the virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)

# llama-cpp-python ships only a source distribution on PyPI; compiling it takes about 6 minutes on
# 2 cores, so the wheel is built once and kept in the cache for every later set-up.
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl >/dev/null 2>&1; then
    echo "setup: building llama-cpp-python $LLAMA_CPP_VERSION from source (about 6 minutes, once)"
    mkdir -p "$WHEELS" "$DOWNLOADS"
    sdist="$DOWNLOADS/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz"
    if [ ! -f "$sdist" ]; then
        "${pip[@]}" download --quiet --no-deps --no-binary :all: \
            "llama-cpp-python==$LLAMA_CPP_VERSION" --dest "$DOWNLOADS"
    fi
    # -ffp-contract=off keeps gcc from fusing a*b+c into one FMA in llama.cpp's scalar reference
    # quantizers, so their rounding matches labkit's numpy float32 code step by step. SIMD kernels
    # (explicit intrinsics) are unaffected, so decoding speed stays the same.
    CMAKE_ARGS="-DCMAKE_C_FLAGS=-ffp-contract=off -DCMAKE_CXX_FLAGS=-ffp-contract=off" \
        "${pip[@]}" wheel --no-deps "$sdist" --wheel-dir "$WHEELS"
fi

# Reinstall only when the dependency list or the pins changed.
stamp="$VENV/.labkit-install-stamp"
wanted=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "setup: installing labkit and its pinned dependencies into $VENV"
    "${pip[@]}" install --quiet --find-links "$WHEELS" --constraint constraints.txt --editable ".[dev]"
    echo "$wanted" > "$stamp"
fi

"$VENV/bin/labkit" assets fetch
