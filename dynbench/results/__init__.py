"""Measurements: the record, the names it may carry, and the SQLite store.

The store (SQLAlchemy, pandas) loads only when asked for: the operators import
:mod:`dynbench.results.names`, and an operator must not pull in a database layer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Record", "ResultStore", "load_results"]


def __getattr__(name: str) -> Any:
    if name == "Record":
        from dynbench.results.record import Record

        return Record
    if name in ("ResultStore", "load_results"):
        from dynbench.results import store

        return getattr(store, name)
    raise AttributeError(f"module 'dynbench.results' has no attribute {name!r}")
