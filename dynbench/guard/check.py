"""Compare current figures with the baseline and describe the differences."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from dynbench.results.names import SIZE_METRICS


@dataclass
class GuardResult:
    drifted: pd.DataFrame  # one row per (model, metric) outside the tolerance
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    checked: int = 0
    seconds: float = 0.0

    def failed(self, allow_new: bool, allow_removed: bool) -> bool:
        return (
            not self.drifted.empty
            or (bool(self.added) and not allow_new)
            or (bool(self.removed) and not allow_removed)
        )


def compare(
    baseline: dict[str, dict],
    current: dict[str, dict],
    tolerance_pct: float,
    selected_only: bool,
) -> GuardResult:
    """``selected_only``: models absent from the selection are not 'removed'."""
    rows = []
    for name in sorted(set(baseline) & set(current)):
        for metric in SIZE_METRICS:
            old, new = baseline[name][metric], current[name][metric]
            delta = new - old
            pct = 100.0 * delta / old if old else (0.0 if not delta else float("inf"))
            if abs(pct) > tolerance_pct:
                rows.append(
                    {
                        "model": name,
                        "metric": metric,
                        "baseline": old,
                        "current": new,
                        "delta": delta,
                        "delta_%": round(pct, 4),
                    }
                )
    columns = ["model", "metric", "baseline", "current", "delta", "delta_%"]
    return GuardResult(
        drifted=pd.DataFrame(rows, columns=columns),
        added=sorted(set(current) - set(baseline)),
        removed=[] if selected_only else sorted(set(baseline) - set(current)),
        checked=len(current),
    )
