"""The modal profile: a Modal app that runs the same supervised runner in a container per run.

Image: Debian slim with this Python version, the project's requirements.txt, psutil, the rstack
package and the project code. Function: GPU from the plan, the run's timeout, Modal retries off
(rstack owns retries), a Volume mounted at /results for outputs. Arms x seeds fan out with
`.map()`; container logs stream to the terminal; each result is fetched from the Volume and checked against the manifest the container
wrote. Cost = the per-GPU hourly price (rstack.costs, overridable in config) x container wall time.
`dry_run_spec` is the exact app spec, built without credentials or network.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from .. import outbound
from ..hashing import sha256_file
from .base import (ARTIFACT_MISMATCH, EXCLUDE_DIRS, LOG_FILE, RawOutcome, Runner, RunError, RunSpec,
                   verify_manifest)

APP_NAME = "rstack-runs"
VOLUME_NAME = "rstack-results"
PROJECT_MOUNT = "/root/project"
RESULTS_MOUNT = "/results"
FUNCTION_NAME = "run_one"
STATE = ".rstack-run"
# Modal takes glob patterns, so it gets the credential deny list as globs (rstack.outbound).
IGNORE = (sorted(f"**/{name}" for name in EXCLUDE_DIRS) + sorted(EXCLUDE_DIRS)
          + sorted(f"**/{name}" for name in (*outbound.DENY_FILES, *outbound.DENY_DIRS))
          + sorted((*outbound.DENY_FILES, *outbound.DENY_DIRS)))


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def app_spec(root: Path, *, gpu: str | None, timeout_s: float | None) -> dict:
    """Everything the app is built from, as data (what --dry-run prints)."""
    req = Path(root) / "requirements.txt"
    return {
        "app": APP_NAME,
        "image": {"base": "debian_slim", "python_version": python_version(),
                  "pip_install_from_requirements": "requirements.txt" if req.is_file() else None,
                  "pip_install": ["psutil"],
                  "add_local_python_source": ["rstack"],
                  "add_local_dir": {"local": ".", "remote": PROJECT_MOUNT, "ignore": IGNORE}},
        "function": {"name": FUNCTION_NAME, "gpu": gpu, "timeout": int(timeout_s or 3600),
                     "retries": 0, "volumes": {RESULTS_MOUNT: VOLUME_NAME}},
    }


def build_app(root: Path, *, gpu: str | None, timeout_s: float | None):
    """(app, function, volume) built from app_spec; offline (Modal resolves them at app.run())."""
    import modal

    spec = app_spec(root, gpu=gpu, timeout_s=timeout_s)
    image = modal.Image.debian_slim(python_version=spec["image"]["python_version"])
    if spec["image"]["pip_install_from_requirements"]:
        image = image.pip_install_from_requirements(str(Path(root) / "requirements.txt"))
    image = image.pip_install(*spec["image"]["pip_install"])
    image = image.add_local_python_source("rstack")
    image = image.add_local_dir(str(root), PROJECT_MOUNT, ignore=IGNORE)
    volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)
    app = modal.App(APP_NAME)
    fn = app.function(image=image, gpu=gpu, timeout=spec["function"]["timeout"], retries=0,
                      volumes={RESULTS_MOUNT: volume}, serialized=True,
                      name=FUNCTION_NAME)(run_one)
    return app, fn, volume


def payload_for(spec: RunSpec) -> dict:
    """One call's input: what to run; no secrets, no local paths."""
    return {"run_id": spec.run_id, "command": list(spec.command), "output_dir": spec.output_dir,
            "timeout_s": spec.timeout_s, "seed": spec.seed}


