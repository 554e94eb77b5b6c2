#!/usr/bin/env bash
# The test command: lint, the fast test suite (slow measurements are opt-in: -m slow), then
# the wheel installed into a fresh virtual environment runs the size guard over the whole
# registry (against the committed baseline) and a small report (scripts/check-wheel.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check dynbench tests
.venv/bin/python -m pytest -q "$@"
bash scripts/check-wheel.sh
