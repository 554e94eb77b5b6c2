#!/usr/bin/env bash
# Issue 14's GPU checks in one call on a lent GPU machine: the throughput suite at batch 200
# in fp32 (the ODConv paper's speed table) and in bf16 with channels-last, and the batch
# sweep. Each writes its own store under OUT (default reports/gpu), with the GPU's state
# beside them; render one with `dynbench report --db OUT/NAME.sqlite --out DIR`.
# Each step has its own time limit, and a store keeps every record made before a stop.
# On a machine without the package installed, wheels in .whl/ (SQLAlchemy) are put on
# PYTHONPATH first.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-reports/gpu}"
mkdir -p "$out"
if ! python3 -c "import sqlalchemy" 2>/dev/null && [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
state() { nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw,utilization.gpu,memory.used --format=csv,noheader >>"$out/gpu-state.csv"; }
step() {  # step SECONDS NAME dynbench-run-args...
    local limit=$1 name=$2
    shift 2
    echo "== $name ($(date -u +%T))"
    state
    timeout "$limit" python3 -m dynbench run "$@" --db "$out/$name.sqlite" || echo "$name: exit $?"
}
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
step 240 throughput-fp32 --suite throughput
step 150 batch-sweep --suite batch-sweep
step 150 throughput-bf16-cl --suite throughput --dtype bf16 --channels-last
state
