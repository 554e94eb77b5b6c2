#!/usr/bin/env bash
# Measure one suite into a report folder: a fresh store (runs.sqlite), the raw records
# (records.json), the terminal summary (terminal.txt) and the report (report.md with its
# PNG plots and CSV tables, report.html).
#   bash scripts/report-suite.sh SUITE [OUT_DIR]        (default OUT_DIR: reports/SUITE)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
suite="${1:?usage: scripts/report-suite.sh SUITE [OUT_DIR]}"
out="${2:-reports/$suite}"
bash scripts/bootstrap.sh
mkdir -p "$out"
rm -f "$out/runs.sqlite"
.venv/bin/dynbench run --suite "$suite" --db "$out/runs.sqlite" --json "$out/records.json" \
    | tee "$out/terminal.txt"
.venv/bin/dynbench report --db "$out/runs.sqlite" --out "$out"
