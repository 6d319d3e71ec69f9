#!/usr/bin/env bash
# Sets up everything dyadic needs on a fresh Debian/Ubuntu machine:
#   1. the system libraries (headless GL, audio, video) through apt-get, only those missing;
#   2. a virtual environment in .venv with the project installed (editable) and its packages.
# Idempotent: a second run checks and returns quickly. Used by `make demo`, `make test`, `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.dyadic-installed"

# --- system libraries -------------------------------------------------------------------------
# EGL (Mesa llvmpipe or the NVIDIA driver) is the first choice; OSMesa is the fallback.
# libportaudio2 lets `sounddevice` import (local microphone source). chromium is the browser of
# the WebRTC tests (driven by Playwright with executable_path; nothing else is downloaded).
# iproute2 (ip netns, tc) and nftables build the impaired test networks (tests/test_network_impaired.py);
# coturn is the real TURN server of tests/test_serve_turn.py (started and stopped by the test).
APT_PACKAGES="libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 libgl1 libosmesa6 libportaudio2 chromium iproute2 nftables coturn"
missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Node.js runs the page's own JS in the tests (tests/test_client_agrees.py) and npm installs three.js
# (client/package-lock.json): Debian's, unless they are there
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  echo "[bootstrap] installing system packages:$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

# --- the page's JS packages (three.js), from the lockfile, when it is newer than what is installed
if [ ! -f client/node_modules/.package-lock.json ] || [ client/package-lock.json -nt client/node_modules/.package-lock.json ]; then
  echo "[bootstrap] npm ci (client/)"
  npm ci --prefix client --no-audit --no-fund --loglevel=error
fi

# --- python environment -----------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt scripts/bootstrap.sh ]; then
  exit 0
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# torch first and pinned: an unpinned torch drags several GB of CUDA packages onto a CPU machine;
# 2.13.0 resolves to the local CPU wheel where one is provided (pip's find-links) or to PyPI's build.
$PIP install -q "torch==2.13.0"
$PIP install -q -e ".[dev,audio]"
# pyrender 0.1.45 pins PyOpenGL==3.1.0, whose OSMesa binding is broken; pyproject.toml lists
# pyrender's real dependencies (with PyOpenGL 3.1.10), so pyrender itself goes in without its pin.
$PIP install -q --no-deps "pyrender==0.1.45"
touch "$STAMP"
echo "[bootstrap] environment ready in $VENV"
