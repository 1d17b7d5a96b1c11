"""Issue #18 (runs): ids, the run lock, resume from disk, containment, hostile metrics, script
versions, paths outside the project, the output reader. Real `rstack run`s and real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from rstack.ledger import Ledger

from runs_fixtures import finished, records, write_project

RSTACK = Path(sys.executable).parent / "rstack"


def _write_script(project: Path, body: str, name: str = "train.py") -> None:
    (project / name).write_text(textwrap.dedent(body))


# -- item 8: the output reader is linear and caps what it keeps per line -----------------------

def test_output_reader_caps_a_line_without_newline(tmp_path):
    from rstack import procwatch

    script = tmp_path / "flood.py"
    script.write_text("import sys\nsys.stdout.write('x' * (20 * 1024 * 1024))\nsys.stdout.flush()\n"
                      "print()\nprint('after')\n")
    outcome = procwatch.supervise([sys.executable, str(script)], cwd=tmp_path, env=None,
                                  log_path=tmp_path / "log.txt", timeout_s=120)
    assert outcome.exit_code == 0
    assert outcome.output_tail[-1] == "after"
    longest = max(len(line) for line in outcome.output_tail)
    assert longest <= procwatch.LINE_CAP + 64, longest
    assert outcome.output_tail[0].endswith("[20,971,520 bytes, rest of the line not kept]") or \
        "rest of the line not kept" in outcome.output_tail[0]
    # The log keeps every byte.
    assert (tmp_path / "log.txt").stat().st_size == 20 * 1024 * 1024 + len("\nafter\n")


# -- item 4: metrics that would crash the judge are invalid metrics ----------------------------

HOSTILE_METRICS = {
    "400-digit": '{"val_loss": ' + "9" * 400 + "}",
    "5001-digit": '{"val_loss": ' + "9" * 5001 + "}",
    "deep": '{"val_loss": ' + "[" * 100_000 + "]" * 100_000 + "}",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_METRICS))
def test_hostile_metrics_json_is_metrics_invalid(tmp_path, kind):
    from rstack import contract

    path = tmp_path / "metrics.json"
    path.write_text(HOSTILE_METRICS[kind])
    with pytest.raises(contract.ContractError) as info:
        contract.validate_metrics_file(path)
    assert info.value.category == "metrics-invalid"


@pytest.mark.parametrize("kind", sorted(HOSTILE_METRICS))
def test_hostile_metrics_jsonl_is_metrics_invalid(tmp_path, kind):
    from rstack import contract

    path = tmp_path / "metrics.jsonl"
    line = HOSTILE_METRICS[kind].replace("val_loss", "train_loss")
    path.write_text('{"step": 0, "train_loss": 1.0}\n' + line.replace("}", ', "step": 1}', 1)
                    if kind != "deep" else '{"step": 0, "train_loss": 1.0}\n' + line + "\n")
    with pytest.raises(contract.ContractError) as info:
        history = contract.read_history(path)
        contract.check_divergence(history)
    assert info.value.category == "metrics-invalid"


HOSTILE_SCRIPT = """
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--output-dir"); p.add_argument("--seed", type=int); p.add_argument("--smoke-test", action="store_true")
a = p.parse_args()
os.makedirs(a.output_dir, exist_ok=True)
open(os.path.join(a.output_dir, "metrics.json"), "w").write('{"val_loss": ' + "9" * 400 + '}')
"""


def test_run_with_a_400_digit_metric_is_failed_metrics_invalid(project, cli):
    write_project(project, {"a": []}, seeds=(0,))
    _write_script(project, HOSTILE_SCRIPT)
    result = cli("run")
    assert result.exit_code == 1, result.output
    [done] = finished(project)
    assert (done["status"], done["category"]) == ("failed", "metrics-invalid")


def test_preflight_with_a_400_digit_metric_fails_metrics_invalid(project, cli):
    _write_script(project, HOSTILE_SCRIPT)
    result = cli("preflight", "train.py")
    assert result.exit_code == 1, result.output
    assert "metrics-invalid" in result.output


# -- item 6: the plan's script must resolve inside the project ---------------------------------

@pytest.mark.parametrize("script", ["./../outside.py", "results/../../../etc/passwd",
                                    "a/../../outside.py"])
def test_plan_script_outside_the_project_is_refused(project, script):
    from rstack.plan import PlanError, load_plan

    path = write_project(project, {"a": []}, seeds=(0,))
    path.write_text(path.read_text().replace("script: train.py", f"script: {script}"))
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert "execution.script: must be a path inside the project" in info.value.message


def test_script_symlinked_outside_the_project_is_refused(project, tmp_path):
    from rstack.runs import RunError, provenance

    outside = tmp_path / "outside.py"
    outside.write_text("print('hi')\n")
    (project / "train.py").symlink_to(outside)
    with pytest.raises(RunError) as info:
        provenance(project, "train.py", None)
    assert "resolves outside the project root" in info.value.message


# -- item 1: run ids are unique by construction, checked before launch --------------------------

def test_run_ids_of_arms_sharing_a_long_prefix_are_distinct(monkeypatch):
    from rstack import plan as plan_module

    monkeypatch.setattr(plan_module.secrets, "token_hex", lambda n: "00" * n)
    prefix = "x" * 40
    ids = {plan_module.new_run_id(f"{prefix}{i}", 0) for i in range(600)}
    assert len(ids) == 600


def test_a_colliding_run_id_is_redrawn_before_launch(project, cli, monkeypatch):
    from rstack import plan as plan_module

    write_project(project, {"a": []}, seeds=(0,))
    monkeypatch.setattr(plan_module.secrets, "token_hex", lambda n: "00" * n)
    frozen = plan_module.datetime(2026, 1, 1, tzinfo=plan_module.timezone.utc)

    class Clock(plan_module.datetime):
        @classmethod
        def now(cls, tz=None):
            return frozen

    monkeypatch.setattr(plan_module, "datetime", Clock)
    assert cli("run").exit_code == 0
    first = records(project, "run.started")[0]["run_id"]
    result = cli("run")
    assert result.exit_code == 0, result.output
    ids = [r["run_id"] for r in records(project, "run.started")]
    assert len(set(ids)) == 2 and ids[0] == first


# -- item 5 + #11: runs of an older script or plan are superseded, not reused -----------------

def test_resume_reruns_runs_of_an_older_script_and_status_lists_them_superseded(project, cli):
    from rstack.analysis.collect import collect_runs
    from rstack.status import project_status

    write_project(project, {"a": []}, seeds=(0,))
    assert cli("run").exit_code == 0
    first = records(project, "run.started")[0]["run_id"]
    with open(project / "train.py", "a") as handle:
        handle.write("# a changed script\n")
    stage = project_status(project).stages["runs"]
    assert stage.data["superseded"] == 1 and stage.state == "missing"
    assert "1 superseded (older script)" in stage.detail
    collected = collect_runs(project)
    assert collected.runs == [] and any("superseded" in note for note in collected.notes)
    listed = json.loads(cli("runs", "list", "--json").output)["runs"]
    assert [(r["run_id"], r["superseded"]) for r in listed] == [(first, True)]
    result = cli("run", "--resume")
    assert result.exit_code == 0, result.output
    assert "1 run(s): 1 ok" in result.output, "the old script's ok run is not reused"
    stage = project_status(project).stages["runs"]
    assert stage.state == "ok" and stage.data["arms"]["a"]["ok"] == 1
    assert [r.run_id for r in collect_runs(project).runs] != [first]


def test_resume_skips_runs_of_the_current_script(project, cli):
    write_project(project, {"a": []}, seeds=(0,))
    assert cli("run").exit_code == 0
    result = cli("run", "--resume")
    assert result.exit_code == 0, result.output
    assert len(records(project, "run.started")) == 1


# -- item 25: one read model, cached and invalidated by the ledger's size and hashes ----------

def _started(run_id, arm="a", seed=0):
    return {"type": "run.started", "run_id": run_id, "arm": arm, "seed": seed, "args": [],
            "command": ["python", "train.py"], "output_dir": f"results/{run_id}",
            "profile": "local", "host": "h", "plan_sha256": None, "config_hash": "0" * 64,
            "git_commit": None, "git_dirty": None, "script": "train.py",
            "script_sha256": "1" * 64, "timeout_s": 60, "cost_estimate_usd": 0.0, "attempt": 1,
            "retry_of": None}


def _finished(run_id, status="ok", cost=0.5, arm="a", seed=0):
    return {"type": "run.finished", "run_id": run_id, "arm": arm, "seed": seed,
            "status": status, "exit_code": 0, "category": None, "hint": None,
            "metrics": {"val_loss": 1.0}, "artifacts": [], "duration_s": 1.0, "cost_usd": cost}


def _fields(index):
    return ([row.to_list() for row in index.runs()], index.line_count, index.size,
            index.spent_usd(), index.damage_count)


def test_run_index_is_incremental_and_rebuilt_after_a_rewrite(project):
    from rstack import runview

    ledger = Ledger(project, "experiments")
    ledger.append(_started("r1"))
    ledger.append(_finished("r1"))
    first = runview.load(project)
    assert runview.cache_path(project).is_file()
    ledger.append(_started("r2", seed=1))
    grown = runview.load(project)
    assert _fields(grown) == _fields(runview.load(project, cache=False))
    assert [row.status for row in grown.runs()] == ["ok", None]
    assert [row.run_id for row in grown.in_flight()] == ["r2"] and grown.spent_usd() == 0.5
    # A rewrite (what `log repair` does) with the same size is seen through the hashes.
    path = ledger.path
    path.write_bytes(path.read_bytes().replace(b'"r1"', b'"x1"'))
    rebuilt = runview.load(project)
    assert {row.run_id for row in rebuilt.runs()} == {"x1", "r2"}
    assert _fields(rebuilt) == _fields(runview.load(project, cache=False))
    assert first.line_count == 2


@pytest.mark.parametrize("text", ["[]", "null", "5", '"x"'])
def test_run_index_cache_that_is_not_an_object_is_rebuilt(project, text):
    # A cache file truncated or overwritten with valid JSON that is not an object is a cache
    # miss, like a damaged one: the index is rebuilt from the ledger, not an AttributeError.
    from rstack import runview

    ledger = Ledger(project, "experiments")
    ledger.append(_started("r1"))
    ledger.append(_finished("r1"))
    runview.load(project).runs()
    runview.cache_path(project).write_text(text)
    runview.rows_cache_path(project).write_text(text)
    index = runview.load(project)
    assert [row.run_id for row in index.runs()] == ["r1"] and index.spent_usd() == 0.5


def test_run_index_prefix_lookup_and_torn_tail(project, cli):
    from rstack import runview

    ledger = Ledger(project, "experiments")
    for run_id in ("20260101-a-1", "20260101-a-2", "20260102-b-1"):
        ledger.append(_started(run_id))
    with open(ledger.path, "ab") as handle:
        handle.write(b'{"v":1,"type":"run.fin')
    index = runview.load(project)
    assert [r.run_id for r in index.find("20260101")] == ["20260101-a-1", "20260101-a-2"]
    assert [r.run_id for r in index.find("20260102")] == ["20260102-b-1"]
    assert index.torn_tail and index.line_count == 3
    result = cli("runs", "show", "20260101")
    assert result.exit_code == 1
    assert "'20260101' matches 2 runs: 20260101-a-1, 20260101-a-2" in result.output
    assert cli("runs", "show", "20260102").exit_code == 0


# -- item 2: one `rstack run` per project at a time ---------------------------------------------

HOLD_LOCK = """
import sys, time
from pathlib import Path
from rstack.runlock import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_run_or_resume_refuses_while_a_run_holds_the_lock(project, cli):
    write_project(project, {"a": []}, seeds=(0,))
    Ledger(project, "experiments").append(_started("live-run"))  # the live run's run in flight
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(project)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for args in (["run"], ["run", "--resume"]):
            result = cli(*args)
            assert result.exit_code == 1, result.output
            assert (f"another `rstack run` is running in this project (pid {holder.pid} on "
                    f"{os.uname().nodename}") in result.output
            assert "fix: wait for it to finish" in result.output
        assert records(project, "run.finished") == [], "the live run's run was not closed"
        assert len(records(project, "run.started")) == 1
    finally:
        holder.kill()
        holder.wait()
    # The holder died without cleaning up: the kernel released the lock.
    result = cli("run", "--resume")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in finished(project)] == ["killed", "ok"]


