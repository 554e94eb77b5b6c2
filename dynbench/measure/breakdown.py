"""Per-module params and MAdds, and everything else ``dynbench inspect`` shows."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from dynbench.measure.library_counters import fvcore_analysis
from dynbench.measure.madds import MaddsResult, count_madds
from dynbench.measure.params import count_params
from dynbench.measure.shape_counters import conv_linear_by_module
from dynbench.measure.weights import weight_bytes


def module_breakdown(model: nn.Module, x: torch.Tensor, depth: int = 2) -> pd.DataFrame:
    """One row per module up to ``depth`` dots deep: params, conv+linear and fvcore MAdds."""
    model.eval()
    leaf_madds = conv_linear_by_module(model, x)
    with fvcore_analysis(model, x) as analysis:
        fvcore_by_module = analysis.by_module()
    rows = []
    for name, module in model.named_modules():
        level = 0 if not name else name.count(".") + 1
        if level > depth:
            continue
        prefix = f"{name}." if name else ""
        conv_linear = sum(
            v for k, v in leaf_madds.items() if k == name or not name or k.startswith(prefix)
        )
        rows.append(
            {
                "module": name or "(total)",
                "type": type(module).__name__,
                "params": sum(p.numel() for p in module.parameters()),
                "madds_conv_linear": conv_linear,
                "madds_fvcore": int(fvcore_by_module.get(name, 0)),
            }
        )
    frame = pd.DataFrame(rows)
    total = frame.loc[0, "madds_conv_linear"] or 1
    frame["share_%"] = (100 * frame["madds_conv_linear"] / total).round(2)
    return frame


@dataclass(frozen=True)
class Inspection:
    """One model looked at from every side: modules, params, counters, weight bytes."""

    title: str
    modules: pd.DataFrame
    params: dict[str, int]
    madds: MaddsResult
    weight_bytes: tuple[int, int]  # read per image, and by the static model of its shapes


def inspect_model(model: nn.Module, x: torch.Tensor, depth: int, title: str) -> Inspection:
    return Inspection(
        title=title,
        modules=module_breakdown(model, x, depth),
        params=count_params(model),
        madds=count_madds(model, x),
        weight_bytes=weight_bytes(model),
    )
