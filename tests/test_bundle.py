"""rstack bundle create|verify on a project of real runs, in git and out of it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from analysis_fixtures import build_real_project


@pytest.fixture(scope="module")
def analysed_template(tmp_path_factory):
    from rstack.analysis import run_analysis

    root = tmp_path_factory.mktemp("bundled")
    ids = build_real_project(root, seeds=(0, 1))
    run_analysis(root)
    return root, ids


@pytest.fixture
def analysed(project, analysed_template):
    src, ids = analysed_template
    shutil.copytree(src, project, dirs_exist_ok=True)
    return project, ids


def _create(cli, out):
    result = cli("bundle", "create", "--out", out)
    assert result.exit_code == 0, result.output
    return result


def _commit_project(root):
    """A git repository at root with the script and plan committed (outputs ignored)."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    (root / ".gitignore").write_text(".rstack/\nresults/\nanalysis/\n")
    subprocess.run(git + ["init", "-q"], cwd=root, check=True)
    subprocess.run(git + ["add", "train.py", "experiment-plan.md", ".gitignore"], cwd=root,
                   check=True)
    subprocess.run(git + ["commit", "-q", "-m", "c"], cwd=root, check=True)


def test_create_holds_everything_and_verifies(analysed, cli, tmp_path):
    root, ids = analysed
    (root / "paper.tex").write_text("\\documentclass{article}\\input{analysis/numbers.tex}\n")
    (root / "paper.bib").write_text("@misc{a, title={A}}\n")
    (root / "paper.pdf").write_bytes(b"%PDF-1.5 fake for the bundle test\n%%EOF\n")
    (root / "review.md").write_text("- no-limitations: fixed (Section 5 added)\n")
    (root / "review-findings.json").write_text('{"version": 1, "findings": []}\n')
    out = tmp_path / "b"
    result = _create(cli, out)
    assert f"bundle: {out} (" in result.output and "6 runs" not in result.output
    all_ids = ids["baseline"] + ids["treatment"]
    for run_id in all_ids:
        assert (out / "results" / run_id / "metrics.json").is_file()
    for rel in ("code/train.py", "plan/experiment-plan.md", "ledgers/experiments.jsonl",
                "analysis/summary.json", "analysis/fig_bar.pdf", "paper/paper.tex",
                "paper/paper.bib", "paper/paper.pdf", "paper/review.md",
                "paper/review-findings.json", "environment/python.txt",
                "environment/platform.json", "environment/pip-freeze.txt",
                "environment/gpu.txt", "stamp.json", "checksums.sha256", "README.md"):
        assert (out / rel).is_file(), rel
    assert "numpy==" in (out / "environment" / "pip-freeze.txt").read_text()
    stamp = json.loads((out / "stamp.json").read_text())
    ledger = (root / ".rstack" / "experiments.jsonl").read_bytes()
    assert stamp["ledger_sha256"] == hashlib.sha256(ledger).hexdigest()
    assert stamp["run_ids"] == sorted(all_ids)
    assert stamp["commit"] is None and stamp["dirty"] is None and stamp["code_source"] == "files"
    assert stamp["rstack_version"] and stamp["created_at"].endswith("Z")
    # checksums: sorted, sha256sum format, every file but itself
    lines = (out / "checksums.sha256").read_text().splitlines()
    listed = [line.split("  ", 1)[1] for line in lines]
    assert listed == sorted(listed)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert listed == [f for f in files if f != "checksums.sha256"]
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=out, check=True)
    verified = cli("bundle", "verify", out)
    assert verified.exit_code == 0, verified.output
    assert f"{out}: {len(lines)} file(s) checked: OK" in verified.output


def test_verify_catches_a_changed_byte(analysed, cli, tmp_path):
    root, ids = analysed
    out = tmp_path / "b"
    _create(cli, out)
    target = out / "results" / ids["treatment"][0] / "metrics.json"
    data = bytearray(target.read_bytes())
    data[5] ^= 0x01
    target.write_bytes(bytes(data))
    result = cli("bundle", "verify", out)
    assert result.exit_code == 1
    rel = f"results/{ids['treatment'][0]}/metrics.json"
    assert f"changed: {rel}: sha256 " in result.output
    assert f"ledger: {rel}: sha256 " in result.output  # and the ledger's artifact hash disagrees
    assert "FAIL (2 problem(s))" in result.output


