"""The modal profile: the app builds offline, its body runs via .local(), the dry-run spec is exact."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

modal = pytest.importorskip("modal")

from rstack import paths  # noqa: E402
from rstack.plan import compile_plan, load_plan  # noqa: E402
from rstack.runners import modal_app  # noqa: E402
from rstack.runs import judge, specs_from_matrix  # noqa: E402
from runs_fixtures import records, write_project  # noqa: E402
from test_runs_ssh import preflight_pass  # noqa: E402


class DirVolume:
    """The Volume's read side over a local directory (the cloud is the one thing simulated)."""

    def __init__(self, base: Path):
        self.base = base

    def read_file(self, path: str):
        data = (self.base / path).read_bytes()
        yield data[: len(data) // 2]
        yield data[len(data) // 2:]


def _modal_specs(project, **kw):
    write_project(project, {"a": ["--lr", "0.3"], "b": ["--lr", "0.1"]}, profile="modal",
                  gpu="A10G", timeout_s=900, max_cost_usd=5, seeds=(0,), **kw)
    plan = load_plan(project / "experiment-plan.md")
    return plan, specs_from_matrix(compile_plan(plan, root=project).runs, plan.script)


def test_app_builds_offline(project):
    app, fn, volume = modal_app.build_app(project, gpu="A10G", timeout_s=900)
    assert isinstance(app, modal.App) and app.name == "rstack-runs"
    assert isinstance(fn, modal.Function) and isinstance(volume, modal.Volume)


@pytest.mark.filterwarnings("ignore:The run_one function is executing locally")
def test_body_runs_locally_and_verifies(project, tmp_path, capsys):
    plan, specs = _modal_specs(project)
    _app, fn, _volume = modal_app.build_app(project, gpu="A10G", timeout_s=900)
    vol = tmp_path / "volume"
    payload = {**modal_app.payload_for(specs[0]), "project_dir": str(project),
               "results_dir": str(vol)}
    result = fn.local(payload)
    assert result["exit_code"] == 0 and result["reason"] is None
    assert f"[{specs[0].run_id}] start mode=ok" in capsys.readouterr().out, "logs stream, prefixed"
    names = sorted(Path(e["path"]).name for e in result["manifest"])
    assert names == ["metrics.json", "metrics.jsonl", "stdout.log"]
    assert all(e["path"].startswith(specs[0].output_dir + "/") for e in result["manifest"])
    json.loads(json.dumps(result))  # what comes back over the wire is plain JSON
    modal_app.fetch_from_volume(DirVolume(vol), project, result["manifest"])
    raw = modal_app.outcome_from_result(project, specs[0], result, usd_per_hour=1.10, wall_s=36.0)
    assert raw.cost_usd == pytest.approx(0.011)
    judged = judge(project, specs[0], raw)
    assert judged.status == "ok" and judged.metrics["lr"] == 0.3
    # A file that changed after the manifest was written fails verification.
    tampered = project / specs[0].output_dir / "metrics.json"
    tampered.write_text(tampered.read_text() + " ")
    bad = modal_app.outcome_from_result(project, specs[0], result, usd_per_hour=1.10, wall_s=1)
    assert bad.reason == "artifact-mismatch" and "metrics.json: sha256" in bad.message
    assert judge(project, specs[0], bad).status == "failed"


def test_dry_run_prints_exact_spec_without_credentials(project, cli):
    _modal_specs(project)
    result = cli("run", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    spec = data["runner"]
    assert spec["app"] == "rstack-runs"
    assert spec["function"] == {"name": "run_one", "gpu": "A10G", "timeout": 900, "retries": 0,
                                "volumes": {"/results": "rstack-results"}}
    assert spec["image"]["base"] == "debian_slim"
    assert spec["image"]["pip_install_from_requirements"] is None
    assert spec["image"]["add_local_dir"]["remote"] == "/root/project"
    assert ".rstack" in spec["image"]["add_local_dir"]["ignore"]
    inputs = spec["calls"]["inputs"]
    assert spec["calls"]["method"] == "map" and len(inputs) == 2
    assert inputs[0]["command"][:2] == ["python", "train.py"]
    assert data["total_estimate_usd"] == pytest.approx(2 * 1.10 * 900 / 3600)
    assert not paths.ledger_path(project, "experiments").exists() or records(project) == []
    text = cli("run", "--dry-run").output
    assert "runner spec:" in text and '"gpu": "A10G"' in text


def test_requirements_go_into_the_image(project):
    (project / "requirements.txt").write_text("numpy\n")
    spec = modal_app.app_spec(project, gpu=None, timeout_s=None)
    assert spec["image"]["pip_install_from_requirements"] == "requirements.txt"
    assert spec["function"]["timeout"] == 3600 and spec["function"]["gpu"] is None


def test_unauthenticated_run_refused(project, cli):
    _modal_specs(project)
    preflight_pass(project)
    result = cli("run")
    assert result.exit_code == 1
    assert "Modal is not authenticated" in result.output and "modal token new" in result.output
    assert records(project, "run.started") == []


def test_preflight_gate_first(project, cli):
    _modal_specs(project)
    result = cli("run")
    assert result.exit_code == 1 and "may not run on the modal profile" in result.output
