"""How each printed table counts its params: one convention per table section.

A printed "11.1M" depends on three choices the papers do not state: the unit (10^6 or
2^20), whether the classifier is counted, and whether the last digit is rounded half-up
or truncated. ``conventions.csv`` declares, for every section of a seed table that has its
own static (baseline) row, the convention that reproduces that baseline row exactly; the
convention then applies to every row of the section. A section whose baseline fits no
convention says so (``unit`` = ``none``) and is compared under the default one. The
declaration is checked against the baseline's measurement wherever it is measured
(:func:`calibrate`), and a convention is never chosen for a single row.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pandas as pd

from dynbench.results.details import CounterDetail
from dynbench.results.names import MADDS_PARTS

UNITS = {"10^6": 10**6, "2^20": 2**20}
ROUNDINGS = {"half-up": ROUND_HALF_UP, "truncate": ROUND_DOWN}


@dataclass(frozen=True)
class Convention:
    """A params counting convention: unit, classifier counted or not, rounding."""

    unit: str = "10^6"
    classifier: str = "in"
    rounding: str = "half-up"

    def __post_init__(self) -> None:
        if self.unit not in UNITS or self.classifier not in ("in", "out"):
            raise ValueError(f"unknown params convention {self}")
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"unknown rounding {self.rounding!r}: one of {list(ROUNDINGS)}")

    @property
    def metric(self) -> str:
        """The measured params metric this convention reads."""
        return "params" if self.classifier == "in" else "params_no_classifier"

    def printed_scale(self, count: float) -> float:
        """A count in the printed figures' scale: millions of this convention's unit, x 10^6
        (so that it compares with a parsed "11.1M", 11,100,000)."""
        return count * 10**6 / UNITS[self.unit]

    def departures(self) -> int:
        """How many of the three choices differ from the default (10^6, in, half-up)."""
        return sum(a != b for a, b in zip(self.key(), DEFAULT.key(), strict=True))

    def key(self) -> tuple[str, str, str]:
        return (self.unit, self.classifier, self.rounding)

    def label(self) -> str:
        classifier = "with the classifier" if self.classifier == "in" else "without the classifier"
        return f"{self.unit} units, {classifier}, {self.rounding}"


DEFAULT = Convention()
CANDIDATES = sorted(
    (Convention(u, c, r) for u in UNITS for c in ("in", "out") for r in ROUNDINGS),
    key=lambda c: (c.departures(), list(UNITS).index(c.unit), c.classifier != "in", c.rounding),
)


def round_to(value: float, step: float, rounding: str) -> Decimal:
    """``value`` to a multiple of ``step`` under ``rounding`` (half-up or truncate)."""
    q = Decimal(str(step))
    return (Decimal(str(value)) / q).quantize(Decimal(1), rounding=ROUNDINGS[rounding]) * q


def reproduces(
    convention: Convention, counts: dict[str, float | None], printed: float, step: float
) -> bool:
    """Whether ``counts`` ({metric: count}) print as ``printed`` under ``convention``."""
    count = counts.get(convention.metric)
    if count is None or pd.isna(count):
        return False
    value = convention.printed_scale(count)
    return round_to(value, step, convention.rounding) == Decimal(str(printed))


def calibrate(counts: dict[str, float], printed: float, step: float) -> Convention | None:
    """The convention a baseline row fixes: of those that reproduce it exactly, the one
    with the fewest departures from the default (then 10^6 before 2^20, the classifier
    in before out, half-up before truncation); None when none does."""
    return next((c for c in CANDIDATES if reproduces(c, counts, printed, step)), None)


@dataclass(frozen=True)
class Section:
    """One section of a printed table: the rows of one backbone, with its baseline row."""

    source: str
    table: str
    backbone: str
    baseline_model: str
    convention: Convention | None  # None: no convention reproduces the baseline
    why: str

    @property
    def applied(self) -> Convention:
        return self.convention or DEFAULT

    def heading(self) -> str:
        if self.convention is None:
            fallback = DEFAULT.label()
            return f"{self.backbone}: no convention reproduces the baseline ({fallback} used)"
        return f"{self.backbone}: {self.convention.label()}"


def load_conventions(path: str | None = None) -> dict[tuple[str, str, str], Section]:
    """{(source, table, backbone): Section} from ``conventions.csv`` (or ``path``)."""
    if path is None:
        resource = importlib.resources.files("dynbench.published").joinpath("conventions.csv")
        with importlib.resources.as_file(resource) as csv_path:
            frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return sections_of(frame)


def sections_of(frame: pd.DataFrame) -> dict[tuple[str, str, str], Section]:
    sections = {}
    for row in frame.itertuples(index=False):
        convention = (
            None if row.unit == "none" else Convention(row.unit, row.classifier, row.rounding)
        )
        key = (row.source, row.table, row.backbone)
        sections[key] = Section(*key, row.baseline_model, convention, row.why)
    return sections


# The parts a paper convention can name: the analytic breakdown's (MADDS_PARTS), its
# aggregation and feature_scale on the cheaper route per layer (detail.cheaper_route,
# named cheaper_aggregation and cheaper_feature_scale), and the two kinds of layer only
# fvcore counts (its detail.extra_ops).
CHEAPER_PARTS = ("cheaper_aggregation", "cheaper_feature_scale")
EXTRA_PARTS = {"batch_norm": "batch_norm", "pooling": "adaptive_avg_pool2d"}


def part_values(analytic: CounterDetail | None, fvcore: CounterDetail | None) -> dict[str, int]:
    """Every part a convention can name, from the analytic and fvcore records' details;
    a part the records do not hold is left out."""
    values = dict((analytic and analytic.breakdown) or {})
    for part, value in ((analytic and analytic.cheaper_route) or {}).items():
        values[f"cheaper_{part}"] = value
    if fvcore is not None:
        extra = fvcore.extra_ops or {}
        values.update({part: extra.get(op, 0) for part, op in EXTRA_PARTS.items()})
    return values


@dataclass(frozen=True)
class MaddsConvention:
    """A paper's MAdds counting convention: the parts of a model's MAdds it counts."""

    name: str
    source: str
    parts: tuple[str, ...]
    why: str
    tried: str = ""

    def footnote(self) -> str:
        return f"MAdds {self.name} counts {' + '.join(self.parts)}: {self.why}. Tried: {self.tried}"

    def total(self, values: dict[str, int]) -> float | None:
        """The convention's MAdds from :func:`part_values`; None where a part it counts
        was not measured."""
        if any(part not in values for part in self.parts):
            return None
        return float(sum(values[part] for part in self.parts))


def load_madds_conventions() -> dict[str, MaddsConvention]:
    """{source: MaddsConvention} from ``madds_conventions.csv``: one per paper."""
    resource = importlib.resources.files("dynbench.published").joinpath("madds_conventions.csv")
    with importlib.resources.as_file(resource) as csv_path:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    return madds_conventions_of(frame)


def madds_conventions_of(frame: pd.DataFrame) -> dict[str, MaddsConvention]:
    known = (*MADDS_PARTS, *CHEAPER_PARTS, *EXTRA_PARTS)
    conventions = {}
    for row in frame.itertuples(index=False):
        parts = tuple(row.parts.split("+"))
        unknown = [p for p in parts if p not in known]
        if unknown:
            raise ValueError(f"{row.name}: unknown MAdds parts {unknown}; known: {list(known)}")
        conventions[row.source] = MaddsConvention(row.name, row.source, parts, row.why, row.tried)
    return conventions
