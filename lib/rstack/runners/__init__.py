"""Runners execute one run on one kind of machine and hand back a RawOutcome with its outputs local.

They never judge a run or write run.started/run.finished: rstack.runs does that for every profile.
`RUNNERS` is the one list of profiles: the CLI's --profile choices, config's compute_preferred,
the plan's execution.profile and the run.started record's enum all derive from it. Adding a
profile is one module with a `Runner` subclass plus one row here. This module imports nothing
heavy (config and records read it at import).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class RunnerEntry:
    profile: str
    module: str  # under rstack.runners; imported only when the profile is used (modal is heavy)
    cls: str
    summary: str


RUNNERS: dict[str, RunnerEntry] = {entry.profile: entry for entry in (
    RunnerEntry("local", "local", "LocalRunner", "supervised processes on this machine"),
    RunnerEntry("ssh", "ssh", "SshRunner", "any host ssh reaches (ssh_hosts), detached and monitored"),
    RunnerEntry("vastai", "vastai", "VastaiRunner", "a rented Vast.ai GPU box, then the ssh runner"),
    RunnerEntry("modal", "modal_app", "ModalRunner", "a Modal container per run"),
    RunnerEntry("slurm", "slurm", "SlurmRunner",
                "a SLURM job array (sbatch here, or on slurm_host over ssh)"),
)}
PROFILES: tuple[str, ...] = tuple(RUNNERS)


def runner_class(profile: str):
    """The Runner subclass of a profile (its module imported now)."""
    if profile not in RUNNERS:
        raise ValueError(f"unknown profile {profile!r}")
    entry = RUNNERS[profile]
    module = importlib.import_module(f"{__name__}.{entry.module}")
    return getattr(module, entry.cls)


def make_runner(profile: str, root, **options):
    """The runner for a profile; each class takes (root, **options) and ignores what it lacks."""
    return runner_class(profile).create(root, **options)
