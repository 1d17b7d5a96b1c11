"""Seed-aware analysis of ledgered runs: statistics, figures, tables and the numbers a paper prints.

Entry point: `run_analysis` (rstack analyze). Modules: collect (which runs), stats, figures, tables,
numbers, report (analysis/README.md). Nothing here writes to a ledger.
"""

from __future__ import annotations

from .analyze import AnalysisResult, run_analysis

__all__ = ["AnalysisResult", "run_analysis"]
