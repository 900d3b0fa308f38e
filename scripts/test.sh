#!/usr/bin/env bash
# The README's test command.
#  1. If a CPython 3.6 is available (NANOLINK_PY36, or pyenv's 3.6.x), install the edge side into .venv36 the
#     way a Jetson Nano (JetPack 4.6) would get it -- pip 21.3.1, pip install ".[edge,test]" -- and run the
#     common and edge tests there.
#  2. Install nanolink with its training and test extras into .venv (torch 2.13.0 first, pinned, so pip never
#     pulls a CUDA build; set TORCH_SPEC to choose another) and run the whole suite, including a real stream
#     from the Python 3.6 edge-sender to this Python's host-receiver when step 1 ran.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# host-receiver --show needs an X server and OpenCV with a GUI (the runtime's OpenCV is headless), and its key
# test presses keys with xdotool; the --http viewer's test drives Debian's Chromium through chromedriver; the rANS
# coder's C test needs an aarch64 cross-compiler and qemu-user. CI installs these Debian packages; elsewhere those
# tests run when the programs are installed and skip otherwise.
NEED=""
command -v Xvfb >/dev/null 2>&1 || NEED="$NEED xvfb x11-utils"
command -v xdotool >/dev/null 2>&1 || NEED="$NEED xdotool"
command -v chromium >/dev/null 2>&1 || NEED="$NEED chromium"
command -v chromedriver >/dev/null 2>&1 || NEED="$NEED chromium-driver"
# the rANS coder's C test is cross-built for aarch64 (the Jetson's CPU) and run under qemu-user
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || NEED="$NEED gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
command -v qemu-aarch64 >/dev/null 2>&1 || NEED="$NEED qemu-user"
if [ -n "$NEED" ] && [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== CI: installing$NEED for the --show, browser-viewer and aarch64 coder tests"
    (apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $NEED >/dev/null) \
        || echo "== could not install$NEED: the tests that need them will skip"
fi
PY36=${NANOLINK_PY36:-}
if [ -z "$PY36" ] && command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep '^3\.6\.' || true); do PY36="$(pyenv root)/versions/$v/bin/python"; done
fi
if [ -n "$PY36" ] && [ -x "$PY36" ]; then
    echo "== Python 3.6 edge side ($PY36)"
    [ -x .venv36/bin/python ] || "$PY36" -m venv .venv36
    .venv36/bin/python -m pip install -q --disable-pip-version-check "pip==21.3.1"
    .venv36/bin/python -m pip install -q --prefer-binary ".[edge,test]"
    .venv36/bin/python -m pytest -q -p no:cacheprovider tests/common tests/edge
    export NANOLINK_PY36_EDGE="$PWD/.venv36/bin/edge-sender"
else
    echo "== no CPython 3.6 found (set NANOLINK_PY36=/path/to/python3.6): skipping the Python 3.6 edge tests"
fi

if command -v Xvfb >/dev/null 2>&1; then
    echo "== GUI OpenCV venv for the --show tests (.venv-gui)"
    [ -x .venv-gui/bin/python ] || "$PY" -m venv .venv-gui
    # opencv-python (with a GUI) instead of the declared opencv-python-headless: pip's resolver notes the
    # swap as a conflict, which is intended here, so its message is filtered out
    .venv-gui/bin/python -m pip install -q --disable-pip-version-check numpy pyzmq msgpack onnxruntime opencv-python
    .venv-gui/bin/python -m pip install -q --disable-pip-version-check --no-deps . 2>&1 \
        | grep -v -e "dependency resolver does not currently" -e "requires opencv-python-headless" || true
    export NANOLINK_GUI_PYTHON="$PWD/.venv-gui/bin/python"
fi

echo "== Python $("$PY" -c 'import sys; print(sys.version.split()[0])'): everything"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q ".[train,test,bench]"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
