"""One judge per kind of claim: how the evidence (:class:`~dynbench.report.evidence.Measured`)
becomes a verdict, why, and the number that decided it (the rules in
:data:`dynbench.report.verdicts.VERDICT_RULES`)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from dynbench.report.evidence import Judgement, Measured, Run, limit_place, settle
from dynbench.report.verdicts import (
    COUNTER_NAMES,
    COUNTERS_DISAGREE,
    FAILS,
    FRACTION_TOLERANCE,
    HOLDS,
    INCONCLUSIVE,
    MADDS_ONLY,
    NEGLIGIBLE,
    NOISY,
    RATIO_TOLERANCE,
    STRADDLES,
    SUITE_HINT,
    UNMEASURED,
)
from dynbench.results.names import COUNTERS


def pct(ratio: float | None) -> str:
    return "" if ratio is None or pd.isna(ratio) else f"{100 * (ratio - 1):+.1f}%"


def _newest(runs: tuple[Run, ...]) -> str:
    if not runs:
        return ""
    more = f" ({len(runs)} runs: {min(r.value for r in runs):.3f}-{max(r.value for r in runs):.3f})"
    return runs[-1].text() + (more if len(runs) > 1 else "")


def _madds_side(claim, m: Measured) -> tuple[str | None, str, str]:
    """(side of +10% the judging counters put the overhead on, None: they disagree or none
    is stored; why; the deciding number)."""
    ratios = {c: m.madds_ratio(c) for c in COUNTERS if m.madds_ratio(c) is not None}
    judged = {c: ratios[c] for c in m.madds_judges if c in ratios}
    if not judged:
        return None, f"no MAdds stored: run {SUITE_HINT['sizes']}", ""
    sides = {c: "above" if r - 1 > NEGLIGIBLE else "within" for c, r in judged.items()}
    shown = ", ".join(f"{COUNTER_NAMES.get(c, c)} {pct(r)}" for c, r in judged.items())
    others = {c: r for c, r in ratios.items() if c not in judged}
    beside = ", ".join(f"{COUNTER_NAMES.get(c, c)} {pct(r)}" for c, r in others.items())
    text = f"MAdds {shown} (printed {pct(claim.printed_madds_ratio)}; {m.madds_table})"
    if beside:
        text += f"; other counters: {beside}"
    other_sides = {"above" if r - 1 > NEGLIGIBLE else "within" for r in others.values()}
    if len(set(sides.values())) > 1:
        return None, f"{text}: the reproducing counters disagree on +{NEGLIGIBLE:.0%}", shown
    side = next(iter(sides.values()))
    if other_sides - {side}:
        text += f"; counters disagree on the side of +{NEGLIGIBLE:.0%}"
    return side, text, f"MAdds {shown}"


def judge_cost(claim, m: Measured) -> Judgement:
    """MAdds by the counter that reproduces the paper's own table; then every run's time."""
    side, size, deciding = _madds_side(claim, m)
    if side is None:
        return Judgement(COUNTERS_DISAGREE if deciding else UNMEASURED, size, deciding)
    if side == "above":
        return Judgement(FAILS, f"{size}: above +{NEGLIGIBLE:.0%}", deciding)
    if not m.latency:
        why = f"{size}; time not measured: run {SUITE_HINT['latency']}"
        return Judgement(UNMEASURED, why, deciding)
    limit = 1 + NEGLIGIBLE
    settled = settle(m.latency, limit_place(limit), f"{limit:.2f}× (+{NEGLIGIBLE:.0%})")
    why = f"{size}; latency {_newest(m.latency)}: {settled.text}"
    deciding = f"latency {_newest(m.latency)}"
    verdict = {"at or below": HOLDS, "above": MADDS_ONLY}.get(settled.side or "")
    return Judgement(verdict or (NOISY if settled.noisy else STRADDLES), why, deciding)


def _ratio_half(runs: tuple[Run, ...], printed: float, what: str) -> Judgement | None:
    """None when not measured; else whether our ratio is not above the printed one."""
    if not runs:
        return None
    limit = printed * (1 + RATIO_TOLERANCE)
    settled = settle(runs, limit_place(limit), f"printed {printed:.2f}× + 5% = {limit:.3f}×")
    verdict = {"at or below": HOLDS, "above": FAILS}.get(settled.side or "")
    verdict = verdict or (NOISY if settled.noisy else STRADDLES)
    return Judgement(verdict, f"{what} {_newest(runs)}: {settled.text}", f"{what} {_newest(runs)}")


def judge_time(claim, m: Measured) -> Judgement:
    result = _ratio_half(m.latency, claim.printed_ratio, "latency")
    if result is None:
        return Judgement(UNMEASURED, f"run {SUITE_HINT['latency']}")
    madds = m.madds_ratio("analytic")
    if madds is not None:
        result.why += f"; analytic MAdds {pct(madds)} here"
    return result


def judge_compact(claim, m: Measured) -> Judgement:
    fraction = m.ratio(m.params, m.params_ref)
    if fraction is None:
        return Judgement(UNMEASURED, f"run {SUITE_HINT['sizes']}")
    text = f"{fraction:.0%} of the parameters here (printed {claim.printed_ratio:.0%})"
    verdict = HOLDS if fraction <= claim.printed_ratio + FRACTION_TOLERANCE else FAILS
    return Judgement(verdict, text, f"params {fraction:.0%}")


def _gpu_half(runs: tuple[Run, ...], printed: float) -> Judgement | None:
    if not runs:
        return None
    limit = printed * (1 - RATIO_TOLERANCE)

    def place(run: Run) -> str | None:
        return "at or above" if run.value >= limit else "below"

    settled = settle(runs, place, f"printed {printed:.2f}× - 5% = {limit:.3f}×")
    verdict = {"at or above": HOLDS, "below": FAILS}.get(settled.side or "")
    verdict = verdict or (NOISY if settled.noisy else STRADDLES)
    what = f"GPU throughput {_newest(runs)}"
    return Judgement(verdict, f"{what}: {settled.text}", what)


def combined(halves: list[Judgement]) -> str:
    """Does not hold if a half does not; holds if every half holds; else the first
    inconclusive half's verdict."""
    verdicts = [h.verdict for h in halves]
    if FAILS in verdicts:
        return FAILS
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return next(v for v in verdicts if v in INCONCLUSIVE)


