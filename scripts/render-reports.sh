#!/usr/bin/env bash
# Re-render every committed report under reports/ from its own committed store(s), under
# the current rules (no new timings): each suite's folder, gpu/ (and its bf16 run), and the
# scorecard over all of them. The explicit way to refresh committed reports; the main job
# (scripts/run.sh) never writes under reports/. Then refreshes the reference store shipped
# with the package (scripts/refresh-reference.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
report() { .venv/bin/dynbench report "$@" > /dev/null; echo "rendered ${*: -1}"; }
for folder in default published latency latency-published train-step sparsity sparsity-small \
    resolution options floor batch-sweep; do
    report --db "reports/$folder/runs.sqlite" --out "reports/$folder"
done
report --db reports/gpu/gpu.sqlite --out reports/gpu
report --db reports/gpu/bf16-channels-last.sqlite --out reports/gpu/bf16-channels-last
stores=()
for folder in default published latency latency-published train-step sparsity sparsity-small \
    resolution; do
    stores+=(--db "reports/$folder/runs.sqlite")
done
report "${stores[@]}" --db reports/gpu/gpu.sqlite --out reports/scorecard
# the reference store comes from one machine's stores; kept as it is while they differ
bash scripts/refresh-reference.sh || echo "reference store not refreshed (see above)"
