"""Which machine measured a record, from the environment stored with it.

A record of a store of schema version 2 carries ``environment.machine`` (hardware and torch
build, and their fingerprint, see :func:`dynbench.measure.environment.machine`) and the user's
``machine_label``; an older record carries only the CPU model, the GPU and the torch version.
It is given to the one identified machine of the selection with that CPU, GPU and torch
version when there is exactly one (a store written before machine identity existed, beside
one written after, on the same machine); otherwise it gets a fingerprint of those fields. A
report over records of several machines judges each claim on each machine, since a ratio
taken on one machine says nothing about another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from dynbench.errors import DynbenchError
from dynbench.measure.environment import fingerprint
from dynbench.report.data import field_dict


@dataclass(frozen=True)
class Machine:
    fingerprint: str
    label: str | None  # the user's --machine-label, if any
    cpu: str | None
    gpu: str | None
    cores: int | None = None

    @property
    def name(self) -> str:
        return self.label or self.words or self.fingerprint

    @property
    def words(self) -> str:
        """The hardware in a few words: '2-core Intel Xeon', 'NVIDIA H200 (Intel Xeon)'."""
        cpu = " ".join(
            w for w in re.sub(r"\((R|TM)\)", "", self.cpu or "").split() if w != "Processor"
        )
        cpu = cpu.split(" CPU @")[0]
        if cpu and self.cores:
            cpu = f"{self.cores}-core {cpu}"
        return f"{self.gpu} ({cpu})" if self.gpu and cpu else self.gpu or cpu


def machine_of(environment: object) -> Machine:
    env = field_dict(environment)
    fields = env.get("machine") or {
        "cpu": env.get("cpu"),
        "gpu": env.get("gpu"),
        "torch_build": env.get("torch"),
    }
    found = fields.get("fingerprint") or fingerprint(fields)
    return Machine(
        found, env.get("machine_label"), fields.get("cpu"), fields.get("gpu"), fields.get("cores")
    )


def _legacy_key(env: dict) -> tuple:
    """What an older record and an identified machine can be matched on."""
    build = (env.get("machine") or {}).get("torch_build")
    return env.get("cpu"), env.get("gpu"), build.split(" ")[0] if build else env.get("torch")


def _identified(environments: list[dict]) -> dict[tuple, str]:
    """{legacy key: fingerprint} for the keys exactly one identified machine has."""
    found: dict[tuple, set[str]] = {}
    for env in environments:
        if env.get("machine"):
            found.setdefault(_legacy_key(env), set()).add(env["machine"]["fingerprint"])
    return {key: next(iter(prints)) for key, prints in found.items() if len(prints) == 1}


def with_machines(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``machine`` column (the fingerprint) and a ``machine_name`` column
    (the label where one was given, else the fingerprint; the newest label wins)."""
    if "environment" not in frame or frame.empty:
        return frame.assign(machine="", machine_name="")
    environments = [field_dict(env) for env in frame["environment"]]
    identified = _identified(environments)
    machines = [machine_of(env) for env in environments]
    machines = [
        m
        if env.get("machine") or _legacy_key(env) not in identified
        else Machine(identified[_legacy_key(env)], m.label, m.cpu, m.gpu, m.cores)
        for m, env in zip(machines, environments, strict=True)
    ]
    out = frame.assign(machine=[m.fingerprint for m in machines])
    names: dict[str, str] = {}
    for m in machines:
        names[m.fingerprint] = m.label or names.get(m.fingerprint) or m.name
    taken = list(names.values())
    for found, name in names.items():
        if taken.count(name) > 1:  # two machines of the same hardware: tell them apart
            names[found] = f"{name} {found[:6]}"
    return out.assign(machine_name=out["machine"].map(names))


def split_by_machine(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(name, its records) per machine, in the order the machines first appear."""
    frame = with_machines(frame)
    return [
        (str(group["machine_name"].iloc[0]), group)
        for _, group in frame.groupby("machine", sort=False)
    ]


def select_machine(frame: pd.DataFrame, which: str) -> pd.DataFrame:
    """The records of the machine labelled ``which``, or whose fingerprint starts with it."""
    marked = with_machines(frame)
    hit = (marked["machine_name"] == which) | marked["machine"].str.startswith(which)
    chosen = marked[hit]["machine"].unique()
    if len(chosen) != 1:
        known = sorted(
            {f"{n} ({f})" for n, f in zip(marked["machine_name"], marked["machine"], strict=True)}
        )
        problem = "matches no machine" if len(chosen) == 0 else "matches several machines"
        raise DynbenchError(
            f"--machine {which!r} {problem}; accepted (label or fingerprint): {', '.join(known)}"
        )
    return frame[(marked["machine"] == chosen[0]).to_numpy()]


def build_text(env: dict) -> str:
    """torch, commit and date of a machine's newest record."""
    parts = [f"torch {env['torch']}" if env.get("torch") else ""]
    parts.append(f"commit {env['git_commit']}" if env.get("git_commit") else "")
    parts.append(str(env.get("timestamp", ""))[:10])
    return ", ".join(p for p in parts if p)