# -- item 3: a run that finished is judged from the disk, and runs die with their supervisor ----

def test_resume_judges_a_finished_run_from_disk_when_its_record_was_not_written(project, cli,
                                                                               monkeypatch):
    from rstack.errors import LedgerError
    from rstack.ledger import Ledger as RealLedger

    write_project(project, {"a": []}, seeds=(0,))
    real_append = RealLedger.append

    def disk_full(self, record):
        if record.get("type") == "run.finished":
            raise LedgerError("cannot write ledger: the disk is full; nothing was written")
        return real_append(self, record)

    monkeypatch.setattr(RealLedger, "append", disk_full)
    crashed = cli("run")
    assert crashed.exit_code == 1 and "the disk is full" in crashed.output
    monkeypatch.setattr(RealLedger, "append", real_append)
    assert finished(project) == []
    result = cli("run", "--resume")
    assert result.exit_code == 0, result.output
    [done] = finished(project)
    assert done["status"] == "ok" and done["exit_code"] == 0 and done["metrics"]["val_loss"] > 0
    assert len(records(project, "run.started")) == 1, "it was not run again"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


SPAWNING_SCRIPT = """
import argparse, os, subprocess, sys, time
p = argparse.ArgumentParser()
p.add_argument("--output-dir"); p.add_argument("--seed", type=int); p.add_argument("--smoke-test", action="store_true")
a = p.parse_args()
helper = subprocess.Popen(["sleep", "600"], start_new_session=True)
with open(os.environ["PIDS_FILE"], "w") as handle:
    handle.write(f"{os.getpid()} {helper.pid}\\n")
time.sleep(600)
"""


