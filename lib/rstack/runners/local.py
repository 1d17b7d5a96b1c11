"""The local profile: each run is a supervised process group on this machine (rstack.procwatch).

Parallel runs share the machine: one per core, or one per GPU pinned with CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Callable

import psutil

from .. import secrets
from ..procwatch import supervise
from .base import LOG_FILE, RawOutcome, Runner, RunSpec

RUN_ID_VAR = "RSTACK_RUN_ID"


def detect_gpus() -> list[str]:
    """GPU indices this process may use: CUDA_VISIBLE_DEVICES when set, else nvidia-smi's."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [item.strip() for item in env.split(",") if item.strip() and item.strip() != "-1"]
    from ..compute import probe_gpus

    return [str(device["index"]) for device in probe_gpus(timeout_s=10)["devices"]]


def default_jobs() -> int:
    gpus = detect_gpus()
    return len(gpus) if gpus else (os.cpu_count() or 1)


def default_memory_mb(jobs: int) -> float:
    """A run may use its share of 90% of physical memory before the watch kills it."""
    return 0.9 * psutil.virtual_memory().total / (1024 * 1024) / max(1, jobs)


class LocalRunner(Runner):
    profile = "local"
    persistence = "local results/ directory"
    monitoring = True
    remote = False

    @classmethod
    def default_jobs(cls, specs: list[RunSpec]) -> int:
        return default_jobs()

    def __init__(self, root: Path, *, jobs: int = 1, memory_mb: float | None = None,
                 gpus: list[str] | None = None, **_ignored):
        self.root = Path(root)
        self.memory_mb = memory_mb if memory_mb is not None else default_memory_mb(jobs)
        self.gpus: "queue.Queue[str]" = queue.Queue()
        for gpu in (detect_gpus() if gpus is None else gpus):
            self.gpus.put(gpu)
        self.has_gpus = not self.gpus.empty()
        self._active: set[str] = set()
        self._lock = threading.Lock()

    def launch(self, spec: RunSpec, *, on_line: Callable[[str], None] | None = None) -> RawOutcome:
        out = self.root / spec.output_dir
        out.mkdir(parents=True, exist_ok=True)
        env = secrets.script_env({"RSTACK_OUTPUT_DIR": str(out), RUN_ID_VAR: spec.run_id,
                                  "PYTHONUNBUFFERED": "1"})
        gpu = self.gpus.get() if self.has_gpus else None
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        with self._lock:
            self._active.add(spec.run_id)
        try:
            outcome = supervise(spec.command, cwd=self.root, env=env, log_path=out / LOG_FILE,
                                timeout_s=spec.timeout_s, memory_mb=self.memory_mb,
                                activity_paths=[out], on_line=on_line)
        finally:
            with self._lock:
                self._active.discard(spec.run_id)
            if gpu is not None:
                self.gpus.put(gpu)
        return RawOutcome(exit_code=outcome.exit_code, signal=outcome.signal, reason=outcome.reason,
                          duration_s=outcome.duration_s, output_tail=outcome.output_tail,
                          peak_rss_mb=round(outcome.peak_rss_mb, 1))

    def cancel(self) -> None:
        """Kill every process of every active run (found by RSTACK_RUN_ID, escapees included)."""
        with self._lock:
            active = set(self._active)
        if not active:
            return
        me = os.getpid()
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == me:
                continue
            try:
                if proc.environ().get(RUN_ID_VAR) in active:
                    proc.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
