"""Reproducibility bundles: everything a stranger needs to check and re-run the paper's numbers.

`create_bundle` copies the code at its commit, the plan, the ledgers, the results of the runs that
analysis/summary.json used, analysis/, the paper sources and PDF and a description of the
environment into one directory, then writes stamp.json and checksums.sha256 (sha256sum format).
`verify_bundle` re-hashes every file. Nothing here modifies the project it bundles.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import __version__, outbound, paths, secrets
from .compute import probe_gpus
from .gitstate import git, project_git_state
from .errors import BundleError
from .freshness import analysis_freshness
from .hashing import sha256_file
from .ledger import utc_now
from .review import FINDINGS_FILE, REVIEW_FILE  # the meta-review travels with the paper

CHECKSUMS = "checksums.sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")
STAMP = "stamp.json"
STAMP_VERSION = 1
# Never copied from a project that is not in git: state, outputs bundled separately, caches.
_SKIP_DIRS = {".git", ".rstack", "results", "analysis", ".venv", "venv", "env", "__pycache__",
              "node_modules", ".pytest_cache", ".mypy_cache", ".ipynb_checkpoints", "wandb"}
_PAPER_SUFFIXES = (".tex", ".bib", ".sty", ".cls", ".bst", ".bbl")
_MAX_CODE_FILE = 50 * 1024 * 1024


@dataclass
class BundleReport:
    out: Path
    stamp: dict
    files: int
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"out": str(self.out), "files": self.files, "stamp": self.stamp,
                "notes": self.notes}


@dataclass
class VerifyReport:
    path: Path
    checked: int
    problems: list[dict] = field(default_factory=list)  # {kind, path, message}

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        return {"path": str(self.path), "ok": self.ok, "checked": self.checked,
                "problems": self.problems}


def _copy_code_fromgit(root: Path, state: dict, dest: Path, notes: list[str]) -> None:
    treeish = f"HEAD:{state['prefix']}" if state["prefix"] else "HEAD"
    proc = git(root, "archive", "--format=tar", treeish, binary=True)
    if proc is None:
        raise BundleError(f"git archive {treeish} failed in {root}",
                          hint="check `git -C PROJECT archive HEAD | tar t` works")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        members = []
        for member in tar.getmembers():
            if outbound.is_denied(member.name):
                notes.append(f"{member.name}: a credential file; never copied out of the project "
                             "(it is committed: remove it from git and rotate what it holds)")
            elif member.issym() or member.islnk():
                notes.append(f"code: link {member.name} not bundled (links are not checksummed)")
            elif member.isfile() or member.isdir():
                members.append(member)
        if hasattr(tarfile, "data_filter"):  # refuses absolute paths and `..` in member names
            tar.extractall(dest, members=members, filter="data")
        else:  # Python < 3.10.12: git archive of our own HEAD is trusted input
            tar.extractall(dest, members=members)
    if state["dirty"]:
        diff = git(root, "diff", "HEAD", "--binary", "--", ".", binary=True)
        (dest.parent / "code.patch").write_bytes(diff.stdout if diff else b"")
        notes.append("the working tree differs from the commit: code/ is the commit, "
                     "code.patch holds the uncommitted changes to tracked files")


def _is_bundle(path: Path) -> bool:
    """An earlier bundle inside the project is output, not code: never nest it."""
    return (path / STAMP).is_file() and (path / CHECKSUMS).is_file()


def _copy_code_files(root: Path, dest: Path, skip: set[Path], notes: list[str]) -> None:
    """The project's files as they are now, minus what may not leave it (rstack.outbound)."""
    bundles: dict[Path, bool] = {}

    def in_bundle(path: Path) -> bool:
        for parent in path.relative_to(root).parents:
            here = root / parent
            if here != root and bundles.setdefault(here, _is_bundle(here)):
                return True
        return False

    for src in outbound.project_files(root, skip_dirs=_SKIP_DIRS, skip=skip,
                                      max_size=_MAX_CODE_FILE, notes=notes):
        if src.is_symlink() or src.name.endswith(".pyc") or in_bundle(src):
            continue
        target = dest / src.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


_SCAN_LIMIT = 1024 * 1024  # bytes of one code file scanned for credentials