def test_sigkilled_rstack_run_leaves_no_training_process(project, tmp_path):
    write_project(project, {"a": []}, seeds=(0,))
    _write_script(project, SPAWNING_SCRIPT)
    pids_file = tmp_path / "pids"
    env = dict(os.environ, RSTACK_PROJECT=str(project), PIDS_FILE=str(pids_file))
    proc = subprocess.Popen([str(RSTACK), "run"], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        text = _wait(lambda: pids_file.exists() and pids_file.read_text().strip())
        assert text, "the script did not start"
        script_pid, helper_pid = map(int, text.split())
        proc.kill()
        proc.wait()
        assert _wait(lambda: not _alive(script_pid) and not _alive(helper_pid)), \
            "a training process outlived the rstack run that supervised it"
    finally:
        for pid in (locals().get("script_pid"), locals().get("helper_pid")):
            if pid and _alive(pid):
                os.kill(pid, signal.SIGKILL)
    started = records(project, "run.started")[0]
    assert started["containment"] == "subreaper"


# -- item 7: an escapee that wipes its environment is still contained ---------------------------

ESCAPING_SCRIPT = """
import argparse, json, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--output-dir"); p.add_argument("--seed", type=int); p.add_argument("--smoke-test", action="store_true")
a = p.parse_args()
os.makedirs(a.output_dir, exist_ok=True)
metrics = os.path.abspath(os.path.join(a.output_dir, "metrics.json"))
pid_file = os.environ["PIDS_FILE"]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        code = ("import os, time; open(%r, 'w').write(str(os.getpid())); time.sleep(2); "
                "open(%r, 'w').write(%r)" % (pid_file, metrics, '{"val_loss": 99.0}'))
        os.execve(sys.executable, [sys.executable, "-c", code], {})
    os._exit(0)
for _ in range(200):
    if os.path.exists(pid_file) and open(pid_file).read():
        break
    time.sleep(0.02)
json.dump({"val_loss": 0.5}, open(metrics, "w"))
"""


def test_escapee_with_an_empty_environment_is_killed_before_artifacts_are_hashed(
        project, cli, tmp_path, monkeypatch):
    write_project(project, {"a": []}, seeds=(0,))
    _write_script(project, ESCAPING_SCRIPT)
    pids_file = tmp_path / "escapee"
    monkeypatch.setenv("PIDS_FILE", str(pids_file))
    result = cli("run")
    assert result.exit_code == 0, result.output
    escapee = int(pids_file.read_text())
    try:
        assert not _alive(escapee), "the escapee outlived the run"
    finally:
        if _alive(escapee):
            os.kill(escapee, signal.SIGKILL)
    [done] = finished(project)
    time.sleep(2.5)
    metrics = next(a for a in done["artifacts"] if a["path"].endswith("metrics.json"))
    import hashlib
    assert hashlib.sha256((project / metrics["path"]).read_bytes()).hexdigest() == metrics["sha256"]
    assert done["metrics"] == {"val_loss": 0.5}


# -- item 14: reproduce runs only the recorded interpreter + script form ------------------------

def test_reproduce_refuses_a_foreign_command_unless_yes(project, cli, tmp_path):
    from analysis_fixtures import record_run, write_project as write_analysis_project

    write_analysis_project(project)
    run_id = record_run(project, "baseline", 0, ["--lr", "0.05", "--steps", "5"])
    path = Ledger(project, "experiments").path
    marker = tmp_path / "pwned"
    text = path.read_text()
    started = json.loads(text.splitlines()[0])
    started["command"] = ["sh", "-c", f"touch {marker}"]
    path.write_text(json.dumps(started) + "\n" + "\n".join(text.splitlines()[1:]) + "\n")
    result = cli("reproduce", run_id)
    assert result.exit_code == 1
    assert (f"run {run_id}: its recorded command is not the form `rstack run` writes") in result.output
    assert f"sh -c 'touch {marker}'" in result.output
    assert f"fix: read the command; if you trust it: rstack reproduce {run_id} --yes" in result.output
    assert not marker.exists()
    cli("reproduce", run_id, "--yes")
    assert marker.exists()


def test_reproduce_refuses_a_run_id_that_is_a_path(project, cli):
    from analysis_fixtures import record_run, write_project as write_analysis_project

    write_analysis_project(project)
    run_id = record_run(project, "baseline", 0, ["--lr", "0.05", "--steps", "5"])
    path = Ledger(project, "experiments").path
    path.write_text(path.read_text().replace(run_id, "../../evil"))
    result = cli("reproduce", "../../evil")
    assert result.exit_code == 1
    assert "run id '../../evil' is not a plain name" in result.output


# -- item 25: a large config is refused at once; repair is streamed and cleans up after itself --

def test_a_3mb_config_is_refused_with_a_clear_message(cli):
    from rstack import paths

    path = paths.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("venue: arxiv\n" + "".join(f"# padding line {i:07d} {'x' * 40}\n"
                                               for i in range(60_000)))
    assert path.stat().st_size > 3_000_000
    result = cli("config", "get", "venue")
    assert result.exit_code == 1
    # (the size bound is hardening-A's safeio limit; the cache above it is this item's)
    assert f"{path} is {path.stat().st_size:,} bytes" in result.output
    assert "fix: move" in result.output


def test_repair_removes_a_killed_repairs_temp_file_and_keeps_the_lock(project):
    ledger = Ledger(project, "experiments")
    ledger.append(_started("r1"))
    with open(ledger.path, "ab") as handle:
        handle.write(b"not json\n")
    ledger.append(_started("r2", seed=1))
    leftover = ledger.path.with_name(f".{ledger.path.name}.repair-killed1")
    leftover.write_bytes(b"half a copy")
    result = ledger.repair()
    assert not leftover.exists()
    assert ledger.lock_path.exists()
    assert [p.line for p in result.quarantined] == [2] and result.kept == 2
    assert [r["run_id"] for r in ledger.read().records] == ["r1", "r2"]
    assert list(ledger.path.parent.glob(f".{ledger.path.name}.repair-*")) == []


# -- item 7: a SIGKILLed preflight's work directory is removed by the next preflight -----------

def test_next_preflight_removes_a_killed_preflights_work_dir(project, cli):
    import tempfile

    from rstack.preflight import WORK_PREFIX

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(tempfile.gettempdir()) / f"{WORK_PREFIX}{dead.pid}-killed"
    (stale / "tmp").mkdir(parents=True)
    live = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getppid()}-"))
    try:
        write_project(project, {"a": []}, seeds=(0,))
        result = cli("preflight", "train.py")
        assert result.exit_code == 0, result.output
        assert "containment: subreaper" in result.output
        assert not stale.exists()
        assert live.exists(), "a live preflight's directory is left alone"
    finally:
        import shutil
        shutil.rmtree(live, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)


