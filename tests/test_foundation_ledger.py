"""Append-only ledgers and `rstack log ...`: validation, damage handling, repair, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from rstack import paths
from rstack.errors import LedgerError, RecordError
from rstack.ledger import Ledger, dumps_record, strict_loads
from rstack.records import RECORD_TYPES

NOTE = '{"type": "note", "text": "hello"}'
SHA = "a" * 64


_SAMPLES = {"str": "x", "label": "x", "int": 1, "number": 1.5, "bool": True, "object": {}, "array": [],
            "any": 1, "sha256": SHA}


def sample_record(rtype: str) -> dict:
    """A valid record of a registered type, built from the registry (other concerns extend it)."""
    record = {"type": rtype}
    for name, spec in RECORD_TYPES[rtype].required.items():
        base = spec.rstrip("?")
        record[name] = base[5:].split(",")[0] if base.startswith("enum:") else _SAMPLES[base]
    return record


def ledger_lines(root: Path, name: str = "experiments") -> list[str]:
    return paths.ledger_path(root, name).read_text().splitlines()


def test_append_fills_v_and_ts_and_writes_one_canonical_line(cli, project):
    result = cli("log", "append", "experiments", NOTE)
    assert result.exit_code == 0
    path = paths.ledger_path(project, "experiments")
    assert result.output == f"appended 1 record(s) to {path}\n"
    [line] = ledger_lines(project)
    record = json.loads(line)
    assert list(record)[:3] == ["v", "type", "ts"]
    assert record["v"] == 1 and record["text"] == "hello"
    assert record["ts"].endswith("Z") and len(record["ts"]) == len("2026-01-01T00:00:00.000Z")


@pytest.mark.parametrize("ts", ["2026-01-02T03:04:05.1Z", "2026-01-02T03:04:05.123456Z"])
def test_any_fraction_of_a_second_is_accepted(project, ts):
    written = Ledger(project, "experiments", fsync=False).append(
        {"type": "note", "text": "x", "ts": ts})
    assert written["ts"] == ts


def test_impossible_date_is_refused(cli, project):
    result = cli("log", "append", "experiments",
                 '{"type": "note", "text": "x", "ts": "2026-02-30T00:00:00Z"}')
    assert result.exit_code == 1
    assert result.output == ("Error: record 1: field ts: '2026-02-30T00:00:00Z' is not a real "
                             "date and time; nothing was appended\n")


def test_caller_ts_is_kept(project):
    ledger = Ledger(project, "experiments", fsync=False)
    written = ledger.append({"type": "note", "text": "x", "ts": "2026-01-02T03:04:05Z"})
    assert written["ts"] == "2026-01-02T03:04:05Z"
    assert ledger.records() == [written]


@pytest.mark.parametrize("record,message", [
    ('{"type": "note"}',
     "record 1: note record: missing required field 'text' (a string); nothing was appended"),
    ('{"type": "note", "text": 3}',
     "record 1: note record: field 'text' must be a string, got 3; nothing was appended"),
    ('{"type": "zzz"}', "record 1: field type: unknown record type 'zzz'. Known types: "),
    ('{"type": "paper", "key": "k", "title": "t"}',
     "record 1: record type 'paper' does not belong in the experiments ledger "
     "(it goes in: lit-review); nothing was appended"),
    ('{"type": "note", "text": "x", "v": 2}',
     "record 1: field v: expected 1, got 2; nothing was appended"),
    ('{"type": "note", "text": "x", "ts": "yesterday"}',
     "record 1: field ts: expected an ISO-8601 UTC time ending in Z, got 'yesterday'"),
    ('{"type": "preflight", "script": "a.py", "script_sha256": "x", "verdict": "PASS", '
     '"category": null, "duration_s": 1}',
     "record 1: preflight record: field 'script_sha256' must be a sha256 hex digest "
     "(64 lowercase hex chars), got 'x'; nothing was appended"),
    ('[1, 2]', "record 1: a record must be a JSON object, got list; nothing was appended"),
])
def test_invalid_record_exits_1_and_writes_nothing(cli, project, record, message):
    result = cli("log", "append", "experiments", record)
    assert result.exit_code == 1
    assert result.output.startswith("Error: " + message)
    assert not paths.ledger_path(project, "experiments").exists()


@pytest.mark.parametrize("record,message", [
    ('{"type": "note", "text": "x", "loss": NaN}', "NaN is not valid JSON"),
    ('{"type": "note", "text": "x", "loss": -Infinity}', "-Infinity is not valid JSON"),
    ('{"type": "note", "text": "x", "loss": 1e999}',
     "1e999 overflows to infinity, which is not valid in a ledger"),
    ("{not json", "Expecting property name enclosed in double quotes"),
])
def test_nan_infinity_and_bad_json_are_refused(cli, project, record, message):
    result = cli("log", "append", "experiments", record)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: RECORD: not valid JSON ({message}")
    assert "nothing was appended" in result.output
    assert not paths.ledger_path(project, "experiments").exists()


def test_library_refuses_nan_inside_nested_values(project):
    with pytest.raises(RecordError) as info:
        Ledger(project, "experiments").append(
            {"type": "note", "text": "x", "metrics": {"loss": [1.0, float("nan")]}})
    assert info.value.message == ("field metrics.loss[1]: NaN and Infinity are not valid JSON "
                                  "and are never ledgered")


def test_unknown_ledger_is_a_usage_error(cli, project):
    result = cli("log", "append", "nope", NOTE)
    assert result.exit_code == 2
    assert "Invalid value for 'LEDGER': 'nope' is not one of 'experiments', 'lit-review'" \
        in result.output
    with pytest.raises(LedgerError, match="unknown ledger 'nope'. Known ledgers: experiments, "
                                          "lit-review"):
        Ledger(project, "nope")


def test_record_and_stdin_are_exclusive(cli, project):
    for args in ((), (NOTE, "--stdin")):
        result = cli("log", "append", "experiments", *args, input="")
        assert result.exit_code == 2
        assert "Error: give exactly one of RECORD or --stdin" in result.output


def test_stdin_appends_each_line_and_skips_blank_lines(cli, project):
    data = '{"type": "note", "text": "a"}\n\n{"type": "note", "text": "b"}\n'
    result = cli("log", "append", "experiments", "--stdin", input=data)
    assert result.exit_code == 0
    assert result.output.startswith("appended 2 record(s)")
    assert [json.loads(line)["text"] for line in ledger_lines(project)] == ["a", "b"]


@pytest.mark.parametrize("data,message", [
    ('{"type": "note", "text": "a"}\n{"type": "note"}\n',
     "Error: record 2: note record: missing required field 'text' (a string); "
     "nothing was appended"),
    ('{"type": "note", "text": "a"}\n{bad\n',
     "Error: stdin line 2: not valid JSON (Expecting property name enclosed in double quotes: "
     "line 1 column 2 (char 1)); nothing was appended"),
])
def test_stdin_batch_is_all_or_nothing(cli, project, data, message):
    Ledger(project, "experiments").append({"type": "note", "text": "before"})
    result = cli("log", "append", "experiments", "--stdin", input=data)
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == message
    assert [json.loads(line)["text"] for line in ledger_lines(project)] == ["before"]


def write_damaged(project: Path) -> Path:
    ledger = Ledger(project, "experiments", fsync=False)
    ledger.append({"type": "note", "text": "one"})
    path = ledger.path
    with path.open("ab") as handle:
        handle.write(b'{"v":1,"type":"note","ts":"2026-01-01T00:00:00Z"}\n')  # invalid record
        handle.write(b"\xff not json\n")  # invalid JSON (and not UTF-8)
        handle.write(b'{"v":2,"type":"future","ts":"2026-01-01T00:00:00Z"}\n')  # unknown v
        handle.write(b'{"v":1,"type":"note","ts":"2026-01-01T00:00:00Z","text":"two"}\n')
        handle.write(b'{"v":1,"type":"note","ts":"2026-01-01T00:00:00Z","text":"torn')
    return path


def test_read_reports_damage_with_line_numbers_and_never_crashes(project):
    write_damaged(project)
    result = Ledger(project, "experiments").read()
    assert [r.get("text") for r in result.records] == ["one", None, "two"]  # v2 read as is
    assert [(p.line, p.kind) for p in result.problems] == [
        (2, "invalid-record"), (3, "invalid-json"), (4, "unknown-version"), (6, "torn")]
    assert result.problems[0].message == "note record: missing required field 'text' (a string)"
    assert result.problems[2].message == "schema version 2 is not 1; read as is"
    assert result.line_count == 6
    assert [p.line for p in result.damage] == [2, 3, 6]


def test_append_after_torn_line_keeps_both_lines_separate(project):
    path = write_damaged(project)
    Ledger(project, "experiments", fsync=False).append({"type": "note", "text": "after"})
    lines = path.read_bytes().split(b"\n")
    assert lines[5].endswith(b'"text":"torn')
    assert json.loads(lines[6])["text"] == "after"
    assert [r.get("text") for r in Ledger(project, "experiments").records()][-1] == "after"


def test_run_ids_and_arms_with_control_characters_are_damage(cli, project):
    # A hand-edited run record whose run_id held "\x1b]0;...\x07\nFORGED" was read as good and
    # `runs list` printed the escape sequence and a forged line; it is an invalid record now.
    started = sample_record("run.started")
    Ledger(project, "experiments").append({**started, "run_id": "r1", "arm": "a"})
    with paths.ledger_path(project, "experiments").open("a") as handle:
        for run_id, arm in (("x\x1b]0;pwned\x07\nFORGED", "a"), ("r2", "a\x1b[31m")):
            handle.write(json.dumps({**started, "v": 1, "ts": "2026-01-01T00:00:00Z",
                                     "run_id": run_id, "arm": arm}) + "\n")
    result = Ledger(project, "experiments").read()
    assert [r["run_id"] for r in result.records] == ["r1"]
    assert [(p.line, p.kind) for p in result.problems] == [(2, "invalid-record"),
                                                           (3, "invalid-record")]
    assert "\x1b" not in cli("runs", "list").output


def test_log_check_exits_1_on_damage_then_repair_quarantines(cli, project):
    path = write_damaged(project)
    original = path.read_bytes().split(b"\n")
    result = cli("log", "check", "experiments")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"error: {path}:2: note record: missing required field 'text' (a string)",
        f"error: {path}:3: not valid JSON ('utf-8' codec can't decode byte 0xff in position 0: "
        "invalid start byte)",
        f"warning: {path}:4: schema version 2 is not 1; read as is",
        f"error: {path}:6: torn final line (a write was interrupted); `rstack log repair` "
        "quarantines it",
        f"{path}: 3 good record(s), 3 damaged line(s)",
    ]
    assert "fix: rstack log repair experiments  (moves them to the quarantine)" in result.stderr
    data = json.loads(cli("log", "check", "experiments", "--json").stdout)
    assert (data["ok"], data["lines"], data["records"]) == (False, 6, 3)

    result = cli("log", "repair", "experiments")
    assert result.exit_code == 0
    quarantine = paths.quarantine_path(project)
    assert result.output == (f"moved line(s) 2, 3, 6 to {quarantine}; 3 good record(s) kept in "
                             f"{path}\n")
    # Good lines stay byte for byte; bad ones are in the quarantine with their line numbers.
    assert path.read_bytes().split(b"\n")[:-1] == [original[0], original[3], original[4]]
    moved = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert [(m["line"], m["kind"], m["ledger"]) for m in moved] == [
        (2, "invalid-record", "experiments"), (3, "invalid-json", "experiments"),
        (6, "torn", "experiments")]
    assert moved[2]["text"].endswith('"text":"torn')

    assert cli("log", "check", "experiments").exit_code == 0
    again = cli("log", "repair", "experiments")
    assert again.output == f"{path}: nothing to repair (3 good record(s))\n"
    assert len(quarantine.read_text().splitlines()) == 3  # appended once, never rewritten


def test_check_of_clean_and_missing_ledgers(cli, project):
    result = cli("log", "check", "lit-review")
    assert result.exit_code == 0
    assert result.output.endswith(": 0 good record(s), 0 damaged line(s)\n")


def test_tail_filters_by_type_and_limits(cli, project):
    ledger = Ledger(project, "experiments", fsync=False)
    for i in range(5):
        ledger.append({"type": "note", "text": f"n{i}"})
    ledger.append(sample_record("preflight"))
    result = cli("log", "tail", "experiments", "-n", "2", "--type", "note")
    assert result.exit_code == 0
    assert [line.split(None, 2)[2] for line in result.output.splitlines()] == [
        '{"text": "n3"}', '{"text": "n4"}']
    data = json.loads(cli("log", "tail", "experiments", "-n", "1", "--json").stdout)
    assert data["ledger"] == "experiments" and data["problems"] == []
    assert [r["type"] for r in data["records"]] == ["preflight"]
    assert cli("log", "tail", "experiments", "-n", "0").exit_code == 2


def test_ledger_where_a_path_component_is_a_file(cli, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    # (--project refuses a missing directory itself; RSTACK_PROJECT reaches the ledger)
    monkeypatch.setenv("RSTACK_PROJECT", str(blocker / "proj"))
    result = cli("log", "append", "experiments", NOTE)
    assert result.exit_code == 1
    target = blocker / "proj" / ".rstack" / "experiments.jsonl"
    assert result.output == (f"Error: cannot write ledger {target}: {blocker} is a file, not a "
                             f"directory\n  fix: move {blocker} aside, or pass --project DIR for "
                             "another project\n")
    assert blocker.read_text() == "x"


def test_ledger_in_a_read_only_directory(cli):
    # Tests run as root, for whom chmod does not stop writes; sysfs refuses mkdir even to root.
    target = Path("/sys/kernel")
    if not target.is_dir() or os.access(target, os.W_OK) and _can_mkdir(target):
        pytest.skip("no directory here that refuses writes even to this user")
    result = cli("log", "append", "experiments", NOTE, "--project", target)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: cannot write ledger {target}/.rstack/experiments.jsonl: permission denied\n"
        f"  fix: make {target} writable (chmod u+w {target}) or run inside a project you own "
        "(--project DIR)\n")


def _can_mkdir(parent: Path) -> bool:
    probe = parent / ".rstack-write-probe"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


def _append_many(args) -> None:
    root, writer, count = args
    ledger = Ledger(root, "experiments", fsync=False)
    for i in range(count):
        ledger.append({"type": "note", "text": f"w{writer}-{i}", "pad": "x" * 200})


def test_concurrent_appends_from_processes_lose_nothing(project):
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_append_many, [(project, w, 150) for w in range(4)])
    result = Ledger(project, "experiments").read()
    assert result.problems == []
    assert len(result.records) == 600
    assert {r["text"] for r in result.records} == {f"w{w}-{i}" for w in range(4) for i in range(150)}


def test_strict_loads_and_dumps_record():
    with pytest.raises(ValueError, match="Infinity is not valid JSON"):
        strict_loads('{"a": Infinity}')
    assert strict_loads(b'{"a": 1.5}') == {"a": 1.5}
    line = dumps_record({"text": "é", "type": "note", "ts": "2026-01-01T00:00:00Z", "v": 1})
    assert line == '{"v":1,"type":"note","ts":"2026-01-01T00:00:00Z","text":"é"}'
    with pytest.raises(ValueError):
        dumps_record({"v": 1, "x": float("inf")})


def test_tail_shows_records_of_an_unknown_version_without_crashing(cli, project):
    path = paths.ledger_path(project, "experiments")
    path.parent.mkdir()
    path.write_text('{"v": 2, "payload": 1}\n')
    result = cli("log", "tail", "experiments")
    assert result.exit_code == 0
    assert result.stdout == 'None  None          {"payload": 1}\n'
    assert result.stderr == f"warning: {path}:1: schema version 2 is not 1; read as is\n"


SHA = "a" * 64


@pytest.mark.parametrize("ledger_name,record,writer", [
    ("experiments", {"type": "preflight", "script": "train.py", "script_sha256": SHA,
                     "verdict": "PASS", "category": None, "duration_s": 1}, "rstack preflight"),
    ("experiments", {"type": "run.finished", "run_id": "r1", "arm": "a", "seed": 0,
                     "status": "ok", "exit_code": 0, "category": None, "hint": None,
                     "metrics": {"val_loss": 0.1}, "artifacts": [], "duration_s": 1,
                     "cost_usd": 0}, "rstack run"),
    ("lit-review", {"type": "paper", "key": "vaswani2017attention", "title": "Attention"},
     "rstack lit search"),
])
def test_log_append_refuses_records_only_rstack_commands_write(cli, project, ledger_name, record,
                                                               writer):
    # A hand-written preflight PASS would open the run gate without a smoke test, a run.finished
    # would put numbers no run produced into analyze, a paper would pass lit verify unchecked.
    result = cli("log", "append", ledger_name, json.dumps(record))
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: record 1: {record['type']} records are written only by `{writer}`")
    assert "nothing was appended" in result.output
    assert not paths.ledger_path(project, ledger_name).exists()
    # The library (what those commands call) still appends them.
    Ledger(project, ledger_name, fsync=False).append(record)


# -- issue 18: hostile ledgers and inputs (items 15, 16, 17, 23, 24) ----------------------------

BIG = "9" * 400


def _run_started(**extra) -> dict:
    record = {"v": 1, "type": "run.started", "ts": "2026-01-01T00:00:00.000Z", "run_id": "r1",
              "arm": "a", "seed": 0, "args": [], "command": ["python", "t.py"],
              "output_dir": "results/r1", "profile": "local", "host": "h", "plan_sha256": None,
              "config_hash": SHA, "git_commit": None, "git_dirty": None, "script": "t.py",
              "script_sha256": SHA, "timeout_s": 10, "cost_estimate_usd": 0, "attempt": 1,
              "retry_of": None}
    record.update(extra)
    return record


def _write_ledger(project, *lines: str) -> Path:
    path = paths.ledger_path(project, "experiments")
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("bad", [
    json.dumps(_run_started(seed=int(BIG))),
    json.dumps(_run_started(timeout_s=int(BIG))),
    json.dumps({"v": 1, "type": "note", "ts": "2026-01-01T00:00:00Z", "text": "x", "n": int(BIG)}),
    '{"v": 1, "type": "note", "ts": "2026-01-01T00:00:00Z", "text": "x", "n": ' + "9" * 5001 + "}",
    '{"v": 1, "type": "note", "ts": "2026-01-01T00:00:00Z", "text": "x", "n": '
    + "[" * 100000 + "]" * 100000 + "}",
    json.dumps(_run_started(v=2, arm=None)),
    json.dumps({**_run_started(), "v": 2, "command": "python t.py"}),
    json.dumps({**_run_started(), "v": True}),
    json.dumps({**_run_started(), "v": 1.0}),
])
def test_a_line_readers_cannot_handle_is_damage_for_every_reader(cli, project, bad):
    """issue 18 item 16: one such line crashed log check, log repair, status, runs list."""
    good = json.dumps(_run_started(run_id="r2"))
    path = _write_ledger(project, good, bad)
    result = Ledger(project, "experiments").read()
    assert [r["run_id"] for r in result.records] == ["r2"]
    assert [p.line for p in result.damage] == [2]
    check = cli("log", "check", "experiments")
    assert check.exit_code == 1 and f"{path}:2:" in check.output
    for args in (("status",), ("runs", "list"), ("log", "tail", "experiments")):
        assert cli(*args).exit_code in (0, 1), args
    repair = cli("log", "repair", "experiments")
    assert repair.exit_code == 0 and "moved line(s) 2" in repair.output
    assert path.read_text() == good + "\n"


def test_a_record_of_a_newer_version_that_reads_as_v1_is_kept_with_a_warning(project):
    _write_ledger(project, json.dumps({**_run_started(), "v": 2, "extra": 1}))
    result = Ledger(project, "experiments").read()
    assert len(result.records) == 1 and result.damage == []
    assert [p.kind for p in result.problems] == ["unknown-version"]


def test_append_refuses_integers_readers_cannot_hold(project):
    with pytest.raises(RecordError, match="beyond 64 bits"):
        Ledger(project, "experiments").append({"type": "note", "text": "x", "n": int(BIG)})
    with pytest.raises(RecordError, match="field v: expected 1"):
        Ledger(project, "experiments").append({"type": "note", "text": "x", "v": True})


def test_a_ledger_that_is_a_symlink_is_refused(cli, project, tmp_path):
    """issue 18 item 15: appends went through the link and repair replaced it."""
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"v": 1, "type": "note", "ts": "2026-01-01T00:00:00Z", "text": "x"}\n{bad\n')
    path = paths.ledger_path(project, "experiments")
    path.parent.mkdir()
    path.symlink_to(outside)
    for args in (("log", "append", "experiments", NOTE), ("log", "repair", "experiments"),
                 ("log", "check", "experiments")):
        result = cli(*args)
        assert result.exit_code == 1, args
        assert f"{path} is a symbolic link" in result.output
    assert path.is_symlink() and outside.read_text().endswith("{bad\n")


def test_a_ledger_that_is_a_fifo_or_directory_is_refused(cli, project):
    path = paths.ledger_path(project, "experiments")
    path.parent.mkdir()
    os.mkfifo(path)
    result = cli("log", "check", "experiments")
    assert result.exit_code == 1 and "is a FIFO (named pipe), not a regular file" in result.output
    path.unlink()
    path.mkdir()
    result = cli("log", "append", "experiments", NOTE)
    assert result.exit_code == 1 and f"{path} is a directory, not a file" in result.output


def test_repair_keeps_the_ledgers_mode(cli, project):
    path = _write_ledger(project, json.dumps(_run_started()), "{bad")
    path.chmod(0o444)
    assert cli("log", "repair", "experiments").exit_code == 0
    assert path.stat().st_mode & 0o777 == 0o444


@pytest.mark.parametrize("data", [
    '{"type": "note", "text": "ok"}\n{"type": "note", "text": "\\ud800"}\n',
    b'{"type": "note", "text": "ok"}\n{"type": "note", "text": "\xff"}\n',
])
def test_stdin_batch_with_bad_unicode_appends_nothing(cli, project, data):
    """issue 18 item 17: a lone surrogate or invalid UTF-8 crashed after a partial append."""
    result = cli("log", "append", "experiments", "--stdin", input=data)
    assert result.exit_code == 1 and "nothing was appended" in result.output
    assert not paths.ledger_path(project, "experiments").exists()


def test_stdin_splits_records_only_at_newlines(cli, project):
    data = '{"type": "note", "text": "a\u2028b\u0085c"}\n'
    result = cli("log", "append", "experiments", "--stdin", input=data)
    assert result.exit_code == 0, result.output
    [record] = Ledger(project, "experiments").records()
    assert record["text"] == "a\u2028b\u0085c"


def test_a_failed_append_leaves_no_torn_bytes(project, tmp_path):
    """issue 18 item 23: a full disk left a torn 47 KB line while saying nothing was written."""
    import subprocess
    import sys

    path = _write_ledger(project, json.dumps(_run_started()))
    before = path.read_bytes()
    script = ("import resource, signal, sys\n"
              "from rstack.ledger import Ledger\nfrom rstack.errors import LedgerError\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              f"resource.setrlimit(resource.RLIMIT_FSIZE, ({len(before) + 1000}, "
              f"{len(before) + 1000}))\n"
              "try:\n"
              f"    Ledger(sys.argv[1], 'experiments', fsync=False).append("
              "{'type': 'note', 'text': 'x' * 50000})\n"
              "except LedgerError as exc:\n    print(exc.message)\n")
    out = subprocess.run([sys.executable, "-c", script, str(project)], capture_output=True,
                         text=True, timeout=60)
    assert "nothing was written" in out.stdout, out.stdout + out.stderr
    assert path.read_bytes() == before
