#!/usr/bin/env bash
# Refresh the reference store shipped with the package (dynbench/reference/reference.sqlite)
# from the committed timing stores of the reference machine: the latency, latency-published,
# train-step and sparsity runs under reports/. 'dynbench report --reference' (on in
# scripts/run.sh) sets a user's figures beside these.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=dynbench/reference/reference.sqlite
rm -f "$target"
.venv/bin/dynbench merge "$target" reports/latency/runs.sqlite \
    reports/latency-published/runs.sqlite reports/train-step/runs.sqlite \
    reports/sparsity/runs.sqlite
# compact: no journal, no free pages
.venv/bin/python -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);
c.execute('pragma journal_mode=delete'); c.execute('vacuum')" "$target"
echo "wrote $target ($(du -h "$target" | cut -f1))"
