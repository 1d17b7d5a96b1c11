"""LaTeX settled at set-up time (`rstack.texsetup`, `rstack dev setup-latex`, `./setup`'s step 6,
`rstack demo` without an engine, `compute-detect --venues`).

"No TeX" is a PATH that mirrors this machine's minus every TeX program; apt-get, sudo and brew are
stand-ins that record what they were asked (and, to simulate a successful install, link this
machine's real TeX programs into the stand-in folder). Nothing real is installed or removed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from rstack import texsetup
from rstack.texsetup import APT_PACKAGES, InstallPlan, install_plan
from tex_fixtures import path_without_tex, real_tex_links, stand_in

needs_latex = pytest.mark.skipif(not (shutil.which("latexmk") or shutil.which("pdflatex")),
                                 reason="no LaTeX engine on this machine (./setup installs one)")
APT_INSTALL = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES]
DEBIAN = {"ID": "debian", "VERSION_ID": "12"}


def _which(*present: str):
    return lambda name: f"/usr/bin/{name}" if name in present else None


# -- what to install where (pure decisions) -----------------------------------------------------

def test_debian_as_root_installs_tex_live_with_apt():
    plan = install_plan(system="Linux", os_release=DEBIAN, is_root=True, which=_which("apt-get"))
    assert (plan.kind, plan.commands) == ("apt", [["apt-get", "update", "-q"], APT_INSTALL])
    assert plan.env == {"DEBIAN_FRONTEND": "noninteractive"}


def test_ubuntu_with_passwordless_sudo_installs_through_sudo():
    plan = install_plan(system="Linux", os_release={"ID": "pop", "ID_LIKE": "ubuntu debian"},
                        is_root=False, which=_which("apt-get", "sudo"), sudo_ok=lambda: True)
    assert plan.kind == "apt"
    assert plan.commands == [["sudo", "-n", "apt-get", "update", "-q"],
                             ["sudo", "-n", "DEBIAN_FRONTEND=noninteractive", *APT_INSTALL]]


def test_debian_without_root_or_sudo_prints_the_commands():
    plan = install_plan(system="Linux", os_release=DEBIAN, is_root=False,
                        which=_which("apt-get", "sudo"), sudo_ok=lambda: False)
    assert (plan.kind, plan.why) == ("manual", "Debian/Ubuntu without root or passwordless sudo")
    assert plan.shell_lines() == ["sudo apt-get update",
                                  "sudo apt-get install -y " + " ".join(APT_PACKAGES)]


def test_macos_uses_homebrew_tectonic_or_says_to_get_homebrew():
    brew = install_plan(system="Darwin", os_release={}, is_root=False, which=_which("brew"))
    assert (brew.kind, brew.commands) == ("brew", [["brew", "install", "tectonic"]])
    none = install_plan(system="Darwin", os_release={}, is_root=False, which=_which())
    assert none.kind == "manual" and "https://brew.sh" in none.why


def test_other_systems_get_instructions_only():
    plan = install_plan(system="Linux", os_release={"ID": "fedora"}, is_root=True,
                        which=_which("dnf"))
    assert plan.kind == "manual"
    assert "sudo dnf install texlive-scheme-medium latexmk" in plan.why
    assert "fetches its support bundle from the network on first use" in plan.why


def test_os_release_parsing(tmp_path):
    path = tmp_path / "os-release"
    path.write_text('PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nID_LIKE=debian\n')
    assert texsetup.read_os_release(path)["ID"] == "ubuntu"
    assert texsetup.is_debian_like(texsetup.read_os_release(path))
    assert texsetup.read_os_release(tmp_path / "missing") == {}


def test_passwordless_sudo_asks_sudo_non_interactively(tmp_path):
    log = tmp_path / "calls.log"
    bindir = tmp_path / "bin"
    stand_in(bindir, "sudo", log)
    assert texsetup.passwordless_sudo(lambda name: str(bindir / name) if name == "sudo" else None)
    assert log.read_text() == "sudo -n true\n"
    (bindir / "sudo").write_text("#!/bin/sh\nexit 1\n")
    assert not texsetup.passwordless_sudo(lambda name: str(bindir / name))
    assert not texsetup.passwordless_sudo(lambda name: None)


# -- settling on a machine without TeX ------------------------------------------------------------

@pytest.fixture
def no_tex(tmp_path, monkeypatch):
    """PATH without TeX (and without apt-get/sudo/brew); the venv's own bin/ hidden too."""
    path = path_without_tex(tmp_path, drop=("apt-get", "sudo", "brew"))
    monkeypatch.setenv("PATH", path)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "no-venv"))
    return Path(path)


def test_no_engine_is_found_when_no_tex_is_on_path(no_tex):
    checks = texsetup.check_engines()
    assert [(c.name, c.works, c.error) for c in checks] == [
        ("tectonic", False, "not installed"), ("latexmk", False, "not installed"),
        ("pdflatex", False, "not installed")]
    assert texsetup.working_engine(checks) is None