def _note_code_secrets(bundle: Path, notes: list[str]) -> None:
    """Name each line of the bundled code (code/, code.patch) that holds a credential-shaped
    value (rstack.secrets). Code stays byte for byte: it is what reproduces the numbers."""
    files = sorted(p for p in (bundle / "code").rglob("*") if p.is_file() and not p.is_symlink())
    if (bundle / "code.patch").is_file():
        files.append(bundle / "code.patch")
    for path in files:
        if path.stat().st_size > _SCAN_LIMIT:
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if secrets.is_secret_value(line):
                notes.append(f"{path.relative_to(bundle).as_posix()}:{number}: looks like a "
                             "credential; it is bundled as written: remove it from the code and "
                             "rotate it")


def _redact_logs(bundle: Path, notes: list[str]) -> list[str]:
    """Redact secrets in the bundled runs' stdout logs (rstack.secrets); returns their paths.

    Only logs: a log is not evidence for a number, while metrics and checkpoints are pinned by the
    ledger's artifact hashes and must stay byte for byte."""
    from .runners.base import LOG_FILE

    redacted = []
    for log in sorted((bundle / "results").glob(f"*/{LOG_FILE}")):
        text = log.read_bytes().decode("utf-8", errors="surrogateescape")
        clean = secrets.redact(text)
        if clean != text:
            log.write_bytes(clean.encode("utf-8", errors="surrogateescape"))
            rel = log.relative_to(bundle).as_posix()
            notes.append(f"{rel}: secrets redacted (they were printed by the run; rotate them)")
            redacted.append(rel)
    return redacted


def environment_files(dest: Path) -> None:
    """python.txt, platform.json, pip-freeze.txt and gpu.txt describing this machine."""
    from importlib import metadata

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "python.txt").write_text(f"{sys.version}\nexecutable: {sys.executable}\n")
    info = {"platform": platform.platform(), "system": platform.system(),
            "release": platform.release(), "machine": platform.machine(),
            "processor": platform.processor(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "cpu_count": os.cpu_count()}
    (dest / "platform.json").write_text(json.dumps(info, indent=2) + "\n")
    dists = sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                    if d.metadata["Name"]}, key=str.lower)
    (dest / "pip-freeze.txt").write_text("\n".join(dists) + "\n")
    (dest / "gpu.txt").write_text(_gpu_text(probe_gpus(timeout_s=30)))


def _gpu_text(probe: dict) -> str:
    """compute-detect's GPU probe as the bundle's environment/gpu.txt."""
    if probe["devices"]:
        return "".join(f"GPU {d['index']}: {d['name']}, {d['memory_mib']} MiB, driver {d['driver']}\n"
                       for d in probe["devices"])
    if probe["error"]:
        return f"nvidia-smi failed ({probe['status']}): {probe['error']}\n"
    return "no NVIDIA GPU visible (nvidia-smi not found or lists none)\n"


def _load_summary(root: Path) -> tuple[dict, Path]:
    path = root / "analysis" / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")), path
    except FileNotFoundError:
        raise BundleError("analysis/summary.json not found: the bundle holds the runs the analysis "
                          "used", hint="run `rstack analyze` first") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"analysis/summary.json cannot be read ({exc})",
                          hint="re-run `rstack analyze`") from None


def _summary_runs(summary: dict) -> dict[str, str]:
    """run_id -> project-relative output dir, for every run the analysis used."""
    runs: dict[str, str] = {}
    for arm in (summary.get("arms") or {}).values():
        dirs = {r.get("run_id"): r.get("output_dir") for r in arm.get("runs", [])}
        for run_id in arm.get("run_ids", []):
            runs[run_id] = dirs.get(run_id) or f"results/{run_id}"
    return runs


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def write_checksums(bundle: Path) -> int:
    lines = []
    for path in sorted(_bundle_files(bundle), key=lambda p: p.as_posix()):
        rel = path.as_posix()
        if "\n" in rel or "\\" in rel:
            raise BundleError(f"{rel!r}: a file name with a newline or backslash cannot be "
                              "listed in checksums.sha256", hint="rename the file")
        lines.append(f"{sha256_file(bundle / path)}  {rel}\n")
    (bundle / CHECKSUMS).write_text("".join(lines), encoding="utf-8")
    return len(lines)


