"""What a member submits, checked as untrusted input, and what a verification decides.

A submission is validated whole (schema, finite metrics of the declared metric, the program's
seeds) and its git bundle is checked in the owner's repository (only editable files differ from
the champion, no links, the claimed commit and tree hash) before anything is stored. A KEEP is a
claim; `settle` applies the program's own rule (`decide.compare_stage`) to an independent re-run
and only then moves the champion, writing the owner's knowledge base like a local trial does.
"""

from __future__ import annotations

import base64
import binascii
import re
import tempfile
import threading
from pathlib import Path

from ...contract import is_finite_number
from ...gitstate import git
from .. import decide, gittree
from ..kb import KnowledgeBase, ledger
from ..spec import Program
from .store import Store

HEX40, HEX64 = re.compile(r"^[0-9a-f]{40}$"), re.compile(r"^[0-9a-f]{64}$")
SUBMISSION = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
SEED_KEY = re.compile(r"^(?:0|[1-9][0-9]{0,9})\Z")
CLAIM_REF = "refs/rstack/claims/{id}"
_GIT_LOCK = threading.Lock()  # one writer of the owner's refs and ledger at a time


class Rejected(Exception):
    """A request that changes nothing: its HTTP status and the message the member sees."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _finite(value, where: str) -> float:
    if not is_finite_number(value):  # a 400-digit int is not: float() of it overflows
        raise Rejected(400, f"{where} must be a finite number, got {value!r}")
    return float(value)


def seed_values(obj, seeds: list[int], where: str) -> dict[int, float]:
    """{"seed": value} for exactly the program's seeds, every value finite."""
    if not isinstance(obj, dict):
        raise Rejected(400, f"{where} must be an object seed -> value")
    # Plain ASCII digits only: int() also reads " 0", "+0", "0_2" and "\u0660", so two keys
    # could name one seed (the second silently replacing the first).
    if not all(SEED_KEY.match(k) for k in obj):
        raise Rejected(400, f"{where}: seeds must be integers, got {sorted(obj)}")
    values = {int(k): _finite(v, f"{where}[{k}]") for k, v in obj.items()}
    if sorted(values) != sorted(seeds):
        raise Rejected(400, f"{where}: seeds {sorted(values)} are not the program's {sorted(seeds)}")
    return values


