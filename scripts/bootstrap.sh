#!/usr/bin/env bash
# Create .venv with the CPU build of torch first, then dynbench, its test tools and the
# PostgreSQL driver (the store's tests run against a real server too).
# Idempotent and quick when nothing changed; sourced by run.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$VPY" -c "import torch" 2>/dev/null; then
    # The CPU build first: torch from PyPI is a multi-GB CUDA build on Linux. Its version
    # names it (a local wheel or a mirror that carries it), else PyTorch's CPU index has it.
    "$VPY" -m pip install -q "torch==2.13.0+cpu" \
        || "$VPY" -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
fi
stamp=.venv/.dynbench-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VPY" -m pip install -q -e '.[test,profile,postgres]'
    touch "$stamp"
fi
