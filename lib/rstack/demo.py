"""`rstack demo`: copy the bundled example project and run the whole pipeline on it, offline.

plan check -> preflight -> runs (local, parallel) -> analyze -> paper build -> paper audit ->
bundle create, each through the same library functions the commands use, so the demo exercises
the real rails. It never touches the network: the literature comes from a snapshot of real arXiv
records installed into the project's response cache. It never writes outside DIR.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape

from . import paths
from .errors import RStackError

SNAPSHOT = "literature/arxiv-snapshot.json"
DRAFT = "paper-draft.tex"
# Files the pipeline writes; the demo's own git repository ignores them.
GITIGNORE = ".rstack/\nresults/\nanalysis/*\n!analysis/notes.md\nbundle/\n*.pdf\n*.sty\n"


class DemoError(RStackError):
    """The demo could not be set up or one of its phases failed."""


@dataclass
class Phase:
    name: str
    seconds: float
    detail: str

    def as_json(self) -> dict:
        return {"phase": self.name, "seconds": round(self.seconds, 2), "detail": self.detail}


@dataclass
class DemoResult:
    root: Path
    pdf: Path
    phases: list[Phase] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def as_json(self) -> dict:
        return {"dir": str(self.root), "pdf": str(self.pdf), "seconds": round(self.seconds, 2),
                "phases": [p.as_json() for p in self.phases]}


def example_dir() -> Path:
    return paths.checkout_root() / "examples" / "demo"


# -- the offline literature snapshot ----------------------------------------------------------

def _atom_feed(ids: list[str], papers: dict) -> str:
    """An arXiv API answer (Atom 1.0, newer layout: namespaces on the root) for these ids."""
    entries = []
    for arxiv_id in ids:
        p = papers[arxiv_id]
        stamp = f"{p['published']}T00:00:00Z"
        authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in p["authors"])
        entries.append(
            f"<entry><id>http://arxiv.org/abs/{arxiv_id}v1</id><updated>{stamp}</updated>"
            f"<published>{stamp}</published><title>{escape(p['title'])}</title>{authors}"
            f'<link href="http://arxiv.org/abs/{arxiv_id}v1" rel="alternate" type="text/html"/>'
            f'<link title="pdf" href="http://arxiv.org/pdf/{arxiv_id}v1" rel="related" '
            f'type="application/pdf"/>'
            f'<arxiv:primary_category term="{p["category"]}" scheme="http://arxiv.org/schemas/atom"/>'
            f"</entry>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom" '
            'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
            'xmlns:arxiv="http://arxiv.org/schemas/atom">'
            f"<title>arXiv Query (RStack demo snapshot)</title>"
            f"<opensearch:totalResults>{len(ids)}</opensearch:totalResults>"
            "<opensearch:startIndex>0</opensearch:startIndex>"
            f"<opensearch:itemsPerPage>{len(ids)}</opensearch:itemsPerPage>"
            + "".join(entries) + "</feed>\n")


def install_snapshot(root: Path, snapshot: Path) -> list[dict]:
    """Store the snapshot's answers in `.rstack/cache/lit/` under the keys an arXiv search for
    each query looks up (the literature package's own seeding helper checks that every body
    parses as an arXiv answer). Returns the snapshot's queries."""
    from .literature.search import seed_search_cache

    data = json.loads(snapshot.read_text(encoding="utf-8"))
    for item in data["queries"]:
        seed_search_cache(root, item["query"], limit=int(item["limit"]),
                          arxiv_body=_atom_feed(item["ids"], data["papers"]))
    return data["queries"]


# -- setting up DIR -----------------------------------------------------------------------------

def copy_example(dest: Path) -> None:
    src = example_dir()
    if not (src / "experiment-plan.md").is_file():
        raise DemoError(f"{src}: the bundled example project is missing",
                        hint="restore it from git: git checkout HEAD -- examples/demo")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DemoError(f"{dest} already exists and is not empty; the demo never writes into "
                        "existing files", hint=f"pass another directory: rstack demo DIR, or move "
                                               f"{dest} aside")
    shutil.copytree(src, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "out", "results", ".rstack"))


