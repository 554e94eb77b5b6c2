"""The report's section on a user's operator, from a constructed store: the papers' operators
beside it, 'unavailable' where it declares no analytic count, ratios with their quality, the
GPU ratio, and a place on the plot only for a quiet timing."""

from dataclasses import replace

import pytest

from dynbench.models.identity import stored_models
from dynbench.report.user_operator import comparison_table, position_bullets
from tests.report.stores import BASE, DYCONV, frame, latency, record

MINE = {"family": "resnet18", "operator": "mine", "source": "ops:Mine", "user_operator": "blocks"}


def mine_sizes(settings=MINE):
    unavailable = {"error": "AnalyticUnavailable: analytic count unavailable: Mine (at x)"}
    rows = [
        record("resnet18_mine", "params", 12_000_000, "count", settings=settings),
        record("resnet18_mine", "madds", 1_900_000_000, "conv_linear", settings=settings),
        record("resnet18_mine", "madds", None, "analytic", unavailable, settings),
    ]
    return rows


def gpu(model, images_per_s, spread=0.01):
    return [record(model, "gpu_images_per_s", images_per_s, "cuda", {"spread": spread})]


def mine_latency(ratio, low, high, iqr=0.04):
    rows = latency("resnet18_mine", 22.0, iqr=iqr, ratio=ratio, low=low, high=high)
    return [
        replace(row, record=replace(row.record, settings={**row.record.settings, **MINE}))
        for row in rows
    ]


def store(*extra):
    return frame(
        BASE,
        DYCONV,
        mine_sizes(),
        latency("resnet18", 20.0),
        latency("resnet18_dyconv_4x", 30.0, ratio=1.5, low=1.49, high=1.51),
        gpu("resnet18", 1000.0),
        gpu("resnet18_mine", 800.0),
        *extra,
    )


@pytest.mark.parametrize(("iqr", "placed"), [(0.04, True), (0.2, False)])
def test_section_table_and_place(iqr, placed):
    records = store(mine_latency(1.1, 1.09, 1.11, iqr))
    with stored_models(records["model"], records["settings"]):
        table = comparison_table(records, "resnet18", ["resnet18_mine"])
        bullets = position_bullets(table, ["resnet18_mine"])
    rows = table.set_index("Model")
    assert list(rows.index) == ["resnet18", "resnet18_dyconv_4x", "resnet18_mine"]
    assert rows.loc["resnet18_mine", "Operator"] == "yours"
    assert rows.loc["resnet18_mine", "MAdds analytic"] == "unavailable"
    assert rows.loc["resnet18_mine", "GPU ×"] == pytest.approx(0.8)
    assert rows.loc["resnet18_mine", "95% CI"] == "[1.090, 1.110]"
    # the analytic count is unavailable: the plot's x falls back to conv+FC, said so
    assert rows.loc["resnet18_mine", "MAdds basis"] == "conv_linear"
    assert rows.loc["resnet18_mine", "MAdds overhead %"] == pytest.approx(
        100 * (1_900_000_000 / 1_814_073_344 - 1)
    )
    if placed:
        assert bullets == [
            "resnet18_mine: MAdds +4.7% (conv_linear), CPU latency +10.0% [1.090, 1.110]; of "
            "the 1 papers' models placed on this backbone, 1 cost more latency over the "
            "baseline and 0 less."
        ]
    else:
        assert rows.loc["resnet18_mine", "Timing"] == "resnet18_mine: IQR 20% of the median"
        assert bullets == [
            "resnet18_mine: not placed on the plot (resnet18_mine: IQR 20% of the median)."
        ]
