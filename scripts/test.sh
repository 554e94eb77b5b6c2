#!/usr/bin/env bash
# The test command: lint, then the fast test suite (slow measurements are opt-in: -m slow).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check dynbench tests
.venv/bin/python -m pytest -q "$@"