def _git_init(dest: Path) -> str | None:
    """Make DIR its own git repository (its own project root, code at a commit for the bundle).

    Without git the demo still runs; the bundle then records the files by hash.
    """
    (dest / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    git = shutil.which("git")
    if git is None:
        return None
    ident = ["-c", "user.name=RStack demo", "-c", "user.email=demo@rstack.invalid",
             "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "RStack demo project"]):
        done = subprocess.run([git, *ident, *args], cwd=dest, env=env, capture_output=True,
                              text=True, timeout=60)
        if done.returncode != 0:
            raise DemoError(f"git {' '.join(args)} in {dest} failed: {done.stderr.strip()}")
    head = subprocess.run([git, "rev-parse", "--short", "HEAD"], cwd=dest, capture_output=True,
                          text=True, timeout=30)
    return head.stdout.strip() or None


# -- the pipeline -------------------------------------------------------------------------------

def run_demo(dest: Path, *, jobs: int | None = None,
             echo: Callable[[str], None] = print) -> DemoResult:
    """Copy the example into dest and run every phase; raises DemoError naming the failed phase."""
    dest = Path(dest).resolve()
    result = DemoResult(root=dest, pdf=dest / "paper.pdf")
    total = 8

    def phase(number: int, name: str, fn: Callable[[], str]) -> None:
        started = time.monotonic()
        try:
            detail = fn()
        except RStackError as exc:
            echo(f"[{number}/{total}] {name:<13} FAILED")
            raise DemoError(f"demo phase '{name}' failed in {dest}: {exc.message}",
                            hint=exc.hint) from None
        spent = time.monotonic() - started
        result.phases.append(Phase(name, spent, detail))
        echo(f"[{number}/{total}] {name:<13} {spent:5.1f}s  {detail}")

    phase(1, "project", lambda: _setup_project(dest))
    plan_path = dest / "experiment-plan.md"
    phase(2, "plan check", lambda: _plan_check(plan_path))
    phase(3, "preflight", lambda: _preflight(dest))
    phase(4, "runs", lambda: _runs(dest, plan_path, jobs))
    phase(5, "analyze", lambda: _analyze(dest, plan_path))
    phase(6, "paper build", lambda: _paper(dest))
    phase(7, "paper audit", lambda: _audit(dest))
    phase(8, "bundle", lambda: _bundle(dest))
    return result


def _setup_project(dest: Path) -> str:
    from .literature.search import search_literature

    copy_example(dest)
    commit = _git_init(dest)
    queries = install_snapshot(dest, dest / SNAPSHOT)
    recorded = 0
    for item in queries:
        outcome = search_literature(dest, item["query"], source="arxiv", limit=int(item["limit"]),
                                    offline=True)
        recorded += outcome.recorded
    where = f"git {commit}" if commit else "no git"
    return f"copied to {dest} ({where}); {recorded} papers from {len(queries)} offline searches"


def _plan_check(plan_path: Path) -> str:
    from .plan import load_plan

    plan = load_plan(plan_path)
    return f"{len(plan.arms)} arms x {len(plan.seeds)} seeds, primary {plan.primary_metric}"


def _preflight(root: Path) -> str:
    from .preflight import record_preflight, run_preflight

    result = run_preflight(root / "train.py")
    record_preflight(root, result)
    if result.verdict != "PASS":
        raise DemoError(f"preflight {result.verdict} ({result.category}): {result.message}",
                        hint=result.hint)
    return f"PASS in {result.duration_s:.1f}s (smoke run + determinism run)"


def _runs(root: Path, plan_path: Path, jobs: int | None) -> str:
    import io

    from .runs import RunRequest, start

    quiet = io.StringIO()
    report = start(RunRequest(root=root, plan_path=plan_path, jobs=jobs), progress_stream=quiet,
                   echo=lambda text: quiet.write(text + "\n"))
    final = report.final_results()
    bad = [r for r in final if r.status != "ok"]
    if bad or report.interrupted:
        raise DemoError(f"{len(bad)} of {len(final)} runs did not end ok: "
                        + ", ".join(f"{r.spec.run_id} {r.status} ({r.category})" for r in bad),
                        hint="rstack runs list (inside the demo directory) shows each run's status")
    return f"{len(final)} runs ok"


def _analyze(root: Path, plan_path: Path) -> str:
    from .analysis.analyze import run_analysis

    analysis = run_analysis(root, plan_path)
    comparisons = analysis.summary.get("comparisons") or []
    parts = []
    for c in comparisons:
        if c.get("metric") == analysis.summary.get("primary_metric"):
            parts.append(f"{c['arm']} vs {c['baseline']}: delta {c['delta']:+.3f} "
                         f"(p={c['p_value']:.3g}, {c['verdict']})")
    return "; ".join(parts) or f"{len(analysis.written)} files written"


def _paper(root: Path) -> str:
    from .paper.build import build_paper
    from .paper.new import new_paper

    # `paper new` writes the venue's style and the bibliography from the lit ledger; the demo's
    # prose is then the researcher's draft, as it would be after /write-paper.
    new_paper(root, "arxiv", title="Heavy-ball momentum on an ill-conditioned task")
    shutil.copyfile(root / DRAFT, root / "paper.tex")
    built = build_paper(root)
    if not built.ok:
        problems = "; ".join(str(e) for e in built.log.errors[:3]) or f"exit {built.exit_code}"
        raise DemoError(f"paper build failed: {problems}", hint="see .rstack/latex/paper.log")
    return f"paper.pdf, {built.pages} pages ({built.engine})"


def _audit(root: Path) -> str:
    from .paper.audit import audit_paper

    report = audit_paper(root)
    if not report.ok:
        lines = "; ".join(f"{f.file}:{f.line}: {f.message}" for f in report.errors[:5])
        raise DemoError(f"paper audit found {len(report.errors)} problem(s): {lines}")
    return f"clean: {report.macros_used} macro uses traced, citations verified"


def _bundle(root: Path) -> str:
    from .bundle import create_bundle, verify_bundle

    bundle = create_bundle(root, root / "bundle")
    verified = verify_bundle(bundle.out)
    if not verified.ok:
        raise DemoError(f"bundle verify failed: {verified.problems[:3]}")
    return f"bundle/ ({bundle.files} files, checksums verified)"
