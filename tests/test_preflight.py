"""`rstack preflight`: diagnoses, containment, the CLI's exit codes, --json shape, human form, ledger."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import pytest

from rstack.ledger import Ledger
from rstack.secrets import is_secret_name
from rstack.preflight import (compare_metrics, contained_env, default_memory_mb,
                              run_preflight)

from preflight_fixtures import load_cases, stage

CASES = {c.name: c for c in load_cases()}


def corpus(name, tmp_path):
    return stage(CASES[name], tmp_path), CASES[name].kwargs


CONTRACT = """
import argparse, json, os
p = argparse.ArgumentParser()
p.add_argument("--output-dir", default=os.environ.get("RSTACK_OUTPUT_DIR", "out"))
p.add_argument("--smoke-test", action="store_true")
p.add_argument("--seed", type=int, default=0)
"""


def write_script(tmp_path, body, name="train.py", *, contract=False):
    path = tmp_path / name
    path.write_text((CONTRACT if contract else "") + textwrap.dedent(body))
    return path




# -- diagnoses name what and where ------------------------------------------------------------

def test_syntax_error_is_found_before_running_with_file_line_and_text(tmp_path):
    script, kw = corpus("syntax_error", tmp_path)
    result = run_preflight(script, **kw)
    assert result.category == "syntax-error"
    assert f"{script}:5" in result.message and "def train(:" in result.message
    assert [c.name for c in result.checks] == ["compile"]


def test_missing_module_names_module_and_package(tmp_path):
    script, kw = corpus("missing_module", tmp_path)
    result = run_preflight(script, **kw)
    assert "'cv2'" in result.message and "opencv-python" in result.message
    assert f"{script}:" in result.message
    assert "pip install opencv-python" in result.hint
    lazy, kw = corpus("missing_module_lazy", tmp_path)
    result = run_preflight(lazy, **kw)
    assert "'sklearn'" in result.message and "scikit-learn" in result.message


def test_bad_flags_says_which_flag_to_add(tmp_path):
    script, kw = corpus("bad_flags_no_seed", tmp_path)
    result = run_preflight(script, **kw)
    assert "--seed" in result.message
    assert "parser.add_argument('--seed', type=int, default=0)" in result.hint
    script, kw = corpus("bad_flags_no_smoke", tmp_path)
    result = run_preflight(script, **kw)
    assert "--output-dir" in result.message and "--smoke-test" in result.message


def test_crash_names_exception_and_innermost_user_frame(tmp_path):
    script, kw = corpus("crash", tmp_path)
    result = run_preflight(script, **kw)
    assert "ZeroDivisionError: division by zero" in result.message
    line = next(n for n, text in enumerate(script.read_text().splitlines(), 1) if "v / sum" in text)
    assert result.location == f"{script}:{line}"


def test_exit_nonzero_quotes_the_last_output(tmp_path):
    script, kw = corpus("exit_nonzero", tmp_path)
    result = run_preflight(script, **kw)
    assert "status 3" in result.message and "giving up" in result.message


def test_hang_is_reported_within_stall_plus_a_second(tmp_path):
    script, kw = corpus("hang", tmp_path)
    result = run_preflight(script, **kw)
    assert result.category == "hang"
    # stall + 1 s is the target (bench/preflight.py prints it); the assertion leaves room for a
    # loaded CI machine.
    assert result.duration_s < kw["stall_s"] + 4
    assert "2 s" in result.message
    assert "blocked" in result.message and "last output: starting" in result.message
    script, kw = corpus("hang_silent_compute", tmp_path)
    result = run_preflight(script, **kw)
    assert result.category == "hang" and "a silent computation" in result.message


def test_memory_reports_peak(tmp_path):
    script, kw = corpus("memory_blowup", tmp_path)
    result = run_preflight(script, **kw)
    assert result.category == "memory"
    assert result.peak_rss_mb > kw["memory_mb"]
    assert "400 MB cap" in result.message


def test_metrics_written_elsewhere_says_where(tmp_path):
    script, kw = corpus("metrics_missing", tmp_path)
    result = run_preflight(script, **kw)
    assert "instead" not in result.message and "it is empty" in result.message
    script, kw = corpus("metrics_in_cwd", tmp_path)
    result = run_preflight(script, **kw)
    assert result.category == "metrics-missing"
    assert str(script.parent / "metrics.json") in result.message
    script, kw = corpus("metrics_in_tmp", tmp_path)
    result = run_preflight(script, **kw)
    assert "/tmp/rstack-corpus-results/metrics.json" in result.message
    assert "--output-dir" in result.hint
    script, kw = corpus("metrics_in_home", tmp_path)
    result = run_preflight(script, **kw)
    assert f"{os.environ['HOME']}/experiments/metrics.json" in result.message


@pytest.mark.parametrize("name, needle", [
    ("metrics_invalid_parse", "line 1 column 14"), ("metrics_invalid_list", "not a JSON object"),
    ("metrics_invalid_empty", "empty"), ("metrics_invalid_empty_object", "empty"),
    ("metrics_invalid_nested", "key 'val' is a nested object"),
    ("metrics_invalid_string", "key 'loss' is a string"),
    ("metrics_invalid_bool", "key 'converged' is a bool"), ("metrics_invalid_null", "key 'loss' is null"),
    ("metrics_invalid_nan", "key 'loss' is NaN"), ("metrics_invalid_inf", "key 'loss' is -Infinity"),
])
def test_invalid_metrics_name_the_problem(tmp_path, name, needle):
    script, kw = corpus(name, tmp_path)
    result = run_preflight(script, **kw)
    assert needle in result.message, result.message


def test_history_and_divergence_messages(tmp_path):
    script, kw = corpus("history_nan", tmp_path)
    result = run_preflight(script, **kw)
    assert "loss is NaN at step 3" in result.message and "metrics.jsonl:4" in result.message
    script, kw = corpus("divergence_growth", tmp_path)
    result = run_preflight(script, **kw)
    assert "train_loss grew" in result.message and "--lr" in result.hint


def test_nondeterminism_names_the_metric_and_no_determinism_skips_it(tmp_path):
    script, kw = corpus("nondeterministic", tmp_path)
    result = run_preflight(script, **kw)
    assert "val_loss:" in result.message and "--seed 0" in result.message
    result = run_preflight(script, determinism=False)
    assert result.passed
    assert result.checks[-1].as_json() == {"name": "determinism", "ok": True,
                                           "detail": "skipped (--no-determinism)"}


def test_sequential_determinism_run_on_one_core(tmp_path):
    script, kw = corpus("nondeterministic", tmp_path)
    assert run_preflight(script, concurrent=False).category == "nondeterministic"
    script, kw = corpus("ok_numpy", tmp_path)
    assert run_preflight(script, concurrent=False).passed


def test_compare_metrics_skips_timing_keys():
    diffs, skipped = compare_metrics({"loss": 1.0, "epoch_time_s": 1.0, "tokens_per_sec": 5.0},
                                     {"loss": 1.0 + 1e-9, "epoch_time_s": 2.0, "tokens_per_sec": 9.0})
    assert diffs == [] and skipped == ["epoch_time_s", "tokens_per_sec"]
    diffs, _ = compare_metrics({"loss": 1.0}, {"loss": 1.01, "acc": 0.5})
    assert diffs == ["acc only in the second run", "loss: 1.0 vs 1.01"]


# -- containment -----------------------------------------------------------------------------

def test_containment_env_cwd_and_fresh_output_dir(tmp_path, monkeypatch):
    for name in ("MY_API_TOKEN", "AWS_ACCESS_KEY_ID", "MODAL_TOKEN_ID", "HF_TOKEN", "S2_API_KEY",
                 "DB_PASSWORD", "GCP_CREDENTIALS", "SOME_SECRET"):
        monkeypatch.setenv(name, "leak")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("HARMLESS", "kept")
    monkeypatch.setenv("CALLER_SID", str(os.getsid(0)))
    script = write_script(tmp_path, contract=True, body="""
    a = p.parse_args()
    os.makedirs(a.output_dir, exist_ok=True)
    leaked = sorted(k for k, v in os.environ.items() if v == "leak")
    pre_existing = sorted(os.listdir(a.output_dir))
    info = {"leaked": len(leaked), "cuda_empty": int(os.environ["CUDA_VISIBLE_DEVICES"] == ""),
            "unbuffered": int(os.environ.get("PYTHONUNBUFFERED") == "1"),
            "harmless": int(os.environ.get("HARMLESS") == "kept"),
            "cwd_is_script_dir": int(os.getcwd() == os.path.dirname(os.path.abspath(__file__))),
            "out_fresh": int(pre_existing == []),
            "out_is_env": int(os.environ["RSTACK_OUTPUT_DIR"] == a.output_dir),
            # its own session (led by the containment shim), never the caller's
            "own_session": int(os.getsid(0) != int(os.environ["CALLER_SID"])),
            "smoke": int(a.smoke_test), "seed": a.seed}
    json.dump(info, open(os.path.join(a.output_dir, "metrics.json"), "w"))
    """)
    result = run_preflight(script, seed=7, determinism=False)
    assert result.passed, result.message
    assert result.metrics == {"leaked": 0, "cuda_empty": 1, "unbuffered": 1, "harmless": 1,
                              "cwd_is_script_dir": 1, "out_fresh": 1, "out_is_env": 1,
                              "own_session": 1, "smoke": 1, "seed": 7}


def test_secret_names():
    for name in ("GITHUB_TOKEN", "aws_secret_access_key", "AWS_REGION", "MODAL_TOKEN_SECRET",
                 "HF_TOKEN", "S2_API_KEY", "OPENAI_API_KEY", "MY_PASSWORD", "GOOGLE_CREDENTIALS"):
        assert is_secret_name(name), name
    for name in ("PATH", "HOME", "PYTHONPATH", "LANG", "OMP_NUM_THREADS"):
        assert not is_secret_name(name), name
    env = contained_env({"PATH": "/bin", "X_TOKEN": "t"}, output_dir="/o", tmp_dir="/t", threads=1)
    assert "X_TOKEN" not in env and env["PATH"] == "/bin" and env["OMP_NUM_THREADS"] == "1"


def test_default_memory_cap():
    assert 0 < default_memory_mb() <= 4096


def test_extra_args_reach_the_script(tmp_path):
    script = write_script(tmp_path, contract=True, body="""
    p.add_argument("--data", required=True)
    a = p.parse_args()
    os.makedirs(a.output_dir, exist_ok=True)
    json.dump({"n": len(a.data)}, open(os.path.join(a.output_dir, "metrics.json"), "w"))
    """)
    result = run_preflight(script, determinism=False)
    assert result.category == "bad-flags" and "--data" in result.message
    result = run_preflight(script, determinism=False, extra_args=["--data", "abcd"])
    assert result.passed and result.metrics == {"n": 4}


# -- the command -------------------------------------------------------------------------------

JSON_KEYS = ["verdict", "category", "message", "hint", "checks", "metrics", "duration_s",
             "peak_rss_mb", "containment"]


def test_cli_pass_json_shape(cli, tmp_path):
    script, _ = corpus("ok_numpy", tmp_path)
    result = cli("preflight", script, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert list(data) == JSON_KEYS
    assert data["verdict"] == "PASS" and data["category"] is None and data["hint"] == ""
    assert [c["name"] for c in data["checks"]] == ["compile", "imports", "smoke-run", "metrics.json",
                                                   "metrics.jsonl", "divergence", "determinism"]
    assert all(set(c) == {"name", "ok", "detail"} and c["ok"] is True for c in data["checks"])
    assert set(data["metrics"]) == {"train_loss", "weight_norm"}
    assert isinstance(data["duration_s"], float) and isinstance(data["peak_rss_mb"], float)


def test_cli_fail_json_and_exit_1(cli, tmp_path):
    script, _ = corpus("crash", tmp_path)
    result = cli("preflight", script, "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert list(data) == JSON_KEYS
    assert data["verdict"] == "FAIL" and data["category"] == "crash" and data["metrics"] is None
    assert data["checks"][-1]["ok"] is False


def test_cli_human_form(cli, tmp_path):
    script, _ = corpus("exit_nonzero", tmp_path)
    result = cli("preflight", script, "--no-determinism")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("✓ compile") and lines[1].startswith("✓ imports")
    assert lines[2].startswith("✗ smoke-run")
    assert "FAIL exit-nonzero (Non-zero exit without a traceback)" in lines
    assert any(line.startswith("  fix: ") for line in lines)
    assert "  | config check failed, giving up" in lines
    ok, _ = corpus("ok_stdlib", tmp_path)
    result = cli("preflight", ok)
    assert result.exit_code == 0
    assert result.output.splitlines()[-1].startswith("PASS ok_stdlib.py in ")


def test_cli_shows_at_most_20_output_lines(cli, tmp_path):
    script = write_script(tmp_path, """
    import sys
    for i in range(50):
        print("line", i)
    sys.exit(1)
    """)
    result = cli("preflight", script, "--no-determinism")
    shown = [line for line in result.output.splitlines() if line.startswith("  | ")]
    assert len(shown) == 20 and shown[-1] == "  | line 49"


def test_cli_usage_errors_exit_2(cli, tmp_path):
    assert cli("preflight", tmp_path / "nope.py").exit_code == 2
    script, _ = corpus("ok_stdlib", tmp_path)
    assert cli("preflight", script, "--budget", "-1").exit_code == 2
    assert cli("preflight", script, "--memory-mb", "0").exit_code == 2
    assert cli("preflight", script, "--lr", "0.1").exit_code == 2  # script args go after --
    result = cli("preflight", script, "--python", str(tmp_path / "no-python"))
    assert result.exit_code == 2
    assert "no such interpreter" in result.output


def test_cli_other_interpreter(cli, tmp_path):
    script, _ = corpus("ok_stdlib", tmp_path)
    python = os.path.realpath(sys.executable)  # the same binary by another path: checks run in a child
    result = cli("preflight", script, "--python", python, "--json")
    assert result.exit_code == 0, result.output
    script, _ = corpus("syntax_error", tmp_path)
    data = json.loads(cli("preflight", script, "--python", python, "--json").output)
    assert data["category"] == "syntax-error" and f"{script}:5" in data["message"]


def test_cli_records_in_a_project(cli, project):
    (project / ".rstack").mkdir()
    script, _ = corpus("ok_stdlib", project)
    first = cli("preflight", script)
    assert first.exit_code == 0, first.output
    bad, _ = corpus("crash", project)
    assert cli("preflight", bad).exit_code == 1
    records = Ledger(project, "experiments").read(types=["preflight"]).records
    assert [(r["verdict"], r["category"]) for r in records] == [("PASS", None), ("FAIL", "crash")]
    import hashlib
    assert records[0]["script"] == "ok_stdlib/ok_stdlib.py"
    assert records[0]["script_sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert records[0]["metrics"] == {"loss": pytest.approx(records[0]["metrics"]["loss"]),
                                     "w": pytest.approx(records[0]["metrics"]["w"])}
    assert records[1]["hint"] and records[1]["checks"][-1]["ok"] is False
    # The extra args after `--` are recorded, so a FAIL from args no arm uses is told apart.
    bogus = cli("preflight", script, "--", "--bogus", "1")
    assert bogus.exit_code == 1 and "bad-flags" in bogus.output
    records = Ledger(project, "experiments").read(types=["preflight"]).records
    assert [r["args"] for r in records] == [[], [], ["--bogus", "1"]]


def test_cli_outside_a_project_records_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script, _ = corpus("ok_stdlib", tmp_path)
    assert cli("preflight", script, "--project", tmp_path).exit_code == 0
    assert not (tmp_path / ".rstack").exists()


def test_template_passes(cli):
    from rstack.paths import templates_dir

    result = cli("preflight", templates_dir() / "train_template.py", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["metrics"]) >= {"train_loss", "val_loss", "val_accuracy"}


def test_keyboard_interrupt_kills_both_runs_and_reraises(tmp_path, monkeypatch):
    import _thread
    import uuid

    from procwatch_fixtures import leftover_processes

    marker = f"rstack-corpus-{uuid.uuid4().hex}"
    monkeypatch.setenv("RSTACK_CORPUS_MARKER", marker)
    script = write_script(tmp_path, contract=True, body="""
    import subprocess, sys, time
    a = p.parse_args()
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                      os.environ["RSTACK_CORPUS_MARKER"]])
    while True:
        print("tick", flush=True)
        time.sleep(0.1)
    """)
    lines = []

    def interrupt(line):
        lines.append(line)
        if len(lines) == 5:
            _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        run_preflight(script, on_line=interrupt, budget_s=60, stall_s=30)
    assert leftover_processes(marker) == []
    assert leftover_processes(str(script)) == []


def test_silent_script_at_budget_is_smoke_ignored(tmp_path):
    script = write_script(tmp_path, contract=True, body="""
    import time
    time.sleep(600)
    """)
    result = run_preflight(script, budget_s=2, stall_s=30, determinism=False)
    assert result.category == "smoke-ignored"
    assert "(it printed nothing)" in result.message


def test_template_accepts_the_retry_ladder_flags(cli):
    from rstack.paths import templates_dir

    result = cli("preflight", templates_dir() / "train_template.py", "--json", "--",
                 "--lr", "0.1", "--batch-size", "8", "--grad-accum", "4")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["verdict"] == "PASS"


def test_cli_internal_error_exits_2(cli, tmp_path, monkeypatch):
    import rstack.preflight

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(rstack.preflight, "run_preflight", broken)
    script, _ = corpus("ok_stdlib", tmp_path)
    result = cli("preflight", script)
    assert result.exit_code == 2
    assert "preflight could not run: boom" in result.output


def test_sigterm_to_preflight_kills_the_scripts_processes(tmp_path, monkeypatch):
    import signal
    import subprocess
    import uuid

    from procwatch_fixtures import leftover_processes

    marker = f"rstack-corpus-{uuid.uuid4().hex}"
    script, _ = corpus("hang_with_children", tmp_path)
    env = {**os.environ, "RSTACK_CORPUS_MARKER": marker}
    proc = subprocess.Popen([sys.executable, "-m", "rstack", "preflight", str(script),
                             "--stall", "60", "--project", str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(leftover_processes(marker, wait_s=0)) < 4:
        time.sleep(0.1)  # both runs' child and setsid'd grandchild are up
    assert len(leftover_processes(marker, wait_s=0)) >= 4
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    assert proc.returncode != 0
    assert leftover_processes(marker) == []
    assert leftover_processes(str(script)) == []


# -- rehearsal of the real run, and what corrupts results (issue 11) -------------------------

def test_preflight_rehearses_the_runner_cwd_interpreter_and_arg_form(cli, project, tmp_path):
    """A script that reads data relative to the project root (where the runner starts it) passes
    when preflight starts it the same way, with the plan's interpreter."""
    import shutil
    from runs_fixtures import plan_front
    from ruamel.yaml import YAML
    import io
    (project / "data").mkdir()
    (project / "data" / "x.txt").write_text("3\n")
    (project / "src").mkdir()
    write_script(project / "src", contract=True, body="""
    p.add_argument("--lr", type=float, required=True)
    a, rest = p.parse_known_args()
    os.makedirs(a.output_dir, exist_ok=True)
    n = int(open("data/x.txt").read())  # relative to the cwd: the project root in a real run
    json.dump({"val_loss": n * a.lr, "argv_tail": int(sys.argv[1:3] == ["--lr", "0.5"]),
               "exe": int(sys.executable.endswith("venv/bin/python"))},
              open(os.path.join(a.output_dir, "metrics.json"), "w"))
    """.replace("import argparse", "import argparse, sys"))
    (project / "src" / "train.py").write_text(
        "import sys\n" + (project / "src" / "train.py").read_text())
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    os.symlink(sys.executable, venv / "python")
    front = plan_front({"base": ["--lr", "0.5"]})
    front["execution"]["script"] = "src/train.py"
    front["execution"]["python"] = str(tmp_path / "venv")
    buf = io.StringIO()
    YAML().dump(front, buf)
    (project / "experiment-plan.md").write_text("---\n" + buf.getvalue() + "---\n")
    result = cli("preflight", "src/train.py", "--json", "--no-determinism", "--", "--lr", "0.5")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["metrics"] == {"val_loss": 1.5, "argv_tail": 1, "exe": 1}
    # the same script from its own folder (the old behaviour) cannot find data/x.txt
    alone = run_preflight(project / "src" / "train.py", determinism=False,
                          extra_args=["--lr", "0.5"])
    assert not alone.passed and "data/x.txt" in alone.message


