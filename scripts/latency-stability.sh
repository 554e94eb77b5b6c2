#!/usr/bin/env bash
# Run a latency suite twice and check that the two runs agree on every ratio within 3%.
#   bash scripts/latency-stability.sh [SUITE] [OUT_DIR]     (defaults: latency, reports/latency)
# Writes OUT_DIR/runs.sqlite (both runs), run1.json, run2.json, stability.md (the comparison)
# and the report; exits 1 if some ratio differs by more than 3%. It takes as long as two runs
# of the suite (reports/README.md gives the committed pair's times).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
suite="${1:-latency}"
out="${2:-reports/latency}"
bash scripts/bootstrap.sh
mkdir -p "$out"
db="$out/runs.sqlite"
rm -f "$db"
for run in 1 2; do
    DYNBENCH_DB="$db" .venv/bin/dynbench run --suite "$suite" --json "$out/run$run.json"
done
DYNBENCH_DB="$db" .venv/bin/dynbench report --out "$out"
status=0
.venv/bin/dynbench compare "$out/run1.json" "$out/run2.json" --markdown "$out/stability.md" \
    || status=$?
exit "$status"
