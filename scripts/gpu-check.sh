#!/usr/bin/env bash
# The GPU checks of reports/gpu/ on a lent GPU machine, as that folder holds them: two runs
# of the throughput suite at batch 200 in fp32 (the ODConv paper's speed table; two, so that
# runs that disagree give no verdict) and the batch sweep into OUT/gpu.sqlite, the
# throughput suite in bf16 with channels-last into OUT/bf16-channels-last.sqlite, the GPU's
# state beside them, and both reports rendered. Each step has its own time limit (about 15
# minutes in all at most: split the steps over two calls where one call has less), and a
# store keeps every record made before a stop.
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
step 240 gpu --suite throughput
step 240 gpu --suite throughput
step 300 gpu --suite batch-sweep
step 150 bf16-channels-last --suite throughput --dtype bf16 --channels-last
state
python3 -m dynbench report --db "$out/gpu.sqlite" --out "$out"
python3 -m dynbench report --db "$out/bf16-channels-last.sqlite" --out "$out/bf16-channels-last"