def _bundle_files(bundle: Path) -> list[Path]:
    """Every entry under bundle except checksums.sha256, relative (links and specials included)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(bundle):
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                found.append((here / name).relative_to(bundle))
        for name in filenames:
            rel = (here / name).relative_to(bundle)
            if rel.as_posix() != CHECKSUMS:
                found.append(rel)
    return found


def create_bundle(root: Path, out: Path | None = None) -> BundleReport:
    root = Path(root).resolve()
    out = Path(out) if out else root / "bundle"
    out = (out if out.is_absolute() else Path.cwd() / out).resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"{out} already exists and is not empty; a bundle is never merged into "
                          "old files", hint="pass --out NEW_DIR, or move the old bundle aside")
    if _inside(root, out):
        raise BundleError(f"--out {out} contains the project {root}",
                          hint="pick a directory inside the project or beside it")
    summary, summary_path = _load_summary(root)
    runs = _summary_runs(summary)
    missing = [f"{run_id} ({rel})" for run_id, rel in runs.items() if not (root / rel).is_dir()]
    if missing:
        raise BundleError("results of runs the analysis used are missing: " + ", ".join(missing),
                          hint="restore them (rstack run syncs remote results), or re-run "
                               "`rstack analyze` after re-running those runs")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    notes: list[str] = []
    try:
        state = project_git_state(root)
        if state and state["commit"]:
            _copy_code_fromgit(root, state, work / "code", notes)
        else:
            if state:
                notes.append("the git repository has no commit yet: code/ holds its files as "
                             "they are now; checksums.sha256 pins each by hash. To pin the code "
                             "to a commit: `git add` the code and plan, `git commit`, then "
                             "re-create the bundle (move this one aside, or rstack bundle create "
                             "--out NEW_DIR)")
            else:
                notes.append("the project is not in git: code/ holds its files as they are "
                             "now; checksums.sha256 pins each by hash")
            state = None
            _copy_code_files(root, work / "code", {out, work.resolve()}, notes)
        plan_rel = (summary.get("plan") or {}).get("path") or "experiment-plan.md"
        if (root / plan_rel).is_file():
            (work / "plan").mkdir()
            shutil.copy2(root / plan_rel, work / "plan" / Path(plan_rel).name)
        else:
            notes.append(f"plan {plan_rel} not found; not bundled")
        if (root / "program.md").is_file():  # the improvement loop's program, beside the plan
            (work / "plan").mkdir(exist_ok=True)
            shutil.copy2(root / "program.md", work / "plan" / "program.md")
        (work / "ledgers").mkdir()
        for name in ("experiments", "lit-review", "program"):  # program: the loop's macros
            src = paths.ledger_path(root, name)
            if src.is_file():
                shutil.copy2(src, work / "ledgers" / src.name)
        for run_id, rel in sorted(runs.items()):
            shutil.copytree(root / rel, work / "results" / run_id, symlinks=True)
        redacted = _redact_logs(work, notes)
        _note_code_secrets(work, notes)
        shutil.copytree(summary_path.parent, work / "analysis", symlinks=True)
        paper_files = sorted(p for p in root.iterdir() if p.is_file() and (
            p.suffix in _PAPER_SUFFIXES or p.name in ("paper.pdf", REVIEW_FILE, FINDINGS_FILE)))
        if paper_files:
            (work / "paper").mkdir()
            for src in paper_files:
                shutil.copy2(src, work / "paper" / src.name)
        else:
            notes.append("no paper sources (paper.tex) at the project root; none bundled")
        environment_files(work / "environment")
        ledger_file = paths.ledger_path(root, "experiments")
        ledger_sha = sha256_file(ledger_file) if ledger_file.is_file() else None
        analysis_sha = (summary.get("ledger") or {}).get("sha256")
        problem = analysis_freshness(root, summary).reason
        if problem:
            notes.append(f"{problem}; re-run `rstack analyze` so the analysis matches the "
                         "bundled ledger")
        untracked = _untracked(root) if state else []
        if untracked:
            notes.append("untracked files (not in the commit): " + ", ".join(untracked[:20])
                         + (" ..." if len(untracked) > 20 else "") + "; `git add` and commit them")
        stamp = {
            "version": STAMP_VERSION,
            "commit": state["commit"] if state else None,
            "dirty": (state["dirty"] or bool(untracked)) if state else None,
            "untracked": untracked,
            "redacted": redacted,
            "code_source": "git-archive" if state else "files",
            "rstack_version": __version__,
            "created_at": utc_now(),
            "ledger_sha256": ledger_sha,
            "analysis_ledger_sha256": analysis_sha,
            "run_ids": sorted(runs),
            "notes": notes,
        }
        (work / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        (work / "README.md").write_text(_bundle_readme(stamp), encoding="utf-8")
        for problem in (p for p in _bundle_files(work) if (work / p).is_symlink()):
            (work / problem).unlink()
            notes.append(f"{problem.as_posix()}: a link, not bundled")
        count = write_checksums(work)
        if out.exists():
            out.rmdir()
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return BundleReport(out=out, stamp=stamp, files=count, notes=notes)


def _untracked(root: Path) -> list[str]:
    """Files git does not ignore and does not track (a paper written after the last commit)."""
    proc = git(root, "ls-files", "-z", "--others", "--exclude-standard")
    return sorted(item for item in (proc.stdout.split("\0") if proc else []) if item)


def _bundle_readme(stamp: dict) -> str:
    commit = stamp["commit"] or "(none: see the notes in stamp.json)"
    return (
        "# Reproducibility bundle\n\n"
        f"Made by rstack {stamp['rstack_version']} at {stamp['created_at']} from commit "
        f"{commit}{' (with uncommitted changes: code.patch)' if stamp['dirty'] else ''}.\n\n"
        "- `code/`: the project's code at that commit\n"
        "- `plan/`: the experiment plan; `ledgers/`: the append-only ledgers\n"
        "- `results/<run_id>/`: the outputs of every run the analysis used\n"
        "- `analysis/`: figures, tables, numbers.tex and summary.json (see its README.md)\n"
        "- `paper/`: the paper sources and PDF, when present, with the meta-review (review.md, "
        "review-findings.json)\n"
        "- `environment/`: python, platform, installed packages, GPU\n"
        "- `stamp.json`: commit, dirty flag, ledger sha256, run ids\n"
        "- `checksums.sha256`: the sha256 of every other file\n\n"
        "Check it: `rstack bundle verify DIR` (or `sha256sum -c checksums.sha256` inside it).\n"
        "Re-run a run: copy code/ to a project with ledgers/experiments.jsonl as "
        "`.rstack/experiments.jsonl`, then `rstack reproduce RUN_ID`.\n"
    )


def verify_bundle(bundle: Path) -> VerifyReport:
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise BundleError(f"{bundle}: not a directory", hint="pass the bundle directory")
    report = VerifyReport(path=bundle, checked=0)

    def problem(kind: str, rel: str, message: str) -> None:
        report.problems.append({"kind": kind, "path": rel, "message": message})

    listing = bundle / CHECKSUMS
    if not listing.is_file():
        problem("missing", CHECKSUMS, "checksums.sha256 is missing: nothing can be verified")
        return report
    expected: dict[str, str] = {}
    try:
        text = listing.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        problem("malformed", CHECKSUMS, f"checksums.sha256 is not UTF-8 text ({exc.reason} at "
                f"byte {exc.start}): nothing can be verified")
        return report
    for lineno, line in enumerate(text.splitlines(), start=1):
        digest, sep, rel = line.partition("  ")
        if not sep or not _HEX64.fullmatch(digest) or not rel:
            problem("malformed", f"{CHECKSUMS}:{lineno}", f"not `<sha256>  <path>`: {line!r}")
            continue
        if not _safe_relative(rel):
            problem("malformed", f"{CHECKSUMS}:{lineno}",
                    f"{rel!r} is not a path inside the bundle (absolute or with ..)")
            continue
        expected[rel] = digest
    present = {p.as_posix(): p for p in _bundle_files(bundle)}
    for rel, digest in sorted(expected.items()):
        path = bundle / rel
        if rel not in present:
            problem("missing", rel, f"{rel}: listed in checksums.sha256 but missing")
            continue
        if path.is_symlink() or not path.is_file():
            problem("not-a-file", rel, f"{rel}: not a regular file")
            continue
        report.checked += 1
        actual = sha256_file(path)
        if actual != digest:
            problem("changed", rel, f"{rel}: sha256 {actual} but checksums.sha256 says {digest}")
    for rel in sorted(set(present) - set(expected)):
        problem("extra", rel, f"{rel}: not listed in checksums.sha256")
    _check_stamp(bundle, report, problem)
    return report


def _safe_relative(rel: str) -> bool:
    pure = PurePosixPath(rel)
    return not pure.is_absolute() and ".." not in pure.parts and "\\" not in rel and "\0" not in rel


def _check_stamp(bundle: Path, report: VerifyReport, problem) -> None:
    """stamp.json must agree with the files (the ledger's hash, one results dir per run id and no
    other), and every results/ file with the artifact hashes the bundled ledger recorded."""
    path = bundle / STAMP
    if not path.is_file():
        if STAMP not in {p["path"] for p in report.problems}:
            problem("missing", STAMP, "stamp.json is missing")
        return
    try:
        stamp = json.loads(path.read_bytes().decode("utf-8"))
    except ValueError as exc:
        problem("malformed", STAMP, f"stamp.json is not valid JSON ({exc})")
        return
    if not isinstance(stamp, dict):
        problem("malformed", STAMP, f"stamp.json must be a JSON object, got {type(stamp).__name__}")
        return
    run_ids = stamp.get("run_ids")
    if not isinstance(run_ids, list) or not all(
            isinstance(r, str) and r and _safe_relative(r) and "/" not in r for r in run_ids):
        problem("stamp", STAMP, "stamp.json: run_ids must be a list of run ids (no / or ..)")
        run_ids = []
    ledger_sha = stamp.get("ledger_sha256")
    if ledger_sha is not None and not (isinstance(ledger_sha, str) and _HEX64.fullmatch(ledger_sha)):
        problem("stamp", STAMP, "stamp.json: ledger_sha256 must be a sha256 hex digest or null")
        ledger_sha = None
    from .runners.base import LOG_FILE

    redacted = stamp.get("redacted") or []  # only logs may be redacted in a bundle
    if not isinstance(redacted, list) or not all(
            isinstance(r, str) and PurePosixPath(r).name == LOG_FILE for r in redacted):
        problem("stamp", STAMP, f"stamp.json: redacted may list only {LOG_FILE} files")
        redacted = []
    ledger = bundle / "ledgers" / "experiments.jsonl"
    if ledger_sha and ledger.is_file():
        if sha256_file(ledger) != ledger_sha:
            problem("stamp", "ledgers/experiments.jsonl",
                    "ledgers/experiments.jsonl does not match stamp.json's ledger_sha256")
    for run_id in run_ids:
        if not (bundle / "results" / run_id).is_dir():
            problem("stamp", f"results/{run_id}", f"results/{run_id}: run named in stamp.json "
                    "has no results directory")
    results = bundle / "results"
    present = sorted(p.name for p in results.iterdir()) if results.is_dir() else []
    for name in sorted(set(present) - set(run_ids)):
        problem("stamp", f"results/{name}", f"results/{name}: not a run named in stamp.json")
    if ledger.is_file():
        _check_artifacts(bundle, ledger, [r for r in run_ids if r in present], set(redacted),
                         problem)


def _ledger_artifacts(ledger: Path, run_ids: set[str]) -> dict[str, dict[str, str]]:
    """run_id -> {path inside its output dir: sha256} from the bundled ledger's records."""
    output_dirs: dict[str, str] = {}
    artifacts: dict[str, list] = {}
    with open(ledger, "rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("run_id") not in run_ids:
                continue
            if record.get("type") == "run.started" and isinstance(record.get("output_dir"), str):
                output_dirs[record["run_id"]] = record["output_dir"].rstrip("/")
            elif record.get("type") == "run.finished" and isinstance(record.get("artifacts"), list):
                artifacts[record["run_id"]] = record["artifacts"]
    out: dict[str, dict[str, str]] = {}
    for run_id, items in artifacts.items():
        base = output_dirs.get(run_id, f"results/{run_id}") + "/"
        out[run_id] = {item["path"][len(base):]: item.get("sha256") for item in items
                       if isinstance(item, dict) and isinstance(item.get("path"), str)
                       and item["path"].startswith(base)}
    return out


def _check_artifacts(bundle: Path, ledger: Path, run_ids: list[str], redacted: set[str],
                     problem) -> None:
    recorded = _ledger_artifacts(ledger, set(run_ids))
    for run_id in run_ids:
        if run_id not in recorded:
            problem("ledger", f"results/{run_id}",
                    f"results/{run_id}: the bundled ledger has no run.finished for this run")
            continue
        expected = recorded[run_id]
        base = bundle / "results" / run_id
        found = {p.relative_to(base).as_posix(): p for p in base.rglob("*")
                 if p.is_file() and not p.is_symlink()}
        for sub, file in sorted(found.items()):
            rel = f"results/{run_id}/{sub}"
            if rel in redacted:
                continue  # a log redacted on purpose (stamp.json lists it)
            if sub not in expected:
                problem("ledger", rel, f"{rel}: is not among the artifacts the bundled ledger "
                        "recorded for this run")
                continue
            actual = sha256_file(file)
            if actual != expected[sub]:
                problem("ledger", rel, f"{rel}: sha256 {actual} but the bundled ledger's "
                        f"run.finished artifacts say {expected[sub]}")
        for sub in sorted(set(expected) - set(found)):
            problem("ledger", f"results/{run_id}/{sub}", f"results/{run_id}/{sub}: recorded by "
                    "the bundled ledger but missing from the bundle")
