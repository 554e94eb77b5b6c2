"""Suites: TOML files naming the models to measure, what to measure, and how.

A suite is found by name in ``./suites/NAME.toml`` first (a user's edits win),
then among the suites shipped with dynbench; any path ending in ``.toml`` is
read as is. Every key is checked so that a typo is an error, not a silently
ignored setting.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from dynbench.errors import DynbenchError
from dynbench.models.registry import list_models
from dynbench.run.settings import RunSettings
from dynbench.run.steps import STEPS, MachineStep

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SUITE_KEYS = {
    "description",
    "measures",
    "models",
    "exclude",
    "settings",
    "compare",
    "only",
    "families",
}
COMPARISONS = ("published",)


@dataclass(frozen=True)
class Suite:
    """A suite as its file says; a run's settings (the command line's options over the
    suite's) are built from it once (:func:`run_settings`), never written into it."""

    name: str
    description: str
    measures: list[str]
    models: list[str]
    exclude: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    source: str = ""
    compare: str | None = None  # "published": print measured beside the papers' figures
    # measure -> registry globs: that measure runs on these of the suite's models only
    only: dict[str, list[str]] = field(default_factory=dict)
    # [[families]]: {"baseline": name or module:factory, "models": [...]} timed together
    families: list[dict] = field(default_factory=list)

    def measures_model(self, measure: str, name: str) -> bool:
        """Whether ``measure`` runs on model ``name`` (see ``only``)."""
        patterns = self.only.get(measure)
        return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def available_suites() -> dict[str, str]:
    """name -> where it comes from, the working directory's suites shadowing shipped ones."""
    found: dict[str, str] = {}
    for entry in importlib.resources.files("dynbench.suites").iterdir():
        if entry.name.endswith(".toml"):
            found[entry.name[:-5]] = str(entry)
    local = Path("suites")
    if local.is_dir():
        for path in local.glob("*.toml"):
            found[path.stem] = str(path)
    return dict(sorted(found.items()))


def suites_frame() -> pd.DataFrame:
    """Each suite ``--suite`` accepts by name: its steps, description and file."""
    rows = []
    for name, source in available_suites().items():
        suite = load_suite(source)
        measures = ", ".join(suite.measures)
        rows.append(
            {"suite": name, "measures": measures, "description": suite.description, "file": source}
        )
    return pd.DataFrame(rows)


def load_suite(name_or_path: str) -> Suite:
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise DynbenchError(f"suite file {name_or_path!r} does not exist")
        return parse_suite(path.stem, path.read_text(), str(path))
    suites = available_suites()
    if name_or_path not in suites:
        raise DynbenchError(
            f"unknown suite {name_or_path!r}; available: {', '.join(suites)} "
            "(or give a path to a .toml file)"
        )
    source = suites[name_or_path]
    text = (
        Path(source).read_text()
        if Path(source).is_file()
        else importlib.resources.files("dynbench.suites")
        .joinpath(f"{name_or_path}.toml")
        .read_text()
    )
    return parse_suite(name_or_path, text, source)


def parse_suite(name: str, text: str, source: str = "<string>") -> Suite:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DynbenchError(f"suite {source!r} is not valid TOML: {exc}") from None
    unknown = set(data) - SUITE_KEYS
    if unknown:
        raise DynbenchError(
            f"suite {source!r} has unknown key(s) {sorted(unknown)}; accepted: {sorted(SUITE_KEYS)}"
        )
    measures = _string_list(data, "measures", source, required=True)
    for measure in measures:
        if measure not in STEPS:
            raise DynbenchError(
                f"suite {source!r} names unknown measure {measure!r}; accepted: {', '.join(STEPS)}"
            )
    # a suite of machine-wide measures only (the machine's ceilings) needs no models
    machine_wide = all(isinstance(STEPS[m], MachineStep) for m in measures)
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise DynbenchError(f"suite {source!r}: [settings] must be a table")
    compare = data.get("compare")
    if compare is not None and compare not in COMPARISONS:
        raise DynbenchError(
            f"suite {source!r}: compare = {compare!r} is not known; accepted: {COMPARISONS}"
        )
    only = data.get("only", {})
    if not isinstance(only, dict) or any(m not in measures for m in only):
        raise DynbenchError(
            f"suite {source!r}: [only] maps measures of the suite ({', '.join(measures)}) to "
            "lists of model globs"
        )
    families = _families(data, source)
    suite = Suite(
        name=name,
        families=families,
        compare=compare,
        only={m: _string_list(only, m, source, required=True) for m in only},
        description=str(data.get("description", "")),
        measures=measures,
        models=_string_list(data, "models", source, required=not (machine_wide or families)),
        exclude=_string_list(data, "exclude", source),
        settings=settings,
        source=source,
    )
    validate_settings(suite.measures, suite.settings, source)
    return suite


