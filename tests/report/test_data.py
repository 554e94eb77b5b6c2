"""The newest record of each measurement."""

import pandas as pd

from dynbench.report.data import latest


def test_latest_of_records_stored_at_the_same_instant_is_the_one_stored_last():
    # enough rows that pandas' default (unstable) sort reorders ties
    stamps = [f"2026-11-30T07:00:0{i % 6}Z" for i in range(500)]
    frame = pd.DataFrame(
        {
            "model": ["m"] * 500,
            "metric": ["params"] * 500,
            "method": ["count"] * 500,
            "value": [float(i) for i in range(500)],
            "measured_at": stamps,
        }
    )
    newest = latest(frame)
    # the last row with the newest stamp (…05Z) is row 497
    assert newest["value"].tolist() == [497.0]
