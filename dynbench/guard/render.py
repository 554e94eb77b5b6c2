"""What the guard shows: terminal tables, a GitHub job summary, a JSON result."""

from __future__ import annotations

import json

from rich.console import Console

from dynbench.guard.check import GuardResult
from dynbench.report.terminal import rich_table

UNITS = "params in parameters, MAdds = conv+linear multiply-adds"


def print_check(out: Console, result: GuardResult, allow_new: bool, allow_removed: bool) -> None:
    """The drifted figures, then the new and removed models and whether they fail."""
    if not result.drifted.empty:
        out.print(
            rich_table(
                result.drifted, title="params / MAdds drifted from the baseline", caption=UNITS
            )
        )
    for label, names, allowed in (
        ("new", result.added, allow_new),
        ("removed", result.removed, allow_removed),
    ):
        if names:
            state = "allowed" if allowed else "fails: pass --allow-" + label
            out.print(f"{label} models ({state}): {', '.join(names)}")


def print_update(out: Console, result: GuardResult) -> None:
    """What an update changed in the baseline."""
    if not result.drifted.empty:
        out.print(rich_table(result.drifted, title="changed since the previous baseline"))
    for name in result.added:
        out.print(f"added {name}")
    for name in result.removed:
        out.print(f"removed {name}")


def json_summary(
    result: GuardResult, current: dict[str, dict], failed: bool, tolerance_pct: float
) -> str:
    return (
        json.dumps(
            {
                "passed": not failed,
                "checked": result.checked,
                "seconds": round(result.seconds, 2),
                "tolerance_pct": tolerance_pct,
                "drifted": result.drifted.to_dict(orient="records"),
                "added": result.added,
                "removed": result.removed,
                "current": current,
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )


def markdown_summary(result: GuardResult, failed: bool, tolerance_pct: float) -> str:
    """GitHub-flavoured markdown for a CI job summary."""
    verdict = "❌ size regression" if failed else "✅ params and MAdds match the baseline"
    lines = [
        f"## dynbench guard: {verdict}",
        "",
        f"{result.checked} models checked in {result.seconds:.1f} s, tolerance "
        f"{tolerance_pct}% (params in parameters, MAdds = conv+linear multiply-adds at batch 1).",
        "",
    ]
    if not result.drifted.empty:
        lines += [result.drifted.to_markdown(index=False, intfmt=","), ""]
    if result.added:
        lines += [
            "New models (not in the baseline): " + ", ".join(f"`{m}`" for m in result.added),
            "",
        ]
    if result.removed:
        lines += [
            "Removed models (in the baseline only): " + ", ".join(f"`{m}`" for m in result.removed),
            "",
        ]
    return "\n".join(lines)
