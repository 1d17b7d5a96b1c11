"""What may leave the project (rstack.outbound): the credential deny list and .gitignore, applied
to every copy that goes elsewhere (SSH/Vast.ai code shipping, bundles)."""

from __future__ import annotations

import io
import subprocess
import tarfile

import pytest

from rstack import outbound

CREDENTIAL_FILES = (".env", ".env.local", ".aws/credentials", ".netrc", "id_rsa", "id_ed25519.pub",
                    "keys/server.pem", ".ssh/config", "sub/.git-credentials", ".modal.toml",
                    "service-account-prod.json", ".pypirc")
ORDINARY_FILES = ("train.py", "requirements.txt", ".env.example", "data/keys.csv", "README.md",
                  "env_setup.sh", "tokenizer.json")


@pytest.mark.parametrize("rel", CREDENTIAL_FILES)
def test_credential_files_are_denied(rel):
    assert outbound.is_denied(rel)


@pytest.mark.parametrize("rel", ORDINARY_FILES)
def test_ordinary_files_are_not_denied(rel):
    assert not outbound.is_denied(rel)


def _plant(root):
    for rel in CREDENTIAL_FILES + ORDINARY_FILES + ("data/big.bin", "logs/run.log", "out.tmp"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("AKIAABCDEFGHIJKLMNOP\n" if rel in CREDENTIAL_FILES else "x\n")
    (root / ".gitignore").write_text("# build output\ndata/big.bin\nlogs/\n*.tmp\n")


def _names(root, files):
    return sorted(p.relative_to(root).as_posix() for p in files)


EXPECTED = sorted({".gitignore", *ORDINARY_FILES})


def test_project_files_outside_git_honour_gitignore_and_deny_list(tmp_path):
    _plant(tmp_path)
    notes = []
    assert _names(tmp_path, outbound.project_files(tmp_path, notes=notes)) == EXPECTED
    assert any(".aws/" in note for note in notes) and any("id_rsa" in note for note in notes)


def test_project_files_in_git_use_gits_own_ignore_rules(tmp_path):
    _plant(tmp_path)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    assert _names(tmp_path, outbound.project_files(tmp_path)) == EXPECTED


def test_a_link_out_of_the_project_is_not_copied(tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_text("secret")
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text("x")
    (root / "creds.txt").symlink_to(secret)
    assert _names(root, outbound.project_files(root)) == ["train.py"]


def test_ssh_code_shipping_leaves_credentials_home(tmp_path):
    from rstack.runners.ssh import code_tarball

    _plant(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(code_tarball(tmp_path))) as tar:
        shipped = sorted(name for name in tar.getnames() if not name.startswith(".rstack-run"))
    assert shipped == EXPECTED
