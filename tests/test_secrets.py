"""The one secret policy (rstack.secrets): which environment names and values are secrets, what
`redact` removes, and that every writer (ledger, telemetry, preflight, the local runner, bundles)
uses it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rstack import secrets
from rstack.ledger import Ledger

# Names the hostile test found passing the old name-only preflight filter (issue 18 item 10).
LEAKED_NAMES = ("DB_PASS", "REDIS_PASS", "MYSQL_PWD", "NPM_AUTH", "GL_PAT", "BEARER",
                "DOCKER_AUTH_CONFIG", "SENTRY_DSN", "SLACK_WEBHOOK_URL", "GITHUB_TOKEN",
                "aws_secret_access_key", "MODAL_TOKEN_SECRET", "HF_TOKEN", "S2_API_KEY",
                "OPENAI_API_KEY", "MY_PASSWORD", "GOOGLE_CREDENTIALS", "SSH_AUTH_SOCK",
                "GITHUB_PAT", "APIKEY", "OAUTH_CLIENT")
ORDINARY_NAMES = ("PATH", "HOME", "PWD", "OLDPWD", "PYTHONPATH", "LANG", "OMP_NUM_THREADS",
                  "GIT_AUTHOR_NAME", "HF_HOME", "KEYBOARD_LAYOUT", "PATCH_LEVEL", "USER",
                  "CUDA_VISIBLE_DEVICES", "TMPDIR", "VIRTUAL_ENV")
# Values that are secrets whatever the variable is called.
SECRET_VALUES = {
    "PIP_INDEX_URL": "https://alice:s3cretpw@pypi.example.org/simple",
    "HTTPS_PROXY": "http://proxyuser:proxypw@proxy.example:3128",
    "MLFLOW_TRACKING_URI": "https://ml:mlpass@mlflow.example",
    "WHATEVER": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "CI_THING": "glpat-abcdefghij1234567890",
    "HUB": "hf_abcdefghijklmnopqrstuvwxyz012345",
    "OPENAI": "sk-proj-abcdefghijklmnop1234",
    "SLACKY": "xoxb-1234567890-abcdefghij",
    "AWSID": "AKIAABCDEFGHIJKLMNOP",
    "HOOK": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",
    "DISCORD": "https://discord.com/api/webhooks/123456/abcdefABCDEF",
    # A password-only userinfo (Redis's form) and connection strings with a key or password.
    "REDIS_URL": "redis://:hunter2pass@localhost:6379/0",
    "AZ_STORAGE": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFyYmF6cXV4MTIz==;",
    "SQL_CONN": "Server=db;User Id=sa;Password=Sup3rS3cret;",
}


@pytest.mark.parametrize("name", LEAKED_NAMES)
def test_secret_names(name):
    assert secrets.is_secret_name(name)


@pytest.mark.parametrize("name", ORDINARY_NAMES)
def test_ordinary_names_are_not_secret(name):
    assert not secrets.is_secret_name(name)


@pytest.mark.parametrize("name", sorted(SECRET_VALUES))
def test_secret_values_are_found_whatever_the_name(name):
    assert secrets.is_secret_value(SECRET_VALUES[name])
    assert name not in secrets.scrub_env({name: SECRET_VALUES[name]})


def test_scrub_env_keeps_ordinary_and_allowed_names():
    env = {"PATH": "/bin", "HF_HOME": "/data/hf", "DB_PASS": "pw", "WANDB_API_KEY": "w" * 40,
           "PIP_INDEX_URL": SECRET_VALUES["PIP_INDEX_URL"], "PWD": "/proj"}
    assert secrets.scrub_env(env) == {"PATH": "/bin", "HF_HOME": "/data/hf", "PWD": "/proj"}
    allowed = secrets.scrub_env(env, allow=["WANDB_*", "PIP_INDEX_URL"])
    assert allowed["WANDB_API_KEY"] == "w" * 40 and "PIP_INDEX_URL" in allowed
    assert "DB_PASS" not in allowed


@pytest.mark.parametrize("text, leaked", [
    ("hf_token hf_abcdefghijklmnopqrstuvwxyz012345 used", "hf_abcdefghij"),
    ("the api key sk-abcdefghijklmnopqrstuv was refused", "abcdefghijklmnop"),
    ("api key: Zm9vYmFyYmF6cXV4MTIzNDU2", "Zm9vYmFyYmF6"),
    ("DB_PASS=hunter2hunter2 in env", "hunter2"),
    ("mysql -uroot -phunter22 -h db", "hunter22"),
    ("posting to https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX failed", "XXXXXXXX"),
    ("auth with glpat-abcdefghij1234567890 failed", "glpat-abc"),
    ("the password is hunter2, please keep it", "hunter2"),
    ("connecting to postgres://app:p4ssw0rd@db:5432/x", "p4ssw0rd"),
    ("Authorization: Bearer abc.def.ghi", "abc.def"),
    ("SENTRY_DSN=https://abc123@o1.ingest.sentry.io/1", "abc123"),
    ("xoxp-1234567890-abcdefghij", "xoxp-1234"),
    ("key AKIAABCDEFGHIJKLMNOP", "AKIAABCD"),
    ('{"token": "tok_99"}', "tok_99"),
    ("broker redis://:hunter2pass@localhost:6379/0 refused", "hunter2pass"),
    ("AccountName=a;AccountKey=Zm9vYmFyYmF6cXV4MTIz==;", "Zm9vYmFy"),
])
def test_redact_removes_secrets(text, leaked):
    out = secrets.redact(text)
    assert leaked not in out, out
    assert secrets.REDACTED in out


@pytest.mark.parametrize("text", [
    "CUDA out of memory at step 12 (lr=0.001)",
    "epoch 3 val_loss=0.25 key=val_loss",
    "sha256 " + "ab" * 32,
    "see https://example.org/path?x=1 and user@example.org",
    "Traceback (most recent call last): KeyError: 'password'",
])
def test_redact_keeps_ordinary_text(text):
    assert secrets.redact(text) == text


def test_redact_removes_the_values_of_secret_environment_variables(monkeypatch):
    monkeypatch.setenv("MY_DB_PASSWORD", "correct-horse-battery")
    assert secrets.redact("login with correct-horse-battery ok") == "login with [REDACTED] ok"


def test_ledger_records_are_redacted_on_append(tmp_path):
    ledger = Ledger(tmp_path, "experiments", fsync=False)
    ledger.append({"type": "note", "text": "crash: DB_PASS=hunter2hunter2 and ghp_abcdefghijklmnopqrstuvwxyz0123"})
    raw = ledger.path.read_text()
    assert "hunter2" not in raw and "ghp_" not in raw and "[REDACTED]" in raw


def test_script_env_gives_scripts_only_what_the_policy_allows(monkeypatch):
    monkeypatch.setenv("DB_PASS", "hunter2hunter2")
    monkeypatch.setenv("WANDB_API_KEY", "w" * 40)
    monkeypatch.setenv("PIP_INDEX_URL", SECRET_VALUES["PIP_INDEX_URL"])
    monkeypatch.setenv("RSTACK_ENV_ALLOW", "WANDB_API_KEY")
    env = secrets.script_env({"RSTACK_OUTPUT_DIR": "/o"})
    assert "DB_PASS" not in env and "PIP_INDEX_URL" not in env
    assert env["WANDB_API_KEY"] == "w" * 40 and env["RSTACK_OUTPUT_DIR"] == "/o"
    assert env["PATH"]


def test_preflight_env_uses_the_policy():
    from rstack.preflight import contained_env

    env = contained_env({"PATH": "/bin", "DB_PASS": "x", "SENTRY_DSN": "https://a@b/1",
                         "HTTPS_PROXY": "http://u:p@proxy:1"}, output_dir="/o", tmp_dir="/t")
    assert set(env) >= {"PATH"} and not {"DB_PASS", "SENTRY_DSN", "HTTPS_PROXY"} & set(env)


def test_telemetry_uses_the_shared_redactor():
    from rstack import telemetry

    for text, leaked in [("hf_token hf_abcdefghijklmnopqrstuvwxyz012345", "hf_abc"),
                         ("DB_PASS=hunter2hunter2", "hunter2"), ("-phunter22", "hunter22"),
                         ("glpat-abcdefghij1234567890", "glpat"),
                         ("the password is hunter2", "hunter2"),
                         ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX", "XXXX")]:
        assert leaked not in telemetry.sanitize(text), text


@pytest.mark.parametrize("text", ["python train.py -pretrained", "ssh -p8080 host", "-p 22"])
def test_dash_p_flags_that_are_not_passwords_stay(text):
    assert secrets.redact(text) == text
