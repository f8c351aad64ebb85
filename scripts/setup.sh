#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv, the CPU build of torch when no torch is present,
# then fwmrl in editable mode with its dev and sweep (Ray Tune) extras. Fast when already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${FWMRL_VENV:-.venv}"
TORCH_PIN="torch==2.13.0"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# An unpinned torch would pull a multi-GB CUDA build; install the pinned CPU build first.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    "$PY" -m pip install --quiet "$TORCH_PIN"
fi

stamp="$VENV/.fwmrl-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$PY" -m pip install --quiet -e ".[dev,sweep]"
    touch "$stamp"
fi