@needs_latex
def test_apt_install_is_run_and_the_engine_rechecked(no_tex, tmp_path):
    log = tmp_path / "apt.log"
    stand_in(no_tex, "apt-get", log, body=real_tex_links(no_tex))
    lines = []
    plan = InstallPlan("apt", [["apt-get", "update", "-q"], APT_INSTALL], "test",
                       {"DEBIAN_FRONTEND": "noninteractive"})
    outcome = texsetup.settle(plan=plan, echo=lines.append)
    assert log.read_text().splitlines() == ["apt-get update -q", " ".join(APT_INSTALL)]
    assert lines == ["setup: running apt-get update -q", "setup: running " + " ".join(APT_INSTALL)]
    assert (outcome.action, outcome.engine) == ("installed", "latexmk")
    assert outcome.summary() == "LaTeX: installed with apt; latexmk compiles the test document"
    assert not texsetup.state_path().exists()  # no RSTACK_HOME yet: setup runs init-home first


def test_sudo_plan_runs_through_the_stand_in_sudo(no_tex, tmp_path):
    log = tmp_path / "sudo.log"
    stand_in(no_tex, "sudo", log)
    plan = InstallPlan("apt", [["sudo", "-n", "apt-get", "update", "-q"],
                               ["sudo", "-n", "DEBIAN_FRONTEND=noninteractive", *APT_INSTALL]], "t")
    outcome = texsetup.settle(plan=plan)
    assert log.read_text().splitlines() == [
        "sudo -n apt-get update -q", "sudo -n DEBIAN_FRONTEND=noninteractive " + " ".join(APT_INSTALL)]
    assert outcome.action == "failed"  # the stand-in installed nothing
    assert outcome.summary().startswith("LaTeX: install with apt did not give a working engine "
                                        "(the packages installed, but no engine compiles); tried "
                                        "tectonic: not installed; latexmk: not installed")


def test_a_failing_installer_is_reported_with_its_exit_code(no_tex, tmp_path):
    (no_tex / "apt-get").write_text("#!/bin/sh\necho 'E: Unable to locate package' >&2\nexit 100\n")
    (no_tex / "apt-get").chmod(0o755)
    plan = InstallPlan("apt", [["apt-get", "update", "-q"]], "test")
    outcome = texsetup.settle(plan=plan)
    assert outcome.detail == "`apt-get update -q` exited 100: E: Unable to locate package"


def test_setup_latex_without_a_way_to_install_prints_the_commands(no_tex, cli, monkeypatch):
    monkeypatch.setattr(texsetup, "read_os_release", lambda: DEBIAN)
    monkeypatch.setattr(texsetup.platform, "system", lambda: "Linux")
    result = cli("dev", "setup-latex")
    assert result.exit_code == 1
    assert result.output == (
        "LaTeX: no working engine (tectonic: not installed; latexmk: not installed; pdflatex: not "
        "installed); papers will not build until you run: sudo apt-get update && sudo apt-get "
        "install -y " + " ".join(APT_PACKAGES) + "\n")
    payload = json.loads(cli("dev", "setup-latex", "--json").output)
    assert payload["action"] == "manual" and payload["engine"] is None
    assert payload["install"]["commands"] == ["sudo apt-get update",
                                              "sudo apt-get install -y " + " ".join(APT_PACKAGES)]


def test_setup_latex_no_install_never_runs_the_installer(no_tex, tmp_path, cli, monkeypatch):
    log = tmp_path / "apt.log"
    stand_in(no_tex, "apt-get", log)
    monkeypatch.setattr(texsetup, "this_machine_plan", lambda: InstallPlan(
        "apt", [["apt-get", "update", "-q"]], "test"))
    result = cli("dev", "setup-latex", "--no-install")
    assert result.exit_code == 1 and not log.exists()
    assert "papers will not build until you run: apt-get update -q" in result.output


@needs_latex
def test_setup_latex_finds_the_real_engine_and_remembers_it(cli):
    cli("dev", "init-home")
    result = cli("dev", "setup-latex")
    assert result.exit_code == 0
    assert result.output.startswith("LaTeX: ") and "compiles the test document" in result.output
    state = json.loads(texsetup.state_path().read_text())
    assert state["action"] == "found" and state["engine"] in ("latexmk", "pdflatex", "tectonic")
    assert state["venues"] is None


@needs_latex
def test_compute_detect_venues_reports_which_templates_compile(cli, project):
    cli("dev", "init-home")
    plain = json.loads(cli("compute-detect", "--json").output)
    assert plain["latex"]["settled"] is None
    report = json.loads(cli("compute-detect", "--venues", "--json").output)
    settled = report["latex"]["settled"]
    assert settled["venues"] == {"arxiv": None, "neurips": None, "icml": None, "iclr": None,
                                 "acl": None}
    line = [ln for ln in cli("compute-detect").output.splitlines() if ln.startswith("latex ")][0]
    assert line.endswith("templates compile: arxiv, neurips, icml, iclr, acl")


def test_compute_detect_without_tex_says_templates_not_checked(no_tex, cli, project):
    line = [ln for ln in cli("compute-detect").output.splitlines() if ln.startswith("latex ")][0]
    assert line == "latex      no working engine; templates: not checked (compute-detect --venues)"