def run_one(payload: dict) -> dict:
    """The function body (in the container, or here through `.local()`): run, watch, manifest.

    Outputs go to <results_dir>/<output_dir>; the manifest lists them relative to results_dir.
    """
    from rstack.procwatch import supervise

    project = Path(payload.get("project_dir") or PROJECT_MOUNT)
    results = Path(payload.get("results_dir") or RESULTS_MOUNT)
    out = results / payload["output_dir"]
    out.mkdir(parents=True, exist_ok=True)
    command = list(payload["command"])
    if command and os.path.basename(command[0]).startswith("python"):
        command[0] = sys.executable
    if "--output-dir" in command:  # the ledgered command is project-relative; write to the volume
        command[command.index("--output-dir") + 1] = str(out)
    env = dict(os.environ, RSTACK_OUTPUT_DIR=str(out), PYTHONUNBUFFERED="1")
    prefix = f"[{payload['run_id']}] "
    # Printed lines reach the local terminal live: Modal streams container output to app.run().
    outcome = supervise(command, cwd=project, env=env, log_path=out / LOG_FILE,
                        timeout_s=payload.get("timeout_s"),
                        on_line=None if payload.get("quiet") else
                        (lambda line: print(prefix + line, flush=True)))
    manifest = [{"path": p.relative_to(results).as_posix(), "bytes": p.stat().st_size,
                 "sha256": sha256_file(p)} for p in sorted(out.rglob("*")) if p.is_file()]
    state = results / STATE / payload["run_id"]
    state.mkdir(parents=True, exist_ok=True)
    (state / "manifest.json").write_text(json.dumps(manifest))
    if payload.get("commit_volume", True) and os.environ.get("MODAL_TASK_ID"):
        import modal  # in the container: make the outputs visible to readers now

        modal.Volume.from_name(VOLUME_NAME).commit()
    return {"run_id": payload["run_id"], "exit_code": outcome.exit_code, "signal": outcome.signal,
            "reason": outcome.reason, "duration_s": outcome.duration_s,
            "peak_rss_mb": outcome.peak_rss_mb, "output_tail": outcome.output_tail[-200:],
            "manifest": manifest}


def modal_credentials_present() -> bool:
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return True
    config_file = Path(os.environ.get("MODAL_CONFIG_PATH") or Path.home() / ".modal.toml")
    return config_file.is_file()


