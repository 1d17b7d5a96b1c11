"""What runs on the far side (Modal's function body, the ssh/slurm agent) imports only the
standard library, psutil and lib/: each entry point runs here in a subprocess whose sys.path holds
exactly that, the way a bare container or a cluster node sees it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
AGENT = LIB / "rstack" / "runners" / "ssh_agent.py"


@pytest.fixture
def stripped_path(tmp_path) -> list[str]:
    """stdlib + a copy of psutil alone + lib/ (site-packages would bring ruamel, jsonlines...)."""
    only_psutil = tmp_path / "psutil-only"
    shutil.copytree(Path(psutil.__file__).parent, only_psutil / "psutil")
    # The interpreter's own path with -I -S is the standard library (zip, lib, lib-dynload) alone.
    stdlib = json.loads(subprocess.run([sys.executable, "-I", "-S", "-c",
                                        "import json, sys; print(json.dumps(sys.path))"],
                                       capture_output=True, text=True, check=True).stdout)
    stdlib = [p for p in stdlib if p and "-packages" not in p]
    return stdlib + [str(only_psutil), str(LIB)]


def run_stripped(code: str, path: list[str], cwd: Path) -> subprocess.CompletedProcess:
    prelude = f"import sys; sys.path[:] = {path!r}\n"
    # -I: no user site, no PYTHON* variables; -S: no site-packages at all.
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + textwrap.dedent(code)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_stripped_path_really_lacks_the_packages(stripped_path, tmp_path):
    result = run_stripped("import ruamel.yaml", stripped_path, tmp_path)
    assert result.returncode != 0 and "No module named 'ruamel'" in result.stderr


def test_modal_function_body_imports_and_runs_in_a_bare_container(stripped_path, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(
        "import json, os, sys\n"
        "out = sys.argv[sys.argv.index('--output-dir') + 1]\n"
        "os.makedirs(out, exist_ok=True)\n"
        "json.dump({'val_loss': 0.5}, open(os.path.join(out, 'metrics.json'), 'w'))\n")
    payload = {"run_id": "r1", "command": ["python", "train.py", "--output-dir", "results/r1"],
               "output_dir": "results/r1", "timeout_s": 60, "seed": 0, "quiet": True,
               "project_dir": str(project), "results_dir": str(tmp_path / "volume"),
               "commit_volume": False}
    result = run_stripped(f"""
        import json
        from rstack.runners.modal_app import run_one
        print(json.dumps(run_one({payload!r})))
        leaked = sorted(m for m in sys.modules if m.split('.')[0] in
                        ('ruamel', 'jsonlines', 'click', 'modal', 'requests', 'numpy'))
        print(json.dumps(leaked))
        """, stripped_path, tmp_path)
    assert result.returncode == 0, result.stderr
    outcome, leaked = (json.loads(line) for line in result.stdout.strip().splitlines()[-2:])
    assert outcome["exit_code"] == 0 and outcome["reason"] is None
    assert [entry["path"] for entry in outcome["manifest"]] == ["results/r1/metrics.json",
                                                                "results/r1/stdout.log"]
    assert leaked == []


def test_the_ssh_and_slurm_agent_runs_with_the_standard_library_only(stripped_path, tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".rstack-run").mkdir(parents=True)
    shutil.copy(AGENT, run_dir / ".rstack-run" / "agent.py")
    result = subprocess.run(
        [sys.executable, "-I", "-S", ".rstack-run/agent.py", "--python", sys.executable,
         "--output-dir", "results/r1", "--timeout", "60", "--", "python", "-c",
         "import os; open(os.path.join(os.environ['RSTACK_OUTPUT_DIR'], 'x.txt'), 'w').write('1')"],
        cwd=run_dir, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    exit_info = json.loads((run_dir / ".rstack-run" / "exit.json").read_text())
    assert exit_info["exit_code"] == 0 and exit_info["reason"] is None
    manifest = json.loads((run_dir / ".rstack-run" / "manifest.json").read_text())
    assert {entry["path"] for entry in manifest} == {"results/r1/x.txt", "results/r1/stdout.log"}


@pytest.mark.parametrize("module", ["rstack.runners.base", "rstack.runners.slurm_script",
                                    "rstack.runners.modal_app"])
def test_remote_side_modules_import_without_third_party_packages(module, stripped_path, tmp_path):
    result = run_stripped(f"import {module}", stripped_path, tmp_path)
    assert result.returncode == 0, result.stderr
