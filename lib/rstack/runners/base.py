"""The run vocabulary and the whole Runner contract, shared by rstack.runs and every runner.

Standard library only (plus rstack.errors): remote entry points import this, and their containers
have nothing but the standard library, psutil and lib/. Dependencies point one way:
runs -> runners -> base. Nothing here judges a run; rstack.runs does that for every profile.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import RunError

if TYPE_CHECKING:  # typing only: plan.py needs ruamel, which a remote side does not have
    from ..plan import CompiledRun

__all__ = ["ARTIFACT_MISMATCH", "EXCLUDE_DIRS", "LOG_FILE", "STATUSES", "STATUS_BY_CATEGORY",
           "RawOutcome", "RunError", "RunSpec", "Runner", "default_host", "verify_manifest"]

LOG_FILE = "stdout.log"
# Every status a finished run can have (records.py's run.finished enum and `runs list --status`
# derive from this tuple).
STATUSES = ("ok", "failed", "timeout", "oom", "diverged", "killed", "lost", "check-failed")
# How a diagnosis category becomes a run status; everything else is `failed`.
STATUS_BY_CATEGORY = {
    "timeout": "timeout", "cuda-oom": "oom", "memory": "oom", "divergence": "diverged",
    "metrics-nonfinite": "diverged", "interrupted": "killed", "killed-by-signal": "killed",
    "host-lost": "lost", "preempted": "lost", "check-failed": "check-failed",
}
# Runner-level failure that no script output explains: the copy that came back does not match
# what the remote side wrote (its row in rstack.incidents has no retry policy).
ARTIFACT_MISMATCH = "artifact-mismatch"
# Never shipped to a remote side: state, outputs, environments and caches (large, local or both).
EXCLUDE_DIRS = {".git", ".rstack", "results", ".venv", "venv", "env", "__pycache__",
                "node_modules", ".pytest_cache", ".mypy_cache", ".ipynb_checkpoints", "analysis"}


@dataclass
class RunSpec:
    """One run as it will be executed and ledgered."""

    run_id: str
    arm: str
    seed: int
    args: list[str]
    command: list[str]
    output_dir: str  # project-relative: results/<run_id>
    profile: str
    gpu: str | None
    timeout_s: float | None
    cost_estimate_usd: float
    script: str
    attempt: int = 1
    retry_of: str | None = None
    name: str | None = None  # ad hoc runs
    tags: dict | None = None  # who asked for the run, e.g. {"program": NAME, "trial": N}

    @classmethod
    def from_compiled(cls, run: "CompiledRun", script: str) -> "RunSpec":
        return cls(run_id=run.run_id, arm=run.arm, seed=run.seed, args=list(run.args),
                   command=list(run.command), output_dir=run.output_dir, profile=run.profile,
                   gpu=run.gpu, timeout_s=run.timeout_s, cost_estimate_usd=run.cost_estimate_usd,
                   script=script)


@dataclass
class RawOutcome:
    """What a runner observed, before judgement: how the process ended and what it printed."""

    exit_code: int | None
    signal: int | None
    reason: str | None  # procwatch reasons, or "host-lost" | "preempted" | ARTIFACT_MISMATCH
    duration_s: float
    output_tail: list[str]
    cost_usd: float = 0.0
    peak_rss_mb: float | None = None
    message: str | None = None  # runner's own words (verification failures, remote death)
    remote_dir: str | None = None


def default_host() -> str:
    return socket.gethostname()


class Runner:
    """Executes runs of one profile and hands back RawOutcomes; never judges or ledgers a run
    (except `run.remote`, the address a later --resume re-attaches to).

    Subclasses set the class facts and implement `launch`; every other method has a default
    that is right for a runner without that capability, so rstack.runs never probes for one.
    """

    profile: str = ""
    # Where a run's outputs live until they are local and verified (guards.check_remote_submit
    # refuses a remote profile that cannot say).
    persistence: str | None = None
    # Whether the runner watches a run until it ends (a fire-and-forget submit is refused).
    monitoring: bool = False
    # Whether runs leave this machine (remote submit guards apply; the command must be portable).
    remote: bool = True
    # Whether `reattach` can follow a run a previous rstack process started (from run.remote).
    can_reattach: bool = False

    @classmethod
    def create(cls, root: Path, **options) -> "Runner":
        """The runner `rstack run` uses (options: jobs, memory_mb, gpu, keep_instance, dry_run)."""
        return cls(root, **options)

    @property
    def host(self) -> str:
        return default_host()

    def host_for(self, spec: RunSpec) -> str:
        """The host this run is recorded on in run.started."""
        return self.host

    @classmethod
    def default_jobs(cls, specs: list[RunSpec]) -> int:
        """How many runs go at once when --jobs is not given."""
        return 1

    def followers(self, jobs: int, specs: list[RunSpec]) -> int:
        """How many runs rstack follows at once: `jobs`, unless the runner throttles elsewhere
        (a SLURM array's %N) and must follow every task of a batch at once."""
        return jobs

    def dry_run_spec(self, specs: list[RunSpec]) -> dict | None:
        """What --dry-run shows about this runner (an app spec, a batch script), offline."""
        return None

    def prepare(self, specs: list[RunSpec]) -> None:
        """Once before the first launch: environments, instances, apps."""

    def launch(self, spec: RunSpec, *, on_line: Callable[[str], None] | None = None) -> RawOutcome:
        raise NotImplementedError

    def reattach(self, spec: RunSpec, remote: dict) -> RawOutcome:
        """--resume: follow a run that is already in flight, from its run.remote record."""
        raise RunError(f"the {self.profile} profile cannot re-attach to run {spec.run_id}")

    def cancel(self) -> None:
        """Ctrl-C: stop every run in flight (each then comes back as a RawOutcome)."""

    def accrued_usd(self) -> float:
        """Billed so far and not yet in any ledgered record (a rented machine's boot, sync and
        idle time); the cap counts it before each paid run starts. 0 when billing is per run."""
        return 0.0

    def close(self, results: list) -> None:
        """After the last run (results are rstack.runs.RunResult): release what was rented."""


def verify_manifest(root: Path, output_dir: str, manifest: list[dict]) -> list[str]:
    """Every manifest entry present locally with the same bytes and sha256, and nothing extra."""
    problems = []
    listed = set()
    for entry in manifest:
        rel = entry.get("path", "")
        listed.add(rel)
        local = Path(root) / rel
        if not rel.startswith(output_dir.rstrip("/") + "/") or not local.is_file():
            problems.append(f"{rel}: missing locally")
            continue
        data = local.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.get("sha256") or len(data) != entry.get("bytes"):
            problems.append(f"{rel}: sha256 {digest[:12]} != remote {str(entry.get('sha256'))[:12]}")
    base = Path(root) / output_dir
    for path in (p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel not in listed:
            problems.append(f"{rel}: not in the remote manifest")
    return problems
