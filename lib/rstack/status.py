"""Where a project stands in the research pipeline, and the one step that should come next.

Read-only and fast (the skills' preamble runs it on every invocation): it reads files and ledgers,
never imports numpy/scipy/matplotlib, never runs a script or touches the network. Each stage reports
a state — `ok`, `missing`, `invalid`, `stale`, `failed`, `partial`, `unknown`, `thin` (a review
that cites too little on-topic work) — and a detail line.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths, runview
from .errors import RStackError
from .guards import standing_preflight
from .freshness import analysis_freshness
from .hashing import sha256_file
from .ledger import Ledger

# Pipeline stages in order; `next_step` walks them and recommends the first one not `ok`.
STAGES = ("setup", "idea", "lit_review", "novelty", "plan", "preflight", "runs", "analysis",
          "paper", "audit", "bundle")

# lit-review.md cites ledger keys as [@key]; a group such as [@a; @b] or [see @a, p. 3] cites each.
_CITE_GROUP = re.compile(r"\[([^\[\]]*@[^\[\]]*)\]")
_CITE_KEY = re.compile(r"(?:^|[\s;,])-?@([A-Za-z0-9_:\-]+)")


# The novelty check's verdict line when the ledger holds too little on-topic work to judge.
_CANNOT_ASSESS = re.compile(r"^\W*verdict\W*\s*cannot assess", re.I | re.M)


def _cited_keys(text: str) -> set[str]:
    return {key for group in _CITE_GROUP.findall(text) for key in _CITE_KEY.findall(group)}


@dataclass
class Stage:
    name: str
    state: str
    detail: str
    data: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"state": self.state, "detail": self.detail, **self.data}


@dataclass
class NextStep:
    stage: str  # a stage name, or "done" (then skill and command are None)
    skill: str | None
    command: str | None
    why: str

    def as_json(self) -> dict:
        return {"stage": self.stage, "skill": self.skill, "command": self.command, "why": self.why}


@dataclass
class Status:
    root: Path
    stages: dict[str, Stage]
    next: NextStep

    def as_json(self) -> dict:
        return {"version": 1, "project_root": str(self.root),
                "stages": {name: stage.as_json() for name, stage in self.stages.items()},
                "next": self.next.as_json()}


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0 and bool(path.read_text(errors="replace").strip())


# -- stages ----------------------------------------------------------------------------------

def _setup_stage() -> Stage:
    marker = paths.install_marker()
    if marker.exists():
        return Stage("setup", "ok", f"{marker} present")
    return Stage("setup", "missing", f"{marker} missing: ./setup has not completed")


def _doc_stage(name: str, root: Path, filename: str) -> Stage:
    path = root / filename
    if _nonempty(path):
        return Stage(name, "ok", filename)
    return Stage(name, "missing", f"{filename} not written yet")


def _lit_stage(root: Path, result) -> Stage:
    keys = {r.get("key") for r in result.records if r.get("type") == "paper"}
    searches = sum(1 for r in result.records if r.get("type") == "search")
    data = {"papers": len(keys), "searches": searches, "damaged_lines": len(result.damage)}
    path = root / "lit-review.md"
    if not _nonempty(path):
        detail = f"lit-review.md not written yet ({len(keys)} papers from {searches} searches ledgered)"
        return Stage("lit_review", "missing", detail, data)
    cited = sorted(_cited_keys(path.read_text(errors="replace")))
    unknown = [key for key in cited if key not in keys]
    data.update(cited=len(cited), unknown_keys=unknown)
    if unknown:
        return Stage("lit_review", "invalid",
                     f"lit-review.md cites {len(unknown)} key(s) not in the lit ledger: "
                     f"{', '.join(unknown[:5])}", data)
    idea = root / "idea.md"
    if idea.is_file():
        from .literature.coverage import assess

        cover = assess(idea.read_text(errors="replace"), result.records,
                       path.read_text(errors="replace"))
        data.update(on_topic=len(cover.on_topic), off_topic=[s.key for s in cover.off_topic])
        if cover.thin:
            return Stage("lit_review", "thin",
                         f"lit-review.md cites {len(cover.on_topic)} on-topic paper(s) for idea.md "
                         f"(at least {cover.min_papers} needed; {len(cover.off_topic)} cited "
                         "off-topic)", data)
    return Stage("lit_review", "ok",
                 f"{len(keys)} papers from {searches} searches; lit-review.md cites {len(cited)}", data)


def _idea_stage(root: Path, lit) -> Stage:
    """idea.md, whose citations are checked like the review's: `[@key]` of the lit ledger, and no
    author-year reference written from memory."""
    stage = _doc_stage("idea", root, "idea.md")
    if stage.state != "ok":
        return stage
    from .literature.coverage import memory_citations

    text = (root / "idea.md").read_text(errors="replace")
    keys = {r.get("key") for r in lit.records if r.get("type") == "paper"}
    unknown = sorted(key for key in _cited_keys(text) if key not in keys)
    memory = memory_citations(text)
    stage.data.update(unknown_keys=unknown, memory_citations=memory)
    if unknown or memory:
        found = [f"[@{k}] not in the lit ledger" for k in unknown[:3]] + [
            f"{c!r} cited from memory" for c in memory[:3]]
        return Stage("idea", "invalid", "idea.md: " + "; ".join(found), stage.data)
    return stage


def _novelty_stage(root: Path, lit) -> Stage:
    """novelty-assessment.md, whose `[@key]`s (and refined-idea.md's) must be lit ledger keys."""
    path = root / "novelty-assessment.md"
    if not _nonempty(path):
        return Stage("novelty", "missing", "novelty-assessment.md not written yet")
    keys = {r.get("key") for r in lit.records if r.get("type") == "paper"}
    cited: set[str] = set()
    for name in ("novelty-assessment.md", "refined-idea.md"):
        if (root / name).is_file():
            cited.update(_cited_keys((root / name).read_text(errors="replace")))
    unknown = sorted(key for key in cited if key not in keys)
    data = {"cited": len(cited), "unknown_keys": unknown}
    if unknown:
        return Stage("novelty", "invalid",
                     f"novelty-assessment.md/refined-idea.md cite {len(unknown)} key(s) not in the "
                     f"lit ledger: {', '.join(unknown[:5])}", data)
    if _CANNOT_ASSESS.search(path.read_text(errors="replace")):
        return Stage("novelty", "thin", "novelty-assessment.md: cannot assess, the literature is "
                     "too thin", data)
    return Stage("novelty", "ok", f"novelty-assessment.md (cites {len(cited)})", data)


def _load_plan(root: Path):
    """(plan or None, stage). The plan module belongs to the runs concern; absent = unknown."""
    path = root / "experiment-plan.md"
    if not path.is_file():
        return None, Stage("plan", "missing", "experiment-plan.md not written yet")
    try:
        from .plan import load_plan
    except ImportError:
        return None, Stage("plan", "unknown", "experiment-plan.md present; plan checker not installed")
    try:
        plan = load_plan(path)
    except RStackError as exc:
        return None, Stage("plan", "invalid", exc.message.splitlines()[0])
    arms = list((plan.raw.get("execution") or {}).get("arms") or {})
    seeds = list((plan.raw.get("execution") or {}).get("seeds") or [])
    return plan, Stage("plan", "ok", f"{len(arms)} arms x {len(seeds)} seeds",
                       {"sha256": getattr(plan, "sha256", None), "arms": arms, "seeds": seeds})


def _script_path(root: Path, plan) -> Path:
    script = "train.py"
    if plan is not None:
        script = (plan.raw.get("execution") or {}).get("script") or script
    return root / script


def _preflight_stage(root: Path, plan, experiments: list[tuple[int, dict]]) -> Stage:
    script = _script_path(root, plan)
    rel = script.relative_to(root) if script.is_relative_to(root) else script
    if not script.is_file():
        return Stage("preflight", "missing", f"{rel} not written yet")
    sha = sha256_file(script)
    # Each arm's full args (execution.args + its own), as its runs and the preflight gate see them.
    arg_sets = [plan.arm_args(arm) for arm in plan.arms] if plan is not None else []
    last = standing_preflight([r for _, r in experiments], sha, arg_sets)
    data = {"script": str(rel), "script_sha256": sha}
    if last is None:
        return Stage("preflight", "missing", f"no preflight of the current {rel} (sha256 {sha[:12]})",
                     data)
    data["verdict"] = last.get("verdict")
    data["args"] = list(last.get("args") or [])
    if last.get("verdict") == "PASS":
        return Stage("preflight", "ok", f"PASS for the current {rel} ({sha[:12]})", data)
    with_args = f" with args {shlex.join(data['args'])}" if data["args"] else ""
    return Stage("preflight", "failed",
                 f"FAIL ({last.get('category')}) for the current {rel}{with_args}: "
                 f"{last.get('message', '')}".rstrip(": "), data)


def _runs_stage(root: Path, plan, index) -> Stage:
    """Runs of each arm's current script version; older ones are listed as superseded."""
    from . import config
    from .runview import current_versions_for

    arms, superseded = index.arm_counts(current_versions_for(root, plan))
    per_arm = {arm: {k: c[k] for k in ("ok", "failed", "running")} for arm, c in arms.items()}
    ok_seeds = {arm: c["ok_seeds"] for arm, c in arms.items()}
    failed_seeds = {arm: c["failed_seeds"] for arm, c in arms.items()}
    spent = round(index.spent_usd(), 4)
    cap = None
    if plan is not None:
        cap = (plan.raw.get("execution") or {}).get("max_cost_usd")
    if cap is None:
        cap = config.get("max_cost_usd")
    data: dict[str, Any] = {"arms": per_arm, "spent_usd": spent, "cap_usd": cap,
                            "superseded": superseded}
    # Local runs die with their `rstack run` (the reaper): with no live holder of the run lock,
    # they are in flight in the ledger only (remote ones may still run; --resume re-attaches).
    from .runlock import live_holder

    orphaned = ([row for row in index.in_flight() if row.profile == "local"]
                if index.inflight and live_holder(root) is None else [])
    data["orphaned"] = [row.run_id for row in orphaned]

    def running(arm: str, count: int) -> str:
        lost = sum(1 for row in orphaned if row.arm == arm)
        return (f", {count} in flight with no live `rstack run` (rstack run --resume closes them)"
                if lost and lost == count else f", {count} running" if count else "")

    summary = "; ".join(f"{arm}: {c['ok']} ok, {c['failed']} failed" + running(arm, c["running"])
                        for arm, c in sorted(per_arm.items())) or "no runs yet"
    if superseded:
        summary += f"; {superseded} superseded (older script)"
    summary += f"; spent ${spent:.2f} of ${float(cap):.2f} cap"
    if not per_arm:
        return Stage("runs", "missing", summary, data)
    if plan is not None:
        execution = plan.raw.get("execution") or {}
        seeds = set(execution.get("seeds") or [])
        missing = {arm: sorted(seeds - ok_seeds.get(arm, set()), key=str)
                   for arm in execution.get("arms") or {}}
        missing = {arm: s for arm, s in missing.items() if s}
        data["missing"] = missing
        if missing:
            text = ", ".join(f"{arm} seeds {','.join(map(str, s))}" for arm, s in missing.items())
            # Failed only while a missing arm x seed has a failure behind it; a failure that a
            # later ok run replaced leaves the rest merely not run yet.
            state = "failed" if any(set(s) & failed_seeds.get(arm, set())
                                    for arm, s in missing.items()) else "partial"
            return Stage("runs", state, f"{summary}; no ok run yet for {text}", data)
    return Stage("runs", "ok", summary, data)


def _analysis_stage(root: Path, experiments: list[tuple[int, dict]], runs: Stage) -> Stage:
    summary_path = root / "analysis" / "summary.json"
    if not summary_path.is_file():
        return Stage("analysis", "missing", "analysis/summary.json not written yet")
    try:
        summary = json.loads(summary_path.read_text())
        recorded = summary["ledger"]
        recorded_sha, _ = recorded["sha256"], int(recorded["lines"])
    except (ValueError, KeyError, TypeError):
        return Stage("analysis", "invalid", "analysis/summary.json is unreadable or lacks ledger.sha256")
    data = {"ledger_sha256": recorded_sha, "generated_at": summary.get("generated_at")}
    fresh = analysis_freshness(root, summary)
    if fresh.current:
        return Stage("analysis", "ok", "up to date (no runs finished since)" if fresh.appended
                     else "up to date with the experiments ledger", data)
    return Stage("analysis", "stale", fresh.reason or "stale", data)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _paper_stage(root: Path) -> Stage:
    tex = root / "paper.tex"
    if not tex.is_file():
        return Stage("paper", "missing", "paper.tex not written yet")
    # `rstack paper build` records each build in .rstack/paper-build.json (the paper concern).
    record = _read_json(paths.state_dir(root) / "paper-build.json")
    pdf = root / "paper.pdf"
    if record is None or not pdf.is_file():
        return Stage("paper", "partial", "paper.tex written; not built yet")
    data = {"pages": record.get("pages"), "page_limit": record.get("page_limit"),
            "engine": record.get("engine")}
    if not record.get("ok"):
        errors = len(record.get("errors") or [])
        return Stage("paper", "failed", f"last build failed ({errors} error(s); rstack paper build "
                                        "shows them)", data)
    bib = root / "paper.bib"
    current_bib = sha256_file(bib) if bib.is_file() else None
    numbers = root / "analysis" / "numbers.tex"
    if (record.get("tex_sha256") != sha256_file(tex) or record.get("bib_sha256") != current_bib
            or record.get("pdf_sha256") != sha256_file(pdf)
            or (numbers.is_file() and numbers.stat().st_mtime > pdf.stat().st_mtime)):
        return Stage("paper", "stale", "paper sources changed since the last build", data)
    pages = record.get("main_pages") or record.get("pages")
    limit = record.get("page_limit")
    detail = f"paper.pdf built ({pages} pages" + (f", limit {limit})" if limit else ")")
    if record.get("within_limit") is False:
        return Stage("paper", "failed", detail + ": over the venue's page limit", data)
    # The meta-review's gate: an error finding of the last `rstack review` that review.md does not
    # address keeps the paper stage open (the paper is built, so the audit still runs).
    from .review import REVIEW_FILE, unaddressed_errors

    open_ids = unaddressed_errors(root)
    if open_ids:
        data["review_unaddressed"] = open_ids
        return Stage("paper", "partial", f"{detail}; review: {len(open_ids)} error finding(s) not "
                     f"addressed in {REVIEW_FILE} ({', '.join(open_ids[:3])})", data)
    return Stage("paper", "ok", detail, data)


def _audit_stage(root: Path, paper: Stage) -> Stage:
    # The audit is re-run here rather than remembered: it takes a fraction of a second and a
    # remembered verdict could describe an older paper. Only a built, current paper is audited.
    if paper.state != "ok" and not paper.data.get("review_unaddressed"):
        return Stage("audit", "missing", "build the paper first")
    try:
        from .paper.audit import audit_paper
    except ImportError:
        return Stage("audit", "unknown", "the paper audit is not installed")
    try:
        report = audit_paper(root)
    except RStackError as exc:
        return Stage("audit", "failed", exc.message.splitlines()[0])
    errors = len(report.errors)
    data = {"errors": errors, "macros_used": report.macros_used}
    if errors:
        first = report.errors[0]
        where = f"{first.file}:{first.line}: " if first.line else ""
        return Stage("audit", "failed", f"{errors} problem(s), first: {where}{first.message}", data)
    return Stage("audit", "ok", f"clean ({report.macros_used} macro uses traced)", data)


def _bundle_stage(root: Path) -> Stage:
    stamps = sorted(root.glob("bundle*/stamp.json"), key=lambda p: p.stat().st_mtime)
    if not stamps:
        return Stage("bundle", "missing", "no reproducibility bundle yet")
    name = stamps[-1].parent.name
    # A bundle from before the latest revision does not hold what the paper now says: compare the
    # hashes it recorded for the paper and the analysis with the project's current files.
    recorded: dict[str, str] = {}
    try:
        for line in (stamps[-1].parent / "checksums.sha256").read_text(errors="replace").splitlines():
            digest, _, rel = line.partition("  ")
            recorded[rel] = digest
    except OSError:
        pass
    # (Not paper.pdf: a rebuild of the same sources may differ in its embedded dates.)
    changed = [rel for rel, current in (("paper.tex", "paper/paper.tex"),
                                        ("paper.bib", "paper/paper.bib"),
                                        ("analysis/summary.json", "analysis/summary.json"))
               if current in recorded and (root / rel).is_file()
               and sha256_file(root / rel) != recorded[current]]
    if changed:
        return Stage("bundle", "stale", f"{name}/ predates the current {', '.join(changed)}",
                     {"dir": name, "next_dir": _free_bundle_dir(root)})
    return Stage("bundle", "ok", f"{name}/ created", {"dir": name})


def _free_bundle_dir(root: Path) -> str:
    number = 2
    while (root / f"bundle-{number}").exists():
        number += 1
    return f"bundle-{number}"


# -- the next step -----------------------------------------------------------------------------

_NEXT: dict[str, tuple[str, str | None, str]] = {
    # stage -> (skill, command, why)
    "setup": ("/setup", "./setup", "RStack is not installed for this user yet"),
    "idea": ("/research", None, "write idea.md: the question and why it matters"),
    "lit_review": ("/lit-review", 'rstack lit search "QUERY"', "survey prior work before designing"),
    "novelty": ("/novelty-check", 'rstack lit nearest "IDEA"', "compare against the closest work"),
    "plan": ("/experiment", "rstack plan check", "the plan's five contracts must validate"),
    "preflight": ("/experiment", "rstack preflight train.py", "no paid run before a PASS"),
    "runs": ("/experiment", "rstack run", "every arm needs its seeds finished ok"),
    "analysis": ("/analyze", "rstack analyze", "numbers and figures come from the ledger"),
    "paper": ("/write-paper", "rstack paper build", "write and compile the paper"),
    "audit": ("/write-paper", "rstack paper audit", "the audit is the gate before done"),
    "bundle": ("/write-paper", "rstack bundle create", "package the result for re-running"),
}

# stage -> the artifact whose state the stage reports (README's pipeline table is generated from
# STAGES, _NEXT and this by `rstack dev gen-docs`).
ARTIFACTS: dict[str, str] = {
    "setup": "$RSTACK_HOME/.install-complete",
    "idea": "idea.md",
    "lit_review": "lit-review.md, .rstack/lit-review.jsonl",
    "novelty": "novelty-assessment.md",
    "plan": "experiment-plan.md",
    "preflight": "a `preflight` record in .rstack/experiments.jsonl",
    "runs": "results/<run_id>/, `run.*` records",
    "analysis": "analysis/ (summary.json, numbers.tex, figures, table)",
    "paper": "paper.tex, paper.pdf, .rstack/paper-build.json",
    "audit": ".rstack/paper-audit.json",
    "bundle": "bundle/ (stamp.json, checksums.sha256)",
}


def pipeline() -> list[tuple[str, str, str | None, str]]:
    """(stage, skill, command, artifact) for every stage, in pipeline order."""
    return [(name, _NEXT[name][0], _NEXT[name][1], ARTIFACTS[name]) for name in STAGES]


def next_step(stages: dict[str, Stage]) -> NextStep:
    skipped = []
    for name in STAGES:
        stage = stages[name]
        if stage.state == "ok":
            continue
        # A project that starts from a plan may skip the early, optional stages (when missing: a
        # review citing keys the ledger lacks is still shown); and once every run is ok, a script
        # edited afterwards without a new preflight gates nothing (a FAIL of the current script
        # is still shown: the next run would need a fix).
        if (name in ("idea", "lit_review", "novelty") and stage.state == "missing"
                and stages["plan"].state == "ok"):
            skipped.append(name)
            continue
        if name == "preflight" and stage.state == "missing" and stages["runs"].state == "ok":
            skipped.append(name)
            continue
        skill, command, why = _NEXT[name]
        if name == "preflight" and stage.data.get("script"):
            command = f"rstack preflight {stage.data['script']}"
            if stage.data.get("args"):
                command += f" -- {shlex.join(stage.data['args'])}"
        if name == "paper" and stage.state == "missing":
            command = "rstack paper new"
        if name == "paper" and stage.data.get("review_unaddressed"):
            command, why = "rstack review", ("say in review.md how each error finding was "
                                             "addressed (fixed, or stated as a limitation)")
        if name == "bundle" and stage.state == "stale":
            # A bundle is never overwritten: the new one goes beside it.
            command = f"rstack bundle create --out {stage.data['next_dir']}"
        if name == "runs" and stage.state == "failed":
            # Not `--status failed`: a run that timed out, ran out of memory or diverged has that
            # status instead, and the filter would hide it.
            command, why = "rstack runs list", "diagnose the runs that did not end ok first"
        if name in ("idea", "lit_review", "novelty") and stage.state == "invalid":
            why = "cite only keys in the lit ledger (rstack lit search records new papers)"
            command = 'rstack lit search "QUERY"'
        if name == "novelty" and stage.state == "thin":
            skill, command = "/lit-review", "rstack lit coverage"
            why = "search broader and narrower, resolve known ids, then re-run /novelty-check"
        if name == "lit_review" and stage.state == "thin":
            command = "rstack lit coverage"
            why = ("search broader and narrower queries and resolve known ids; report the gap "
                   "rather than pad the review with unrelated papers")
        return NextStep(name, skill, command, f"{stage.detail}: {why}")
    bundle = stages["bundle"].data.get("dir", "bundle")
    why = f"the paper is audited and bundled; share {bundle}/, or start a new idea with /research"
    if skipped:
        why += f" (skipped: {', '.join(skipped)})"
    return NextStep("done", None, None, why)


def project_status(root: Path) -> Status:
    root = Path(root)
    lit = Ledger(root, "lit-review").read(types=["paper", "search", "retraction"])
    stages: dict[str, Stage] = {"setup": _setup_stage(), "idea": _idea_stage(root, lit)}
    stages["lit_review"] = _lit_stage(root, lit)
    stages["novelty"] = _novelty_stage(root, lit)
    plan, stages["plan"] = _load_plan(root)
    index = runview.load(root)
    experiments = [(0, r) for r in index.preflights]
    stages["preflight"] = _preflight_stage(root, plan, experiments)
    stages["runs"] = _runs_stage(root, plan, index)
    stages["analysis"] = _analysis_stage(root, experiments, stages["runs"])
    stages["paper"] = _paper_stage(root)
    stages["audit"] = _audit_stage(root, stages["paper"])
    stages["bundle"] = _bundle_stage(root)
    return Status(root, stages, next_step(stages))


def render(status: Status) -> str:
    marks = {"ok": "✓", "missing": "·", "partial": "…", "stale": "~"}
    lines = [f"project: {status.root}"]
    for name, stage in status.stages.items():
        lines.append(f"  {marks.get(stage.state, '✗')} {name:<11} {stage.state:<8} {stage.detail}")
    step = status.next
    lines.append(f"next: {step.skill or step.stage}" + (f"  ({step.command})" if step.command else "")
                 + f" — {step.why}")
    return "\n".join(lines)


def preamble_lines(status: Status, *, slug: str, compute: str, venue: str,
                   proactive: bool = True) -> list[str]:
    """KEY: value lines the skills' preamble prints (stable names; skills read them)."""
    lines = [f"PROJECT_ROOT: {status.root}", f"SLUG: {slug}", f"COMPUTE: {compute}",
             f"VENUE: {venue}", f"PROACTIVE: {'yes' if proactive else 'no'}"]
    if status.stages["setup"].state != "ok":
        lines.append("NEEDS_SETUP: yes (run ./setup in the RStack checkout, or /setup)")
    for name in STAGES[1:]:
        stage = status.stages[name]
        lines.append(f"STATE_{name.upper()}: {stage.state} — {stage.detail}")
    step = status.next
    lines.append(f"NEXT: {step.skill or step.stage}" + (f" ({step.command})" if step.command else "")
                 + f" — {step.why}")
    return lines


def compute_summary() -> str:
    """The compute profile skills should plan for, from compute-detect's cheap probes only.

    `rstack compute-detect` is the full answer (it runs nvidia-smi and the LaTeX engines, up to
    2 s); this reuses its credential probes and its recommendation rule, which read files and the
    environment only, so the preamble stays well under a second.
    """
    import shutil

    from . import compute, config

    profile, reason = compute.recommend_profile(
        config.get("compute_preferred"), compute.probe_modal(), compute.probe_vastai(),
        config.get("ssh_hosts"))
    gpu = "nvidia-smi present" if shutil.which("nvidia-smi") else "no GPU driver"
    return f"{profile} ({reason}; {gpu})"
