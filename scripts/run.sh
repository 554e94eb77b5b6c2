#!/usr/bin/env bash
# The main job: measure the default suite into a fresh reports/default/runs.sqlite and render
# its report (reports/default/report.md with plots and CSVs, reports/default/report.html).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec bash scripts/report-suite.sh "${SUITE:-default}" reports/default
