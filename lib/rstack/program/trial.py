"""One trial of the improvement loop: guards, ledgered runs through `rstack.runs`, the paired
decision, and the records. `run_trial`/`run_baseline` are what the CLI (and a shared-program
server's verifier) call; nothing here prints except through `echo`.

Order matters for crash safety: runs are ledgered as they finish (rstack.runs), the trial and
champion records are appended together in one locked write, and the champion ref is moved only
after them (and re-synced from the records on every call), so a crash at any point leaves the
champion where the records say it is.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .. import config, guards
from ..hashing import sha256_file
from ..ledger import Ledger
from . import decide, gittree
from .kb import KnowledgeBase, ledger
from .spec import Program, ProgramError, load_program

TREES_DIR = "program/trees"  # under .rstack/: champions' code checked out for re-runs

Echo = Callable[[str], None]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def _probe_interpreter(profile: str):
    """Start asking the runs' interpreter for its version and packages (what every run.started
    records; a subprocess of most of a second, cached per process) while the guards run. The
    caller joins the thread before the runs, so rstack.runs finds the answer cached."""
    import threading

    from .. import pyenv
    from ..plan import python_for

    thread = threading.Thread(target=pyenv.describe, args=(python_for(profile),),
                              name="rstack-pyenv", daemon=True)
    if profile == "local":
        thread.start()
    return thread


def _prewarm_statistics() -> None:
    """Import scipy.stats (a second or more, cold) in the background while the runs train, so
    the decision after them does not wait for it: most of the loop's own overhead otherwise."""
    import threading

    def load() -> None:
        from ..analysis import compare, stats  # noqa: F401  (scipy.stats inside their functions)
        import scipy.stats  # noqa: F401

    threading.Thread(target=load, name="rstack-prewarm", daemon=True).start()


@dataclass
class TrialResult:
    """What a trial decided and the numbers behind it (as_json is `program trial --json`)."""

    record: dict
    champion_record: dict | None = None
    reset_command: str = ""
    reset_done: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.record["verdict"]

    def as_json(self) -> dict:
        r = self.record
        return {"verdict": r["verdict"], "trial": r["trial"], "program": r["program"],
                "champion_before": r.get("champion_before"),
                "champion_after": r.get("champion_after"), "metric": r["metric"],
                "direction": r["direction"], "mean": r.get("mean"), "diff": r.get("diff"),
                "ci_low": r.get("ci_low"), "ci_high": r.get("ci_high"),
                "min_effect": r.get("min_effect"), "n": r.get("n"), "runs": r["runs"],
                "champion_runs": r.get("champion_runs", []), "stages": r.get("stages", []),
                "commit": r["commit"], "tree": r["tree"], "hypothesis": r.get("hypothesis"),
                "cost_usd": r["cost_usd"], "impact": r.get("impact"), "reason": r.get("reason"),
                "reset_command": self.reset_command or None, "reset_done": self.reset_done,
                "warnings": self.warnings}


# --------------------------------------------------------------------------------------------
# Runs of one version of the code (through rstack.runs: ledgered, tagged, judged as any run)


@dataclass
class Batch:
    values: dict[int, float]  # seed -> metric, ok runs only
    run_ids: list[str]
    failures: list[str]
    cost_usd: float
    wall_s: float
    run_s: float  # the slowest run, or the sum over jobs when runs queued


def _script_in(root: Path, program: Program, commit: str, tree: str) -> str:
    """The script path to run for `commit`: the project's own when HEAD holds that code, else a
    checkout of the commit under .rstack/program/trees/ (so the champion can be re-run on seeds
    it lacks while HEAD holds a candidate)."""
    head = gittree.resolve(root, "HEAD")
    if gittree.tree_hash(root, head, program.editable) == tree:
        return program.script
    from ..paths import state_dir

    dest = state_dir(root) / TREES_DIR / tree[:16]
    if not (dest / program.script).is_file():
        import io
        import tarfile

        from ..gitstate import git

        archive = git(root, "archive", "--format=tar", commit, binary=True)
        if archive is None:
            raise ProgramError(f"git archive {commit[:12]} failed: the champion's commit cannot "
                               "be checked out for a re-run", hint="git fsck; the commit must "
                               "still exist (refs/rstack/trials/N keeps it reachable)")
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            # The archive is our own repository's; the data filter (Python >= 3.10.12) also
            # refuses links or paths out of dest.
            options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, **options)
    return str((dest / program.script).relative_to(root))


