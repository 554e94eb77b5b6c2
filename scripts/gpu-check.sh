#!/usr/bin/env bash
# Every GPU step of issue 29 on a lent GPU machine, each under its own time limit, in parts
# that each fit one device call (600 s): A (the fp32 throughput runs and what explains
# them), B (the released code side by side, spatial DynConv on the GPU) and C (the batch
# routes and the sweep, last: a 15-minute device budget holds A and B, C only if time is
# left).
#
#   bash scripts/gpu-check.sh A            # or B, C, all, or step names: ... fp32-1 bf16
#   bash scripts/gpu-check.sh --list       # PART STEP LIMIT_S, one step a line
#
# Outputs go to a work folder (runs/gpu-check, or /tmp/gpu-check under the device tool), and
# under the device tool, where OUT is set, the whole folder is packed into
# $OUT/gpu-check-<args>.tar.gz after every step (a step stopped at its limit or a call cut
# off still brings back what came before) beside $OUT/gpu-check-<args>.log. What each step
# writes:
#   env         env.json (torch, CUDA, cuDNN, TF32 switches, the card's state), nvidia-smi.txt
#   cuda-tests  cuda-tests.txt: sparse = masked on CUDA, the throughput record's fields, the
#               host-sync counter, the profile reader and the state reader on CUDA (pytest)
#   profile     profile.md/.json, profile-reserve.md/.json: per-block cudaMalloc/cudaFree,
#               syncs, DtoH copies and top kernels of two unsteady models, without and with
#               a 20 GiB memory reserve
#   fp32-1/2    gpu.sqlite: two runs of the throughput suite (batch 200, fp32), then
#               steadiness.md: scripts/gpu-steadiness.py's answer on them
#   bf16        bf16-channels-last.sqlite: the throughput suite in bf16, channels-last
#   released    released.md: compare-released.py --gpu (needs .released/, carried)
#   spatial     spatial-gpu.sqlite: suites/sparsity-gpu.toml
#   routes      routes-gpu.jsonl/.md: the mixed and experts routes of a kernel-mixing conv
#               timed on the GPU at batch 1-200 (experts-crossover.py --device cuda)
#   sweep       gpu.sqlite: the batch sweep
# Every step also appends the card's state to gpu-state.csv before it starts and its exit
# status and seconds to steps.csv. Nothing here changes the card's settings.
# reports/gpu/README.md says how to call this with the device tool and what to do after.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STEPS="A env 20
A cuda-tests 60
A profile 90
A fp32-1 150
A fp32-2 150
A bf16 90
B released 170
B spatial 170
C routes 150
C sweep 200"

if [ "${1:-}" = "--list" ]; then
    echo "$STEPS"
    exit 0
fi
wanted=("${@:-all}")
selected=()
while read -r part name limit; do
    for w in "${wanted[@]}"; do
        if [ "$w" = all ] || [ "$w" = "$part" ] || [ "$w" = "$name" ]; then
            selected+=("$name:$limit")
            break
        fi
    done
