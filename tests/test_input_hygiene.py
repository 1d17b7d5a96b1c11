"""Loose names and numbers at the CLI's edge (issue 18 items 23, 24): each is refused with a clear
message before anything is created."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rstack import paths
from rstack.contract import ContractError, validate_metrics_file
from rstack.plan import valid_arm_name

FAKE_TRAIN = Path(__file__).parent / "data" / "runs" / "fake_train.py"


@pytest.mark.parametrize("value", ["nan", "inf", "NaN"])
def test_timeout_nan_is_a_usage_error_and_leaves_nothing(project, cli, value):
    shutil.copy(FAKE_TRAIN, project / "train.py")
    result = cli("run", "--name", "x", "--timeout", value, "--", "python", "train.py")
    assert result.exit_code == 2 and "is not a finite number" in result.output
    assert not (project / ".rstack").exists() and not (project / "results").exists()


@pytest.mark.parametrize("name", ["../../etc", "sgd\n", "a\nb", "a/b", ".hidden", "", "x" * 65])
def test_adhoc_names_that_are_not_arm_names_are_refused(project, cli, name):
    shutil.copy(FAKE_TRAIN, project / "train.py")
    result = cli("run", "--name", name, "--", "python", "train.py")
    assert result.exit_code == 1 and "--name" in result.output
    assert not (project / "results").exists()
    assert not paths.ledger_path(project, "experiments").exists()


def test_arm_names_match_whole_strings():
    assert valid_arm_name("sgd") and valid_arm_name("lr-0.1_b")
    assert not valid_arm_name("sgd\n") and not valid_arm_name("sgd\r") and not valid_arm_name(None)


def test_repeated_seeds_are_a_usage_error(project, cli):
    result = cli("run", "--seeds", "0,0", "--dry-run")
    assert result.exit_code == 2 and "seeds repeat (0,0)" in result.output


def test_project_that_does_not_exist_is_a_usage_error(cli, tmp_path):
    missing = tmp_path / "typo"
    for args in (("status",), ("log", "check", "experiments"), ("runs", "list")):
        result = cli(*args, "--project", missing)
        assert result.exit_code == 2, (args, result.output)
        assert "does not exist (create it first: mkdir -p" in result.output
    assert not missing.exists()
    afile = tmp_path / "file"
    afile.write_text("x")
    assert "is not a directory" in cli("status", "--project", afile).output


def test_metrics_json_with_a_repeated_key_is_invalid(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"val_loss": 0.1, "val_loss": 0.9}')
    with pytest.raises(ContractError) as info:
        validate_metrics_file(path)
    assert info.value.category == "metrics-invalid" and "appears twice" in info.value.message


def test_metrics_json_that_is_a_link_is_never_read(tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRETHASH:19000\n")
    path = tmp_path / "metrics.json"
    path.symlink_to(secret)
    with pytest.raises(ContractError) as info:
        validate_metrics_file(path)
    assert "symbolic link" in info.value.message and "SECRET" not in info.value.message
    assert info.value.category == "metrics-invalid"


def test_an_existing_path_that_is_not_a_file_is_not_called_missing(project, cli):
    """issue 18 item 23: "no such file" for an existing directory."""
    (project / "paper.tex").mkdir()
    (project / "train.py").mkdir()
    build = cli("paper", "build")
    assert build.exit_code == 1 and "is a directory, not a regular file" in build.output
    assert "no such file" not in build.output
    pre = cli("preflight", "train.py")
    assert pre.exit_code == 2 and "is a directory" in pre.output and "no such" not in pre.output
    verify = cli("lit", "verify")
    assert "is a directory, not a regular file" in verify.output and "no such" not in verify.output
