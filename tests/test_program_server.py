"""Shared programs: `rstack program serve` on 127.0.0.1 (uvicorn in a subprocess), members as
separate processes with their own HOME and git clone. The RFC 8628 device flow (ours and
oauthlib's client), tokens, untrusted bodies, and claims verified by another member."""

from __future__ import annotations

import base64
import json
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests

from program_server_fixtures import Member, Server, clean_env, owner_project

from rstack.program.kb import KnowledgeBase

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One owner project and server for the fast protocol tests: 10 s user codes, 1 s polls."""
    tmp = tmp_path_factory.mktemp("served")
    root, home = owner_project(tmp)
    server = Server(root, home, "--device-ttl", "10", "--interval", "1", "--rate", "12",
                    "--max-body", "100000")
    yield server
    server.kill()


def device(server: Server, name: str) -> dict:
    resp = server.api("POST", "/oauth/device_authorization", data={"client_id": "rstack", "member": name})
    assert resp.status_code == 200, resp.text
    return resp.json()


def poll(server: Server, device_code: str) -> requests.Response:
    return server.api("POST", "/oauth/token", data={"grant_type": GRANT, "device_code": device_code,
                                                    "client_id": "rstack"})


def approve(server: Server, user_code: str, deny: bool = False) -> requests.Response:
    return server.api("POST", "/api/approve", server.owner_token,
                      json={"user_code": user_code, "deny": deny})


def joined_token(server: Server, name: str) -> str:
    d = device(server, name)
    assert approve(server, d["user_code"]).status_code == 200
    time.sleep(1.05)
    resp = poll(server, d["device_code"])
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


# --------------------------------------------------------------------------------------------
# RFC 8628


def test_device_authorization_response_has_the_rfc_fields(served):
    d = device(served, "fields")
    assert set(d) == {"device_code", "user_code", "verification_uri", "verification_uri_complete",
                      "expires_in", "interval"}
    assert d["verification_uri"] == served.url + "/device"
    assert d["interval"] == 1 and d["expires_in"] == 10
    code = d["user_code"].replace("-", "")
    assert len(code) == 8 and not set(code) & set("AEIOUY01258LSZO")
    assert len(d["device_code"]) >= 40


def test_approve_pending_slow_down_then_token_and_no_replay(served):
    d = device(served, "approved")
    first = poll(served, d["device_code"])
    assert first.status_code == 400 and first.json()["error"] == "authorization_pending"
    fast = poll(served, d["device_code"])  # within the 1 s interval
    assert fast.json()["error"] == "slow_down"
    assert approve(served, d["user_code"]).json() == {"member": "approved", "approved": True}
    time.sleep(6.1)  # the interval grew by 5 s after slow_down
    ok = poll(served, d["device_code"])
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["token_type"] == "Bearer" and body["member"] == "approved" and body["program"] == "toy"
    assert ok.headers["cache-control"] == "no-store"
    time.sleep(1.05)
    replay = poll(served, d["device_code"])
    assert replay.json()["error"] == "invalid_grant"
    assert served.api("GET", "/api/program", body["access_token"]).status_code == 200


def test_denied_and_expired_codes(served, tmp_path):
    d = device(served, "denied")
    assert approve(served, d["user_code"], deny=True).status_code == 200
    assert poll(served, d["device_code"]).json()["error"] == "access_denied"
    short = Server(*owner_project(tmp_path), "--device-ttl", "1", "--interval", "1")
    try:
        e = device(short, "expired")
        time.sleep(1.2)
        assert poll(short, e["device_code"]).json()["error"] == "expired_token"
        late = approve(short, e["user_code"])
        assert late.status_code == 410
        assert late.json()["error"] == f"user code {e['user_code']!r} expired; the member joins again"
    finally:
        short.kill()


def test_token_endpoint_errors(served):
    bad = served.api("POST", "/oauth/token", data={"grant_type": "password", "device_code": "x",
                                                   "client_id": "rstack"})
    assert bad.json()["error"] == "unsupported_grant_type"
    assert served.api("POST", "/oauth/token", data={"grant_type": GRANT}).json()["error"] == "invalid_request"
    assert poll(served, "forged-device-code").json()["error"] == "invalid_grant"
    taken = served.api("POST", "/oauth/device_authorization", data={"client_id": "rstack", "member": "owner"})
    assert taken.status_code == 400 and taken.json()["error"] == "invalid_request"


def test_independent_client_oauthlib_device_flow(served):
    from oauthlib.oauth2 import DeviceClient
    from oauthlib.oauth2.rfc6749.errors import CustomOAuth2Error

    client = DeviceClient("rstack")
    d = device(served, "oauthlib")
    body = client.prepare_request_body(d["device_code"], include_client_id=True)
    pending = requests.post(served.url + "/oauth/token", data=body, timeout=10,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(CustomOAuth2Error) as err:
        client.parse_request_body_response(pending.text)
    assert err.value.error == "authorization_pending"
    approve(served, d["user_code"])
    time.sleep(1.05)
    ok = requests.post(served.url + "/oauth/token", data=body, timeout=10,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    token = client.parse_request_body_response(ok.text)
    assert token["token_type"] == "Bearer" and client.access_token == token["access_token"]
    assert served.api("GET", "/api/program", client.access_token).json()["program"] == "toy"


def test_cli_join_prints_the_code_and_stores_the_token_600(served, tmp_path):
    member = Member(tmp_path, "cli-joiner")
    member.join(served)
    path = member.home / ".rstack/programs/toy.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    owner_file = served.root / ".rstack/program-server/owner.json"
    assert stat.S_IMODE(owner_file.stat().st_mode) == 0o600
    members = json.loads(served.owner("program", "members", "--json").stdout)
    assert {"name": "cli-joiner", "approved": True} .items() <= next(
        m for m in members["members"] if m["name"] == "cli-joiner").items()
    assert set(members) == {"members", "pending"}


def test_only_hashes_of_tokens_are_stored(served):
    token = joined_token(served, "hashed")
    raw = (served.root / ".rstack/program-server/state.db").read_bytes()
    for name in ("state.db-wal",):
        wal = served.root / ".rstack/program-server" / name
        if wal.exists():
            raw += wal.read_bytes()
    assert token.encode() not in raw and served.owner_token.encode() not in raw


# --------------------------------------------------------------------------------------------
# Tokens and untrusted bodies


def test_forged_missing_and_revoked_tokens_are_refused(served):
    assert served.api("GET", "/api/program").status_code == 401
    forged = served.api("GET", "/api/program", "x" * 43)
    assert forged.status_code == 401 and "unknown, expired or revoked" in forged.json()["error"]
    token = joined_token(served, "revokee")
    assert served.api("GET", "/api/program", token).status_code == 200
    assert served.api("GET", "/api/members", token).status_code == 403
    assert served.owner("program", "revoke", "revokee").stdout.strip() == "revoked: revokee"
    assert served.api("GET", "/api/program", token).status_code == 401
    again = served.owner("program", "revoke", "revokee", check=False)
    assert again.returncode == 1 and "no active member 'revokee'" in again.stderr


def _claims(server):
    return server.api("GET", "/api/claims", server.owner_token).json()["claims"]


def test_oversized_and_malformed_bodies_get_4xx_and_change_nothing(served):
    token = joined_token(served, "sender")
    before = _claims(served)
    big = served.api("POST", "/api/claims", token, data=b"{" + b" " * 200_000 + b"}",
                     headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "over the limit of 100000 bytes" in big.json()["error"]
    bad = served.api("POST", "/api/claims", token, data=b"{not json",
                     headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
    nan = served.api("POST", "/api/claims", token, data=b'{"x": NaN}',
                     headers={"Content-Type": "application/json"})
    assert nan.status_code == 400
    good = {"submission": "abcdefgh", "record": {
        "verdict": "KEEP", "metric": "accuracy", "tree": "a" * 64, "commit": "b" * 40,
        "stages": []}, "artifacts": {}, "bundle": base64.b64encode(b"x").decode()}
    wrong_metric = served.api("POST", "/api/claims", token, json=good)
    assert wrong_metric.status_code == 400
    assert wrong_metric.json()["error"] == "record.metric must be the program's metric 'val_loss', got 'accuracy'"
    good["record"]["metric"] = "val_loss"
    good["record"]["stages"] = [{"name": "trial", "values": {"0": "HUGE", "1": 0.1, "2": 0.1},
                                 "champion_values": {"0": 0.2, "1": 0.2, "2": 0.2}}]
    inf = served.api("POST", "/api/claims", token, data=json.dumps(good).replace('"HUGE"', "1e999"),
                     headers={"Content-Type": "application/json"})
    assert inf.status_code == 400 and "must be a finite number" in inf.json()["error"]
    good["record"]["stages"][0]["values"]["0"] = 0.1
    keep_without_confirm = served.api("POST", "/api/claims", token, json=good)
    assert keep_without_confirm.json()["error"] == "a KEEP must carry its trial and confirm stages"
    good["record"]["verdict"] = "DISCARD"
    not_a_bundle = served.api("POST", "/api/claims", token, json=good)
    assert not_a_bundle.status_code == 409 and "not a git bundle" in not_a_bundle.json()["error"]
    assert _claims(served) == before


def test_hostile_bodies_and_paths_get_4xx_not_a_server_error(served):
    # Deep nesting (RecursionError in json.loads), a 400-digit integer (math.isfinite overflows)
    # and a claim id beyond SQLite's 64 bits are bad input (4xx), never a 500.
    token = joined_token(served, "hostile")
    before = _claims(served)
    deep = served.api("POST", "/api/claims", token, data=b"[" * 50_000 + b"]" * 50_000,
                      headers={"Content-Type": "application/json"})
    assert deep.status_code == 400 and "not valid JSON" in deep.json()["error"]
    huge = "1" + "0" * 400
    good = {"submission": "abcdefgh", "record": {
        "verdict": "DISCARD", "metric": "val_loss", "tree": "a" * 64, "commit": "b" * 40,
        "cost_usd": "COST", "stages": [{"name": "trial", "values": {"0": "HUGE", "1": 0.1, "2": 0.1},
                                        "champion_values": {"0": 0.2, "1": 0.2, "2": 0.2}}]},
        "artifacts": {}, "bundle": base64.b64encode(b"x").decode()}
    body = json.dumps(good)
    value = served.api("POST", "/api/claims", token, headers={"Content-Type": "application/json"},
                       data=body.replace('"HUGE"', huge).replace('"COST"', "0"))
    assert value.status_code == 400 and "must be a finite number" in value.json()["error"]
    cost = served.api("POST", "/api/claims", token, headers={"Content-Type": "application/json"},
                      data=body.replace('"HUGE"', "0.1").replace('"COST"', huge))
    assert cost.status_code == 400 and "record.cost_usd must be a finite number" in cost.json()["error"]
    far = served.api("GET", f"/api/claims/{huge}/bundle", token)
    assert far.status_code == 404
    far_verify = served.api("POST", f"/api/verify/{huge}", token, json={})
    assert far_verify.status_code == 404
    assert _claims(served) == before


@pytest.mark.parametrize("runs", [5, None, {"a": 1}])
def test_a_verification_whose_runs_are_not_a_list_is_400(tmp_path, monkeypatch, runs):
    # `runs` was iterated unchecked: an int was a TypeError (500), a dict's keys were kept.
    from program_fixtures import make_project

    from rstack.program.server import claims
    from rstack.program.server.store import Store
    from rstack.program.spec import load_program
    from rstack.program.trial import run_baseline

    root = make_project(tmp_path / "toy")
    monkeypatch.chdir(root)
    run_baseline(root, echo=lambda text: None)
    program = load_program(root)
    champion = KnowledgeBase.read(root, program.name).champion
    store = Store(tmp_path / "state.db")
    store.add_claim("alice", "abcdefgh", tree="c" * 64, commit="d" * 40, verdict="KEEP",
                    payload={}, status="pending")
    claim = store.assign("bob", lease_s=60)
    values = {str(seed): 0.1 for seed in program.confirm_seeds}
    with pytest.raises(claims.Rejected) as refused:
        claims.settle(root, store, program, claim["id"], "bob",
                      {"champion_tree": champion["tree"], "candidate": values,
                       "champion": values, "runs": runs})
    assert (refused.value.status, refused.value.message) == (
        400, "runs must be a list of run ids")
    assert store.claim(claim["id"])["status"] == "pending"


@pytest.mark.parametrize("keys", [["0", "\u0660", "1", "2"], [" 0", "1", "2"], ["0", "1", "0_2"],
                                  ["+0", "1", "2"]])
def test_seed_keys_are_plain_decimal_numbers(keys):
    # int() reads "\u0660" (Arabic zero), " 0", "+0" and "0_2": a second entry for seed 0 silently
    # replaced the first, and "0_2" named seed 2.
    from rstack.program.server.claims import Rejected, seed_values

    with pytest.raises(Rejected) as refused:
        seed_values({k: 0.1 for k in keys}, [0, 1, 2], "record.stages[0].values")
    assert refused.value.status == 400
    assert refused.value.message.startswith("record.stages[0].values: seeds must be integers")


def test_rate_limit_per_member(served):
    token = joined_token(served, "hasty")
    codes = [served.api("POST", "/api/verify/0", token, json={}).status_code for _ in range(13)]
    assert codes[:12] == [404] * 12 and codes[12] == 429


def test_serve_refuses_a_public_address_without_tls(tmp_path):
    root, _home = owner_project(tmp_path)
    result = subprocess.run([str(Path(__file__).resolve().parents[1] / "bin/rstack"), "program",
                             "serve", "--host", "0.0.0.0"], cwd=root, capture_output=True, text=True)
    assert result.returncode == 1
    assert "refusing to serve on 0.0.0.0 without TLS" in result.stderr


# --------------------------------------------------------------------------------------------
# Members improving a program together (slow: real trials)


@pytest.fixture
def team(tmp_path):
    root, home = owner_project(tmp_path)
    server = Server(root, home, "--interval", "1")
    members = {}
    for name in ("alice", "bob", "carol"):
        m = Member(tmp_path, name)
        m.join(server)
        m.pull()
        members[name] = m
    yield server, members
    server.kill()


def _kb(server):
    return KnowledgeBase.read(server.root, "toy")


@pytest.mark.slow
def test_member_trial_verified_by_another_member_becomes_champion(team):
    server, m = team
    commit = m["alice"].candidate("bonus", BONUS=0.05)
    out = m["alice"].rstack("program", "trial", "-m", "alice: bonus 0.05")
    assert "trial 1: KEEP" in out.stdout and "claim 1 (pending)" in out.stderr
    assert _kb(server).champion["champion"] == 0  # a claim, not yet a champion
    verify = m["bob"].rstack("program", "verify", "--once")
    assert "claim 1: verified" in verify.stdout
    champion = json.loads(server.owner("program", "status", "--json").stdout)["champion"]
    assert (champion["trial"], champion["member"], champion["metric"]) == (1, "alice", "val_loss")
    assert champion["commit"] == commit
    log = server.owner("program", "log").stdout
    assert "(alice) [verified by bob]" in log
    credits = json.loads(server.owner("program", "credits", "--json").stdout)
    assert [(c["member"], round(c["share"], 6)) for c in credits["credits"]] == [("alice", 1.0)]
    # bob pulls the new champion and improves on it; carol verifies
    m["bob"].pull()
    m["bob"].candidate("more bonus", BONUS=0.09)
    m["bob"].rstack("program", "trial", "-m", "bob: bonus 0.09")
    assert "claim 2: verified" in m["carol"].rstack("program", "verify", "--once").stdout
    credits = json.loads(server.owner("program", "credits", "--json").stdout)["credits"]
    shares = {c["member"]: c["share"] for c in credits}
    assert shares["alice"] == pytest.approx(0.05 / 0.09, abs=1e-6)
    assert shares["bob"] == pytest.approx(0.04 / 0.09, abs=1e-6)


@pytest.mark.slow
def test_two_members_claim_the_same_improvement_first_verified_wins(team):
    server, m = team
    m["alice"].candidate("bonus", BONUS=0.05)
    m["bob"].candidate("same bonus", BONUS=0.05)
    m["alice"].rstack("program", "trial", "-m", "alice")
    m["bob"].rstack("program", "trial", "-m", "bob")
    out = m["carol"].rstack("program", "verify", "--once").stdout
    assert "claim 1: verified" in out and "claim 2: duplicate" in out
    claims = {c["id"]: c["status"] for c in _claims(server)}
    assert claims == {1: "verified", 2: "duplicate"}
    kb = _kb(server)
    assert kb.champion["member"] == "alice" and len(kb.champions) == 2


@pytest.mark.slow
def test_a_lying_member_is_rejected_by_verification(team, monkeypatch):
    server, m = team
    m["carol"].candidate("pure noise", SEED_OFFSET=7)
    m["carol"].rstack("program", "trial", "-m", "noise")  # honestly: not a KEEP (recorded)
    outbox = m["carol"].clone / ".rstack" / "program-outbox"
    # The liar: a KEEP with made-up numbers for code that changes nothing real.
    m["carol"].candidate("claims a big win", SEED_OFFSET=8)
    record = {"verdict": "KEEP", "metric": "val_loss", "runs": [], "cost_usd": 0.0,
              "hypothesis": "lie",
              "commit": subprocess.run(["git", "-C", str(m["carol"].clone), "rev-parse", "HEAD"],
                                       capture_output=True, text=True).stdout.strip(),
              "stages": [{"name": "trial", "values": {"0": 0.1, "1": 0.1, "2": 0.1},
                          "champion_values": {"0": 0.2, "1": 0.2, "2": 0.2}},
                         {"name": "confirm", "values": {"100": 0.1, "101": 0.1, "102": 0.1},
                          "champion_values": {"100": 0.2, "101": 0.2, "102": 0.2}}]}
    from rstack.program import gittree
    record["tree"] = gittree.tree_hash(m["carol"].clone, record["commit"], ["train.py"])
    monkeypatch.setenv("RSTACK_HOME", str(m["carol"].home / ".rstack"))
    from rstack.program.remote import flush_outbox, queue_submission

    queue_submission(m["carol"].clone, record)  # the member's own client, with forged numbers
    flush_outbox(m["carol"].clone, echo=lambda line: None)
    assert not list(outbox.glob("*.json"))
    out = m["alice"].rstack("program", "verify", "--once").stdout
    assert "unverified" in out
    lie = next(c for c in _claims(server) if c["verdict"] == "KEEP")
    assert lie["status"] == "unverified"
    trial = next(t for t in _kb(server).trials if t.get("claim") == lie["id"])
    assert trial["verdict"] in ("DISCARD", "INCONCLUSIVE") and trial["claim_status"] == "unverified"
    claimed, rerun = trial["stages"][1], trial["stages"][-1]
    assert claimed["values"] == {"100": 0.1, "101": 0.1, "102": 0.1}
    assert rerun["name"] == "verify" and rerun["values"]["100"] > 0.15  # both sets of numbers
    assert _kb(server).champion["champion"] == 0


@pytest.mark.slow
def test_revoked_member_is_refused_mid_program(team):
    server, m = team
    m["bob"].candidate("bonus", BONUS=0.05)
    server.owner("program", "revoke", "bob")
    out = m["bob"].rstack("program", "trial", "-m", "after revoke", check=False)
    assert out.returncode == 1 and "(401): unknown, expired or revoked token" in out.stderr
    assert list((m["bob"].clone / ".rstack/program-outbox").glob("*.json"))  # kept, not lost
    assert _claims(server) == []
    pulled = m["bob"].rstack("program", "pull", cwd=m["bob"].home, check=False)
    assert pulled.returncode == 1


@pytest.mark.slow
def test_server_sigkilled_mid_submission_loses_nothing(team):
    server, m = team
    m["alice"].candidate("bonus", BONUS=0.05)
    server.proc.send_signal(signal.SIGSTOP)  # frozen: the member's submission hangs mid-request
    trial = subprocess.Popen([str(Path(__file__).resolve().parents[1] / "bin/rstack"), "program",
                              "trial", "-m", "during a crash"], cwd=m["alice"].clone,
                             env=clean_env(m["alice"].home),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outbox = m["alice"].clone / ".rstack/program-outbox"
    for _ in range(600):
        if list(outbox.glob("*.json")):
            break
        time.sleep(0.1)
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    out, err = trial.communicate(timeout=120)
    assert trial.returncode == 1 and "cannot reach the program server" in err
    queued = list(outbox.glob("*.json"))
    assert len(queued) == 1
    server.start()  # same project, same state.db
    assert _claims(server) == []  # no half-written claim
    m["alice"].rstack("program", "submit")
    m["alice"].rstack("program", "submit")  # nothing left; a resend would dedupe anyway
    claims = _claims(server)
    assert [(c["id"], c["status"]) for c in claims] == [(1, "pending")]
    assert "claim 1: verified" in m["bob"].rstack("program", "verify", "--once").stdout


def _bundle_payload(server: Server, tmp_path: Path, change, name: str) -> dict:
    """A submission built like the member's client builds it, for a commit `change(clone)` makes."""
    from rstack.program import gittree

    clone = tmp_path / name
    run = lambda *a: subprocess.run(["git", "-C", str(clone), *a], check=True, capture_output=True)  # noqa: E731
    subprocess.run(["git", "clone", "-q", str(server.root), str(clone)], check=True)
    champion = subprocess.run(["git", "-C", str(server.root), "rev-parse", "refs/rstack/champion"],
                              capture_output=True, text=True).stdout.strip()
    run("checkout", "-q", champion)
    change(clone)
    run("add", "-A")
    run("-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", name)
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    run("update-ref", "refs/rstack/submit", commit)
    bundle = subprocess.run(["git", "-C", str(clone), "bundle", "create", "-q", "-",
                             "refs/rstack/submit", f"^{champion}"], capture_output=True, check=True).stdout
    return {"submission": f"sub-{name}", "artifacts": {},
            "record": {"verdict": "DISCARD", "metric": "val_loss", "commit": commit,
                       "tree": gittree.tree_hash(clone, commit, ["train.py"]), "stages": []},
            "bundle": base64.b64encode(bundle).decode()}