def run_seeds(root: Path, program: Program, *, seeds: list[int], script: str, tags: dict,
              runner_factory=None, jobs: int | None = None, echo: Echo = _stderr) -> Batch:
    """Run `script` on `seeds` as ledgered runs tagged `tags`; values of the program's metric."""
    from ..runners import make_runner
    from ..runs import Progress, RunPolicy, adhoc_specs, execute
    from ..plan import python_for

    arm = f"{program.name}.t{tags['trial']}"
    specs = adhoc_specs(name=arm, command=[python_for(program.profile), script, *program.args],
                        seeds=seeds, profile=program.profile, timeout_s=program.timeout_s,
                        gpu=program.gpu)
    for spec in specs:
        spec.tags = dict(tags)
    if jobs is None:
        if program.profile == "local":
            from ..runners.local import default_jobs
            jobs = default_jobs()
        else:
            jobs = len(specs)
    jobs = max(1, min(jobs, len(specs)))
    factory = runner_factory or (lambda: make_runner(program.profile, root, jobs=jobs,
                                                     gpu=program.gpu))
    # The program's own cap is checked before the trial (check_budget); execute() still holds
    # the project's cap over every run.
    policy = RunPolicy(plan=None, max_retries=int(config.get("max_retries")), cap_usd=None,
                       protected=dict(program.protected))
    started = time.monotonic()
    report = execute(root, specs, factory(), policy=policy, jobs=jobs,
                     progress=Progress(len(specs), program.metric, quiet=True), echo=echo)
    wall = time.monotonic() - started
    values, failures = {}, []
    for result in report.final_results():
        value = (result.metrics or {}).get(program.metric)
        if result.status == "ok" and isinstance(value, (int, float)) and not isinstance(value, bool):
            values[result.spec.seed] = float(value)
        elif result.status == "ok":
            failures.append(f"{result.spec.run_id}: ok but metrics.json has no {program.metric!r}")
        else:
            failures.append(f"{result.spec.run_id}: {result.status}"
                            + (f" ({result.category}: {result.message})" if result.category else ""))
    if report.interrupted:
        raise KeyboardInterrupt
    durations = [r.duration_s for r in report.results]
    run_s = max(max(durations, default=0.0), sum(durations) / jobs)
    return Batch(values=values, run_ids=[r.spec.run_id for r in report.results], failures=failures,
                 cost_usd=round(sum(r.cost_usd for r in report.results), 6), wall_s=wall,
                 run_s=run_s)


def code_values(root: Path, program: Program, tree: str) -> tuple[dict[int, float], dict[int, str]]:
    """seed -> metric (and run id) from the latest ok ledgered run of this code with the program's
    current args: a champion's runs are reused by every trial that pairs with it."""
    from .. import runview

    values: dict[int, float] = {}
    run_ids: dict[int, str] = {}
    index = runview.load(root)
    for row, started, finished in index.iter_records(index.runs()):
        tags = started.get("tags") or {}
        if tags.get("program") != program.name or tags.get("tree") != tree:
            continue
        if row.status != "ok" or list(started.get("args") or []) != list(program.args):
            continue
        value = ((finished or {}).get("metrics") or {}).get(program.metric)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values[started["seed"]] = float(value)
            run_ids[started["seed"]] = row.run_id
    return values, run_ids


# --------------------------------------------------------------------------------------------
# Guards (each raises ProgramError with the reason and the fix; nothing has run yet)


def sync_champion_ref(root: Path, kb: KnowledgeBase) -> None:
    """The records are the truth; the ref follows them (a crash may have left it behind)."""
    champion = kb.champion
    if champion is not None and gittree.champion_commit(root) != champion["commit"]:
        gittree.set_ref(root, gittree.CHAMPION_REF, champion["commit"])


