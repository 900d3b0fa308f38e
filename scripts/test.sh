#!/usr/bin/env bash
# The README's test command: install nanolink with its training and test extras into a virtual
# environment (.venv) and run the whole test suite. torch is installed first, pinned, so pip never pulls a
# CUDA build of it; set TORCH_SPEC to choose another torch (e.g. TORCH_SPEC="torch" on a CUDA machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q ".[train,test]"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
