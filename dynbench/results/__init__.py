"""Measurements: the record, the names it may carry, and the SQLite store."""

from dynbench.results.record import Record
from dynbench.results.store import ResultStore, load_results

__all__ = ["Record", "ResultStore", "load_results"]
