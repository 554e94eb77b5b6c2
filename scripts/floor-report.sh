#!/usr/bin/env bash
# The latency floor of the latency suite's models, in one store and one report: this
# machine's ceilings (suite machine), the latency suite (whose roofline measure stores each
# model's per-layer MAdds and bytes), the ceilings again (did the machine move?), and the
# ResNet-18 family's phase profile (where an overhead above its floor goes).
#   bash scripts/floor-report.sh [OUT_DIR]        (default OUT_DIR: reports/floor)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-reports/floor}"
bash scripts/bootstrap.sh
mkdir -p "$out"
rm -f "$out/runs.sqlite" "$out/terminal.txt"
run() {
    echo "== dynbench run --suite $1 (load $(cut -d' ' -f1-3 /proc/loadavg))" \
        | tee -a "$out/terminal.txt"
    .venv/bin/dynbench run --suite "$1" --db "$out/runs.sqlite" | tee -a "$out/terminal.txt"
}
run machine
run latency
run machine
OMP_NUM_THREADS=1 run profile # one thread, as the latency it explains was measured
.venv/bin/dynbench export --format json --db "$out/runs.sqlite" --out "$out/records.json"
.venv/bin/dynbench report --db "$out/runs.sqlite" --out "$out"
