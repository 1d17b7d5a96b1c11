"""`rstack telemetry ...`: tiers, sanitizing, and sync against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rstack import paths, telemetry
from rstack.errors import TelemetryError


class Collector:
    """A real HTTP endpoint: answers the queued status codes in turn (then 200) and keeps bodies."""

    def __init__(self):
        self.statuses: list[int] = []
        self.received: list[dict] = []  # bodies it answered 2xx to
        self.requests = 0
        self.delay_s = 0.0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.requests += 1
                time.sleep(collector.delay_s)
                status = collector.statuses.pop(0) if collector.statuses else 200
                if 200 <= status < 300:
                    collector.received.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def events(self) -> list[dict]:
        return [event for body in self.received for event in body["events"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    server = Collector()
    yield server
    server.close()


def logged_events() -> list[dict]:
    path = telemetry.events_path()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_off_by_default_writes_nothing(cli):
    result = cli("telemetry", "log", "--skill", "research", "--outcome", "success")
    assert result.exit_code == 0
    assert result.output == "telemetry off: nothing recorded\n"
    assert not paths.analytics_dir().exists()


def test_anonymous_event_has_no_installation_id(cli):
    cli("config", "set", "telemetry", "anonymous")
    result = cli("telemetry", "log", "--skill", "research", "--outcome", "error",
                 "--duration", "12.3456", "--error-class", "LedgerError")
    assert result.exit_code == 0
    assert result.output == f"recorded error of research in {telemetry.events_path()}\n"
    [event] = logged_events()
    assert {k: event[k] for k in ("v", "skill", "outcome", "duration_s", "rstack_version",
                                  "error_class", "error_text", "tier")} == {
        "v": 1, "skill": "research", "outcome": "error", "duration_s": 12.346,
        "rstack_version": "0.1.0", "error_class": "LedgerError", "error_text": None,
        "tier": "anonymous"}
    assert "installation_id" not in event
    assert not (paths.analytics_dir() / "installation-id").exists()


def test_community_events_share_one_installation_id(cli):
    cli("config", "set", "telemetry", "community")
    for _ in range(2):
        cli("telemetry", "log", "--skill", "paper", "--outcome", "success")
    first, second = logged_events()
    assert first["installation_id"] == second["installation_id"]
    assert len(first["installation_id"]) == 36
    assert first["event_id"] != second["event_id"]


def test_bad_outcome_and_duration_are_usage_errors(cli):
    result = cli("telemetry", "log", "--skill", "x", "--outcome", "meh")
    assert result.exit_code == 2
    assert "'meh' is not one of 'success', 'error', 'abort'" in result.output
    assert cli("telemetry", "log", "--skill", "x", "--outcome", "success",
               "--duration", "-1").exit_code == 2


def test_error_text_is_sanitized_before_it_is_written(cli, isolated_home):
    cli("config", "set", "telemetry", "anonymous")
    text = (f"failed reading {isolated_home}/proj/data.csv and /home/alice/x; "
            "api_key=abc123def token: tok_99 password=\"hunter2 x\" "
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln "
            "url https://bob:pw@example.org/x key sk-ant-api03-abcdefghijklmnopqrst "
            "gh ghp_abcdefghijklmnopqrstuvwxyz0123 aws AKIAABCDEFGHIJKLMNOP "
            "blob 0123456789abcdef0123456789abcdef0123 loss=0.25")
    cli("telemetry", "log", "--skill", "x", "--outcome", "error", "--error-text", text)
    [event] = logged_events()
    assert event["error_text"] == (
        "failed reading ~/proj/data.csv and ~/x; api_key=[REDACTED] token: [REDACTED] "
        "password=[REDACTED] Authorization: Bearer [REDACTED] url https://[REDACTED]@example.org/x "
        "key [REDACTED] gh [REDACTED] aws [REDACTED] blob [REDACTED] loss=0.25")
    raw = telemetry.events_path().read_text()
    for secret in ("abc123def", "tok_99", "hunter2", "eyJhbGci", "bob:pw", "sk-ant", "ghp_",
                   "AKIA", "alice", str(isolated_home)):
        assert secret not in raw


def test_sanitize_keeps_ordinary_text_and_truncates():
    assert telemetry.sanitize("CUDA out of memory at step 12 (lr=0.001)") == \
        "CUDA out of memory at step 12 (lr=0.001)"
    assert telemetry.sanitize(None) is None
    long = telemetry.sanitize("word " * 200)
    assert len(long) == telemetry.MAX_ERROR_TEXT + 1 and long.endswith("…")


def test_sync_without_url_is_silent(cli):
    cli("config", "set", "telemetry", "anonymous")
    cli("telemetry", "log", "--skill", "x", "--outcome", "success")
    result = cli("telemetry", "sync")
    assert (result.exit_code, result.output) == (0, "")


def test_sync_when_off_sends_nothing(cli, collector):
    cli("config", "set", "telemetry_url", collector.url)
    result = cli("telemetry", "sync")
    assert (result.exit_code, result.output) == (0, "")
    assert collector.requests == 0


def test_sync_failure_loses_nothing_then_success_sends_each_event_once(cli, collector):
    cli("config", "set", "telemetry", "community")
    cli("config", "set", "telemetry_url", collector.url)
    for skill in ("a", "b", "c"):
        cli("telemetry", "log", "--skill", skill, "--outcome", "success")

    collector.statuses = [500] * 10  # more failures than retries
    result = telemetry_sync(cli)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: telemetry sync to {collector.url} failed (HTTP 500); 3 event(s) kept for the "
        "next sync\n  fix: check telemetry_url (rstack config get telemetry_url) and retry: "
        "rstack telemetry sync\n")
    assert collector.requests == 3  # the first try and two retries
    assert collector.events == []
    assert json.loads(cli("telemetry", "status", "--json").stdout)["unsynced"] == 3

    collector.statuses = []
    result = telemetry_sync(cli)
    assert (result.exit_code, result.output) == (0, f"sent 3 event(s) to {collector.url}\n")
    assert [e["skill"] for e in collector.events] == ["a", "b", "c"]
    assert all(e["installation_id"] for e in collector.events)

    cli("telemetry", "log", "--skill", "d", "--outcome", "abort")
    result = telemetry_sync(cli)
    assert result.output == f"sent 1 event(s) to {collector.url}\n"
    assert [e["skill"] for e in collector.events] == ["a", "b", "c", "d"]
    status = json.loads(cli("telemetry", "status", "--json").stdout)
    assert (status["logged"], status["unsynced"], status["sent_total"]) == (4, 0, 4)


def telemetry_sync(cli):
    # Short backoff so the retry path runs in milliseconds.
    from unittest import mock

    real = telemetry._session
    with mock.patch.object(telemetry, "_session", lambda retries, backoff_s: real(2, 0.01)):
        return cli("telemetry", "sync", "--timeout", "5")


def test_transient_error_is_retried_within_one_sync(cli, collector):
    cli("config", "set", "telemetry", "anonymous")
    cli("config", "set", "telemetry_url", collector.url)
    cli("telemetry", "log", "--skill", "a", "--outcome", "success")
    collector.statuses = [503]
    result = telemetry_sync(cli)
    assert result.exit_code == 0
    assert collector.requests == 2
    assert [e["skill"] for e in collector.events] == ["a"]


def test_unreachable_server_keeps_events(cli, collector):
    cli("config", "set", "telemetry", "anonymous")
    url = collector.url
    collector.close()  # nothing listens there any more
    cli("config", "set", "telemetry_url", url)
    cli("telemetry", "log", "--skill", "a", "--outcome", "success")
    result = telemetry_sync(cli)
    assert result.exit_code == 1
    assert f"Error: telemetry sync to {url} failed (ConnectionError: " in result.output
    assert "1 event(s) kept for the next sync" in result.output
    assert json.loads(cli("telemetry", "status", "--json").stdout)["unsynced"] == 1


def test_switching_to_anonymous_strips_the_id_at_sync(cli, collector):
    cli("config", "set", "telemetry", "community")
    cli("config", "set", "telemetry_url", collector.url)
    cli("telemetry", "log", "--skill", "a", "--outcome", "success")
    assert "installation_id" in logged_events()[0]
    cli("config", "set", "telemetry", "anonymous")
    telemetry_sync(cli)
    assert "installation_id" not in collector.events[0]


def test_batches_and_damaged_lines(cli, collector):
    cli("config", "set", "telemetry", "anonymous")
    cli("config", "set", "telemetry_url", collector.url)
    for i in range(telemetry.BATCH_SIZE + 5):
        telemetry.log_event(f"s{i}", "success")
    with telemetry.events_path().open("a") as handle:
        handle.write("{damaged\n")
        handle.write('{"v":1,"skill":"half"')  # unfinished: waits for the next sync
    result = telemetry_sync(cli)
    assert result.output == f"sent {telemetry.BATCH_SIZE + 5} event(s) to {collector.url}\n"
    assert [len(body["events"]) for body in collector.received] == [telemetry.BATCH_SIZE, 5]


def test_status_human_and_json(cli):
    result = cli("telemetry", "status")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "tier      off",
        "url       (none: sync sends nothing)",
        f"events    0 logged, 0 unsynced ({telemetry.events_path()})",
        "last sync never",
    ]
    assert json.loads(cli("telemetry", "status", "--json").stdout) == {
        "tier": "off", "url": None, "events_path": str(telemetry.events_path()), "logged": 0,
        "unsynced": 0, "last_sync": None, "sent_total": 0, "installation_id": None}


def test_log_does_not_wait_for_a_slow_sync(cli, collector):
    cli("config", "set", "telemetry", "anonymous")
    cli("config", "set", "telemetry_url", collector.url)
    telemetry.log_event("first", "success")
    collector.delay_s = 1.5
    syncing = threading.Thread(target=telemetry.sync)
    syncing.start()
    while collector.requests == 0:  # the POST is now in flight
        time.sleep(0.01)
    start = time.monotonic()
    telemetry.log_event("second", "success")
    logged_after = time.monotonic() - start
    syncing.join()
    assert logged_after < 0.5
    assert [e["skill"] for e in collector.events] == ["first"]
    assert [e["skill"] for e in logged_events()] == ["first", "second"]
    assert telemetry.status()["unsynced"] == 1


@pytest.mark.parametrize("field, value, message", [
    ("--skill", "ghp_abcdefghijklmnopqrstuvwxyz0123 token", "--skill must be a skill's folder name"),
    ("--skill", "/home/alice/secret", "--skill must be a skill's folder name"),
    ("--skill", "", "--skill must be a skill's folder name"),
    ("--error-class", "DB_PASS=hunter2", "--error-class must be an exception name"),
])
def test_free_text_fields_are_validated_not_stored(cli, field, value, message):
    cli("config", "set", "telemetry", "community")
    args = ["telemetry", "log", "--skill", "research", "--outcome", "error", field, value]
    result = cli(*args)
    assert result.exit_code == 1 and message in result.output
    assert not telemetry.events_path().exists()


def test_duration_must_be_finite(cli):
    cli("config", "set", "telemetry", "anonymous")
    with pytest.raises(TelemetryError):
        telemetry.log_event("research", "success", float("nan"))
