#!/usr/bin/env python3
"""Compare two ``dynbench run --json`` exports of a size suite, record by record.

A change meant to make the madds sweep faster must not change one figure. This
checks every (model, metric, method) of BEFORE against AFTER: the value exactly,
and the settings and detail (skipped ops, extra ops, breakdown, spread) exactly,
and that both hold the same records in the same order. Exit 0 when identical,
1 with one line per difference otherwise, and a last line that counts them by field
(each detail entry its own field) and counter, e.g. that only fvcore's skipped ops moved.

    python scripts/compare-madds.py before.json after.json
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

Key = tuple[str, str, str]


def load(path: Path) -> tuple[list[Key], dict[Key, dict]]:
    rows = json.loads(path.read_text())
    keys = [(r["model"], r["metric"], r["method"]) for r in rows]
    by_key = {}
    for key, row in zip(keys, rows, strict=True):
        if key in by_key:
            raise SystemExit(f"{path}: {key} appears twice")
        by_key[key] = {k: v for k, v in row.items() if k != "run_id"}
    return keys, by_key


def differences(before: Path, after: Path) -> tuple[list[str], Counter[str]]:
    """One line per difference, and their count by field and counter."""
    order_a, rows_a = load(before)
    order_b, rows_b = load(after)
    lines = [f"only in {before}: {k}" for k in order_a if k not in rows_b]
    lines += [f"only in {after}: {k}" for k in order_b if k not in rows_a]
    kinds: Counter[str] = Counter("record only in one file" for _ in lines)
    for key in order_a:
        if key not in rows_b:
            continue
        for field, a, b in _fields(rows_a[key], rows_b[key]):
            if a != b:
                lines.append(f"{key} {field}: {a!r} != {b!r}")
                kinds[f"{field} ({key[2]})"] += 1
    if not lines and order_a != order_b:
        lines.append("same records in a different order")
        kinds["order"] += 1
    return lines, kinds


def _fields(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(name, before, after) of every field, a detail dict's entries one by one."""
    out = []
    for field in sorted(set(a) | set(b)):
        x, y = a.get(field), b.get(field)
        if field == "detail" and isinstance(x, dict) and isinstance(y, dict):
            out += [(f"detail.{k}", x.get(k), y.get(k)) for k in sorted(set(x) | set(y))]
        else:
            out.append((field, x, y))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    before, after = map(Path, argv)
    lines, kinds = differences(before, after)
    for line in lines:
        print(line)
    count = len(load(before)[0])
    if not lines:
        print(f"{count} records compared: identical")
    else:
        by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        print(f"{count} records compared: {len(lines)} differences: {by_kind}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
