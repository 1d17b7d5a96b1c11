"""The slurm profile's pure parts: time limits, gres, #SBATCH lines, the batch script, job states.

Standard library only and no I/O, so config validation, --dry-run and the tests use exactly what
a submission uses. The runner (rstack.runners.slurm) does the talking to the cluster.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

# Options rstack sets itself (or that have their own config key): slurm_extra may not repeat them.
OWNED_OPTIONS = ("array", "output", "error", "job-name", "parsable", "wrap", "chdir", "requeue",
                 "no-requeue", "time", "partition", "account", "qos", "gres", "mem", "open-mode")
_OPTION = re.compile(r"^--([a-z][a-z0-9-]*)(=[^\s;'\"\\`$]+)?$")

# Scheduler job states: which still run, and how a terminal one becomes a procwatch-style reason
# (rstack.incidents then names the category and its retry policy, as for every profile).
ACTIVE_STATES = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED",
                           "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING",
                           "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"})
REASON_BY_STATE = {
    "COMPLETED": None, "FAILED": None,         # the agent's exit.json says how the script ended
    "TIMEOUT": "timeout", "DEADLINE": "timeout",
    "OUT_OF_MEMORY": "memory",                 # -> the OOM ladder
    "PREEMPTED": "preempted",                  # -> a bounded same-args retry
    "NODE_FAIL": "host-lost", "BOOT_FAIL": "host-lost",  # -> a bounded same-args retry
    "CANCELLED": "interrupted",                # by the user (or rstack's scancel): killed, no retry
    "REVOKED": "host-lost",
}
# What slurmstepd prints into the job's output when memory enforcement (jobacct_gather's
# OverMemoryKill, or a cgroup OOM kill) ends a task that the state reports only as FAILED.
OOM_LINES = re.compile(r"Exceeded job memory limit|exceeded memory limit|oom[-_ ]kill|"
                       r"Out Of Memory|OUT_OF_MEMORY", re.IGNORECASE)


def parse_slurm_time(text: str) -> int | None:
    """sbatch --time in seconds: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS; '' = None."""
    text = (text or "").strip()
    if not text:
        return None
    bad = ValueError(f"slurm_time {text!r} is not a SLURM time (minutes, MM:SS, HH:MM:SS or "
                     "D-HH:MM:SS)")
    days = 0
    if "-" in text:
        day_text, _, text = text.partition("-")
        if not day_text.isdigit():
            raise bad
        days = int(day_text)
        parts = text.split(":")
        if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
            raise bad
        hours, minutes, seconds = (list(map(int, parts)) + [0, 0])[:3]
    else:
        parts = text.split(":")
        if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
            raise bad
        numbers = list(map(int, parts))
        hours, minutes, seconds = ([0, numbers[0], 0] if len(numbers) == 1 else
                                   [0, *numbers] if len(numbers) == 2 else numbers)
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise bad
    return total


def format_slurm_time(seconds: float) -> str:
    """Seconds as D-HH:MM:SS, rounded up to whole minutes (SLURM's granularity)."""
    minutes = max(1, -(-int(seconds) // 60))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:00"


def parse_gres_map(items: list[str]) -> dict[str, str]:
    """slurm_gres rows `GPU=GRES` (e.g. A100=gpu:a100:1) as {GPU: GRES}."""
    table = {}
    for item in items:
        name, sep, gres = item.partition("=")
        if not sep or not name.strip() or not re.fullmatch(r"[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*",
                                                           gres.strip()):
            raise ValueError(f"slurm_gres row {item!r} is not GPU=GRES (e.g. A100=gpu:a100:1)")
        table[name.strip()] = gres.strip()
    return table


def gres_gpu_count(gres: str | None) -> int:
    """GPUs a gres asks for: gpu:a100:2 -> 2, gpu:1 -> 1, gpu:a100 -> 1; None -> 0."""
    if not gres:
        return 0
    last = gres.rsplit(":", 1)[-1]
    return int(last) if last.isdigit() else 1


def parse_extra(text: str) -> list[str]:
    """slurm_extra (';'-separated long options) as `#SBATCH` option texts, validated."""
    options = []
    for part in (p.strip() for p in (text or "").split(";")):
        if not part:
            continue
        match = _OPTION.match(part)
        if not match:
            raise ValueError(f"slurm_extra: {part!r} is not a long sbatch option "
                             "(--name or --name=value, no spaces or quotes)")
        if match.group(1) in OWNED_OPTIONS:
            raise ValueError(f"slurm_extra: --{match.group(1)} is set by rstack or by its own "
                             "slurm_* key; remove it from slurm_extra")
        options.append(part)
    return options


@dataclass
class ArrayTask:
    """One array index: the run's directory and the agent command line that runs it there."""

    run_id: str
    run_dir: str  # absolute, on the cluster's shared filesystem
    argv: list[str]


@dataclass
class BatchOptions:
    job_name: str
    output: str  # absolute; %A = array job id, %a = index
    time: str
    throttle: int
    partition: str = ""
    account: str = ""
    qos: str = ""
    gres: str = ""
    mem_mb: int | None = None
    extra: tuple[str, ...] = ()

    def sbatch_lines(self, size: int) -> list[str]:
        lines = [f"--job-name={self.job_name}", f"--array=0-{size - 1}%{max(1, self.throttle)}",
                 f"--output={self.output}", f"--time={self.time}", "--no-requeue",
                 "--ntasks=1"]
        for flag, value in (("partition", self.partition), ("account", self.account),
                            ("qos", self.qos), ("gres", self.gres)):
            if value:
                lines.append(f"--{flag}={value}")
        if self.mem_mb:
            lines.append(f"--mem={int(self.mem_mb)}M")
        return lines + list(self.extra)


def batch_script(tasks: list[ArrayTask], options: BatchOptions) -> str:
    """The exact job-array script sbatch gets: index i runs tasks[i]'s agent in its directory.

    The lock directory makes a task that SLURM starts twice (a requeue despite --no-requeue)
    refuse the second start, like the ssh launcher's lock.
    """
    head = ["#!/bin/bash"] + [f"#SBATCH {line}" for line in options.sbatch_lines(len(tasks))]
    body = ["# Written by rstack (slurm profile): one array index per run.", "set -u",
            'case "$SLURM_ARRAY_TASK_ID" in']
    for index, task in enumerate(tasks):
        body += [f"  {index})  # {task.run_id}",
                 f"    cd {shlex.quote(task.run_dir)} || exit 97",
                 '    mkdir .rstack-run/lock 2>/dev/null || { echo "rstack: this run already '
                 'started once; not starting it again" >&2; exit 98; }',
                 '    echo "$SLURM_JOB_ID" > .rstack-run/slurm_job_id',
                 "    exec " + " ".join(shlex.quote(a) for a in task.argv) + " ;;"]
    body += ['  *) echo "rstack: no run for array index $SLURM_ARRAY_TASK_ID" >&2; exit 99 ;;',
             "esac", ""]
    return "\n".join(head + body)


def parse_scontrol(text: str) -> dict[str, str]:
    """`scontrol show job -o` (one line of Key=Value) as a dict; values may not contain spaces."""
    fields = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            fields.setdefault(key, value)
    return fields


def base_state(text: str) -> str:
    """`CANCELLED by 0` / `CANCELLED+` -> CANCELLED."""
    return (text or "").strip().split(" ")[0].rstrip("+").upper()


def parse_exit_code(text: str | None) -> tuple[int | None, int | None]:
    """SLURM's `EXIT:SIGNAL` (e.g. 0:9, 3:0) as (exit_code, signal), zeros of a signal dropped."""
    code, _, sig = (text or "").partition(":")
    exit_code = int(code) if code.isdigit() else None
    signal = int(sig) if sig.isdigit() and int(sig) else None
    return (None if signal else exit_code), signal


def parse_elapsed(text: str | None) -> float:
    """[D-]HH:MM:SS or MM:SS (RunTime, Elapsed) in seconds; unreadable -> 0."""
    if not text:
        return 0.0
    days = 0
    if "-" in text:
        day_text, _, text = text.partition("-")
        days = int(day_text) if day_text.isdigit() else 0
    parts = [int(p) if p.isdigit() else 0 for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts[-3:]
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