def check_budget(program: Program, kb: KnowledgeBase, now: datetime) -> None:
    fix = ("the program's budget is spent: report to the human; raising it is their decision "
           "(budget in program.md)")
    if program.max_trials is not None and len(kb.candidates) >= program.max_trials:
        raise ProgramError(f"budget: {len(kb.candidates)} of {program.max_trials} trials run "
                           "(budget.max_trials); no trial was started", hint=fix)
    spent = kb.spent_usd()
    if program.max_cost_usd is not None:
        from ..costs import estimate_run_usd

        runs = len(program.seeds) + len(program.confirm_seeds)
        estimate = runs * estimate_run_usd(program.profile, program.gpu, program.timeout_s)
        if spent >= program.max_cost_usd or spent + estimate > program.max_cost_usd + 1e-9:
            raise ProgramError(f"budget: cost cap: spent ${spent:.2f} + estimate ${estimate:.2f} "
                               f"for one trial exceeds budget.max_cost_usd ${program.max_cost_usd:.2f}; "
                               "no trial was started", hint=fix)
    if program.max_hours is not None and kb.hours_used(now) >= program.max_hours:
        raise ProgramError(f"budget: {kb.hours_used(now):.2f} h since the baseline, "
                           f"budget.max_hours is {program.max_hours:g}; no trial was started", hint=fix)


def check_protected(program: Program, champion_trial: dict) -> None:
    """The existing scope rule for flags: a protected key must keep the champion's value."""
    before = list(champion_trial.get("args") or [])
    changes = []
    for key, flag in program.protected.items():
        old, new = guards.flag_value(before, flag), guards.flag_value(program.args, flag)
        if old != new:
            changes.append(f"{key} ({flag} {old!r} -> {new!r})")
    if changes:
        raise ProgramError("scope: trial.args change a protected key: " + ", ".join(changes)
                           + "; that changes what the program measures, so only the human may "
                           "decide it", hint="restore trial.args in program.md, or start a new "
                           "program (new name) with a new baseline")


def check_preflight(root: Path, program: Program, commit: str, script: str | None = None) -> str:
    """A standing preflight PASS for this exact script version (with the trial args)."""
    sha = sha256_file(Path(root) / (script or program.script))
    records = Ledger(root, "experiments").read(types=["preflight"]).records
    if not guards.preflight_passed(records, sha, [program.args]):
        standing = guards.standing_preflight(records, sha, [program.args])
        why = "its latest preflight is FAIL" if standing else "no preflight of this version"
        args = f" -- {' '.join(program.args)}" if program.args else ""
        raise ProgramError(f"preflight: {program.script} at {commit[:12]} (sha256 {sha[:12]}) has "
                           f"no standing PASS ({why}); a trial runs only code that passed",
                           hint=f"rstack preflight {program.script}{args}, then rstack program trial")
    return sha


# --------------------------------------------------------------------------------------------
# The trial


def _stage_fields(stage: decide.Stage) -> dict:
    return {"mean": stage.mean, "diff": stage.diff, "ci_low": stage.ci_low,
            "ci_high": stage.ci_high, "n": stage.n}


def run_trial(root: Path, **options) -> TrialResult:
    """`rstack program trial`: HEAD is the candidate. Refuses (ProgramError) before running
    anything when a guard fails; otherwise always ends with a recorded verdict. Holds the
    project's run lock (RunLockError when another run, trial or baseline holds it): two trials at
    once would both read "next trial N, this code not tried yet" and both record trial N."""
    from ..runlock import run_lock

    with run_lock(Path(root), what="rstack program trial"):
        return _run_trial(root, **options)


