"""LaTeX settled at set-up time: find an engine that really compiles, install one when we may.

A working engine is one that compiles a small document with booktabs, natbib, hyperref and times
(and a bibliography), not one that merely answers `--version`. `./setup` calls `settle()` through
`rstack dev setup-latex`; it installs only as root or with passwordless sudo on Debian/Ubuntu
(TeX Live's packages) or with Homebrew on macOS (tectonic), and otherwise prints the exact
commands. Nothing here runs an installer without being asked to install.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import atomic, paths
from .errors import RStackError

# TeX Live's Debian/Ubuntu packages: what the probe document and every venue template need (the
# templates use only these; tests/test_paper.py checks it). .ci/run installs them through ./setup.
APT_PACKAGES = ("texlive-latex-base", "texlive-latex-recommended", "texlive-fonts-recommended",
                "latexmk")
BREW_FORMULA = "tectonic"
STATE_FILE = "latex.json"

PROBE_TEX = r"""\documentclass{article}
\usepackage{times}
\usepackage{booktabs}
\usepackage[numbers]{natbib}
\usepackage{hyperref}
\begin{document}
RStack engine check \citep{probe}.
\begin{tabular}{ll}\toprule a & b \\ \midrule 1 & 2 \\ \bottomrule\end{tabular}
\bibliographystyle{plainnat}
\bibliography{probe}
\end{document}
"""
PROBE_BIB = """@misc{probe, author = {Probe, A.}, title = {A probe}, year = {2024}}
"""
VENUE_TEX = r"""\documentclass%(documentclass)s
\usepackage{%(style)s}
\title{RStack template check}
\author{Anonymous}
\begin{document}
\maketitle
\begin{abstract}One sentence.\end{abstract}
\section{Introduction}
Text with a citation \citep{probe}.
\begin{table}[t]\centering\begin{tabular}{lr}\toprule arm & loss \\ \midrule a & 1.0 \\
\bottomrule\end{tabular}\caption{A table.}\end{table}
\bibliographystyle{%(bst)s}
\bibliography{probe}
\end{document}
"""


@dataclass
class EngineCheck:
    name: str
    path: str | None
    works: bool
    error: str | None = None

    def as_json(self) -> dict:
        return {"name": self.name, "path": self.path, "works": self.works, "error": self.error}


@dataclass
class InstallPlan:
    """How to get an engine here: `kind` apt|brew runs `commands`; manual only prints them."""

    kind: str  # apt | brew | manual
    commands: list[list[str]]
    why: str
    env: dict[str, str] = field(default_factory=dict)

    def shell_lines(self) -> list[str]:
        return [" ".join(cmd) for cmd in self.commands]


@dataclass
class LatexOutcome:
    action: str  # found | installed | manual | failed
    engine: str | None
    path: str | None
    checks: list[EngineCheck]
    plan: InstallPlan | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.engine is not None

    def summary(self) -> str:
        """The one line ./setup prints."""
        if self.action == "found":
            return f"LaTeX: {self.engine} compiles the test document ({self.path})"
        if self.action == "installed":
            return f"LaTeX: installed with {self.plan.kind}; {self.engine} compiles the test document"
        tried = "; ".join(f"{c.name}: {c.error}" for c in self.checks) or "nothing tried"
        if self.action == "failed":
            return f"LaTeX: install with {self.plan.kind} did not give a working engine ({self.detail}); " \
                   f"tried {tried}"
        return (f"LaTeX: no working engine ({tried}); papers will not build until you run: "
                + " && ".join(self.plan.shell_lines()))

    def as_json(self) -> dict:
        return {"action": self.action, "engine": self.engine, "path": self.path,
                "checks": [c.as_json() for c in self.checks],
                "install": None if self.plan is None else {
                    "kind": self.plan.kind, "commands": self.plan.shell_lines(), "why": self.plan.why},
                "detail": self.detail, "summary": self.summary()}


# -- does an engine compile? -----------------------------------------------------------------

def _compile(engine: str, exe: str, tex: str, bib: str, extra: dict[str, Path] | None = None) -> str | None:
    """Compile `tex` (with probe.bib) in a temp dir; None when a PDF came out, else the reason."""
    from .paper.build import compile_document

    with tempfile.TemporaryDirectory(prefix="rstack-latex-") as tmp:
        root = Path(tmp)
        (root / "check.tex").write_text(tex, encoding="utf-8")
        (root / "probe.bib").write_text(bib, encoding="utf-8")
        for name, src in (extra or {}).items():
            shutil.copyfile(src, root / name)
        outdir = root / "out"
        outdir.mkdir()
        try:
            code = compile_document(engine, exe, root, outdir, "check")
        except (RStackError, OSError) as exc:  # a hung or unstartable engine is the answer
            return str(exc)[:300]
        if code == 0 and (outdir / "check.pdf").is_file():
            return None
        log = outdir / "check.log"
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        first = next((line[2:].strip() for line in text.splitlines() if line.startswith("! ")), "")
        return (f"exit {code}" + (f": {first}" if first else ""))[:300]


def check_engines(setting: str = "auto") -> list[EngineCheck]:
    """Each engine `setting` allows, in preference order: does it compile the probe document?"""
    from .compute import probe_latex_engines
    from .tex import LATEX_ENGINES

    probed = probe_latex_engines()
    checks = []
    for name in (LATEX_ENGINES if setting == "auto" else (setting,)):
        engine = probed[name]
        if not engine.works:
            checks.append(EngineCheck(name, engine.path, False, engine.error or "does not run"))
            continue
        if name == "pdflatex" and shutil.which("bibtex") is None:
            checks.append(EngineCheck(name, engine.path, False, "bibtex is not installed"))
            continue
        error = _compile(name, engine.path, PROBE_TEX, PROBE_BIB)
        checks.append(EngineCheck(name, engine.path, error is None, error))
        if error is None:
            break
    return checks


def working_engine(checks: list[EngineCheck]) -> EngineCheck | None:
    return next((c for c in checks if c.works), None)


def check_venues(engine: str, exe: str) -> dict[str, str | None]:
    """venue -> None when its template compiles with this engine, else the reason."""
    from .paper.venues import VENUES, load_venue

    results: dict[str, str | None] = {}
    for name in VENUES:
        venue = load_venue(name)
        tex = VENUE_TEX % {"documentclass": venue.documentclass, "style": venue.style,
                           "bst": venue.bibliography_style}
        results[name] = _compile(engine, exe, tex, PROBE_BIB, {f"{venue.style}.sty": venue.style_path})
    return results


# -- how to install one ----------------------------------------------------------------------

def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"')
    return out


def is_debian_like(os_release: dict[str, str]) -> bool:
    ids = {os_release.get("ID", "")} | set(os_release.get("ID_LIKE", "").split())
    return bool(ids & {"debian", "ubuntu"})


def passwordless_sudo(which: Callable[[str], str | None] = shutil.which) -> bool:
    sudo = which("sudo")
    if sudo is None:
        return False
    try:
        return subprocess.run([sudo, "-n", "true"], capture_output=True, timeout=10,
                              stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def install_plan(*, system: str, os_release: dict[str, str], is_root: bool,
                 which: Callable[[str], str | None] = shutil.which,
                 sudo_ok: Callable[[], bool] = passwordless_sudo) -> InstallPlan:
    """What would get a working engine on this machine, and whether we may run it ourselves."""
    apt_install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]
    if system == "Linux" and is_debian_like(os_release):
        if which("apt-get") and is_root:
            return InstallPlan("apt", [["apt-get", "update", "-q"], apt_install],
                               "Debian/Ubuntu, running as root", {"DEBIAN_FRONTEND": "noninteractive"})
        if which("apt-get") and sudo_ok():
            return InstallPlan("apt", [["sudo", "-n", "apt-get", "update", "-q"],
                                       ["sudo", "-n", "DEBIAN_FRONTEND=noninteractive", *apt_install]],
                               "Debian/Ubuntu, passwordless sudo")
        why = ("Debian/Ubuntu, but apt-get is not on PATH" if not which("apt-get")
               else "Debian/Ubuntu without root or passwordless sudo")
        return InstallPlan("manual", [["sudo", "apt-get", "update"],
                                      ["sudo", "apt-get", "install", "-y", *APT_PACKAGES]], why)
    if system == "Darwin":
        if which("brew"):
            return InstallPlan("brew", [["brew", "install", BREW_FORMULA]], "macOS with Homebrew")
        return InstallPlan("manual", [["brew", "install", BREW_FORMULA]],
                           "macOS without Homebrew: install it from https://brew.sh first "
                           "(or MacTeX from https://tug.org/mactex/)")
    return InstallPlan("manual", [["<your package manager>", "install", "TeX Live with pdflatex, "
                                   "latexmk, booktabs, natbib, hyperref and times"]],
                       "not Debian/Ubuntu or macOS: e.g. Fedora `sudo dnf install texlive-scheme-medium "
                       "latexmk`, Arch `sudo pacman -S texlive-basic texlive-latexrecommended "
                       "texlive-fontsrecommended`; or tectonic (its musl build runs anywhere but "
                       "fetches its support bundle from the network on first use)")


def this_machine_plan() -> InstallPlan:
    return install_plan(system=platform.system(), os_release=read_os_release(),
                        is_root=hasattr(os, "geteuid") and os.geteuid() == 0)


def _run_plan(plan: InstallPlan, echo: Callable[[str], None]) -> str | None:
    """Run the plan's commands; None when all exited 0, else what failed."""
    env = {**os.environ, **plan.env}
    for cmd in plan.commands:
        echo("setup: running " + " ".join(cmd))
        exe = shutil.which(cmd[0])
        if exe is None:
            return f"{cmd[0]} is not on PATH"
        try:
            done = subprocess.run([exe, *cmd[1:]], env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=3600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(cmd)}`: {exc}"
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
            return f"`{' '.join(cmd)}` exited {done.returncode}: {last[0][:200]}"
    return None


# -- the set-up step -------------------------------------------------------------------------

def settle(*, install: bool = True, setting: str = "auto",
           echo: Callable[[str], None] = lambda _line: None,
           plan: InstallPlan | None = None) -> LatexOutcome:
    """Find a working engine; if none and `install`, install one when this machine allows it."""
    checks = check_engines(setting)
    found = working_engine(checks)
    if found:
        return _remember(LatexOutcome("found", found.name, found.path, checks))
    plan = plan or this_machine_plan()
    if not install or plan.kind == "manual":
        return _remember(LatexOutcome("manual", None, None, checks, plan))
    failure = _run_plan(plan, echo)
    after = check_engines(setting)
    found = working_engine(after)
    if found:
        return _remember(LatexOutcome("installed", found.name, found.path, after, plan))
    return _remember(LatexOutcome("failed", None, None, after, plan,
                                  failure or "the packages installed, but no engine compiles"))


def state_path() -> Path:
    return paths.rstack_home() / STATE_FILE


def _remember(outcome: LatexOutcome, venues: dict[str, str | None] | None = None) -> LatexOutcome:
    """Keep what setup found in $RSTACK_HOME/latex.json, for compute-detect's fast report."""
    if not paths.rstack_home().is_dir():
        return outcome
    state = {"version": 1, "checked_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "engine": outcome.engine, "path": outcome.path, "action": outcome.action,
             "venues": venues}
    atomic.write_text(state_path(), json.dumps(state, indent=2) + "\n")
    return outcome


def check_and_remember_venues() -> LatexOutcome:
    """Check the engines (installing nothing) and, with a working one, every venue template."""
    outcome = settle(install=False)
    venues = check_venues(outcome.engine, outcome.path) if outcome.ok else None
    return _remember(outcome, venues)


def remembered() -> dict | None:
    try:
        return json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def no_engine_fix() -> str:
    """The exact commands that would give this machine an engine (for the demo and the build)."""
    plan = this_machine_plan()
    commands = " && ".join(plan.shell_lines())
    if plan.kind == "manual":
        return f"{commands}  ({plan.why})"
    return f"{paths.launcher()} dev setup-latex  (runs: {commands})"
