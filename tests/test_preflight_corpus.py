"""Every corpus script gets the verdict and category it declares; killed cases leave no process."""

from __future__ import annotations

import uuid

import pytest

from rstack.preflight import run_preflight

from preflight_fixtures import SPAWNING, load_cases, stage
from procwatch_fixtures import leftover_processes

CASES = load_cases()


def test_corpus_is_big_enough_and_covers_every_category():
    assert len(CASES) >= 25
    categories = {c.category for c in CASES}
    for category in ("syntax-error", "missing-module", "bad-flags", "crash", "exit-nonzero", "hang",
                     "smoke-ignored", "memory", "metrics-missing", "metrics-invalid",
                     "metrics-nonfinite", "divergence", "nondeterministic", "cuda-oom",
                     "cuda-unavailable", "data-missing", "shape-mismatch", "disk-full",
                     "killed-by-signal"):
        assert category in categories, category
    assert sum(c.verdict == "PASS" for c in CASES) >= 7


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_case(case, tmp_path, monkeypatch):
    marker = f"rstack-corpus-{uuid.uuid4().hex}"
    monkeypatch.setenv("RSTACK_CORPUS_MARKER", marker)
    script = stage(case, tmp_path)
    result = run_preflight(script, **case.kwargs)
    assert (result.verdict, result.category) == (case.verdict, case.category), (
        result.message, result.output_tail)
    if case.verdict == "FAIL":
        assert result.message and result.hint
        assert result.checks and not result.checks[-1].ok
        assert result.metrics is None
    else:
        assert all(c.ok for c in result.checks) and result.metrics
    if case.name in SPAWNING or case.category in ("hang", "memory", "smoke-ignored"):
        assert leftover_processes(marker) == []
        assert leftover_processes(str(script)) == []
