"""The vastai profile: provisioning through a stand-in `vastai` CLI, the runs over a real sshd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runners_fixtures import use_vastai_standin
from runs_fixtures import finished, records, write_project
from ssh_fixtures import kill, remote_processes, sshd, wait_for  # noqa: F401
from test_runs_ssh import preflight_pass

RSTACK = Path(sys.executable).parent / "rstack"
OFFERS = [{"id": 7, "gpu_name": "RTX_4090", "dph_total": 0.40},
          {"id": 8, "gpu_name": "RTX_4090", "dph_total": 0.30},
          {"id": 9, "gpu_name": "RTX_4090", "dph_total": 5.00},
          {"id": 10, "gpu_name": "A100_PCIE", "dph_total": 0.90}]


@pytest.fixture
def vast(tmp_path, monkeypatch, sshd, project):
    state = use_vastai_standin(tmp_path, monkeypatch, sshd.port, OFFERS, polls_until_running=2)
    sshd.env(monkeypatch, RSTACK_VASTAI_POLL_S="0.05", RSTACK_MAX_RETRIES="0")

    class Vast:
        def state(self):
            return json.loads(state.read_text())

        def set(self, **values):
            data = self.state()
            data.update(values)
            state.write_text(json.dumps(data))

        def verbs(self):
            return [" ".join(c[:2]) if c[0] != "ssh-url" else "ssh-url" for c in self.state()["calls"]]

    return Vast()


def vast_project(project, arms, **kw):
    write_project(project, arms, profile="vastai", gpu="RTX_4090", timeout_s=600, max_cost_usd=5,
                  seeds=kw.pop("seeds", (0,)), **kw)
    preflight_pass(project)


def test_vastai_run_provisions_records_and_destroys(project, cli, vast):
    vast_project(project, {"a": ["--lr", "0.3"]}, seeds=(0, 1))
    result = cli("run")
    assert result.exit_code == 0, result.output
    verbs = vast.verbs()
    assert verbs[0] == "search offers" and verbs[1] == "create instance"
    assert verbs[-1] == "destroy instance" and "ssh-url" in verbs
    create = vast.state()["calls"][1]
    assert create[2] == "8", "the cheapest offer under the ceiling"
    assert create[create.index("--disk") + 1] == "40"
    states = [(r["state"], r["instance_id"]) for r in records(project, "vastai.instance")]
    assert states == [("created", "1000"), ("running", "1000"), ("destroyed", "1000")]
    assert vast.state()["instances"]["1000"]["destroyed"] is True
    done = finished(project)
    assert [r["status"] for r in done] == ["ok", "ok"]
    for rec in done:
        # dph_total x the run's wall time on the instance (upload to verified download).
        assert 0.30 * rec["duration_s"] / 3600 <= rec["cost_usd"] <= 0.30 * 60 / 3600
    assert {s["host"] for s in records(project, "run.started")} == {"vastai:1000"}
    assert all(r["instance_id"] == "1000" for r in records(project, "run.remote"))


def test_keep_instance(project, cli, vast):
    vast_project(project, {"a": []})
    result = cli("run", "--keep-instance")
    assert result.exit_code == 0, result.output
    assert "destroy instance" not in vast.verbs()
    assert records(project, "vastai.instance")[-1]["state"] == "kept"
    assert "instance 1000 is kept (--keep-instance); it keeps billing" in result.output


def test_unverified_run_keeps_instance(project, vast, sshd):
    vast_project(project, {"slow": ["--mode", "sleep"]})
    env = dict(os.environ, RSTACK_PROJECT=str(project))
    proc = subprocess.Popen([str(RSTACK), "run"], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    run_id = wait_for(lambda: (records(project, "run.remote") or [None])[0]
                      if (project / ".rstack" / "experiments.jsonl").exists() else None)["run_id"]
    # Kill agent and script together: no manifest, so nothing can be verified.
    from test_runs_ssh import _agent_once_script_runs
    wait_for(lambda: _agent_once_script_runs(sshd, run_id))
    kill(remote_processes(sshd, run_id))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "instance 1000 not destroyed: 1 run(s) have no locally verified artifacts yet" in out
    assert "destroy instance" not in vast.verbs()
    assert records(project, "vastai.instance")[-1]["state"] == "kept"


def test_no_offer_under_ceiling(project, cli, vast, monkeypatch):
    monkeypatch.setenv("RSTACK_VASTAI_MAX_DPH", "0.1")
    vast_project(project, {"a": []})
    result = cli("run")
    assert result.exit_code == 1
    assert "no Vast.ai offer for RTX_4090 at or under $0.10/h" in result.output
    assert vast.verbs() == ["search offers"]
    assert records(project, "run.started") == []


def test_instance_never_running_is_destroyed(project, cli, vast, monkeypatch):
    monkeypatch.setenv("RSTACK_VASTAI_START_TIMEOUT_S", "1")
    vast.set(final_status="loading", polls_until_running=1)
    vast_project(project, {"a": []})
    result = cli("run")
    assert result.exit_code == 1
    assert "instance 1000 is loading after 1s; it was destroyed" in result.output
    assert vast.verbs()[-1] == "destroy instance"
    assert [r["state"] for r in records(project, "vastai.instance")] == ["created", "failed"]


def test_cost_cap_refuses_before_renting(project, cli, vast, monkeypatch):
    monkeypatch.setenv("RSTACK_VASTAI_MAX_DPH", "1.0")
    write_project(project, {"a": []}, profile="vastai", gpu="RTX_4090", timeout_s=3600,
                  max_cost_usd=2.5, seeds=(0, 1, 2))
    preflight_pass(project)
    result = cli("run")
    assert result.exit_code == 1
    # 3 x (3600 s + 120 s of sync) + the instance's boot (600 s) and teardown (60 s), at $1/h.
    assert ("cost cap: spent $0.00 + estimate $3.28 = $3.28 exceeds the cap $2.50; nothing was "
            "started") in result.output
    assert vast.state().get("calls", []) == []


def test_timeout_override_is_priced_into_the_cost_cap(project, cli, vast, monkeypatch):
    # The plan's 600 s fit the cap ($0.50 for 3 runs); `--timeout 3600` makes each run bill up to
    # an hour, so the estimate the cap judges must be the overridden one ($3.00), not the plan's.
    monkeypatch.setenv("RSTACK_VASTAI_MAX_DPH", "1.0")
    write_project(project, {"a": []}, profile="vastai", gpu="RTX_4090", timeout_s=600,
                  max_cost_usd=2.5, seeds=(0, 1, 2))
    preflight_pass(project)
    dry = cli("run", "--timeout", "3600", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["total_estimate_usd"] == pytest.approx(3 * 3720 / 3600 + 660 / 3600,
                                                                  abs=1e-5)
    result = cli("run", "--timeout", "3600")
    assert result.exit_code == 1
    assert ("cost cap: spent $0.00 + estimate $3.28 = $3.28 exceeds the cap $2.50; nothing was "
            "started") in result.output
    assert vast.state().get("calls", []) == []


# -- #18 item 9: the estimate bounds what the instance bills, and the bill is ledgered ---------

def test_estimate_includes_the_instance_lifetime(project, cli, vast, monkeypatch):
    from rstack.costs import VASTAI_RUN_OVERHEAD_S, VASTAI_TEARDOWN_S

    monkeypatch.setenv("RSTACK_VASTAI_MAX_DPH", "1.0")
    monkeypatch.setenv("RSTACK_VASTAI_START_TIMEOUT_S", "300")
    write_project(project, {"a": []}, profile="vastai", gpu="RTX_4090", timeout_s=600,
                  max_cost_usd=100, seeds=(0, 1, 2, 3, 4, 5))
    preflight_pass(project)
    dry = json.loads(cli("run", "--dry-run", "--json").output)
    worst = (6 * (600 + VASTAI_RUN_OVERHEAD_S) + 300 + VASTAI_TEARDOWN_S) / 3600
    assert dry["total_estimate_usd"] == pytest.approx(worst, abs=1e-5)
    assert all(r["cost_estimate_usd"] == round((600 + VASTAI_RUN_OVERHEAD_S) / 3600, 6)
               for r in dry["runs"])


def test_instance_billed_lifetime_is_ledgered_as_spend(project, cli, vast):
    from rstack import guards

    vast_project(project, {"a": []}, seeds=(0, 1))
    result = cli("run")
    assert result.exit_code == 0, result.output
    closing = records(project, "vastai.instance")[-1]
    assert closing["state"] == "destroyed"
    runs_usd = sum(r["cost_usd"] for r in finished(project))
    assert closing["lifetime_s"] >= sum(r["duration_s"] for r in finished(project))
    assert closing["billed_usd"] == round(0.30 * closing["lifetime_s"] / 3600, 6)
    assert abs(closing["runs_usd"] - runs_usd) < 1e-5
    assert closing["billed_usd"] >= closing["runs_usd"]
    # Spend is what the instance billed: its runs plus boot, sync and teardown.
    assert guards.spent_usd(project) == pytest.approx(closing["billed_usd"], abs=1e-5)