def validate_settings(measures: list[str], settings: dict, source: str) -> None:
    """Each setting must be understood by one of the suite's measures, with a valid value."""
    accepted = {name for measure in measures for name in STEPS[measure].settings.names()}
    for key in settings:
        if key not in accepted:
            raise DynbenchError(
                f"suite {source!r}: setting {key!r} is not used by {measures}; accepted: "
                f"{', '.join(sorted(accepted)) or 'none'}"
            )
    for measure in measures:
        STEPS[measure].validate(settings, source)


def run_settings(
    suite: Suite,
    timing: dict[str, object | None],
    input_size: tuple[int, int, int] | None = None,
    counters: str | None = None,
) -> RunSettings:
    """The run's settings: the suite's, with each command-line option given (not None) over
    them: the ``timing`` options named by their setting (``compile_mode`` for
    ``--compile-mode``), then ``--input-size`` and ``--counters`` (comma-separated). An
    option no step of the suite takes, or a value the steps refuse, is an error naming it."""
    options = {**timing, "input_size": None if input_size is None else list(input_size)}
    if counters is not None:
        options["counters"] = [c.strip() for c in counters.split(",") if c.strip()]
    settings = dict(suite.settings)
    for key, value in options.items():
        if value is not None:
            option = f"--{key.replace('_', '-')}"
            _check_option_applies(suite, key, option)
            settings[key] = value
            validate_settings(suite.measures, settings, option)
    return RunSettings.of(settings)


def _check_option_applies(suite: Suite, key: str, option: str) -> None:
    """A run option none of the suite's steps takes is refused, naming the option and
    the steps that take it (not the suite setting it would have become)."""
    if any(key in STEPS[m].settings.names() for m in suite.measures):
        return
    takers = [name for name, step in STEPS.items() if key in step.settings.names()]
    raise DynbenchError(
        f"{option} applies to the measures {', '.join(takers)}; suite {suite.name!r} "
        f"measures {', '.join(suite.measures)}"
    )


def cuda_missing(suite: Suite) -> str | None:
    """Why the suite is skipped here: a step of it needs a CUDA device and there is none."""
    needs_cuda = [m for m in suite.measures if STEPS[m].needs_cuda]
    if not needs_cuda or torch.cuda.is_available():
        return None
    return (
        f"suite {suite.name} skipped: {', '.join(needs_cuda)} needs a CUDA device and "
        f"torch.cuda.is_available() is False (torch {torch.__version__})"
    )


def check_only(suite: Suite, selected: list[str]) -> None:
    """Each ``[only]`` glob must match a registered or a selected model: one that matches
    nothing (a typo) would leave its measure without a record and the run looking complete."""
    known = list_models("*") + selected
    for measure, patterns in suite.only.items():
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in known):
                raise DynbenchError(
                    f"suite {suite.source or suite.name!r}: [only] {measure} glob {pattern!r} "
                    "matches no model; give registry names or globs (see 'dynbench list')"
                )


def _families(data: dict, source: str) -> list[dict]:
    """The ``[[families]]`` tables: each a ``baseline`` and its ``models``."""
    tables = data.get("families", [])
    expected = (
        f"suite {source!r}: [[families]] must be tables with baseline = a registry name or "
        "package.module:factory and models = a non-empty list of them"
    )
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise DynbenchError(expected)
    families = []
    for table in tables:
        if set(table) != {"baseline", "models"} or not isinstance(table["baseline"], str):
            raise DynbenchError(expected)
        families.append(
            {"baseline": table["baseline"], "models": _string_list(table, "models", source, True)}
        )
    return families


def _string_list(data: dict, key: str, source: str, required: bool = False) -> list[str]:
    value = data.get(key)
    if value is None:
        if required:
            raise DynbenchError(f"suite {source!r} lacks the required key {key!r}")
        return []
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) for v in value)
        or (required and not value)
    ):
        raise DynbenchError(f"suite {source!r}: {key!r} must be a non-empty list of strings")
    return value
