#!/usr/bin/env bash
# The main job: measure the default suite into my-results/default/ (untracked, gitignored:
# runs.sqlite, records.json, the run's full terminal tables in terminal.txt) and print the
# answer: the tally and one line per measured claim; the report is report.html beside them.
# It never writes a committed file: scripts/report-suite.sh refreshes the committed reports.
#   SUITE=NAME bash scripts/run.sh      (another suite; default: default)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
suite="${SUITE:-default}"
out="my-results/$suite"
bash scripts/bootstrap.sh
mkdir -p "$out"
rm -f "$out/runs.sqlite"
echo "measuring suite $suite (tables: $out/terminal.txt)"
.venv/bin/dynbench run --suite "$suite" --db "$out/runs.sqlite" --json "$out/records.json" \
    --verbose > "$out/terminal.txt"
.venv/bin/dynbench report --db "$out/runs.sqlite" --out "$out" --reference