def _run_trial(root: Path, *, hypothesis: str | None = None, reset: bool = False,
               runner_factory=None, jobs: int | None = None, echo: Echo = _stderr,
               member: str | None = None) -> TrialResult:
    started = time.monotonic()
    root = Path(root)
    program = load_program(root)
    probe = _probe_interpreter(program.profile)
    kb = KnowledgeBase.read(root, program.name)
    champion = kb.champion
    if champion is None:
        raise ProgramError(f"program {program.name!r} has no champion yet; the baseline comes first",
                           hint="rstack program baseline")
    sync_champion_ref(root, kb)
    gittree.check_clean(root, program.editable)
    head = gittree.resolve(root, "HEAD")
    tree = gittree.tree_hash(root, head, program.editable)
    earlier = kb.tried(tree)
    if earlier is not None:
        what = ("the baseline" if earlier["verdict"] == "BASELINE" else
                f"trial {earlier['trial']}: {earlier['verdict']}")
        raise ProgramError(f"duplicate: this code (tree {tree[:12]} of {', '.join(program.editable)}) "
                           f"was already tried as {what}; nothing was run",
                           hint="change the code (a new hypothesis), commit, and run the trial again")
    changed = gittree.changed_files(root, champion["commit"], head)
    gittree.check_scope(changed, program.editable)
    champion_trial = kb.trial(champion["trial"]) or {}
    check_protected(program, champion_trial)
    check_budget(program, kb, datetime.now(timezone.utc))
    check_preflight(root, program, head)

    _prewarm_statistics()
    trial_id = kb.next_trial_id()
    champ_tree = champion["tree"]
    cost = 0.0
    run_s = 0.0  # time the training processes took (the rest is the loop's overhead)
    cand_runs: list[str] = []
    champ_runs: list[str] = []
    stages: list[decide.Stage] = []
    failures: list[str] = []
    tags = {"program": program.name, "trial": trial_id, "tree": tree, "role": "candidate"}
    if member:
        tags["member"] = member

    def pair(name: str, seeds: list[int]) -> decide.Stage | None:
        nonlocal cost, run_s
        batch = run_seeds(root, program, seeds=seeds, script=program.script, tags=tags,
                          runner_factory=runner_factory, jobs=jobs, echo=echo)
        cost += batch.cost_usd
        run_s += batch.run_s
        cand_runs.extend(batch.run_ids)
        if batch.failures:
            failures.extend(batch.failures)
            return None
        have, ids = code_values(root, program, champ_tree)
        missing = [s for s in seeds if s not in have]
        if missing:
            echo(f"champion: running its code on seed(s) {missing} (no ok run of it there yet)")
            script = _script_in(root, program, champion["commit"], champ_tree)
            again = run_seeds(root, program, seeds=missing, script=script,
                              tags={**tags, "tree": champ_tree, "role": "champion"},
                              runner_factory=runner_factory, jobs=jobs, echo=echo)
            cost += again.cost_usd
            run_s += again.run_s
            if again.failures:
                raise ProgramError("the champion's re-run failed: " + "; ".join(again.failures),
                                   hint="rstack runs list shows the runs; fix the cause (not the "
                                        "candidate's), then rstack program trial again")
            have, ids = code_values(root, program, champ_tree)
        champ_runs.extend(ids[s] for s in seeds)
        return decide.compare_stage(name, {s: batch.values[s] for s in seeds},
                                    {s: have[s] for s in seeds}, direction=program.direction,
                                    min_effect=program.min_effect, alpha=program.alpha)

    if probe.is_alive():
        probe.join()
    first = pair("trial", program.seeds)
    if first is not None:
        stages.append(first)
        if first.verdict == decide.KEEP:
            echo(f"trial seeds: KEEP; confirming on fresh seeds {program.confirm_seeds}")
            second = pair("confirm", program.confirm_seeds)
            if second is not None:
                stages.append(second)
    verdict = decide.FAILED if failures else decide.combine(stages)
    record = {"type": "program.trial", "program": program.name, "trial": trial_id,
              "commit": head, "tree": tree, "verdict": verdict, "metric": program.metric,
              "direction": program.direction, "runs": cand_runs, "cost_usd": round(cost, 6),
              "hypothesis": hypothesis, "diffstat": gittree.diffstat(root, champion["commit"], head),
              "files": changed,
              "champion_before": champion["champion"], "champion_after": champion["champion"],
              "min_effect": program.min_effect, "alpha": program.alpha, "args": program.args,
              "stages": [s.as_json() for s in stages], "champion_runs": champ_runs,
              "impact": None, "reason": "; ".join(failures) or None,
              "program_sha256": program.sha256}
    if member:
        record["member"] = member
    if stages:
        record.update(_stage_fields(stages[0]))
    champion_record = None
    if verdict == decide.KEEP:
        confirm = stages[-1]
        record["champion_after"] = champion["champion"] + 1
        record["impact"] = confirm.improvement
        values, _ids = code_values(root, program, tree)
        trial_values = [values[s] for s in program.seeds if s in values]
        lo, hi = decide.mean_interval(trial_values, program.alpha)
        champion_record = {"type": "program.champion", "program": program.name,
                           "champion": champion["champion"] + 1, "trial": trial_id, "commit": head,
                           "tree": tree, "metric": program.metric,
                           "runs": [r for r in cand_runs], "mean": stages[0].mean,
                           "ci_low": lo, "ci_high": hi, "impact": confirm.improvement,
                           "impact_low": confirm.improvement_low,
                           "impact_high": confirm.improvement_high}
        if member:
            champion_record["member"] = member
    elapsed = time.monotonic() - started
    record["duration_s"] = round(elapsed, 3)
    record["overhead_s"] = round(max(0.0, elapsed - run_s), 3)
    ledger(root).append_many([record] + ([champion_record] if champion_record else []),
                              together=True)
    gittree.set_ref(root, gittree.TRIAL_REF.format(trial=trial_id), head)
    result = TrialResult(record=record, champion_record=champion_record)
    if champion_record:
        gittree.set_ref(root, gittree.CHAMPION_REF, head)
    else:
        result.reset_command = gittree.reset_command(root, head, program.editable)
        if reset:
            gittree.reset_to_champion(root, head, program.editable)
            result.reset_done = True
    return result


