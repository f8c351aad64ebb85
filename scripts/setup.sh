#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv, the CPU build of torch when no torch is present,
# then fwmrl in editable mode with the extras in FWMRL_EXTRAS. Fast when already installed.
#
#   PYTHON=python3.11          the interpreter that creates the environment
#   FWMRL_VENV=.venv           the environment's folder
#   FWMRL_EXTRAS=dev           extras of fwmrl to install: dev (pytest, ruff), sweep (Ray Tune and
#                              pyarrow, about 400 MB), metaworld (Meta-World 3.x and MuJoCo, about
#                              50 MB, ~20 s); CI uses dev,sweep,metaworld
#   TORCH_INDEX_URL=           where pip finds torch==2.13.0; empty: pip's own indexes (this machine
#                              has the CPU build on disk). Elsewhere, a plain `pip install torch` on
#                              Linux pulls the multi-GB CUDA build: for the CPU build use
#                              TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu, for a CUDA
#                              build e.g. https://download.pytorch.org/whl/cu128.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${FWMRL_VENV:-.venv}"
EXTRAS="${FWMRL_EXTRAS:-dev}"
TORCH_PIN="torch==2.13.0"

say() { echo "setup: $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# An unpinned torch would pull a multi-GB CUDA build; install the pinned build first.
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    say "installing $TORCH_PIN${TORCH_INDEX_URL:+ from $TORCH_INDEX_URL} (about a minute)"
    "$PY" -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_PIN"
fi

stamp="$VENV/.fwmrl-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$EXTRAS" ]; then
    say "installing fwmrl (editable) with extras [$EXTRAS] and its dependencies (1-3 minutes)"
    "$PY" -m pip install --quiet -e ".[$EXTRAS]"
    echo "$EXTRAS" > "$stamp"
fi
say "ready: $("$PY" -c 'import fwmrl, torch; print(f"fwmrl {fwmrl.__version__}, torch {torch.__version__}")') in $VENV"
