"""The slurm profile: arms x seeds as one SLURM job array, each task running the ssh profile's agent.

Two ways in: rstack runs on a login node (sbatch on PATH, commands run with bash), or rstack runs
here and reaches `slurm_host` over ssh (the ssh runner's plumbing: bootstrap, code sync, download
and manifest check). Run directories live under `slurm_remote_dir` on the cluster's shared
filesystem. The job id and array indices are ledgered (slurm.job, run.remote) before the first
poll, so `rstack run --resume` re-attaches instead of submitting again. The scheduler's account of
how a task ended (TIMEOUT, OUT_OF_MEMORY, PREEMPTED, NODE_FAIL, CANCELLED) outranks the agent's,
which only sees a SIGTERM. It never judges a run: rstack.runs does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import config, guards
from ..ledger import Ledger
from .base import ARTIFACT_MISMATCH, LOG_FILE, RawOutcome, Runner, RunError, RunSpec
from .slurm_script import (ACTIVE_STATES, OOM_LINES, REASON_BY_STATE, ArrayTask, BatchOptions,
                           base_state, batch_script, format_slurm_time, gres_gpu_count,
                           parse_elapsed, parse_exit_code, parse_extra, parse_gres_map,
                           parse_scontrol, parse_slurm_time)
from .ssh import STATE, SSH_UNREACHABLE, SshRunner, SshTarget, _tail, env_key, q

# Polls that may still miss exit.json after the scheduler says the task ended (a shared
# filesystem's attribute cache can lag the compute node's write by a few seconds).
EXIT_FILE_GRACE_POLLS = 4


class LoginShell(SshRunner):
    """The ssh runner's plumbing with `bash -c` in place of ssh: rstack is on the login node."""

    def ssh(self, target: SshTarget, command: str, *, input: bytes | None = None,
            timeout: float = 120, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(["bash", "-c", command], input=input, stdout=stdout,
                                  stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, SSH_UNREACHABLE, b"", b"timed out")

    def _sync_method(self, remote_rsync: bool) -> str:
        return "tar"


@dataclass
class Task:
    """Where one run lives on the cluster: its array job, index and directories."""

    run_id: str
    job_id: str
    index: int
    run_dir: str
    job_output: str  # the task's own stdout/stderr file (slurmstepd writes its kills there)

    @property
    def ref(self) -> str:
        return f"{self.job_id}_{self.index}"


class SlurmRunner(Runner):
    profile = "slurm"
    persistence = "run directory on the cluster's shared filesystem + sha256 manifest"
    monitoring = True
    can_reattach = True

    def __init__(self, root: Path, *, jobs: int | None = None, memory_mb: float | None = None,
                 gpu: str | None = None, dry_run: bool = False,
                 echo: Callable[[str], None] | None = None, poll_s: float | None = None,
                 gather_s: float = 5.0, **_ignored):
        self.root = Path(root)
        self.throttle = jobs
        self.memory_mb = memory_mb
        self.gpu = gpu
        self.echo = echo or (lambda text: None)
        self.login_host = config.get("slurm_host").strip()
        self.remote_base = config.get("slurm_remote_dir").rstrip("/") or "~/.rstack-slurm"
        if not self.remote_base.startswith(("/", "~/")):
            self.remote_base = f"~/{self.remote_base}"
        self.python = config.get("slurm_python")
        self.poll_s = poll_s if poll_s is not None else float(config.get("slurm_poll_s"))
        self.lost_after_s = float(config.get("ssh_lost_after_s"))
        self.grace_s = float(config.get("ssh_timeout_grace_s"))
        self.gres_map = parse_gres_map(config.get("slurm_gres"))
        self.extra = tuple(parse_extra(config.get("slurm_extra")))
        self.time_limit_s = parse_slurm_time(config.get("slurm_time"))
        self.gather_s = gather_s
        self.ledger = Ledger(self.root, "experiments")
        if self.login_host:
            self.target = SshTarget.parse(self.login_host)
            self.login: SshRunner = SshRunner(self.root, [self.target], remote_base=self.remote_base,
                                              python=self.python)
        else:
            self.target = SshTarget(spec="localhost", dest="localhost", port=None)
            self.login = LoginShell(self.root, [self.target], remote_base=self.remote_base,
                                    python=self.python)
        self.base: str | None = None  # the remote base as an absolute path (sbatch needs one)
        self._cond = threading.Condition()
        self._expected: set[str] = set()
        self._waiting: list[RunSpec] = []
        self._submitting = False
        self._tasks: dict[str, Task] = {}
        self._errors: dict[str, str] = {}
        self._jobs: set[str] = set()
        self._cancelled = threading.Event()

    # -- facts

    @property
    def host(self) -> str:
        return f"slurm:{self.login_host or 'local'}"

    @classmethod
    def default_jobs(cls, specs: list[RunSpec]) -> int:
        """The whole array at once (the scheduler queues what does not fit)."""
        return max(1, len(specs))

    def followers(self, jobs: int, specs: list[RunSpec]) -> int:
        return max(1, len(specs))

    # -- pieces shared by submit and --dry-run

    def gres_for(self, gpu: str | None) -> str:
        if not gpu:
            return ""
        if gpu not in self.gres_map:
            raise RunError(f"the slurm profile has no gres for GPU {gpu!r} (slurm_gres: "
                           f"{', '.join(f'{k}={v}' for k, v in self.gres_map.items()) or 'empty'})",
                           hint=f"rstack config set slurm_gres {gpu}=gpu:{gpu.lower()}:1  "
                                "(the cluster's name for it: sinfo -o %G)")
        return self.gres_map[gpu]

    def task_limit_s(self, specs: list[RunSpec]) -> float:
        if self.time_limit_s:
            return float(self.time_limit_s)
        longest = max((s.timeout_s or 0 for s in specs), default=0)
        return float(longest + self.grace_s) if longest else 3600.0

    def requested_gpu_hours(self, specs: list[RunSpec]) -> float:
        limit_h = self.task_limit_s(specs) / 3600.0
        return sum(limit_h * gres_gpu_count(self.gres_for(s.gpu)) for s in specs)

    def spent_gpu_hours(self) -> float:
        return sum(float(r.get("gpu_hours") or 0.0)
                   for r in self.ledger.read(types=["slurm.task"]).records)

    def batch_options(self, specs: list[RunSpec], job_dir: str) -> BatchOptions:
        name = "rstack-" + (specs[0].arm if len({s.arm for s in specs}) == 1 else "runs")
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", name)
        return BatchOptions(job_name=name[:60], output=f"{job_dir}/slurm-%A_%a.out",
                            time=format_slurm_time(self.task_limit_s(specs)),
                            throttle=self.throttle or len(specs),
                            partition=config.get("slurm_partition"),
                            account=config.get("slurm_account"), qos=config.get("slurm_qos"),
                            gres=self.gres_for(specs[0].gpu),
                            mem_mb=int(self.memory_mb) if self.memory_mb else None,
                            extra=self.extra)

    def agent_argv(self, spec: RunSpec, python: str) -> list[str]:
        return [python, f"{STATE}/agent.py", "--python", python, "--output-dir", spec.output_dir,
                "--timeout", str(spec.timeout_s or 0), "--", *spec.command]

    def script_for(self, specs: list[RunSpec], base: str, python: str, job_dir: str) -> str:
        tasks = [ArrayTask(s.run_id, f"{base}/runs/{s.run_id}", self.agent_argv(s, python))
                 for s in specs]
        return batch_script(tasks, self.batch_options(specs, job_dir))

    def dry_run_spec(self, specs: list[RunSpec]) -> dict | None:
        if not specs:
            return None
        # Offline: on the login node the base is this machine's; over ssh `~` stays the login
        # node's home until submit resolves it.
        base = self.remote_base if self.login_host else os.path.expanduser(self.remote_base)
        job_dir = f"{base}/jobs/{specs[0].run_id}"
        paths_note = ("`~` is the login node's home; the submitted script names it absolutely"
                      if self.login_host else None)
        return {"login": self.login_host or "this machine (sbatch on PATH)", "paths": paths_note,
                "sbatch": ["sbatch", "--parsable", f"{job_dir}/job.sh"],
                "gpu_hours_requested": round(self.requested_gpu_hours(specs), 4),
                "max_gpu_hours": float(config.get("max_gpu_hours")),
                "script": self.script_for(
                    specs, base, f"{base}/envs/{env_key(self.root, self.python)}/venv/bin/python",
                    job_dir)}

    # -- the cluster boundary

    def shell(self, command: str, *, input: bytes | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
        return self.login.ssh(self.target, command, input=input, timeout=timeout)

    def _checked(self, command: str, what: str, **kw) -> str:
        result = self.shell(command, **kw)
        if result.returncode != 0:
            err = (result.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-3:]
            where = f"on {self.login_host}" if self.login_host else "here"
            raise RunError(f"slurm: {what} failed {where} (exit {result.returncode}): "
                           f"{' | '.join(err) or 'no message'}",
                           hint="check `sinfo` and `sbatch --version` on the login node"
                                + (f" (ssh {self.login_host})" if self.login_host else ""))
        return (result.stdout or b"").decode("utf-8", "replace")

    # -- the Runner contract

    def prepare(self, specs: list[RunSpec]) -> None:
        if not specs:
            return
        out = self._checked(f"command -v sbatch >/dev/null || {{ echo 'sbatch is not on PATH' >&2; "
                            f"exit 3; }}; mkdir -p {q(self.remote_base)} && cd {q(self.remote_base)} "
                            f"&& pwd", "finding sbatch and the run directory")
        self.base = out.strip().splitlines()[-1]
        if not self.base.startswith("/") or any(ch.isspace() for ch in self.base):
            raise RunError(f"slurm_remote_dir resolves to {self.base!r} on the cluster; #SBATCH "
                           "lines need an absolute path without spaces",
                           hint="rstack config set slurm_remote_dir /scratch/$USER/rstack")
        self.login.remote_base = self.base  # the batch script names absolute paths only
        guards.check_gpu_hours(self.spent_gpu_hours(), self.requested_gpu_hours(specs),
                               float(config.get("max_gpu_hours")))
        self.login.prepare(specs)  # the venv (and requirements) on the shared filesystem
        with self._cond:
            self._expected |= {s.run_id for s in specs}

    def launch(self, spec: RunSpec, *, on_line=None) -> RawOutcome:
        task = self._submitted(spec)
        return self._follow(spec, task, time.time())

    def reattach(self, spec: RunSpec, remote: dict) -> RawOutcome:
        if not remote.get("job_id") or remote.get("array_index") is None:
            raise RunError(f"run {spec.run_id}: its run.remote record has no SLURM job id")
        task = Task(spec.run_id, str(remote["job_id"]), int(remote["array_index"]),
                    remote["remote_dir"], remote.get("job_output") or "")
        with self._cond:
            self._jobs.add(task.job_id)
        return self._follow(spec, task, time.time())

    def cancel(self) -> None:
        """Ctrl-C: scancel every job array this runner submitted (tasks end CANCELLED)."""
        self._cancelled.set()
        with self._cond:
            jobs = sorted(self._jobs)
            self._cond.notify_all()
        if jobs:
            self.shell("scancel " + " ".join(shlex.quote(j) for j in jobs), timeout=60)

    # -- submission: the runs that arrive together go out as one array

    def _submitted(self, spec: RunSpec) -> Task:
        with self._cond:
            self._waiting.append(spec)
            deadline = time.monotonic() + self.gather_s
            batch: list[RunSpec] = []
            while spec.run_id not in self._tasks and spec.run_id not in self._errors:
                if self._cancelled.is_set():
                    raise RunError("interrupted before the job array was submitted")
                arrived = {s.run_id for s in self._waiting}
                pending = self._expected - set(self._tasks) - set(self._errors)
                if (not self._submitting and spec in self._waiting
                        and (pending <= arrived or spec.run_id not in self._expected
                             or time.monotonic() >= deadline)):
                    batch, self._waiting = list(self._waiting), []
                    self._submitting = True
                    break
                self._cond.wait(timeout=0.2)
        if batch:
            try:
                tasks = self._submit(batch)
            except Exception as exc:
                with self._cond:
                    for item in batch:
                        self._errors[item.run_id] = str(exc)
                    self._submitting = False
                    self._cond.notify_all()
                raise
            with self._cond:
                self._tasks.update(tasks)
                self._submitting = False
                self._cond.notify_all()
        with self._cond:
            if spec.run_id in self._errors:
                raise RunError(f"the job array with this run was not submitted: "
                               f"{self._errors[spec.run_id]}")
            return self._tasks[spec.run_id]

    def _submit(self, specs: list[RunSpec]) -> dict[str, Task]:
        if self.base is None:
            self.prepare(specs)
        if any(s.run_id not in self._expected for s in specs):  # a retry: its own GPU-hours check
            guards.check_gpu_hours(self.spent_gpu_hours(), self.requested_gpu_hours(specs),
                                   float(config.get("max_gpu_hours")))
        python = self.login._envs.get(self.target.spec) or self.python
        for spec in specs:
            self.login.upload(self.target, f"{self.base}/runs/{spec.run_id}")
        job_dir = f"{self.base}/jobs/{specs[0].run_id}"
        script = self.script_for(specs, self.base, python, job_dir)
        out = self._checked(f"mkdir -p {q(job_dir)} && cat > {q(job_dir)}/job.sh && "
                            f"cd {q(job_dir)} && sbatch --parsable job.sh", "sbatch",
                            input=script.encode())
        job_id = out.strip().splitlines()[-1].split(";")[0].strip()
        if not job_id.isdigit():
            raise RunError(f"slurm: sbatch printed {out.strip()[:200]!r}, not a job id")
        with self._cond:
            self._jobs.add(job_id)
        # Ledgered before the first poll: a restarted rstack re-attaches to these tasks.
        self.ledger.append({"type": "slurm.job", "job_id": job_id, "host": self.host,
                            "run_ids": [s.run_id for s in specs],
                            "array": f"0-{len(specs) - 1}%{self.throttle or len(specs)}",
                            "script_sha256": hashlib.sha256(script.encode()).hexdigest(),
                            "gpu_hours_requested": round(self.requested_gpu_hours(specs), 6),
                            "job_dir": job_dir})
        tasks = {}
        for index, spec in enumerate(specs):
            task = Task(spec.run_id, job_id, index, f"{self.base}/runs/{spec.run_id}",
                        f"{job_dir}/slurm-{job_id}_{index}.out")
            self.ledger.append({"type": "run.remote", "run_id": spec.run_id, "host": self.host,
                                "remote_dir": task.run_dir, "job_id": job_id,
                                "array_index": index, "job_output": task.job_output})
            tasks[spec.run_id] = task
        self.echo(f"slurm: submitted job array {job_id} ({len(specs)} task(s))")
        return tasks

    # -- following one task

    def poll(self, task: Task) -> tuple[str, dict | None, dict]:
        """One look: ("ok" | "unreachable", exit.json or None, scheduler fields or {})."""
        ref = shlex.quote(task.ref)
        command = (f"raw=; if cd {q(task.run_dir)} 2>/dev/null; then "
                   f"[ -f {STATE}/exit.json ] && echo \"@@EXIT $(cat {STATE}/exit.json)\"; "
                   f"raw=$(cat {STATE}/slurm_job_id 2>/dev/null); else echo '@@NODIR'; fi; "
                   f"if out=$(scontrol show job -o {ref} 2>&1); then echo \"@@SCONTROL $out\"; "
                   f"else echo \"@@SCONTROL_ERR $(echo \"$out\" | head -1)\"; "
                   f"acct=$(sacct -X -n -P -j {ref} -o State,ExitCode,Elapsed 2>/dev/null | head -1); "
                   f"if [ -z \"$acct\" ] && [ -n \"$raw\" ]; then "
                   f"acct=$(sacct -c -n -P -j \"$raw\" -o State,ExitCode,Elapsed 2>/dev/null | head -1); fi; "
                   f"echo \"@@SACCT $acct\"; fi")
        result = self.shell(command, timeout=60)
        if result.returncode == SSH_UNREACHABLE:
            return "unreachable", None, {}
        exit_info, fields, contact = None, {}, "ok"
        for line in (result.stdout or b"").decode("utf-8", "replace").splitlines():
            tag, _, rest = line.partition(" ")
            if tag == "@@EXIT":
                try:
                    exit_info = json.loads(rest)
                except ValueError:
                    exit_info = None  # caught mid-write: the next poll reads it
            elif tag == "@@SCONTROL":
                parsed = parse_scontrol(rest)
                fields = {"state": base_state(parsed.get("JobState", "")),
                          "exit_code": parsed.get("ExitCode"), "elapsed": parsed.get("RunTime"),
                          "reason": parsed.get("Reason")}
            elif tag == "@@SCONTROL_ERR":
                if "Invalid job id" not in rest:
                    contact = "unreachable"  # the controller is down or restarting
            elif tag == "@@SACCT" and rest.strip():
                state, _, tail = rest.strip().partition("|")
                code, _, elapsed = tail.partition("|")
                fields = {"state": base_state(state), "exit_code": code, "elapsed": elapsed}
                contact = "ok"
        return contact, exit_info, fields

    def _follow(self, spec: RunSpec, task: Task, started_at: float) -> RawOutcome:
        last_contact = time.monotonic()
        missing_exit = 0
        while True:
            contact, exit_info, fields = self.poll(task)
            now = time.monotonic()
            state = fields.get("state")
            if contact == "unreachable" and not exit_info:
                if now - last_contact > self.lost_after_s:
                    return RawOutcome(exit_code=None, signal=None, reason="host-lost",
                                      duration_s=time.time() - started_at, output_tail=[],
                                      remote_dir=task.run_dir,
                                      message=f"no answer from the SLURM controller "
                                              f"({self.host}) for {self.lost_after_s:g}s")
            else:
                last_contact = now
                if state and state not in ACTIVE_STATES:
                    if exit_info or missing_exit >= EXIT_FILE_GRACE_POLLS:
                        return self._ended(spec, task, state, fields, exit_info, started_at)
                    missing_exit += 1
                elif not state and contact == "ok":  # the scheduler forgot it, no accounting
                    if exit_info or missing_exit >= EXIT_FILE_GRACE_POLLS:
                        return self._ended(spec, task, "", fields, exit_info, started_at)
                    missing_exit += 1
            time.sleep(self.poll_s if not missing_exit else min(self.poll_s, 2.0))

    def _ended(self, spec: RunSpec, task: Task, state: str, fields: dict,
               exit_info: dict | None, started_at: float) -> RawOutcome:
        job_tail = [line for line in self._job_output_tail(task) if line.strip()]
        reason = REASON_BY_STATE.get(state)
        exit_code, signal = parse_exit_code(fields.get("exit_code"))
        if exit_info:
            exit_code, signal = exit_info.get("exit_code"), exit_info.get("signal")
            if reason is None:
                reason = exit_info.get("reason")
        if reason is None and any(OOM_LINES.search(line) for line in job_tail):
            reason = "memory"  # memory enforcement killed the step; the state says only FAILED
        if reason is None and not state and not exit_info:
            # The scheduler has no record and the agent no exit status: a controller that lost
            # its state (a crash before it saved) kills the job as an orphan. Infrastructure,
            # so a bounded same-args retry, like a lost host.
            reason = "host-lost"
        elapsed = parse_elapsed(fields.get("elapsed")) or (time.time() - started_at)
        gpus = gres_gpu_count(self.gres_for(spec.gpu))
        self.ledger.append({"type": "slurm.task", "job_id": task.job_id, "array_index": task.index,
                            "run_id": spec.run_id, "state": state or "UNKNOWN",
                            "elapsed_s": round(elapsed, 3), "gpus": gpus,
                            "gpu_hours": round(elapsed / 3600.0 * gpus, 6),
                            "exit_code": fields.get("exit_code"), "reason": fields.get("reason")})
        problems = self.login.download(self.target, spec, task.run_dir,
                                       expect_manifest=exit_info is not None)
        tail = _tail(self.root / spec.output_dir / LOG_FILE) + job_tail[-20:]
        duration = float((exit_info or {}).get("duration_s") or elapsed)
        what = f"SLURM job {task.ref} ended {state or 'with no scheduler record'}"
        if reason is not None:
            return RawOutcome(exit_code=None if reason else exit_code, signal=signal, reason=reason,
                              duration_s=duration, output_tail=tail, remote_dir=task.run_dir,
                              message=what)
        if not exit_info:
            return RawOutcome(exit_code=exit_code, signal=signal, reason=None, duration_s=duration,
                              output_tail=tail, remote_dir=task.run_dir,
                              message=f"{what} and its agent wrote no exit status (killed, or its "
                                      "node died)")
        if problems:
            return RawOutcome(exit_code=exit_code, signal=signal, reason=ARTIFACT_MISMATCH,
                              duration_s=duration, output_tail=tail, remote_dir=task.run_dir,
                              message="artifact verification failed: " + "; ".join(problems[:5]))
        self.login.verified.add(spec.run_id)
        self.shell(f"rm -rf {q(task.run_dir)}", timeout=120)
        return RawOutcome(exit_code=exit_code, signal=signal, reason=None, duration_s=duration,
                          output_tail=tail)

    def _job_output_tail(self, task: Task, lines: int = 40) -> list[str]:
        if not task.job_output:
            return []
        result = self.shell(f"tail -n {lines} {q(task.job_output)} 2>/dev/null; true", timeout=60)
        return (result.stdout or b"").decode("utf-8", "replace").splitlines()
