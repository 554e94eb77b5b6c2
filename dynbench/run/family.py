"""What a measure is handed: a family of built models, baseline first, and two callbacks.

Every measure takes a family, so the runner has one loop: a timing measure needs
the whole family (ratios are only valid between models timed side by side in one
process), a size measure is simply run on each member, and a suite without timing
measures hands out families of one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from dynbench.errors import DynbenchError
from dynbench.models.registry import (
    ModelInfo,
    find_model,
    list_models,
    load_user_model,
    model_info,
    select_models,
)
from dynbench.results.record import Record

Member = tuple[ModelInfo, nn.Module]
Emit = Callable[[Record], None]
Progress = Callable[[str], None]  # a short status line, e.g. "round 12/300"


@dataclass(frozen=True)
class Target:
    """A model to measure: registry metadata and, for a user model, the instance."""

    info: ModelInfo
    instance: nn.Module | None = None

    def build(self) -> nn.Module:
        model = self.instance if self.instance is not None else self.info.builder()
        return model.eval()


def families(targets: list[Target]) -> list[list[Target]]:
    """Targets grouped by family, each family led by its static baseline.

    A family whose baseline was not selected gets it added: ratios need it.
    """
    groups: dict[str, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.info.family, []).append(target)
    ordered = []
    for family, members in groups.items():
        baseline = [t for t in members if t.info.name == family]
        rest = [t for t in members if t.info.name != family]
        base_info = find_model(family)
        if not baseline and base_info is not None:
            baseline = [Target(base_info)]
        ordered.append(baseline + rest)
    return ordered


def resolve_targets(
    models: str | None,
    user_models: list[str] | None,
    default_patterns: list[str],
    exclude: list[str] | None = None,
) -> list[Target]:
    """Registry models matching the patterns plus any ``module:factory`` user models.

    ``models`` (``--models``), when given, replaces the suite's patterns, even empty: a
    pattern that names no glob ('' or ',') and patterns that ``exclude`` leaves with no
    model are errors, not a run of every model or of none."""
    targets: list[Target] = []
    patterns = [models] if models is not None else ([] if user_models else default_patterns)
    names: list[str] = []
    where = "--models" if models is not None else "the suite's models"
    for pattern in patterns:
        if not any(p.strip() for p in pattern.split(",")):
            raise DynbenchError(
                f"{where} {pattern!r} names no model; give globs such as 'resnet18*' "
                "(comma-separated; see 'dynbench list')"
            )
        names += [n for n in select_models(pattern) if n not in names]
    for pattern in exclude or []:
        names = [n for n in names if n not in list_models(pattern)]
    if patterns and not names:
        raise DynbenchError(
            f"exclude {exclude} removes every model that {where} {patterns} select; "
            "narrow the exclude or widen the models"
        )
    targets += [Target(model_info(n)) for n in names]
    for reference in user_models or []:
        info, instance = load_user_model(reference)
        targets.append(Target(info, instance))
    return targets


def baseline_target(reference: str) -> Target:
    """The baseline ``--baseline`` names: a registry name, or a user's ``module:factory``
    (then a static baseline of its own family)."""
    if ":" in reference:
        info, instance = load_user_model(reference, "--baseline")
        return Target(dataclasses.replace(info, operator="static"), instance)
    info = model_info(reference)
    return Target(dataclasses.replace(info, family=info.name))


def join_family(targets: list[Target], baseline: str) -> list[Target]:
    """Every user model of ``targets`` in one family led by ``baseline``, so that a timing
    suite times them interleaved with it and gives each a ratio with its interval."""
    users = [t for t in targets if t.instance is not None]  # the --model ones
    if not users:
        raise DynbenchError(
            f"--baseline {baseline!r} joins the user models of the run (--model "
            "package.module:factory) to its family; give at least one --model"
        )
    base = baseline_target(baseline)
    family = base.info.name
    joined = [
        Target(dataclasses.replace(t.info, family=family), t.instance)
        for t in users
        if t.info.name != family  # the baseline given as --model too is timed once
    ]
    rest = [t for t in targets if t not in users and t.info.name != family]
    return [base, *joined, *rest]


def declared_families(declared: list[dict]) -> list[Target]:
    """A suite's ``[[families]]``: each a baseline and the models (registry names or
    ``module:factory``) timed with it."""
    targets: list[Target] = []
    for family in declared:
        members = [
            Target(*load_user_model(ref)) if ":" in ref else Target(model_info(ref))
            for ref in family["models"]
        ]
        base = baseline_target(family["baseline"])
        name = base.info.name
        targets += [base] + [
            Target(dataclasses.replace(t.info, family=name), t.instance) for t in members
        ]
    return targets


def with_input_size(targets: list[Target], size: tuple[int, int, int] | None) -> list[Target]:
    """The targets measured at ``size`` (C, H, W) instead of their own input size."""
    if size is None:
        return targets
    return [Target(dataclasses.replace(t.info, input_size=size), t.instance) for t in targets]


def _operator_targets(targets: list[Target], operator_models: list[str]) -> list[Target]:
    """The operator's models on the backbones the suite measures (every one, with its
    baseline, when the suite measures none of them)."""
    families = {t.info.family for t in targets}
    chosen = [n for n in operator_models if model_info(n).family in families]
    if chosen:
        return [Target(model_info(n)) for n in chosen]
    names = [model_info(n).family for n in operator_models] + operator_models
    known = {t.info.name for t in targets}
    return [Target(model_info(n)) for n in names if n not in known]


def run_targets(
    suite_models: list[str],
    suite_exclude: list[str],
    suite_families: list[dict],
    models: str | None,
    user_models: list[str] | None,
    baseline: str | None,
    operator_models: list[str],
) -> list[Target]:
    """What ``dynbench run`` measures: ``--models`` or the suite's models, the user models
    (joined to ``--baseline``'s family when given) and, with ``--operator`` and no
    ``--models``, the operator's models on the suite's backbones; a suite's ``[[families]]``
    when the command line names no model."""
    targets = resolve_targets(models, user_models, suite_models, suite_exclude)
    if operator_models and models is None:
        targets += _operator_targets(targets, operator_models)
    if baseline is not None:
        targets = join_family(targets, baseline)
    if models is None and not user_models:
        targets += declared_families(suite_families)
    return targets


def guard_targets(
    models: str | None,
    user_models: list[str] | None,
    suite: str | None,
    patterns: list[str],
    size: tuple[int, int, int] | None,
) -> list[Target]:
    """What ``dynbench guard`` checks: ``--models`` or the ``patterns`` (the suite's models,
    or every registered one), and the user models, at ``size``; none is an error."""
    targets = with_input_size(resolve_targets(models, user_models, patterns), size)
    if not targets:
        raise DynbenchError(f"suite {suite!r} selects no model to guard; name a suite with models")
    return targets
