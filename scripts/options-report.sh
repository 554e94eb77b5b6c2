#!/usr/bin/env bash
# The ResNet-18 family's latency under each timing option, in one store and one report:
# eager fp32, torch.compile, bf16 and channels-last (each a run of suites/latency-options).
#   bash scripts/options-report.sh [OUT_DIR]        (default OUT_DIR: reports/options)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-reports/options}"
bash scripts/bootstrap.sh
mkdir -p "$out"
rm -f "$out/runs.sqlite" "$out/terminal.txt"
for options in "" "--compile" "--dtype bf16" "--channels-last"; do
    echo "== dynbench run --suite latency-options ${options}" | tee -a "$out/terminal.txt"
    # shellcheck disable=SC2086  # the options are words
    .venv/bin/dynbench run --suite latency-options $options --db "$out/runs.sqlite" \
        | tee -a "$out/terminal.txt"
done
.venv/bin/dynbench export --format json --db "$out/runs.sqlite" --out "$out/records.json"
.venv/bin/dynbench report --db "$out/runs.sqlite" --out "$out"
