#!/usr/bin/env bash
# The test command: lint, the fast test suite (slow measurements are opt-in: -m slow), then
# the wheel installed into a fresh virtual environment runs the size guard over the whole
# registry (against the committed baseline) and a small report (scripts/check-wheel.sh).
# The store's tests run against SQLite and a real PostgreSQL server: unless
# DYNBENCH_TEST_POSTGRES names one, a throwaway server is started here from PostgreSQL's
# binaries where they exist (scripts/postgres.sh) and stopped on the way out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
if [ -z "${DYNBENCH_TEST_POSTGRES:-}" ] && compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
    read -r pg_dir pg_url < <(bash scripts/postgres.sh start)
    trap 'bash scripts/postgres.sh stop "$pg_dir"' EXIT
    export DYNBENCH_TEST_POSTGRES=$pg_url
fi
.venv/bin/ruff check dynbench tests scripts examples
.venv/bin/ruff format --check dynbench tests scripts examples
.venv/bin/python -m pytest -q "$@"
bash scripts/check-wheel.sh