def run_baseline(root: Path, **options) -> TrialResult:
    """`rstack program baseline`: run the baseline ref on the trial seeds and make it champion 0;
    report the seed-to-seed noise and the smallest effect the design can detect. Holds the
    project's run lock, as a trial does."""
    from ..runlock import run_lock

    with run_lock(Path(root), what="rstack program baseline"):
        return _run_baseline(root, **options)


def _run_baseline(root: Path, *, ref: str | None = None, runner_factory=None,
                  jobs: int | None = None, echo: Echo = _stderr) -> TrialResult:
    started = time.monotonic()
    root = Path(root)
    program = load_program(root)
    kb = KnowledgeBase.read(root, program.name)
    if kb.champion is not None:
        raise ProgramError(f"program {program.name!r} already has its baseline (champion "
                           f"{kb.champion['champion']}, trial {kb.champion['trial']})",
                           hint="rstack program status; a new baseline means a new program: "
                                "change name in program.md")
    commit = gittree.resolve(root, ref or program.baseline or "HEAD")
    tree = gittree.tree_hash(root, commit, program.editable)
    head = gittree.resolve(root, "HEAD")
    if gittree.tree_hash(root, head, program.editable) == tree:
        gittree.check_clean(root, program.editable)
    script = _script_in(root, program, commit, tree)
    check_preflight(root, program, commit, script)
    _prewarm_statistics()
    tags = {"program": program.name, "trial": 0, "tree": tree, "role": "baseline"}
    batch = run_seeds(root, program, seeds=program.seeds, script=script, tags=tags,
                      runner_factory=runner_factory, jobs=jobs, echo=echo)
    if batch.failures:
        raise ProgramError("the baseline's runs failed: " + "; ".join(batch.failures),
                           hint="rstack runs list shows them; fix the baseline, commit, then "
                                "rstack program baseline again")
    values = [batch.values[s] for s in program.seeds]
    lo, hi = decide.mean_interval(values, program.alpha)
    from ..analysis.stats import summarize

    noise = summarize(values).std
    detectable = decide.detectable_effect(values, program.alpha)
    warnings = []
    if detectable is not None and program.min_effect < detectable:
        warnings.append(f"accept.min_effect {program.min_effect:g} is below the smallest effect "
                        f"{len(program.seeds)} trial seeds can detect (~{detectable:.3g} at seed "
                        f"noise sd {noise:.3g}): small real improvements will come out "
                        "INCONCLUSIVE; add trial seeds or raise min_effect")
    mean = sum(values) / len(values)
    elapsed = time.monotonic() - started
    record = {"type": "program.trial", "program": program.name, "trial": 0, "commit": commit,
              "tree": tree, "verdict": decide.BASELINE, "metric": program.metric,
              "direction": program.direction, "runs": batch.run_ids, "cost_usd": batch.cost_usd,
              "hypothesis": "baseline", "champion_before": None, "champion_after": 0,
              "min_effect": program.min_effect, "alpha": program.alpha, "args": program.args,
              "mean": mean, "diff": None, "ci_low": lo, "ci_high": hi, "n": len(values),
              "stages": [], "champion_runs": [], "impact": None, "noise_sd": noise,
              "detectable": detectable, "program_sha256": program.sha256,
              "duration_s": round(elapsed, 3), "overhead_s": round(max(0.0, elapsed - batch.run_s), 3)}
    champion = {"type": "program.champion", "program": program.name, "champion": 0, "trial": 0,
                "commit": commit, "tree": tree, "metric": program.metric, "runs": batch.run_ids,
                "mean": mean, "ci_low": lo, "ci_high": hi, "impact": None}
    ledger(root).append_many([record, champion], together=True)
    gittree.set_ref(root, gittree.TRIAL_REF.format(trial=0), commit)
    gittree.set_ref(root, gittree.CHAMPION_REF, commit)
    return TrialResult(record=record, champion_record=champion, warnings=warnings)
