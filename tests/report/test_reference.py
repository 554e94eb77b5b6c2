"""Your machine beside the reference machine's committed figures."""

import json

import pandas as pd

from dynbench.report.reference import beside_reference, reference_frame, reference_line
from dynbench.report.render import build_report
from tests.report.stores import BASE, DYCONV, frame, latency

CLAIM = "resnet18_dyconv_4x"


def _timed(ratio, low, high, cpu):
    env = json.dumps({"cpu": cpu, "machine": {"cpu": cpu, "cores": 2, "fingerprint": cpu[:12]}})
    rows = frame(latency("resnet18", 40.0), latency(CLAIM, 40 * ratio, ratio=ratio, low=low,
                                                    high=high))  # fmt: skip
    return rows.assign(environment=env)


def test_ratios_apart_with_disjoint_intervals_differ_beyond_noise():
    timed = _timed(1.44, 1.43, 1.45, "AMD EPYC")
    sizes = frame(BASE, DYCONV).assign(environment=timed["environment"].iloc[0])
    yours = pd.concat([sizes, timed], ignore_index=True)
    table, name = beside_reference(yours, _timed(1.62, 1.61, 1.63, "Intel Xeon"))
    assert name == "2-core Intel Xeon"
    row = table.set_index("Claim").loc["DY-Conv (4×) on ResNet-18: negligible cost"]
    assert row["Yours"] == "holds for MAdds, not for time: 1.440× [1.430, 1.450]"
    assert row["Reference"] == "holds for MAdds, not for time: 1.620× [1.610, 1.630]"
    assert row["Difference"] == "-11.1% (beyond noise)"
    assert reference_line(table, name).startswith("Reference (2-core Intel Xeon): 1 claims")
    close, _ = beside_reference(yours, _timed(1.45, 1.44, 1.46, "Intel Xeon"))
    assert close["Difference"].iloc[0] == "-0.7% (within noise)"
    report = build_report(yours, _timed(1.62, 1.61, 1.63, "Intel Xeon"))
    assert report.sections[1].id == "reference"
    assert report.others[-1].endswith(
        "1 differ, e.g. DY-Conv (4×) on ResNet-18: negligible cost -11.1%"
    )


def test_the_reference_store_ships_with_the_package():
    reference = reference_frame()
    assert {"latency_ratio", "train_step_ratio"} <= set(reference["metric"])
