"""`rstack demo`: the bundled example runs end to end offline and its paper passes the audit;
the README's quick start works in a fresh clone of the committed repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rstack import demo
from rstack.ledger import Ledger
from rstack.status import project_status

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "demo"

needs_latex = pytest.mark.skipif(not (shutil.which("latexmk") or shutil.which("pdflatex")),
                                 reason="no LaTeX engine (.ci/run installs TeX Live)")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One full demo run shared by the assertions below (it takes several seconds)."""
    home = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in ("HOME", "RSTACK_HOME", "RSTACK_PROJECT")}
    os.environ.update(HOME=str(home), RSTACK_HOME=str(home / ".rstack"))
    os.environ.pop("RSTACK_PROJECT", None)
    try:
        from click.testing import CliRunner

        from rstack.cli import main

        dest = tmp_path_factory.mktemp("d") / "rstack-demo"
        run = CliRunner().invoke(main, ["demo", str(dest), "--json"], catch_exceptions=False)
        assert run.exit_code == 0, run.output
        data = json.loads(run.stdout)  # --json: the object on stdout, progress lines on stderr
        result = SimpleNamespace(
            root=Path(data["dir"]), pdf=Path(data["pdf"]), seconds=data["seconds"],
            phases=[SimpleNamespace(name=p["phase"], seconds=p["seconds"], detail=p["detail"])
                    for p in data["phases"]])
        yield result, run.stderr.splitlines()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@needs_latex
def test_demo_runs_every_phase_and_prints_a_line_each(demo_run):
    result, lines = demo_run
    assert [p.name for p in result.phases] == ["project", "plan check", "preflight", "runs",
                                                "analyze", "paper build", "paper audit", "bundle"]
    assert len(lines) == 8 and all(re.match(r"^\[\d/8\] ", line) for line in lines)
    assert "6 runs ok" in lines[3]
    assert result.pdf == result.root / "paper.pdf"
    assert result.pdf.read_bytes().startswith(b"%PDF")


@needs_latex
def test_demo_results_are_ledgered_and_the_paper_is_audited_clean(demo_run):
    from rstack.paper.audit import audit_paper
    from rstack.literature.verify import verify_citations

    result, _ = demo_run
    root = result.root
    finished = Ledger(root, "experiments").read(types=["run.finished"]).records
    assert sorted((r["arm"], r["seed"], r["status"]) for r in finished) == \
        [(arm, seed, "ok") for arm in ("momentum", "sgd") for seed in (0, 1, 2)]
    report = audit_paper(root)
    assert report.ok, [f.as_json() for f in report.errors]
    assert report.macros_used >= 10
    cites = verify_citations(root, root / "paper.tex", root / "paper.bib")
    assert cites.ok, cites.as_json()
    summary = json.loads((root / "analysis" / "summary.json").read_text())
    primary = [c for c in summary["comparisons"] if c["metric"] == "val_loss"]
    assert primary and primary[0]["improved"] and primary[0]["significant"]
    # Every stage of the pipeline is ok afterwards (setup aside: this HOME never ran ./setup).
    stages = project_status(root).stages
    assert {name: s.state for name, s in stages.items() if s.state != "ok"} == {"setup": "missing"}


@needs_latex
def test_demo_bundle_verifies_and_the_project_is_its_own_git_repo(demo_run, cli):
    result, _ = demo_run
    root = result.root
    assert (root / ".git").is_dir()
    verify = cli("bundle", "verify", str(root / "bundle"))
    assert verify.exit_code == 0, verify.output
    stamp = json.loads((root / "bundle" / "stamp.json").read_text())
    assert stamp.get("git_commit") or stamp.get("commit")


def test_offline_literature_snapshot_serves_lit_search(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("RSTACK_PROJECT", str(tmp_path))
    queries = demo.install_snapshot(tmp_path, EXAMPLE / demo.SNAPSHOT)
    assert len(queries) == 3
    result = cli("lit", "search", queries[0]["query"], "--source", "arxiv", "--offline", "--json")
    assert result.exit_code == 0, result.output
    papers = Ledger(tmp_path, "lit-review").read(types=["paper"]).records
    assert {p["ids"]["arxiv"] for p in papers} == set(queries[0]["ids"])
    adam = next(p for p in papers if p["ids"]["arxiv"] == "1412.6980")
    assert adam["title"] == "Adam: A Method for Stochastic Optimization"
    assert adam["authors"] == ["Diederik P. Kingma", "Jimmy Ba"] and adam["year"] == 2014
    # Not in the snapshot: offline says so instead of inventing an answer.
    miss = cli("lit", "search", "graph neural networks", "--source", "arxiv", "--offline")
    assert miss.exit_code == 1 and "no cached answer" in miss.output


def test_example_files_follow_the_contracts(tmp_path):
    from rstack.plan import load_plan

    plan = load_plan(EXAMPLE / "experiment-plan.md")
    assert plan.arms == {"sgd": ["--momentum", "0.0"], "momentum": ["--momentum", "0.9"]}
    assert plan.seeds == [0, 1, 2] and plan.baseline_arm == "sgd"
    draft = (EXAMPLE / "paper-draft.tex").read_text()
    assert "\\input{analysis/numbers.tex}" in draft
    assert re.search(r"\\rs[A-Z][A-Za-z]*", draft)
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(EXAMPLE / "train.py"), "--output-dir", str(out),
                    "--smoke-test", "--seed", "1"], check=True, capture_output=True, timeout=60)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"val_loss", "val_accuracy", "train_loss"}


def test_demo_refuses_a_non_empty_directory(tmp_path, cli):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "mine.txt").write_text("keep me\n")
    result = cli("demo", str(target))
    assert result.exit_code == 1
    assert f"{target} already exists and is not empty" in result.output
    assert (target / "mine.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in target.iterdir()) == ["mine.txt"]


# -- the README's quick start in a fresh clone (slow: a venv, an install, the demo) -------------

def _quick_start_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.slow
@needs_latex
def test_readme_quick_start_in_a_fresh_clone(tmp_path):
    commands = _quick_start_commands()
    assert "./setup && bin/rstack demo" in commands
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "RSTACK_HOME": str(tmp_path / "home" / ".rstack"),
           "CLAUDE_SKILLS_DIR": str(tmp_path / "home" / ".claude" / "skills")}
    env.pop("RSTACK_PROJECT", None)
    env.pop("VIRTUAL_ENV", None)
    # Use the pip cache/wheels already on this machine; setup itself needs only package installs.
    done = subprocess.run(["bash", "-c", " && ".join(commands)], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (clone / "rstack-demo" / "paper.pdf").is_file()
    assert f"{clone / 'rstack-demo' / 'paper.pdf'}" in done.stdout
    assert (tmp_path / "home" / ".claude" / "skills" / "rstack" / "bin" / "rstack").exists()
