#!/usr/bin/env bash
# Install dynbench as a user does, from a wheel into a fresh virtual environment (CPU torch
# first), and run the installed command: the size guard over the whole registry against the
# committed baseline, then a small run and its report, the README's example operator, then
# the tests marked 'wheel' (a password never stored, a run stopped by SIGINT, SIGTERM or
# SIGKILL) with the installed command in their subprocesses. An editable install would hide
# a package or a data file missing from the wheel.
#   bash scripts/check-wheel.sh [DIR]      (default: a temporary directory, removed after)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
work=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3}
"$PY" -m venv "$work/venv"
pip="$work/venv/bin/python -m pip"
$pip install -q "torch==2.13.0+cpu" \
    || $pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
$pip wheel -q --no-deps -w "$work/dist" "$root"
wheel=$(ls "$work"/dist/dynbench-*.whl)
$pip install -q "$wheel[postgres]"  # as a team with a PostgreSQL store installs it
cd "$work"  # away from the checkout: only the installed package can answer
bin="$work/venv/bin"
"$bin/dynbench" guard --baseline "$root/dynbench-baseline.json"
"$bin/dynbench" run --suite params --models 'resnet18*' --db "$work/wheel.sqlite" >/dev/null
"$bin/dynbench" report --db "$work/wheel.sqlite" --out "$work/report"
test -s "$work/report/report.md" && test -s "$work/report/report.html"
# the README's worked example: a user's operator through params, MAdds and a short latency
# run against the static ResNet-18 and ODConv, then the report's section on it
cp "$root/examples/input_gain_conv.py" "$work/"
op=(--operator input_gain_conv:InputGainConv2d --operator-name gain --db "$work/op.sqlite")
for suite in params madds; do
    "$bin/dynbench" run --suite $suite "${op[@]}" --models resnet18,resnet18_gain,resnet18_odconv_1x >/dev/null
done
printf '%s\n' 'measures = ["latency"]' 'models = ["resnet18", "resnet18_odconv_1x"]' '[settings]' \
    'rounds = 6' 'max_rounds = 6' 'min_run_time = 0.01' 'block_time = 0.001' 'warmup = 1' \
    'input_size = [3, 64, 64]' >"$work/short.toml"
"$bin/dynbench" run --suite "$work/short.toml" "${op[@]}" >/dev/null
"$bin/dynbench" report --db "$work/op.sqlite" --out "$work/op-report"
sed -n "/^## Your operator beside the papers' operators/,\$p" "$work/op-report/report.md" \
    | grep -E '^\| resnet18_gain +\| +[0-9.]+ \| \[[0-9.]+, [0-9.]+\]' >/dev/null
(cd "$root" && DYNBENCH_BIN="$bin/dynbench" .venv/bin/python -m pytest -q -p no:cacheprovider \
    -m wheel tests/run/test_signals.py tests/results/test_secrets.py)
echo "wheel check passed: $(basename "$work"/dist/dynbench-*.whl) installed, guard, report, the example operator and the wheel tests ran"
