"""The verdicts a claim can get, the thresholds that decide them, and the rules as the
report states them.

Verdicts: ``holds``, ``holds for MAdds, not for time``, ``does not hold``, three kinds of
``inconclusive`` (the evidence straddles the threshold, every run that would decide is
noisy, or the counters that reproduce the paper's MAdds disagree), and ``not measured``
(the why names the suite that would).

Why these thresholds:

* "negligible extra cost" is judged at ``NEGLIGIBLE`` = +10%: the papers call +1% to +6%
  MAdds negligible, and 10% leaves room for rounding and counting conventions while still
  meaning "hardly more"; the same bound then applies to time, which is what a user pays;
* a printed time or speed ratio "holds" when our interval does not lie beyond it by more
  than ``RATIO_TOLERANCE`` (5%): other hardware, and the papers print 2-3 digits;
* a compactness claim ("only X% of the parameters") holds when our fraction is at most
  X plus ``FRACTION_TOLERANCE`` (5 points): parameter counts are exact, the papers round.
"""

from __future__ import annotations

NEGLIGIBLE = 0.10


RATIO_TOLERANCE = 0.05


FRACTION_TOLERANCE = 0.05


HOLDS = "holds"


MADDS_ONLY = "holds for MAdds, not for time"


FAILS = "does not hold"


NOISY = "inconclusive (noisy)"


STRADDLES = "inconclusive (straddles)"


COUNTERS_DISAGREE = "inconclusive (counters disagree)"


UNMEASURED = "not measured"


INCONCLUSIVE = (NOISY, STRADDLES, COUNTERS_DISAGREE)


# the order a tally lists them in
VERDICTS = (HOLDS, MADDS_ONLY, FAILS, *INCONCLUSIVE, UNMEASURED)


EVIDENCE_RULE = (
    "Every stored run of a ratio is evidence (its 95% interval, or its value where it has "
    "none). A verdict is drawn when every run lies on one side of the threshold; a run whose "
    "interval straddles it, or runs on opposite sides, leave the claim inconclusive "
    "(straddles), saying by how much. A noisy run may confirm a side only together with a "
    "quiet run on that side; when every run is noisy the claim is inconclusive (noisy). The "
    "why names the runs used."
)


VERDICT_RULES = [
    ("Evidence", EVIDENCE_RULE),
    (
        "Negligible extra cost (ODConv tables)",
        f"MAdds are judged by the counter that reproduces the paper's own MAdds table in the "
        f"reproduction matrix (the others are shown beside it; if several reproduce it equally "
        f"and disagree on the side of +{NEGLIGIBLE:.0%}, the claim is inconclusive (counters "
        f"disagree)). Holds when that MAdds overhead and every run's CPU latency overhead are "
        f"at most +{NEGLIGIBLE:.0%}; holds for MAdds, not for time when every run's latency "
        f"overhead is above it; does not hold when the MAdds overhead is above it.",
    ),
    (
        "Time overhead (DCD section 5.5)",
        f"holds when every run's latency ratio is at most the printed ratio plus "
        f"{RATIO_TOLERANCE:.0%}; does not hold when every run's is above that.",
    ),
    (
        "Compactness (DCD section 5.3)",
        f"holds when our parameter fraction is at most the printed one plus "
        f"{FRACTION_TOLERANCE:.0%} points.",
    ),
    (
        "Speed table (ODConv)",
        f"two halves, each judged on its own: the CPU half holds when every run's latency ratio "
        f"is at most the printed CPU slowdown plus {RATIO_TOLERANCE:.0%}; the GPU half holds "
        f"when every run's throughput ratio is at least the printed one minus "
        f"{RATIO_TOLERANCE:.0%}. Combined: does not hold if a half does not, holds if every "
        f"measured half holds, otherwise inconclusive.",
    ),
    (
        "Spatial speed-up (spatial DynConv)",
        f"holds when, at some measured mask density strictly between 0 and 1, the upper end of "
        f"a quiet sparse execution's latency-ratio interval to dense execution is at most the "
        f"printed ratio plus {RATIO_TOLERANCE:.0%}; does not hold when the lower end is above "
        f"that at every such density and no noisy timing reaches down to it (else no verdict: "
        f"a quiet run would settle it); otherwise the intervals straddle it.",
    ),
    (
        "Training time (DY-Conv reproduction)",
        f"holds when the printed ratio lies within every run's training-step interval widened "
        f"by {RATIO_TOLERANCE:.0%} on each side; does not hold when it lies outside every "
        f"run's on the same side.",
    ),
]


# the command that measures what a claim of each kind needs, for "not measured" verdicts
MEASURED_BY = {
    "cost": "dynbench run --suite latency-published",
    "time": "dynbench run --suite latency-published",
    "speed": "dynbench run --suite latency-published; dynbench run --suite throughput (CUDA)",
    "train": "dynbench run --suite train-step",
    "compact": "dynbench run --suite published",
    "spatial": "dynbench run --suite sparsity",
}


SUITE_HINT = {
    "latency": "latency (dynbench run --suite latency-published, or --models)",
    "train": "training step (dynbench run --suite train-step)",
    "sizes": "params and MAdds (dynbench run --suite published)",
    "spatial": "spatial DynConv's sparsity suite (dynbench run --suite sparsity)",
}


COUNTER_NAMES = {"conv_linear": "conv+FC"}
