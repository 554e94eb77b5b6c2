"""The compiled loops' build (dynbench.ops.compiled): built once for all loops, named for the
CPU, a failed build said once and the ops left running, and the switch and the watchers
(counters, traces, autograd) decide where a loop may run."""

from __future__ import annotations

import pytest
import torch

from dynbench.ops import compiled


def test_one_build_holds_every_loop(switched_on):
    module = compiled.built()
    assert compiled.built() is module  # built once
    assert callable(module.branch_logits) and callable(module.mask_logits)


def test_a_failed_build_warns_once_and_answers_none(monkeypatch):
    monkeypatch.setenv(compiled.SWITCH, "1")
    monkeypatch.setattr(compiled, "_BUILT", {})

    def no_compiler(*args, **kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(torch.utils.cpp_extension, "load_inline", no_compiler)
    with pytest.warns(UserWarning, match="did not build .Ninja"):
        assert compiled.built() is None
    assert compiled.built() is None  # no second build, no second warning (filtered: an error)
    assert compiled._BUILT == {"module": None}


def test_the_switch_and_the_watchers_decide_where_a_loop_applies(monkeypatch):
    x = torch.randn(1, 8, 4, 4)
    monkeypatch.setenv(compiled.SWITCH, "1")
    assert compiled.applies(x)
    assert not compiled.applies(x.double())
    weight = torch.randn(8, requires_grad=True)
    assert not compiled.applies(x * weight.view(1, 8, 1, 1))  # autograd must see the ops
    with torch.no_grad():
        assert compiled.applies(x * weight.view(1, 8, 1, 1))
    monkeypatch.setenv(compiled.SWITCH, "0")
    assert not compiled.applies(x)


def test_the_build_is_named_for_this_cpu(monkeypatch, tmp_path):
    """-march=native: a cache shared between machines must not hand one CPU another's build,
    so two CPUs with other instruction sets get builds of other names."""
    tag = compiled.cpu_tag()
    assert tag == compiled.cpu_tag() and len(tag) == 10
    cpuinfo = tmp_path / "cpuinfo"

    def tag_for(text: str) -> str:
        cpuinfo.write_text(text)
        monkeypatch.setattr(compiled, "Path", lambda _: cpuinfo)
        return compiled.cpu_tag()

    xeon = tag_for("model name\t: Intel(R) Xeon(R)\nflags\t\t: fpu avx2 avx512f\n")
    epyc = tag_for("model name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\n")
    assert xeon != epyc
    assert tag_for("model name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2\nbogomips\t: 1\n") == epyc


def test_a_loop_runs_only_where_what_it_reads_beside_the_map_has_the_maps_dtype(switched_on):
    x = torch.randn(1, 8, 4, 4)
    assert compiled.loops_for(x, None, torch.rand(8)) is compiled.built()
    assert compiled.loops_for(x, torch.rand(8, dtype=torch.float64)) is None
    assert compiled.operand(None).numel() == 0
    assert compiled.operand(x.transpose(2, 3)).is_contiguous()


def test_a_loop_steps_aside_where_what_it_reads_beside_the_map_wants_a_gradient(switched_on):
    """A loop records no gradient: a weight it would read while autograd records (training
    with an input that itself needs none) sends the call to PyTorch's ops."""
    x = torch.randn(1, 8, 4, 4)
    weight = torch.rand(8, requires_grad=True)
    assert compiled.loops_for(x, weight) is None
    with torch.no_grad():
        assert compiled.loops_for(x, weight) is compiled.built()
    with torch.inference_mode():
        assert compiled.loops_for(x, weight) is compiled.built()