def fetch_from_volume(volume, root: Path, manifest: list[dict]) -> None:
    """Copy every manifest file from the Volume into the project (same relative paths)."""
    for entry in manifest:
        dest = Path(root) / entry["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as handle:
            for chunk in volume.read_file(entry["path"]):
                handle.write(chunk)


def outcome_from_result(root: Path, spec: RunSpec, result: dict, *, usd_per_hour: float,
                        wall_s: float) -> RawOutcome:
    """Judge-ready outcome: verify the fetched files against the container's manifest."""
    problems = verify_manifest(root, spec.output_dir, result.get("manifest") or [])
    cost = usd_per_hour * wall_s / 3600.0
    base = dict(exit_code=result.get("exit_code"), signal=result.get("signal"),
                duration_s=float(result.get("duration_s") or wall_s),
                output_tail=list(result.get("output_tail") or []), cost_usd=cost,
                peak_rss_mb=result.get("peak_rss_mb"))
    if problems:
        return RawOutcome(reason=ARTIFACT_MISMATCH, remote_dir=f"modal volume {VOLUME_NAME}",
                          message="artifact verification failed: " + "; ".join(problems[:5]), **base)
    return RawOutcome(reason=result.get("reason"), **base)


class ModalRunner(Runner):
    profile = "modal"
    persistence = f"Modal Volume {VOLUME_NAME} at {RESULTS_MOUNT} + sha256 manifest"
    monitoring = True

    @classmethod
    def default_jobs(cls, specs: list[RunSpec]) -> int:
        """Every call gets its own container."""
        return max(1, len(specs))

    def __init__(self, root: Path, *, gpu: str | None = None, dry_run: bool = False,
                 echo: Callable[[str], None] | None = None, **_ignored):
        self.root = Path(root)
        self.gpu = gpu
        self.dry_run = dry_run
        self.echo = echo or (lambda text: print(text, file=sys.stderr))
        self._lock = threading.Lock()
        self._results: dict[str, dict] = {}
        self._events: dict[str, threading.Event] = {}
        self._mapped: set[str] = set()
        self._map_thread: threading.Thread | None = None
        self._pending: list[RunSpec] = []
        self._app = self._fn = self._volume = self._ctx = self._output = None
        self._started_at = time.time()

    @property
    def host(self) -> str:
        return f"modal:{self.gpu or 'cpu'}"

    def dry_run_spec(self, specs: list[RunSpec]) -> dict:
        timeout = max((s.timeout_s or 0 for s in specs), default=0) or None
        spec = app_spec(self.root, gpu=self.gpu, timeout_s=timeout)
        spec["calls"] = {"method": "map", "inputs": [payload_for(s) for s in specs]}
        return spec

    def prepare(self, specs: list[RunSpec]) -> None:
        from ..costs import usd_per_hour

        if not modal_credentials_present():
            raise RunError("Modal is not authenticated (no MODAL_TOKEN_ID/MODAL_TOKEN_SECRET and "
                           "no ~/.modal.toml)", hint="modal token new  (or use --dry-run to see the app)")
        timeout = max((s.timeout_s or 0 for s in specs), default=0) or None
        self.usd_per_hour = usd_per_hour("modal", self.gpu)
        import modal

        self._app, self._fn, self._volume = build_app(self.root, gpu=self.gpu, timeout_s=timeout)
        self._output = modal.enable_output()  # stream the containers' logs here
        self._output.__enter__()
        self._ctx = self._app.run()
        self._ctx.__enter__()
        self._pending = list(specs)
        for spec in specs:
            self._events[spec.run_id] = threading.Event()

    def _start_map(self) -> None:
        specs = self._pending
        self._mapped = {s.run_id for s in specs}

        def fan_out():
            try:
                for result in self._fn.map([payload_for(s) for s in specs],
                                           return_exceptions=True, order_outputs=False):
                    if isinstance(result, dict) and "run_id" in result:
                        self._deliver(result["run_id"], result)
                    else:
                        self.echo(f"modal: a call failed: {result!r}")
            finally:  # anything not delivered failed with the map itself
                for spec in specs:
                    self._deliver(spec.run_id, None)

        self._map_thread = threading.Thread(target=fan_out, name="rstack-modal-map", daemon=True)
        self._map_thread.start()

    def _deliver(self, run_id: str, result: dict | None) -> None:
        with self._lock:
            if run_id in self._results:
                return
            self._results[run_id] = result
            event = self._events.setdefault(run_id, threading.Event())
        event.set()

    def launch(self, spec: RunSpec, *, on_line=None) -> RawOutcome:
        start = time.time()
        with self._lock:
            if self._map_thread is None and spec.run_id in self._events:
                self._start_map()
            mapped = spec.run_id in self._mapped
        if mapped:
            self._events[spec.run_id].wait()
            result = self._results.get(spec.run_id)
        elif (spec.gpu or None) == (self.gpu or None):  # a retry after the fan-out: one more call
            result = self._fn.remote(payload_for(spec))
        else:  # the OOM ladder moved to a bigger GPU: a function for that GPU
            app, fn, _ = build_app(self.root, gpu=spec.gpu, timeout_s=spec.timeout_s)
            with app.run():
                result = fn.remote(payload_for(spec))
        wall = time.time() - start
        if not result:
            return RawOutcome(exit_code=None, signal=None, reason="preempted", duration_s=wall,
                              output_tail=[], message="the Modal call returned no result",
                              cost_usd=self.usd_per_hour * wall / 3600.0)
        from ..costs import usd_per_hour

        fetch_from_volume(self._volume, self.root, result.get("manifest") or [])
        return outcome_from_result(self.root, spec, result,
                                   usd_per_hour=usd_per_hour("modal", spec.gpu), wall_s=wall)

    def cancel(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is not None:  # stopping the ephemeral app stops its containers
            ctx.__exit__(None, None, None)
        output, self._output = self._output, None
        if output is not None:
            output.__exit__(None, None, None)

    def close(self, results) -> None:
        self.cancel()
