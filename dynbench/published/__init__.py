"""The papers' published efficiency numbers, as data (``published.csv``).

Every row of every efficiency table in the seed papers and reports, with the
registry model it corresponds to (empty if dynbench does not build it) and a
note on conflicts between papers. Printed strings are kept as printed ("22.88M")
so that a comparison can honour the printed precision; parsed values and the
size of one unit in the last printed digit are added as columns.
"""

from __future__ import annotations

import importlib.resources
from decimal import Decimal

import pandas as pd

SUFFIX = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_printed(text: str) -> tuple[float | None, float | None]:
    """'22.88M' -> (22_880_000.0, 10_000.0): the value and one unit of its last digit."""
    text = (text or "").strip().replace(",", "")
    if not text or text[-1] not in SUFFIX:
        return None, None
    scale = SUFFIX[text[-1]]
    try:
        number = Decimal(text[:-1])
    except ArithmeticError:
        return None, None
    exponent = number.as_tuple().exponent
    step = Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
    return float(number * scale), float(step * scale)


def load_published() -> pd.DataFrame:
    """All published rows; adds params_value/params_step and madds_value/madds_step."""
    path = importlib.resources.files("dynbench.published").joinpath("published.csv")
    with importlib.resources.as_file(path) as csv_path:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    for column in ("params", "madds"):
        parsed = frame[column].map(parse_printed)
        frame[f"{column}_value"] = [p[0] for p in parsed]
        frame[f"{column}_step"] = [p[1] for p in parsed]
    return frame


def published_models() -> list[str]:
    """Registry names that some published row refers to."""
    return sorted({m for m in load_published()["model"] if m})
