#!/usr/bin/env bash
# The main job: measure the default suite and render the report into reports/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
.venv/bin/dynbench run --suite "${SUITE:-default}" "$@"
.venv/bin/dynbench report --out reports/default