def test_plan_metrics_must_be_in_the_smoke_run(tmp_path):
    script = write_script(tmp_path, contract=True, body="""
    a = p.parse_args()
    os.makedirs(a.output_dir, exist_ok=True)
    json.dump({"train_loss": 0.5}, open(os.path.join(a.output_dir, "metrics.json"), "w"))
    """)
    result = run_preflight(script, determinism=False, required_metrics=["val_loss", "val_acc"])
    assert (result.verdict, result.category) == ("FAIL", "plan-metric-missing")
    assert result.message == ("the plan compares val_loss, val_acc, but the smoke run's "
                              "metrics.json has only train_loss")
    assert "every metric the plan declares with a direction" in result.hint
    assert run_preflight(script, determinism=False, required_metrics=["train_loss"]).passed


def test_processes_left_running_are_reported(tmp_path):
    script = write_script(tmp_path, contract=True, body="""
    import subprocess, sys
    a = p.parse_args()
    os.makedirs(a.output_dir, exist_ok=True)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    json.dump({"loss": 1.0}, open(os.path.join(a.output_dir, "metrics.json"), "w"))
    """)
    result = run_preflight(script, determinism=False)
    assert result.passed
    note = next(c for c in result.checks if c.name == "processes")
    assert note.detail.startswith("1 process(es) were still running when the script exited")


