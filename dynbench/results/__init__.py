"""Measurements stored in SQLite and exported as CSV, JSON or a DataFrame."""

from dynbench.results.store import Record, ResultStore, load_results

__all__ = ["Record", "ResultStore", "load_results"]
