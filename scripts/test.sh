#!/usr/bin/env bash
# The test command: lint, the fast test suite (slow measurements are opt-in: -m slow), then
# the size guard over the whole registry.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check dynbench tests
.venv/bin/python -m pytest -q "$@"
# dynbench guards itself: params and MAdds of every registered model vs the committed baseline
.venv/bin/dynbench guard --baseline dynbench-baseline.json