def test_swallowed_exception_and_inconsistent_metrics_name_the_evidence(tmp_path):
    result = run_preflight(stage(CASES["swallowed_exception"], tmp_path), determinism=False)
    assert result.category == "swallowed-exception"
    assert "RuntimeError: shape mismatch in the eval batch" in result.message
    result = run_preflight(stage(CASES["metrics_inconsistent"], tmp_path / "b"),
                           determinism=False)
    assert result.category == "metrics-inconsistent"
    assert result.message.startswith("metrics.json says val_loss=0.0 but metrics.jsonl logged "
                                     "val_loss=0.268")
    result = run_preflight(stage(CASES["history_step_backwards"], tmp_path / "c"),
                           determinism=False)
    assert result.message == ("step goes backwards at record 6 of metrics.jsonl (4 -> 0): a "
                              "per-epoch counter? log the global step")


def test_arms_with_different_args_but_identical_smoke_metrics_fail(cli, project):
    import io
    from runs_fixtures import plan_front
    from ruamel.yaml import YAML
    write_script(project, contract=True, body="""
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--label-smoothing", type=float, default=0.0)  # parsed, never used
    a = p.parse_args()
    os.makedirs(a.output_dir, exist_ok=True)
    json.dump({"val_loss": 1.0 - a.lr}, open(os.path.join(a.output_dir, "metrics.json"), "w"))
    """)
    buf = io.StringIO()
    YAML().dump(plan_front({"ce": ["--label-smoothing", "0.0"],
                            "ls": ["--label-smoothing", "0.1"]}), buf)
    (project / "experiment-plan.md").write_text("---\n" + buf.getvalue() + "---\n")
    result = cli("preflight", "train.py", "--arms")
    assert result.exit_code == 1
    assert ("FAIL flag-not-wired (Arms differ in args but not in results)\n  arms ce "
            "(--label-smoothing 0.0) and ls (--label-smoothing 0.1) gave identical smoke "
            "metrics") in result.output
    buf = io.StringIO()
    YAML().dump(plan_front({"slow": ["--lr", "0.01"], "fast": ["--lr", "0.1"]}), buf)
    (project / "experiment-plan.md").write_text("---\n" + buf.getvalue() + "---\n")
    result = cli("preflight", "train.py", "--arms")
    assert result.exit_code == 0, result.output
    assert "2 arm(s) give different smoke metrics" in result.output