def test_verify_catches_missing_and_extra_files(analysed, cli, tmp_path):
    root, _ = analysed
    out = tmp_path / "b"
    _create(cli, out)
    (out / "analysis" / "fig_bar.png").unlink()
    (out / "analysis" / "notes.txt").write_text("added later")
    result = cli("bundle", "verify", out, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert {(p["kind"], p["path"]) for p in report["problems"]} == {
        ("missing", "analysis/fig_bar.png"), ("extra", "analysis/notes.txt")}
    human = cli("bundle", "verify", out)
    assert "missing: analysis/fig_bar.png: listed in checksums.sha256 but missing" in human.output
    assert "extra: analysis/notes.txt: not listed in checksums.sha256" in human.output


def test_verify_catches_a_ledger_swapped_with_fresh_checksums(analysed, cli, tmp_path):
    from rstack.bundle import write_checksums

    root, _ = analysed
    out = tmp_path / "b"
    _create(cli, out)
    ledger = out / "ledgers" / "experiments.jsonl"
    ledger.write_text(ledger.read_text().splitlines()[0] + "\n")
    write_checksums(out)  # a careful forger re-hashes; stamp.json still pins the ledger
    result = cli("bundle", "verify", out)
    assert result.exit_code == 1
    assert ("stamp: ledgers/experiments.jsonl does not match stamp.json's ledger_sha256"
            in result.output)


def test_verify_without_checksums(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    result = cli("bundle", "verify", tmp_path / "empty")
    assert result.exit_code == 1
    assert "missing: checksums.sha256 is missing: nothing can be verified" in result.output


def test_git_project_records_commit_and_dirty_patch(analysed, cli, tmp_path):
    root, _ = analysed
    _commit_project(root)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=True).stdout.strip()
    clean = tmp_path / "clean"
    _create(cli, clean)
    stamp = json.loads((clean / "stamp.json").read_text())
    assert (stamp["commit"], stamp["dirty"], stamp["code_source"]) == (head, False, "git-archive")
    assert sorted(p.name for p in (clean / "code").iterdir()) == [".gitignore",
                                                                   "experiment-plan.md",
                                                                   "train.py"]
    assert not (clean / "code.patch").exists()
    (root / "train.py").write_text((root / "train.py").read_text() + "# edited\n")
    dirty = tmp_path / "dirty"
    result = _create(cli, dirty)
    assert "(dirty: code.patch)" in result.output
    stamp = json.loads((dirty / "stamp.json").read_text())
    assert stamp["dirty"] is True
    assert "+# edited" in (dirty / "code.patch").read_text()
    assert "# edited" not in (dirty / "code" / "train.py").read_text()  # code/ is the commit
    assert cli("bundle", "verify", dirty).exit_code == 0


def test_git_repository_without_a_commit_bundles_files_and_says_to_commit(analysed, cli,
                                                                          tmp_path):
    root, _ = analysed
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    out = tmp_path / "b"
    result = _create(cli, out)
    note = ("the git repository has no commit yet: code/ holds its files as they are now; "
            "checksums.sha256 pins each by hash. To pin the code to a commit: `git add` the code "
            "and plan, `git commit`, then re-create the bundle (move this one aside, or rstack "
            "bundle create --out NEW_DIR)")
    assert f"note: {note}\n" in result.output
    assert "not in git" not in result.output and "commit none" in result.output
    stamp = json.loads((out / "stamp.json").read_text())
    assert (stamp["commit"], stamp["dirty"], stamp["code_source"]) == (None, None, "files")
    assert note in stamp["notes"] and not any("not in git" in n for n in stamp["notes"])
    assert (out / "code" / "train.py").is_file() and not (out / "code" / ".git").exists()
    assert "(not in git)" not in (out / "README.md").read_text()
    assert cli("bundle", "verify", out).exit_code == 0


def test_create_needs_an_analysis(project, cli, tmp_path):
    result = cli("bundle", "create", "--out", tmp_path / "b")
    assert result.exit_code == 1
    assert "analysis/summary.json not found" in result.output
    assert "fix: run `rstack analyze` first" in result.output


def test_create_refuses_a_non_empty_out_dir(analysed, cli, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "old.txt").write_text("x")
    result = cli("bundle", "create", "--out", out)
    assert result.exit_code == 1
    assert f"{out} already exists and is not empty" in result.output


def test_create_refuses_when_a_used_run_has_no_results(analysed, cli, tmp_path):
    root, ids = analysed
    shutil.rmtree(root / "results" / ids["baseline"][1])
    result = cli("bundle", "create", "--out", tmp_path / "b")
    assert result.exit_code == 1
    assert (f"results of runs the analysis used are missing: {ids['baseline'][1]} "
            f"(results/{ids['baseline'][1]})") in result.output
    assert not (tmp_path / "b").exists()


def test_stamp_notes_only_runs_finished_after_the_analysis(analysed, cli, tmp_path):
    from analysis_fixtures import record_metrics_run
    from rstack.ledger import Ledger

    root, _ = analysed
    Ledger(root, "experiments").append({"type": "note", "text": "a later note is harmless"})
    out = _create(cli, tmp_path / "b1")
    assert "rstack analyze" not in out.output
    record_metrics_run(root, "treatment", 7, {"val_loss": 0.1})
    out = _create(cli, tmp_path / "b2")
    assert ("note: 1 run(s) finished after `rstack analyze`; re-run `rstack analyze` so the "
            "analysis matches the bundled ledger") in out.output


# -- issue 18: secrets, credential files, forged results, malformed inputs ----------------------


def test_create_redacts_secrets_in_stdout_logs_and_says_so(analysed, cli, tmp_path):
    root, ids = analysed
    log = root / "results" / ids["baseline"][0] / "stdout.log"
    log.write_text(log.read_text() + "connecting with DB_PASS=hunter2hunter2 to "
                   "https://bob:pw123456@db.example/x\n")
    out = tmp_path / "b"
    result = _create(cli, out)
    rel = f"results/{ids['baseline'][0]}/stdout.log"
    assert f"note: {rel}: secrets redacted" in result.output
    bundled = (out / rel).read_text()
    assert "hunter2" not in bundled and "pw123456" not in bundled and "[REDACTED]" in bundled
    assert rel in json.loads((out / "stamp.json").read_text())["redacted"]
    verified = cli("bundle", "verify", out)
    assert verified.exit_code == 0, verified.output


def test_create_notes_a_credential_in_the_bundled_code(analysed, cli, tmp_path):
    # Code is bundled byte for byte (never redacted), so a token written into train.py used to
    # ship without a word: the note names the file and line.
    root, _ = analysed
    (root / "train.py").write_text((root / "train.py").read_text()
                                   + 'TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"\n')
    lines = (root / "train.py").read_text().count("\n")
    out = tmp_path / "b"
    result = _create(cli, out)
    assert (f"note: code/train.py:{lines}: looks like a credential; it is bundled as written: "
            "remove it from the code and rotate it") in result.output
    assert cli("bundle", "verify", out).exit_code == 0


def test_create_leaves_credential_files_and_ignored_files_out(analysed, cli, tmp_path):
    root, _ = analysed
    for rel in (".env", ".aws/credentials", ".netrc", "id_rsa", "scratch/big.tmp"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("AKIAABCDEFGHIJKLMNOP\n")
    (root / ".gitignore").write_text("scratch/\n")
    out = tmp_path / "b"
    result = _create(cli, out)
    code = sorted(p.relative_to(out / "code").as_posix() for p in (out / "code").rglob("*")
                  if p.is_file())
    assert not {".env", ".aws/credentials", ".netrc", "id_rsa", "scratch/big.tmp"} & set(code)
    assert "train.py" in code and "note: .env: a credential file" in result.output


def test_create_leaves_committed_credential_files_out(analysed, cli, tmp_path):
    root, _ = analysed
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    (root / ".env").write_text("DB_PASS=x\n")
    (root / ".gitignore").write_text(".rstack/\nresults/\nanalysis/\n")
    subprocess.run(git + ["init", "-q"], cwd=root, check=True)
    subprocess.run(git + ["add", "-A"], cwd=root, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "c"], cwd=root, check=True)
    out = tmp_path / "b"
    _create(cli, out)
    assert not (out / "code" / ".env").exists() and (out / "code" / "train.py").is_file()


def test_verify_catches_a_forged_result_with_recomputed_checksums(analysed, cli, tmp_path):
    from rstack.bundle import write_checksums

    root, ids = analysed
    out = tmp_path / "b"
    _create(cli, out)
    target = out / "results" / ids["treatment"][0] / "metrics.json"
    target.write_text(target.read_text().replace("{", '{"forged": 1, ', 1))
    write_checksums(out)
    result = cli("bundle", "verify", out)
    assert result.exit_code == 1
    rel = f"results/{ids['treatment'][0]}/metrics.json"
    assert f"ledger: {rel}: sha256 " in result.output
    assert "but the bundled ledger's run.finished artifacts say" in result.output


def test_verify_catches_a_result_file_the_ledger_never_recorded(analysed, cli, tmp_path):
    from rstack.bundle import write_checksums

    root, ids = analysed
    out = tmp_path / "b"
    _create(cli, out)
    (out / "results" / ids["treatment"][0] / "extra.json").write_text("{}")
    write_checksums(out)
    result = cli("bundle", "verify", out)
    assert result.exit_code == 1
    assert "is not among the artifacts the bundled ledger recorded" in result.output


@pytest.mark.parametrize("content", [
    b"\xff\xfe not utf-8\n",
    ("0" * 64 + "  ../../etc/passwd\n").encode(),
    ("0" * 64 + "  /etc/passwd\n").encode(),
    ("z" * 64 + "  README.md\n").encode(),
])
def test_verify_reports_a_malformed_checksums_file(analysed, cli, tmp_path, content):
    root, _ = analysed
    out = tmp_path / "b"
    _create(cli, out)
    (out / "checksums.sha256").write_bytes(content)
    result = cli("bundle", "verify", out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "malformed: " in result.output


@pytest.mark.parametrize("stamp", ['[1, 2]', '{"run_ids": 5, "ledger_sha256": 7}',
                                   '{"run_ids": ["../../x", null]}', "\xff"])
def test_verify_reports_a_malformed_stamp(analysed, cli, tmp_path, stamp):
    from rstack.bundle import write_checksums

    root, _ = analysed
    out = tmp_path / "b"
    _create(cli, out)
    (out / "stamp.json").write_bytes(stamp.encode("latin-1"))
    write_checksums(out)
    result = cli("bundle", "verify", out)
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception,
                                                                             SystemExit)
    assert "stamp" in result.output


def test_create_and_verify_count_the_same_files(analysed, cli, tmp_path):
    out = tmp_path / "b"
    created = _create(cli, out)
    verified = cli("bundle", "verify", out)
    count = len((out / "checksums.sha256").read_text().splitlines())
    assert f"({count} files," in created.output
    assert f"{count} file(s) checked: OK" in verified.output


def test_untracked_paper_files_make_the_stamp_dirty(analysed, cli, tmp_path):
    root, _ = analysed
    _commit_project(root)
    (root / "paper.tex").write_text("\\documentclass{article}\n")
    (root / "review.md").write_text("notes\n")
    out = tmp_path / "b"
    _create(cli, out)
    stamp = json.loads((out / "stamp.json").read_text())
    assert stamp["dirty"] is True and {"paper.tex", "review.md"} <= set(stamp["untracked"])


def test_verify_refuses_a_stamp_that_exempts_a_result_from_the_ledger_check(analysed, cli,
                                                                            tmp_path):
    from rstack.bundle import write_checksums

    root, ids = analysed
    out = tmp_path / "b"
    _create(cli, out)
    rel = f"results/{ids['treatment'][0]}/metrics.json"
    (out / rel).write_text('{"val_loss": 0.0001}')
    stamp = json.loads((out / "stamp.json").read_text())
    stamp["redacted"] = [rel]
    (out / "stamp.json").write_text(json.dumps(stamp))
    write_checksums(out)
    result = cli("bundle", "verify", out)
    assert result.exit_code == 1
    assert "stamp.json: redacted may list only stdout.log files" in result.output
    assert f"ledger: {rel}: sha256" in result.output
