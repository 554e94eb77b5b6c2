"""Records of several machines: each claim judged on each machine; --machine selects one;
timings with other options (compile, dtype) beside the papers' setting, never mixed in."""

import json

import pandas as pd
import pytest

from dynbench.errors import DynbenchError
from dynbench.report.machines import select_machine, split_by_machine
from dynbench.report.markdown import environment_line, to_markdown
from dynbench.report.render import build_report
from tests.report.stores import BASE, DYCONV, frame, latency, record

CLAIM = "resnet18_dyconv_4x"


def on_machine(rows: pd.DataFrame, label: str, cpu: str) -> pd.DataFrame:
    env = {
        "cpu": cpu,
        "torch": "2.x",
        "machine": {"cpu": cpu, "cores": 8, "fingerprint": f"{label}-fp-0001"},
        "machine_label": label,
    }
    return rows.assign(environment=json.dumps(env))


def _store(ratio: float, run: str) -> pd.DataFrame:
    return frame(
        BASE,
        DYCONV,
        latency("resnet18", 40.0, run_id=run),
        latency(CLAIM, 40 * ratio, ratio=ratio, low=ratio - 0.01, high=ratio + 0.01, run_id=run),
    )


TWO = pd.concat(
    [on_machine(_store(1.40, "a"), "laptop", "CPU A"), on_machine(_store(1.05, "b"), "ws", "B")],
    ignore_index=True,
)


def _claim_rows(card: pd.DataFrame, latency: str) -> pd.DataFrame:
    """The claims on ResNet-18 DY-Conv that a latency was measured for."""
    mask = card["Claim"].str.contains("DY-Conv") & card["Claim"].str.contains("ResNet-18")
    return card[mask & (card[latency] != "")]


def test_each_claim_is_judged_on_each_machine():
    report = build_report(TWO)
    scorecard = report.sections[0].blocks[1].table.frame
    assert list(scorecard.columns) == [
        "Claim",
        "Paper",
        "Printed",
        "Verdict (laptop)",
        "Deciding (laptop)",
        "Verdict (ws)",
        "Deciding (ws)",
    ]
    rows = _claim_rows(scorecard, "Deciding (laptop)")
    assert not rows.empty
    assert set(rows["Verdict (laptop)"]) == {"holds for MAdds, not for time"}
    assert set(rows["Verdict (ws)"]) == {"holds"}
    assert rows["Deciding (laptop)"].iloc[0] == "latency 1.400× [1.390, 1.410]"
    headings = [b.heading for b in report.sections[0].blocks]
    assert "Why, on laptop" in headings and "Why, on ws" in headings
    titles = [s.title for s in report.sections]
    assert "CPU latency (batch 1, one thread) (laptop)" in titles
    assert "CPU latency (batch 1, one thread) (ws)" in titles
    line = environment_line(report.environment)
    assert "laptop (CPU A; torch 2.x; fingerprint laptop-fp-0001)" in line
    assert "ws (B; torch 2.x; fingerprint ws-fp-0001)" in line
    assert to_markdown(report).count("## Claims scorecard") == 1


def test_machine_selects_one_by_label_or_fingerprint():
    assert len(split_by_machine(TWO)) == 2
    laptop = select_machine(TWO, "laptop")
    assert len(laptop) == len(TWO) // 2
    assert select_machine(TWO, "ws-fp").equals(select_machine(TWO, "ws"))
    report = build_report(laptop)
    assert "Verdict" in report.sections[0].blocks[1].table.frame.columns
    with pytest.raises(DynbenchError, match="matches no machine; accepted .*laptop"):
        select_machine(TWO, "cluster")


def test_records_without_machine_identity_form_one_machine():
    old = frame(BASE, DYCONV, latency("resnet18", 40.0))
    assert len(split_by_machine(old)) == 1


