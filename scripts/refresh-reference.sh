#!/usr/bin/env bash
# Refresh the reference store shipped with the package (dynbench/reference/reference.sqlite)
# from the committed timing stores of the reference machine: the latency, latency-published,
# train-step and sparsity runs under reports/. 'dynbench report --reference' (on in
# scripts/run.sh) sets a user's figures beside these.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=dynbench/reference/reference.sqlite
stores=(reports/latency/runs.sqlite reports/latency-published/runs.sqlite
    reports/train-step/runs.sqlite reports/sparsity/runs.sqlite)
# one machine only: the reference's timings are compared with a user's as one machine's
machines=$(.venv/bin/python -c "import json, sqlite3, sys
seen = {}
for path in sys.argv[1:]:
    for (env,) in sqlite3.connect(path).execute('select environment from runs'):
        env = json.loads(env)  # older runs name the CPU only
        seen.setdefault(env.get('cpu'), set()).add(path)
print('; '.join(f'{cpu} ({\", \".join(sorted(paths))})' for cpu, paths in seen.items()))
if len(seen) > 1:
    sys.exit(1)" "${stores[@]}") || {
    echo "reference store kept: its stores were measured on several machines: $machines" >&2
    exit 1
}
rm -f "$target"
.venv/bin/dynbench merge "$target" "${stores[@]}"
# compact: no journal, no free pages
.venv/bin/python -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);
c.execute('pragma journal_mode=delete'); c.execute('vacuum')" "$target"
echo "wrote $target ($(du -h "$target" | cut -f1))"