def test_bundle_checks_scope_links_and_identity(served, tmp_path):
    token = joined_token(served, "bundler")
    before = _claims(served)
    outside = _bundle_payload(served, tmp_path, lambda c: (c / "README.md").write_text("x\n"), "outside")
    resp = served.api("POST", "/api/claims", token, json=outside)
    assert resp.status_code == 400
    assert resp.json()["error"] == "the candidate changes files outside scope.editable: README.md"

    def link(clone: Path) -> None:
        (clone / "train.py").unlink()
        (clone / "train.py").symlink_to("/etc/passwd")

    linked = _bundle_payload(served, tmp_path, link, "linked")
    resp = served.api("POST", "/api/claims", token, json=linked)
    assert resp.status_code == 400
    assert resp.json()["error"] == "train.py: links and submodules are refused in a candidate"
    fine = _bundle_payload(served, tmp_path, lambda c: (c / "train.py").write_text(
        (c / "train.py").read_text() + "\n# fine\n"), "fine")
    wrong_tree = json.loads(json.dumps(fine))
    wrong_tree["record"]["tree"] = "c" * 64
    wrong_tree["submission"] = "sub-wrongtree"
    resp = served.api("POST", "/api/claims", token, json=wrong_tree)
    assert resp.status_code == 400 and "tree hash is" in resp.json()["error"]
    assert _claims(served) == before
    refs = subprocess.run(["git", "-C", str(served.root), "for-each-ref", "refs/rstack/incoming"],
                          capture_output=True, text=True).stdout
    assert refs == ""  # nothing left behind by the refused ones
    first = served.api("POST", "/api/claims", token, json=fine)
    again = served.api("POST", "/api/claims", token, json=fine)  # a retried submission
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["claim"] == again.json()["claim"] and first.json()["status"] == "recorded"