def judge_speed(claim, m: Measured) -> Judgement:
    cpu = _ratio_half(m.latency, claim.printed_ratio, "CPU latency")
    gpu = _gpu_half(m.gpu, claim.printed_gpu_ratio)
    halves = {k: h for k, h in (("CPU", cpu), ("GPU", gpu)) if h is not None}
    if not halves:
        return Judgement(UNMEASURED, f"run {SUITE_HINT['latency']}; GPU: --suite throughput")
    why = "; ".join(f"{k}: {h.why}" for k, h in halves.items())
    if gpu is None:
        why += "; GPU not measured (throughput suite, needs CUDA)"
    if cpu is None:
        why += f"; CPU not measured ({SUITE_HINT['latency']})"
    deciding = "; ".join(h.deciding for h in halves.values())
    shown = {"CPU": UNMEASURED, "GPU": UNMEASURED} | {k: h.verdict for k, h in halves.items()}
    return Judgement(combined(list(halves.values())), why, deciding, shown)


def judge_train(claim, m: Measured) -> Judgement:
    if not m.train:
        return Judgement(UNMEASURED, f"run {SUITE_HINT['train']}")
    printed = claim.printed_ratio

    def place(run: Run) -> str | None:
        if run.hi * (1 + RATIO_TOLERANCE) < printed:
            return "below"
        return "above" if run.lo * (1 - RATIO_TOLERANCE) > printed else "around"

    settled = settle(m.train, place, f"the printed {printed:.1f}× (±5%)")
    ours = f"training step {_newest(m.train)}"
    why = f"{ours}: {settled.text}"
    if settled.side in ("below", "above"):
        return Judgement(FAILS, f"{why} (CPU step at the suite's batch, not a whole GPU run)", ours)
    if settled.side == "around":
        return Judgement(HOLDS, why, ours)
    return Judgement(NOISY if settled.noisy else STRADDLES, why, ours)


def judge_spatial(claim, m: Measured) -> Judgement:
    """Holds when, at some measured density strictly between 0 and 1, sparse execution is at
    least as fast as the printed speed-up says (its ratio to dense within the printed one
    plus 5%); fails when every such density's interval lies above that, and no noisy timing
    reaches down to it (a noisy timing decides nothing either way: a quiet density far from
    the speed-up must not outvote noisy ones that may show it); density 0 computes no
    position at all and proves nothing."""
    sparse = m.spatial[m.spatial["execution"] == "sparse"] if not m.spatial.empty else m.spatial
    # a speed-up needs some positions computed and some skipped: 0 < density < 1
    if not sparse.empty:
        sparse = sparse[(sparse["density"] > 0) & (sparse["density"] < 1)]
    if sparse.empty:
        return Judgement(UNMEASURED, f"needs {SUITE_HINT['spatial']}")
    quiet = sparse[~sparse["noisy"]]
    if quiet.empty:
        return Judgement(NOISY, f"every sparse timing is noisy: {sparse['quality'].iloc[0]}")
    best = quiet.loc[quiet["high"].astype(float).idxmin()]
    text = (
        f"sparse {best['ratio']:.3f}× [{best['low']:.3f}, {best['high']:.3f}] of dense at "
        f"density {best['density']:g} ({best['mask']} masks) vs printed {claim.printed_ratio:.2f}×"
    )
    deciding = f"sparse {best['ratio']:.3f}× [{best['low']:.3f}, {best['high']:.3f}]"
    limit = claim.printed_ratio * (1 + RATIO_TOLERANCE)
    if best["high"] <= limit:
        return Judgement(HOLDS, text, deciding)
    if (quiet["low"].astype(float) > limit).all():
        noisy = sparse[sparse["noisy"]]
        reach = noisy["low"].astype(float).fillna(noisy["ratio"].astype(float))
        if not (reach <= limit).any():
            return Judgement(FAILS, text, deciding)
        hopeful = noisy[reach <= limit].iloc[0]
        why = (
            f"{text}; a noisy timing reaches below the printed ratio + 5% ({limit:.3f}×): "
            f"{hopeful['ratio']:.3f}× at density {hopeful['density']:g} ({hopeful['mask']} masks), "
            f"{hopeful['quality']}; a quiet run would settle it"
        )
        return Judgement(NOISY, why, deciding)
    by = best["high"] - limit
    why = f"{text}: its interval straddles the printed ratio + 5% ({limit:.3f}×) by {by:.3f}"
    return Judgement(STRADDLES, why, deciding)


JUDGES: dict[str, Callable[[object, Measured], Judgement]] = {
    "cost": judge_cost,
    "time": judge_time,
    "compact": judge_compact,
    "speed": judge_speed,
    "train": judge_train,
    "spatial": judge_spatial,
}