# -- item 9: a paid run is not started when what is billed so far would cross the cap ---------

def test_a_paid_run_is_not_started_when_accrued_billing_would_cross_the_cap(project):
    from rstack.plan import compile_plan, load_plan
    from rstack.runners.local import LocalRunner
    from rstack.runs import RunPolicy, execute, specs_from_matrix

    path = write_project(project, {"a": []}, seeds=(0, 1))
    plan = load_plan(path)
    specs = specs_from_matrix(compile_plan(plan, root=project, spent_usd=0.0).runs, plan.script)
    for spec in specs:
        spec.cost_estimate_usd = 1.0  # fits the cap of 10 up front

    class Billing(LocalRunner):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.launched = 0

        def launch(self, spec, *, on_line=None):
            self.launched += 1
            return super().launch(spec, on_line=on_line)

        def accrued_usd(self):  # the machine has billed $9.50 beyond its runs by now
            return 9.5 if self.launched else 0.0

    runner = Billing(project, jobs=1, gpus=[])
    report = execute(project, specs, runner, policy=RunPolicy(plan=plan, max_retries=0,
                                                              cap_usd=10.0), jobs=1)
    assert runner.launched == 1
    assert [r.status for r in report.results] == ["ok"]
    assert len(report.refusals) == 1 and "not started: cost cap: spent $9.50 + estimate $1.00" \
        in report.refusals[0]
    assert len(records(project, "run.started")) == 1