@pytest.mark.skipif(not __import__("shutil").which("openssl"), reason="needs openssl for a test certificate")
def test_serve_over_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = Server(*owner_project(tmp_path), "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        resp = requests.post(server.url + "/oauth/device_authorization", verify=str(cert),
                             data={"client_id": "rstack", "member": "tls"}, timeout=10)
        assert resp.status_code == 200 and resp.json()["verification_uri"].startswith("https://")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url + "/device", timeout=10)  # not trusted without the cert
    finally:
        server.kill()


def test_a_settled_claim_killed_before_its_knowledge_write_is_written_at_restart(tmp_path):
    """The claim row commits first; the knowledge-base write follows and is replayed (once) by
    the next start when the server died between the two."""
    from rstack.program.server import claims
    from rstack.program.server.app import server_dir
    from rstack.program.server.store import Store
    from rstack.program.spec import load_program

    root, _home = owner_project(tmp_path)
    program = load_program(root)
    store = Store(server_dir(root) / "state.db")
    champion = KnowledgeBase.read(root, "toy").champion
    payload = {"submission": "s" * 8, "verdict": "DISCARD", "tree": "d" * 64,
               "commit": champion["commit"], "hypothesis": "h", "runs": [], "cost_usd": 0.0,
               "artifacts": {}, "stages": [{"name": "trial", "verdict": "DISCARD",
                                            "values": {"0": 0.3, "1": 0.31, "2": 0.29},
                                            "champion_values": {"0": 0.2, "1": 0.21, "2": 0.19}}]}
    claim_id, _ = store.add_claim("alice", "s" * 8, tree="d" * 64, commit=champion["commit"],
                                  verdict="DISCARD", payload=payload, status="recorded")
    store.settle(claim_id, status="recorded", verifier=None, verification={}, trial=1)
    assert store.unwritten() and not KnowledgeBase.read(root, "toy").candidates  # the "crash"
    assert claims.recover(root, store, program) == 1
    assert claims.recover(root, store, program) == 0
    trials = KnowledgeBase.read(root, "toy").candidates
    assert [(t["trial"], t["claim"], t["member"], t["verdict"]) for t in trials] == [(1, claim_id, "alice", "DISCARD")]
