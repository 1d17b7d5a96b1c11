"""The vastai profile: rent a GPU box through the `vastai` CLI, then run over the ssh profile.

The instance id goes in the ledger (`vastai.instance`) before it is polled, so a crash never
leaves an unrecorded machine billing. It is destroyed only after every run on it has its
artifacts verified locally (guards.check_destroy), or kept with --keep-instance.
Cost per run = the offer's dph_total x the run's wall time; the instance's whole billed lifetime
(create to destroy: boot, bootstrap, sync, teardown) is ledgered on its closing record and counts
as spend beyond its runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from .. import config, guards
from ..ledger import Ledger
from .base import RawOutcome, Runner, RunError, RunSpec
from .ssh import SshRunner, SshTarget


class VastaiError(RunError):
    """The vastai CLI failed or answered something unexpected."""


class Instance:
    def __init__(self, instance_id: str, gpu: str, dph: float, runner: SshRunner | None = None):
        self.instance_id = instance_id
        self.gpu = gpu
        self.dph = dph
        self.runner = runner
        self.run_ids: list[str] = []
        self.created_at = time.monotonic()  # it bills from `create` on
        self.runs_usd = 0.0  # what its runs' run.finished records carry
        self.closed = False

    def lifetime_s(self) -> float:
        return time.monotonic() - self.created_at

    def billed_usd(self) -> float:
        return self.dph * self.lifetime_s() / 3600.0


class VastaiRunner(Runner):
    """One rented single-GPU instance per GPU type (default_jobs: 1)."""

    profile = "vastai"
    persistence = "remote run directory + sha256 manifest, verified on download"
    monitoring = True
    can_reattach = True

    def __init__(self, root: Path, *, gpu: str | None = None, keep_instance: bool = False,
                 dry_run: bool = False, echo: Callable[[str], None] | None = None, **_ignored):
        self.root = Path(root)
        self.gpu = gpu
        self.keep = keep_instance
        self.ledger = Ledger(self.root, "experiments")
        self.max_dph = float(config.get("vastai_max_dph"))
        self.disk_gb = int(config.get("vastai_disk_gb"))
        self.image = config.get("vastai_image")
        self.start_timeout_s = float(config.get("vastai_start_timeout_s"))
        self.instances: dict[str, Instance] = {}  # by GPU name
        self.echo = echo or (lambda text: print(text, file=sys.stderr))
        self._lock = threading.Lock()
        if not dry_run and not shutil.which("vastai"):
            raise VastaiError("the vastai CLI is not on PATH",
                              hint="pip install vastai && vastai set api-key YOUR_KEY")

    @property
    def host(self) -> str:
        return "vastai"

    def host_for(self, spec: RunSpec) -> str:
        inst = self._instance(spec.gpu)
        return f"vastai:{inst.instance_id}"

    # -- the CLI boundary

    def vastai(self, *args: str, raw: bool = True, timeout: float = 120) -> object:
        argv = ["vastai", *args] + (["--raw"] if raw else [])
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise VastaiError(f"`{' '.join(argv)}` did not answer in {timeout:g}s") from None
        if result.returncode != 0:
            raise VastaiError(f"`{' '.join(argv)}` failed (exit {result.returncode}): "
                              f"{(result.stderr or result.stdout).strip()[-300:]}",
                              hint="check `vastai show user` (API key) and your balance")
        if not raw:
            return result.stdout.strip()
        try:
            return json.loads(result.stdout)
        except ValueError:
            raise VastaiError(f"`{' '.join(argv)}` printed no JSON: {result.stdout.strip()[:200]!r}") from None

    # -- provisioning

    def _instance(self, gpu: str | None) -> Instance:
        gpu = gpu or self.gpu
        if not gpu:
            raise VastaiError("the vastai profile needs a GPU (execution.gpu in the plan, or --gpu)",
                              hint="e.g. gpu: RTX_4090")
        with self._lock:
            if gpu not in self.instances:
                self.instances[gpu] = self._provision(gpu)
            return self.instances[gpu]

    def _provision(self, gpu: str) -> Instance:
        query = f"gpu_name={gpu} num_gpus=1 rentable=true dph_total<={self.max_dph:g}"
        offers = self.vastai("search", "offers", query, "-o", "dph_total")
        if not isinstance(offers, list) or not offers:
            raise VastaiError(f"no Vast.ai offer for {gpu} at or under ${self.max_dph:.2f}/h",
                              hint="raise the ceiling: rstack config set vastai_max_dph 2.0, or pick "
                                   "another GPU")
        offer = min(offers, key=lambda o: float(o.get("dph_total", 1e9)))
        created = self.vastai("create", "instance", str(offer["id"]), "--image", self.image,
                              "--disk", str(self.disk_gb), "--ssh", "--direct")
        if not isinstance(created, dict) or not created.get("success") or "new_contract" not in created:
            raise VastaiError(f"vastai create instance answered {created!r}")
        inst = Instance(str(created["new_contract"]), gpu, float(offer["dph_total"]))
        # Ledgered before the first poll: from here on the machine bills and must be findable.
        self.ledger.append({"type": "vastai.instance", "instance_id": inst.instance_id,
                            "state": "created", "offer_id": str(offer["id"]), "gpu": gpu,
                            "dph_total": inst.dph})
        try:
            self._wait_running(inst)
            url = self.vastai("ssh-url", inst.instance_id, raw=False)
            target = target_from_url(str(url))
        except Exception as exc:
            self._destroy(inst, reason=f"failed to start: {exc}", state="failed")
            raise
        self.ledger.append({"type": "vastai.instance", "instance_id": inst.instance_id,
                            "state": "running", "gpu": gpu, "dph_total": inst.dph,
                            "ssh": target.spec})
        inst.runner = SshRunner(self.root, [target], instance_id=inst.instance_id,
                                cost_per_hour=inst.dph)
        return inst

    def _wait_running(self, inst: Instance) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        status = None
        while time.monotonic() < deadline:
            info = self.vastai("show", "instance", inst.instance_id)
            status = info.get("actual_status") if isinstance(info, dict) else None
            if status == "running":
                if isinstance(info, dict) and isinstance(info.get("dph_total"), (int, float)):
                    inst.dph = float(info["dph_total"])
                return
            if status in ("exited", "offline", "error"):
                break
            time.sleep(float(config.get("vastai_poll_s")))
        raise VastaiError(f"instance {inst.instance_id} is {status or 'not running'} after "
                          f"{self.start_timeout_s:g}s; it was destroyed",
                          hint="try again (another offer), or raise vastai_start_timeout_s")

    def _billing(self, inst: Instance) -> dict:
        """The instance's billed lifetime (create to now), ledgered as spend: what it cost beyond
        its runs' own records is money the cap must count."""
        return {"lifetime_s": round(inst.lifetime_s(), 3), "billed_usd": round(inst.billed_usd(), 6),
                "runs_usd": round(inst.runs_usd, 6), "dph_total": inst.dph}

    def _destroy(self, inst: Instance, *, reason: str, state: str = "destroyed") -> None:
        self.vastai("destroy", "instance", inst.instance_id, raw=False)
        inst.closed = True
        self.ledger.append({"type": "vastai.instance", "instance_id": inst.instance_id,
                            "state": state, "gpu": inst.gpu, "message": reason,
                            **self._billing(inst)})

    def accrued_usd(self) -> float:
        """Billed so far by live instances beyond their ledgered runs (boot, sync, idle)."""
        with self._lock:
            live = [inst for inst in self.instances.values() if not inst.closed]
        return sum(max(0.0, inst.billed_usd() - inst.runs_usd) for inst in live)

    # -- the Runner protocol

    def prepare(self, specs: list[RunSpec]) -> None:
        for gpu in dict.fromkeys(spec.gpu or self.gpu for spec in specs):
            inst = self._instance(gpu)
            inst.runner.prepare([s for s in specs if (s.gpu or self.gpu) == gpu])

    def launch(self, spec: RunSpec, *, on_line=None) -> RawOutcome:
        inst = self._instance(spec.gpu)
        with self._lock:
            inst.run_ids.append(spec.run_id)
        raw = inst.runner.launch(spec, on_line=on_line)
        with self._lock:
            inst.runs_usd += raw.cost_usd
        return raw

    def reattach(self, spec: RunSpec, remote: dict) -> RawOutcome:
        instance_id = remote.get("instance_id")
        if not instance_id:
            raise VastaiError(f"run {spec.run_id}: no instance id in its run.remote record")
        url = self.vastai("ssh-url", instance_id, raw=False)
        info = self.vastai("show", "instance", instance_id)
        dph = float(info.get("dph_total", 0.0)) if isinstance(info, dict) else 0.0
        inst = Instance(instance_id, spec.gpu or self.gpu or "", dph,
                        SshRunner(self.root, [target_from_url(str(url))], instance_id=instance_id,
                                  cost_per_hour=dph))
        with self._lock:
            self.instances.setdefault(inst.gpu, inst)
            inst.run_ids.append(spec.run_id)
        return inst.runner.reattach(spec, remote)

    def cancel(self) -> None:
        for inst in list(self.instances.values()):
            if inst.runner:
                inst.runner.cancel()

    def close(self, results) -> None:
        """Destroy each instance once every run on it is verified locally; else keep it."""
        for inst in list(self.instances.values()):
            verified = inst.runner.verified if inst.runner else set()
            try:
                guards.check_destroy(instance_id=inst.instance_id, run_ids=inst.run_ids,
                                     verified=verified, keep=self.keep)
            except guards.GuardError as exc:
                self.ledger.append({"type": "vastai.instance", "instance_id": inst.instance_id,
                                    "state": "kept", "gpu": inst.gpu, "message": exc.message,
                                    **self._billing(inst)})
                self.echo(f"{exc.message}\n  fix: {exc.hint}")
                continue
            self._destroy(inst, reason=f"all {len(inst.run_ids)} run(s) verified locally")

    def dry_run_spec(self, specs: list[RunSpec]) -> dict:
        return {"search": f"gpu_name={self.gpu} num_gpus=1 rentable=true "
                          f"dph_total<={self.max_dph:g}",
                "image": self.image, "disk_gb": self.disk_gb, "max_dph": self.max_dph,
                "start_timeout_s": self.start_timeout_s, "keep_instance": self.keep}


def target_from_url(url: str) -> SshTarget:
    """`ssh://root@host:port` (what `vastai ssh-url` prints) as an SshTarget."""
    parsed = urlparse(url.strip())
    if parsed.scheme != "ssh" or not parsed.hostname:
        raise VastaiError(f"vastai ssh-url printed {url!r}, not ssh://user@host:port")
    user = f"{parsed.username}@" if parsed.username else ""
    port = f":{parsed.port}" if parsed.port else ""
    return SshTarget.parse(f"{user}{parsed.hostname}{port}")