# -- the demo without an engine -----------------------------------------------------------------

def test_demo_without_latex_runs_every_other_phase_and_exits_3(no_tex, tmp_path, cli, monkeypatch):
    monkeypatch.setattr(texsetup, "read_os_release", lambda: DEBIAN)
    monkeypatch.setattr(texsetup.platform, "system", lambda: "Linux")
    dest = tmp_path / "demo"
    result = cli("demo", dest)
    assert result.exit_code == 3, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("no working LaTeX engine (tectonic: not installed; latexmk: not "
                               "installed; pdflatex: not installed): running every phase but")
    assert [ln.split()[1] for ln in lines[1:9]] == ["project", "plan", "preflight", "runs",
                                                     "analyze", "paper", "paper", "bundle"]
    assert "SKIPPED (no LaTeX engine): paper.tex and paper.bib written, not compiled" in lines[6]
    assert lines[7].endswith("build check SKIPPED (no LaTeX engine)")
    assert lines[9].startswith(f"partial demo in ") and f"{dest.resolve()}/paper.tex written" in lines[9]
    assert lines[10] == ("fix: sudo apt-get update && sudo apt-get install -y "
                         + " ".join(APT_PACKAGES) + "  (Debian/Ubuntu, but apt-get is not on PATH)")
    assert lines[11] == (f"then: cd {dest.resolve()} && {REPO_ROOT}/bin/rstack paper build && "
                         f"{REPO_ROOT}/bin/rstack paper audit")
    assert (dest / "paper.tex").is_file() and not (dest / "paper.pdf").exists()
    assert (dest / "bundle" / "checksums.sha256").is_file()


def test_demo_json_without_latex_says_partial(no_tex, tmp_path, cli):
    result = cli("demo", tmp_path / "demo", "--json")
    assert result.exit_code == 3
    payload = json.loads(result.stdout)
    assert (payload["partial"], payload["pdf"]) == (True, None)
    assert payload["no_latex"].startswith("tectonic: not installed; latexmk: not installed")
    assert payload["fix"] and [p["phase"] for p in payload["phases"]][-1] == "bundle"


# -- ./setup in a fresh copy, as a new user runs it (slow: a venv and an install) ----------------

def _fresh_checkout(tmp_path: Path) -> Path:
    checkout = tmp_path / "rstack"
    shutil.copytree(REPO_ROOT, checkout, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", ".pytest_cache", "rstack-demo"))
    return checkout


def _env(tmp_path: Path, path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RSTACK_", "CLAUDE_SKILLS_DIR", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(HOME=str(tmp_path / "home"), PATH=path)
    return env


@pytest.mark.slow
@needs_latex
@pytest.mark.skipif(os.geteuid() != 0, reason="the root path of ./setup needs root")
def test_setup_as_root_installs_tex_with_apt_and_the_demo_builds_the_pdf(tmp_path):
    bindir = Path(path_without_tex(tmp_path, drop=("apt-get",)))
    log = tmp_path / "apt.log"
    stand_in(bindir, "apt-get", log, body=real_tex_links(bindir))
    checkout = _fresh_checkout(tmp_path)
    env = _env(tmp_path, str(bindir))
    done = subprocess.run(["bash", "-c", "./setup --no-tectonic && bin/rstack demo"], cwd=checkout,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert log.read_text().splitlines() == ["apt-get update -q", " ".join(APT_INSTALL)]
    assert "setup: LaTeX: installed with apt; latexmk compiles the test document\n" in done.stdout
    assert (checkout / "rstack-demo" / "paper.pdf").is_file()
    assert "[7/8] paper audit" in done.stdout and "clean:" in done.stdout


@pytest.mark.slow
def test_setup_with_no_way_to_install_continues_and_the_demo_is_partial(tmp_path):
    bindir = path_without_tex(tmp_path, drop=("apt-get", "sudo", "brew"))
    checkout = _fresh_checkout(tmp_path)
    env = _env(tmp_path, bindir)
    setup = subprocess.run(["./setup", "--no-tectonic"], cwd=checkout, env=env,
                           capture_output=True, text=True, timeout=900)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    [line] = [ln for ln in setup.stdout.splitlines() if ln.startswith("setup: LaTeX:")]
    assert line.startswith("setup: LaTeX: no working engine (tectonic: not installed; latexmk: not "
                           "installed; pdflatex: not installed); papers will not build until you run: ")
    demo = subprocess.run(["bin/rstack", "demo"], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=600)
    assert demo.returncode == 3, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "[6/8] paper build" in demo.stdout and "SKIPPED (no LaTeX engine)" in demo.stdout
    assert "\nfix: " in demo.stdout
    assert (checkout / "rstack-demo" / "paper.tex").is_file()
    assert not (checkout / "rstack-demo" / "paper.pdf").exists()


def test_setup_help_documents_no_latex():
    usage = subprocess.run([shutil.which("bash"), str(REPO_ROOT / "setup"), "--help"], capture_output=True,
                           text=True, env={"PATH": "/nonexistent"})
    assert "  --no-latex     skip step 6 (and tectonic): no LaTeX check, nothing installed" in usage.stdout
