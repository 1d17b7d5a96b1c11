"""Helpers for the run tests: a project with a plan around tests/data/runs/fake_train.py."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from ruamel.yaml import YAML

from rstack.ledger import Ledger

DATA = Path(__file__).parent / "data" / "runs"
FAKE_TRAIN = DATA / "fake_train.py"


def plan_front(arms: dict, *, seeds=(0, 1, 2), timeout_s=60, profile="local", gpu=None,
               max_cost_usd=None, seeds_reason=None) -> dict:
    execution = {"profile": profile, "script": "train.py", "arms": arms, "seeds": list(seeds),
                 "timeout_s": timeout_s, "gpu": gpu, "max_cost_usd": max_cost_usd}
    if seeds_reason or len(seeds) < 3:
        execution["seeds_reason"] = seeds_reason or "fast test"
    first = next(iter(arms))
    return {
        "hypothesis": {"question": "q?", "claim": "c", "expected_direction": "lower",
                       "falsifiers": ["f"], "baseline_arm": first, "metrics": ["val_loss"]},
        "data": {"sources": ["synthetic"], "schema": "none", "transforms": [],
                 "provenance": "generated", "size": "10"},
        "execution": execution,
        "evaluation": {"primary_metric": "val_loss", "direction": "minimize",
                       "accept": {"kind": "absolute", "threshold": 0.01}, "baselines": [first],
                       "sanity_checks": []},
        "publication": {"venue": "arxiv", "claims": ["c"]},
    }


def write_project(root: Path, arms: dict, **kw) -> Path:
    shutil.copy(FAKE_TRAIN, root / "train.py")
    buf = io.StringIO()
    YAML().dump(plan_front(arms, **kw), buf)
    path = root / "experiment-plan.md"
    path.write_text("---\n" + buf.getvalue() + "---\n")
    return path


def records(root: Path, *types: str) -> list[dict]:
    return Ledger(root, "experiments").read(types=list(types) or None).records


def finished(root: Path) -> list[dict]:
    return records(root, "run.finished")