done <<<"$STEPS"
if [ ${#selected[@]} -eq 0 ]; then
    echo "error: no step named ${wanted[*]}; accepted: A, B, C, all or a step of --list" >&2
    exit 2
fi

tag=$(IFS=-; echo "${wanted[*]}")
if [ -n "${OUT:-}" ]; then
    work=/tmp/gpu-check
    exec > >(tee -a "$OUT/gpu-check-$tag.log") 2>&1
else
    work=runs/gpu-check
fi
mkdir -p "$work"
if ! python3 -c "import sqlalchemy" 2>/dev/null && [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

state() {  # state STEP: one line of the card's state
    local q=timestamp,name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw
    q+=,utilization.gpu,memory.used
    nvidia-smi --query-gpu=$q --format=csv,noheader 2>/dev/null | sed "s/^/$1, /" \
        >>"$work/gpu-state.csv" || echo "$1, nvidia-smi absent" >>"$work/gpu-state.csv"
}
pack() {
    [ -n "${OUT:-}" ] && tar czf "$OUT/gpu-check-$tag.tar.gz" -C "$work" .
    return 0
}
released() {
    local r=.released
    for repo in ODConv dcd dyconv condconv; do
        if [ ! -d "$r/$repo" ]; then
            echo "released: skipped: $r/$repo is not here (carry .released; reports/gpu/README.md)"
            return 0
        fi
    done
    python3 scripts/compare-released.py --odconv $r/ODConv --dcd $r/dcd --dyconv $r/dyconv \
        --condconv $r/condconv --gpu --backbones resnet50,mobilenetv2_100 \
        --out "$work/released.md"
}
run_step() {  # run_step NAME: the step's commands (under the caller's timeout)
    case $1 in
    env)
        python3 - <<'PY' >"$work/env.json"
import json, torch
from dynbench.measure.gpu_state import gpu_state
print(json.dumps({
    "torch": torch.__version__, "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version(), "device": torch.cuda.get_device_name(0),
    "capability": torch.cuda.get_device_capability(0),
    "tf32": {"cudnn": torch.backends.cudnn.allow_tf32,
             "matmul": torch.backends.cuda.matmul.allow_tf32},
    "state": gpu_state(),
}, indent=1))
PY
        cat "$work/env.json"
        nvidia-smi -q -d CLOCK,TEMPERATURE,PERFORMANCE,POWER >"$work/nvidia-smi.txt" 2>&1
        ;;
    cuda-tests)
        python3 -m pytest -q -p no:cacheprovider tests/ops/test_dynconv_sparse_cuda.py \
            tests/measure/test_gpu.py tests/measure/test_gpu_profile.py \
            tests/measure/test_gpu_state.py 2>&1 | tee "$work/cuda-tests.txt" | tail -5
        ;;
    profile)
        local models=mobilenetv2_100_condconv_8x,resnet50_v1_dyconv_4x
        python3 scripts/gpu-profile.py --models $models --out "$work/profile.md" &&
            python3 scripts/gpu-profile.py --models $models --memory-reserve-gib 20 \
                --out "$work/profile-reserve.md"
        ;;
    fp32-1) python3 -m dynbench run --suite throughput --db "$work/gpu.sqlite" ;;
    fp32-2)
        python3 -m dynbench run --suite throughput --db "$work/gpu.sqlite"
        python3 scripts/gpu-steadiness.py "$work/gpu.sqlite" | tee "$work/steadiness.md"
        ;;
    bf16)
        python3 -m dynbench run --suite throughput --dtype bf16 --channels-last \
            --db "$work/bf16-channels-last.sqlite"
        ;;
    released) released ;;
    spatial) python3 -m dynbench run --suite sparsity-gpu --db "$work/spatial-gpu.sqlite" ;;
    routes)
        python3 scripts/experts-crossover.py --device cuda --batches 1,8,32,64,128,200 \
            >"$work/routes-gpu.jsonl" &&
            python3 scripts/experts-crossover.py --render "$work/routes-gpu.jsonl" \
                >"$work/routes-gpu.md"
        ;;
    sweep) python3 -m dynbench run --suite batch-sweep --db "$work/gpu.sqlite" ;;
    esac
}
export -f run_step released state
export work

python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" ||
    echo "no CUDA device: the steps will fail or skip"
for entry in "${selected[@]}"; do
    name=${entry%%:*} limit=${entry#*:}
    echo "== $name (limit ${limit} s, $(date -u +%T))"
    state "$name"
    start=$(date +%s)
    timeout --kill-after=15 "$limit" bash -c "run_step $name"
    code=$?
    echo "$name,$limit,$(($(date +%s) - start)),$code" >>"$work/steps.csv"
    [ $code -eq 0 ] || echo "$name: exit $code$([ $code -eq 124 ] && echo ' (time limit)')"
    pack
done
state end
pack
echo "== done ($(date -u +%T)); steps.csv:"
cat "$work/steps.csv"