def test_compiled_timings_are_shown_beside_eager_and_do_not_judge_claims():
    eager = _store(1.40, "a")
    compiled = _store(1.10, "c")
    settings = json.dumps({"compile": True, "compile_mode": "default", "dtype": "fp32"})
    timed = compiled["metric"].isin(["latency_ms", "latency_ratio"])
    compiled.loc[timed, "settings"] = settings
    compiled.loc[timed, "measured_at"] = "2026-11-30T00:00:00Z"  # newer than eager
    error = {"error": "Unsupported: dynamic kernel"}
    failed = frame(
        [record("resnet18_odconv_4x", "error", None, "compile", error, json.loads(settings), "c")]
    )
    report = build_report(pd.concat([eager, compiled, failed], ignore_index=True))
    card = report.sections[0].blocks[1].table.frame
    assert set(_claim_rows(card, "Deciding")["Verdict"]) == {"holds for MAdds, not for time"}
    options = next(s for s in report.sections if s.id == "options")
    table = options.blocks[1].table.frame
    assert list(table.columns) == [
        "Model",
        "eager fp32 1 thread",
        "compiled (default) fp32 1 thread",
    ]
    row = table.set_index("Model").loc[CLAIM]
    assert row["eager fp32 1 thread"].startswith("56.00 ms, 1.400× [1.390, 1.410]")
    assert row["compiled (default) fp32 1 thread"].startswith("44.00 ms, 1.100×")
    assert options.blocks[2].bullets == [
        "resnet18_odconv_4x (compiled (default) fp32 1 thread): Unsupported: dynamic kernel"
    ]
    line = environment_line(report.environment)
    assert "timing options: eager fp32 1 thread, compiled (default) fp32 1 thread" in line


def test_an_older_record_joins_the_one_identified_machine_with_its_cpu_gpu_and_torch():
    old = {"cpu": "CPU A", "gpu": None, "torch": "2.13.0+cpu"}
    new = {
        **old,
        "machine": {"cpu": "CPU A", "gpu": None, "torch_build": "2.13.0+cpu cuda none",
                    "fingerprint": "aaaaaaaaaaaa"},
    }  # fmt: skip
    other = {**old, "cpu": "CPU B"}
    rows = frame(latency("resnet18", 40.0, run_id="old"), latency("resnet18", 41.0, run_id="new"))
    rows = rows.assign(environment=[json.dumps(old), json.dumps(new)])
    assert [name for name, _ in split_by_machine(rows)] == ["CPU A"]
    rows = rows.assign(environment=[json.dumps(other), json.dumps(new)])
    assert len(split_by_machine(rows)) == 2  # another CPU: another machine


def test_plots_are_of_the_machine_with_most_measurements_not_the_last_one():
    """A few records from a second machine, measured later, leave the plots to the
    machine that measured nearly everything."""
    many = on_machine(_store(1.40, "a"), "laptop", "CPU A")
    few = on_machine(frame(latency("resnet18", 40.0, run_id="b")), "gpu-box", "B")
    few = few.assign(measured_at="2026-12-01T00:00:00Z")
    report = build_report(pd.concat([many, few], ignore_index=True))
    titles = [s.title for s in report.sections]
    assert "Plots (laptop)" in titles and "Plots (gpu-box)" not in titles


def test_a_machine_that_only_timed_is_judged_with_the_sizes_another_measured():
    """The GPU machine of a team measures throughput only; the size claims (DCD's 25% of
    CondConv's params) are the same there as on the machine that counted the params."""
    sizes = on_machine(frame(BASE, DYCONV), "laptop", "CPU A")
    timed = on_machine(
        frame(
            latency("resnet18", 40.0, run_id="g"),
            latency(CLAIM, 56.0, ratio=1.4, low=1.39, high=1.41, run_id="g"),
        ),
        "gpu-box",
        "CPU G",
    )
    scorecard = build_report(pd.concat([sizes, timed], ignore_index=True)).sections[0]
    card = scorecard.blocks[1].table.frame
    rows = _claim_rows(card, "Deciding (gpu-box)")
    # the MAdds part of the claim comes from the laptop's sizes: not "not measured"
    assert set(rows["Verdict (gpu-box)"]) == {"holds for MAdds, not for time"}
    assert set(rows["Verdict (laptop)"]) == {"not measured"}


def test_a_machine_without_label_is_named_by_its_hardware_in_words():
    env = {
        "cpu": "Intel(R) Xeon(R) Processor",
        "gpu": "NVIDIA H200",
        "torch": "2.11.0+cu128",
        "git_commit": "abc1234",
        "timestamp": "2026-11-29T10:00:00+00:00",
        "machine": {"cpu": "Intel(R) Xeon(R) Processor", "gpu": "NVIDIA H200", "cores": 16,
                    "fingerprint": "5815401896da"},
    }  # fmt: skip
    rows = frame(latency("resnet18", 40.0)).assign(environment=json.dumps(env))
    assert [name for name, _ in split_by_machine(rows)] == ["NVIDIA H200 (16-core Intel Xeon)"]
    line = environment_line(build_report(rows).environment)
    assert line.startswith(
        "Measured on NVIDIA H200 (16-core Intel Xeon) (torch 2.11.0+cu128, commit abc1234, "
        "2026-11-29; fingerprint 5815401896da)"
    )