def test_memory_growth_extrapolation():
    from rstack.preflight import memory_growth
    history = [{"step": s} for s in range(50)]
    rising = [(i * 0.2, 20.0 + 1.0 * i) for i in range(40)]  # +39 MB over 50 steps
    assert memory_growth(rising, history, 5000, 4096) is None  # ~3.9 GB: under the cap
    message = memory_growth(rising, history, 20000, 4096)
    assert message.startswith("memory grew 39 MB over the smoke run's 50 steps (~0.78 MB/step); "
                              "at 20000 steps that is ~15620 MB, over the 4096 MB cap")
    flat = [(i * 0.2, 80.0 + (i % 3)) for i in range(40)]  # noise, no trend
    assert memory_growth(flat, history, 10**6, 4096) is None
    assert memory_growth(rising, history, None, 4096) is None  # no full step count: no claim


def test_rehearsal_reads_the_full_step_count_from_the_plan(project):
    import io
    from runs_fixtures import plan_front
    from ruamel.yaml import YAML
    from rstack.preflight import rehearsal
    (project / "train.py").write_text("print(1)\n")
    buf = io.StringIO()
    YAML().dump(plan_front({"a": ["--steps", "4000"], "b": ["--steps", "8000"]}), buf)
    (project / "experiment-plan.md").write_text("---\n" + buf.getvalue() + "---\n")
    kw = rehearsal(project, project / "train.py")
    assert kw["full_steps"] == 8000 and kw["cwd"] == project.resolve()
    assert kw["required_metrics"] == ["val_loss"] and kw["python"] is None