def validate_submission(data, program: Program) -> dict:
    """The submission's fields, checked; Rejected(400) naming the first bad one."""
    if not isinstance(data, dict):
        raise Rejected(400, "the body must be a JSON object")
    unknown = set(data) - {"submission", "record", "artifacts", "bundle"}
    if unknown:
        raise Rejected(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    sub = data.get("submission")
    if not isinstance(sub, str) or not SUBMISSION.match(sub):
        raise Rejected(400, "submission must be an id of 8-64 letters, digits, _ or -")
    record = data.get("record")
    if not isinstance(record, dict):
        raise Rejected(400, "record must be an object (the trial's program.trial record)")
    verdict = record.get("verdict")
    if verdict not in (decide.KEEP, decide.DISCARD, decide.INCONCLUSIVE, decide.FAILED):
        raise Rejected(400, f"record.verdict must be KEEP, DISCARD, INCONCLUSIVE or FAILED, got {verdict!r}")
    if record.get("metric") != program.metric:
        raise Rejected(400, f"record.metric must be the program's metric {program.metric!r}, "
                            f"got {record.get('metric')!r}")
    if not isinstance(record.get("tree"), str) or not HEX64.match(record["tree"]):
        raise Rejected(400, "record.tree must be a sha256 (64 hex digits)")
    if not isinstance(record.get("commit"), str) or not HEX40.match(record["commit"]):
        raise Rejected(400, "record.commit must be a git commit id (40 hex digits)")
    hyp = record.get("hypothesis")
    if hyp is not None and (not isinstance(hyp, str) or len(hyp) > 500):
        raise Rejected(400, "record.hypothesis must be text of at most 500 characters")
    runs = record.get("runs", [])
    if not isinstance(runs, list) or len(runs) > 1000 or not all(isinstance(r, str) and len(r) < 200 for r in runs):
        raise Rejected(400, "record.runs must be a list of run ids")
    cost = _finite(record.get("cost_usd", 0.0), "record.cost_usd")
    stages = record.get("stages", [])
    if not isinstance(stages, list) or len(stages) > 2:
        raise Rejected(400, "record.stages must be a list of at most 2 stages (trial, confirm)")
    seeds = {"trial": program.seeds, "confirm": program.confirm_seeds}
    clean_stages = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, dict) or stage.get("name") not in seeds:
            raise Rejected(400, f"record.stages[{i}].name must be trial or confirm")
        name = stage["name"]
        values = seed_values(stage.get("values"), seeds[name], f"record.stages[{i}].values")
        champ = seed_values(stage.get("champion_values"), seeds[name],
                            f"record.stages[{i}].champion_values")
        clean_stages.append({"name": name, "values": values, "champion_values": champ,
                             "verdict": stage.get("verdict")})
    if verdict == decide.KEEP and [s["name"] for s in clean_stages] != ["trial", "confirm"]:
        raise Rejected(400, "a KEEP must carry its trial and confirm stages")
    artifacts = data.get("artifacts", {})
    if not isinstance(artifacts, dict) or len(artifacts) > 1000 or not all(
            isinstance(k, str) and len(k) < 500 and isinstance(v, str) and HEX64.match(v)
            for k, v in artifacts.items()):
        raise Rejected(400, "artifacts must map a path to its sha256")
    bundle = data.get("bundle")
    if not isinstance(bundle, str):
        raise Rejected(400, "bundle must be the candidate commit as a base64 git bundle")
    try:
        raw = base64.b64decode(bundle, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(400, "bundle is not valid base64") from None
    return {"submission": sub, "verdict": verdict, "tree": record["tree"], "commit": record["commit"],
            "hypothesis": hyp, "runs": runs, "cost_usd": cost, "stages": clean_stages,
            "artifacts": artifacts, "bundle": raw}


def import_bundle(root: Path, program: Program, sub: dict, ref: str) -> None:
    """Fetch the candidate into `ref` of the owner's repository and check it; on any problem the
    ref is deleted again and Rejected(400/409) says why."""
    with tempfile.NamedTemporaryFile(suffix=".bundle") as tmp:
        tmp.write(sub["bundle"])
        tmp.flush()
        if git(root, "bundle", "verify", "-q", tmp.name) is None:
            raise Rejected(409, "the bundle is not a git bundle whose prerequisites this server has "
                                "(is the candidate built on the champion? rstack program pull)")
        heads = git(root, "bundle", "list-heads", tmp.name)
        lines = heads.stdout.split() if heads else []
        if len(lines) != 2:
            raise Rejected(400, "the bundle must hold exactly one ref (the candidate commit)")
        if git(root, "fetch", "-q", "--no-tags", tmp.name, f"+{lines[1]}:{ref}") is None:
            raise Rejected(400, "git could not fetch the bundle's ref")
    try:
        commit = gittree.resolve(root, ref)
        if commit != sub["commit"]:
            raise Rejected(400, f"the bundle holds commit {commit[:12]}, the record says {sub['commit'][:12]}")
        champion = KnowledgeBase.read(root, program.name).champion
        for mode, _blob, path in gittree.tracked_files(root, commit):
            if mode in ("120000", "160000") and gittree.is_editable(path, program.editable):
                raise Rejected(400, f"{path}: links and submodules are refused in a candidate")
        changed = gittree.changed_files(root, champion["commit"], commit)
        outside = [p for p in changed if not gittree.is_editable(p, program.editable)]
        if outside:
            raise Rejected(400, f"the candidate changes files outside scope.editable: {', '.join(outside[:5])}")
        tree = gittree.tree_hash(root, commit, program.editable)
        if tree != sub["tree"]:
            raise Rejected(400, f"the candidate's tree hash is {tree[:12]}, the record says {sub['tree'][:12]}")
    except Rejected:
        git(root, "update-ref", "-d", ref)
        raise


def submit(root: Path, store: Store, program: Program, member: str, sub: dict) -> dict:
    """Store a checked submission. A KEEP is a pending claim (or a duplicate of the champion);
    any other verdict is recorded in the owner's knowledge base at once."""
    with _GIT_LOCK:
        existing = [c for c in store.claims() if c["member"] == member and c["submission"] == sub["submission"]]
        if existing:
            return {"claim": existing[0]["id"], "status": existing[0]["status"], "created": False}
        incoming = f"refs/rstack/incoming/{sub['submission']}"
        import_bundle(root, program, sub, incoming)
        kb = KnowledgeBase.read(root, program.name)
        status = "pending" if sub["verdict"] == decide.KEEP else "recorded"
        if status == "pending" and (kb.champion["tree"] == sub["tree"] or any(
                c["tree"] == sub["tree"] for c in store.claims("verified"))):
            status = "duplicate"
        payload = {k: v for k, v in sub.items() if k != "bundle"}
        payload["stages"] = [{**s, "values": {str(k): v for k, v in s["values"].items()},
                              "champion_values": {str(k): v for k, v in s["champion_values"].items()}}
                             for s in sub["stages"]]
        claim_id, created = store.add_claim(member, sub["submission"], tree=sub["tree"],
                                            commit=sub["commit"], verdict=sub["verdict"],
                                            payload=payload, status=status)
        gittree.set_ref(root, CLAIM_REF.format(id=claim_id), sub["commit"])
        git(root, "update-ref", "-d", incoming)
        if status != "pending":
            store.settle(claim_id, status=status, verifier=None, verification={},
                         trial=kb.next_trial_id())
            write_knowledge(root, store, program, store.claim(claim_id))
        return {"claim": claim_id, "status": status, "created": created}


def settle(root: Path, store: Store, program: Program, claim_id: int, verifier: str, data) -> dict:
    """A verifier's re-run of a claim's confirm seeds (candidate and champion, same machine):
    verified (KEEP by the program's rule: the champion moves), unverified (both sets of numbers
    kept), or duplicate (that code was verified first under another claim)."""
    if not isinstance(data, dict):
        raise Rejected(400, "the body must be a JSON object")
    if not isinstance(data.get("runs", []), list):
        raise Rejected(400, "runs must be a list of run ids")
    with _GIT_LOCK:
        claim = store.claim(claim_id)
        if claim is None or claim["status"] != "pending":
            raise Rejected(404, f"claim {claim_id} is not pending")
        if claim["assigned"] != verifier:
            raise Rejected(409, f"claim {claim_id} is not assigned to {verifier}; rstack program verify asks for one")
        kb = KnowledgeBase.read(root, program.name)
        champion = kb.champion
        if data.get("champion_tree") != champion["tree"]:
            raise Rejected(409, "the champion moved while you verified; run rstack program verify again")
        cand = seed_values(data.get("candidate"), program.confirm_seeds, "candidate")
        champ = seed_values(data.get("champion"), program.confirm_seeds, "champion")
        stage = decide.compare_stage("verify", cand, champ, direction=program.direction,
                                     min_effect=program.min_effect, alpha=program.alpha)
        if any(c["tree"] == claim["tree"] for c in store.claims("verified")) or champion["tree"] == claim["tree"]:
            status = "duplicate"
        else:
            status = "verified" if stage.verdict == decide.KEEP else "unverified"
        verification = {"verifier": verifier, "stage": stage.as_json(),
                        "runs": [r for r in data.get("runs", []) if isinstance(r, str)][:100],
                        "champion_before": champion["champion"]}
        store.settle(claim_id, status=status, verifier=verifier, verification=verification,
                     trial=kb.next_trial_id())
        write_knowledge(root, store, program, store.claim(claim_id))
        return {"claim": claim_id, "status": status, "verdict": stage.verdict,
                "improvement": stage.improvement, "improvement_low": stage.improvement_low,
                "improvement_high": stage.improvement_high}


def write_knowledge(root: Path, store: Store, program: Program, claim: dict) -> None:
    """The owner's program.trial (and, when verified, program.champion) records of a settled
    claim, in one write; idempotent (a restart re-runs it for claims not marked written)."""
    kb = KnowledgeBase.read(root, program.name)
    if any(t.get("claim") == claim["id"] for t in kb.trials):
        store.mark_written(claim["id"])
        return
    p, v = claim["payload"], claim["verification"] or {}
    champion = kb.champion
    stages = list(p["stages"])
    if v.get("stage"):
        stages.append(v["stage"])
    first = p["stages"][0] if p["stages"] else None
    mean = (sum(first["values"].values()) / len(first["values"])) if first else None
    verdict = claim["verdict"]
    notes = {"verified": f"verified by {claim['verifier']}",
             "unverified": f"claimed KEEP; {claim['verifier']}'s re-run disagrees",
             "duplicate": "claimed KEEP for code that is already the champion (verified first)"}
    if claim["status"] == "unverified":
        verdict = v["stage"]["verdict"]
    elif claim["status"] == "duplicate":
        verdict = decide.INCONCLUSIVE
    trial_id = claim["trial"] if claim["trial"] is not None else kb.next_trial_id()
    record = {"type": "program.trial", "program": program.name, "trial": trial_id,
              "commit": claim["commit"], "tree": claim["tree"], "verdict": verdict,
              "metric": program.metric, "direction": program.direction, "runs": p["runs"],
              "cost_usd": p["cost_usd"], "hypothesis": p["hypothesis"], "member": claim["member"],
              "champion_before": champion["champion"], "champion_after": champion["champion"],
              "min_effect": program.min_effect, "alpha": program.alpha, "stages": stages,
              "mean": mean, "impact": None, "claim": claim["id"], "claim_status": claim["status"],
              "verified_by": claim["verifier"], "reason": notes.get(claim["status"]),
              "artifacts": p["artifacts"], "program_sha256": program.sha256}
    # The numbers the log shows: the independent re-run's when there is one, else the member's
    # own trial seeds (as reported), both through the program's comparison.
    shown = v.get("stage")
    if shown is None and first is not None:
        shown = decide.compare_stage(
            "trial", {int(k): x for k, x in first["values"].items()},
            {int(k): x for k, x in first["champion_values"].items()}, direction=program.direction,
            min_effect=program.min_effect, alpha=program.alpha).as_json()
    if shown is not None:
        record.update({"diff": shown["diff"], "ci_low": shown["ci_low"],
                       "ci_high": shown["ci_high"], "n": shown["n"]})
    records = [record]
    if claim["status"] == "verified":
        stage = v["stage"]
        record["champion_after"] = champion["champion"] + 1
        record["impact"] = stage["improvement"]
        low, high = decide.mean_interval(list(first["values"].values()), program.alpha)
        records.append({"type": "program.champion", "program": program.name,
                        "ci_low": low, "ci_high": high,
                        "champion": champion["champion"] + 1, "trial": trial_id,
                        "commit": claim["commit"], "tree": claim["tree"], "metric": program.metric,
                        "runs": v.get("runs", []), "mean": mean, "impact": stage["improvement"],
                        "impact_low": stage["improvement_low"],
                        "impact_high": stage["improvement_high"], "member": claim["member"],
                        "reason": notes["verified"]})
    ledger(root).append_many(records, together=True)
    gittree.set_ref(root, gittree.TRIAL_REF.format(trial=trial_id), claim["commit"])
    if claim["status"] == "verified":
        gittree.set_ref(root, gittree.CHAMPION_REF, claim["commit"])
    store.mark_written(claim["id"])


def recover(root: Path, store: Store, program: Program) -> int:
    """After a restart: write the knowledge of claims settled but not yet written."""
    todo = store.unwritten()
    for claim in todo:
        write_knowledge(root, store, program, claim)
    return len(todo)
