"""`rstack config ...`: known keys, validation, precedence, malformed files, atomic 600 writes."""

from __future__ import annotations

import os
import stat

import pytest

from rstack import config, paths


@pytest.fixture
def cfg_file(isolated_home):
    path = paths.config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_get_of_unset_key_prints_default(cli):
    result = cli("config", "get", "venue")
    assert result.exit_code == 0
    assert result.output == "arxiv\n"
    assert cli("config", "get", "max_cost_usd").output == "10\n"
    assert cli("config", "get", "proactive").output == "true\n"


def test_set_then_get_writes_mode_600_and_keeps_comments(cli, cfg_file):
    cfg_file.write_text("# my own note\nvenue: icml  # trailing note\n")
    result = cli("config", "set", "experiment_checkpoint", "5")
    assert result.exit_code == 0, result.output
    assert result.output == "experiment_checkpoint = 5\n"
    text = cfg_file.read_text()
    assert "# my own note" in text and "# trailing note" in text
    assert "experiment_checkpoint: 5" in text
    assert stat.S_IMODE(os.stat(cfg_file).st_mode) == 0o600
    assert cli("config", "get", "experiment_checkpoint").output == "5\n"
    assert cli("config", "get", "venue").output == "icml\n"


def test_unset_restores_default(cli, cfg_file):
    cli("config", "set", "venue", "neurips")
    assert cli("config", "unset", "venue").output == "venue unset (default: arxiv)\n"
    assert cli("config", "unset", "venue").output == "venue was not set (default: arxiv)\n"
    assert cli("config", "get", "venue").output == "arxiv\n"


def test_set_on_commented_defaults_file_keeps_the_comments(cli):
    assert config.init_file() is True
    before = paths.config_path().read_text()
    assert cli("config", "set", "telemetry", "anonymous").exit_code == 0
    after = paths.config_path().read_text()
    assert after.startswith(before.rstrip("\n"))
    assert after.rstrip().endswith("telemetry: anonymous")
    assert cli("config", "get", "telemetry").output == "anonymous\n"


def test_unknown_key_exits_1_naming_known_keys(cli):
    for args in (("get", "nope"), ("set", "nope", "1"), ("unset", "nope")):
        result = cli("config", *args)
        assert result.exit_code == 1
        assert "Error: unknown config key 'nope'. Known keys: arxiv_api_url, " in result.output
        assert "venue" in result.output
        assert "fix: rstack config list shows every key with its value and default" in result.output


@pytest.mark.parametrize("key,value,allowed", [
    ("venue", "foo", "one of arxiv, neurips, icml, iclr, acl"),
    ("experiment_checkpoint", "0", "an integer >= 1"),
    ("experiment_checkpoint", "x", "an integer >= 1"),
    ("max_cost_usd", "nan", "a number >= 0"),
    ("max_cost_usd", "-1", "a number >= 0"),
    ("proactive", "maybe", "true or false"),
    ("telemetry_url", "ftp://x", "an http(s) URL, or empty"),
])
def test_bad_value_exits_1_naming_allowed_values(cli, cfg_file, key, value, allowed):
    result = cli("config", "set", key, value)
    assert result.exit_code == 1
    assert result.output == (f"Error: invalid value {value!r} for {key}: expected {allowed}\n"
                             f"  fix: rstack config set {key} <{allowed}>\n")
    assert not cfg_file.exists()


@pytest.mark.parametrize("text,where,problem", [
    ("venue: icml\nproactive: true\n- x\n", ":3:1", "expected <block end>, but found '-'"),
    ("a: b: c\n", ":1:5", "mapping values are not allowed here"),
])
def test_malformed_yaml_reports_line_and_leaves_file_untouched(cli, cfg_file, text, where, problem):
    cfg_file.write_bytes(text.encode())
    for args in (("get", "venue"), ("set", "venue", "icml"), ("unset", "venue"), ("list",)):
        result = cli("config", *args)
        assert result.exit_code == 1, args
        assert result.output.startswith(
            f"Error: {cfg_file}{where}: malformed YAML ({problem}); the file was left untouched\n")
        assert cfg_file.read_bytes() == text.encode()


def test_invalid_value_in_file_names_file_and_line(cli, cfg_file):
    cfg_file.write_text("# note\nvenue: nope\n")
    result = cli("config", "get", "venue")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {cfg_file}:2: invalid value 'nope' for venue: expected one of arxiv, neurips, "
        "icml, iclr, acl\n  fix: rstack config set venue <value>  (or rstack config unset venue)\n")


def test_non_mapping_file_is_refused(cli, cfg_file):
    cfg_file.write_text("- a\n- b\n")
    result = cli("config", "get", "venue")
    assert result.exit_code == 1
    assert f"Error: {cfg_file}: expected a mapping of `key: value` lines, found CommentedSeq" \
        in result.output


def test_environment_overrides_file_and_bad_env_is_reported(cli, cfg_file, monkeypatch):
    cli("config", "set", "venue", "icml")
    monkeypatch.setenv("RSTACK_VENUE", "acl")
    assert cli("config", "get", "venue").output == "acl\n"
    monkeypatch.setenv("RSTACK_VENUE", "bad")
    result = cli("config", "get", "venue")
    assert result.exit_code == 1
    assert result.output == (
        "Error: environment RSTACK_VENUE='bad': invalid value 'bad' for venue: expected one of "
        "arxiv, neurips, icml, iclr, acl\n"
        "  fix: unset RSTACK_VENUE or give it one of arxiv, neurips, icml, iclr, acl\n")


def test_list_shows_sources_and_json_shape(cli, cfg_file, monkeypatch):
    cfg_file.write_text("venue: iclr\nmystery: 1\n")
    monkeypatch.setenv("RSTACK_PROACTIVE", "false")
    result = cli("config", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert any(line.split() == ["venue", "iclr", "(file)"] for line in lines)
    assert any(line.split() == ["proactive", "false", "(env)"] for line in lines)
    assert any(line.split() == ["compute_preferred", "auto"] for line in lines)
    assert f"warning: {cfg_file}: unknown key 'mystery' is ignored" in result.stderr
    data = __import__("json").loads(cli("config", "list", "--json").stdout)
    assert data["path"] == str(cfg_file)
    assert data["unknown_keys"] == ["mystery"]
    by_key = {row["key"]: row for row in data["keys"]}
    assert set(by_key) == set(config.KEYS)
    assert by_key["venue"] == {"key": "venue", "value": "iclr", "source": "file",
                               "default": "arxiv", "type": "enum",
                               "allowed": "one of arxiv, neurips, icml, iclr, acl",
                               "env": "RSTACK_VENUE"}


def test_path_prints_config_location(cli):
    assert cli("config", "path").output == f"{paths.config_path()}\n"


def test_list_key_round_trips(cli, cfg_file):
    assert cli("config", "set", "ssh_hosts", "gpu1, user@gpu2:2222,,").exit_code == 0
    assert cli("config", "get", "ssh_hosts").output == "gpu1,user@gpu2:2222\n"
    assert config.get("ssh_hosts") == ["gpu1", "user@gpu2:2222"]


def test_default_file_mentions_every_key_commented(isolated_home):
    assert config.init_file() is True
    text = paths.config_path().read_text()
    for name in config.KEYS:
        assert f"\n# {name}: " in text
    # All commented: it parses to nothing, so every default applies.
    assert config.ConfigFile.load().data == {}
    assert config.init_file() is False


@pytest.mark.parametrize("raw,shown", [("1234.5678", "1234.5678"), ("10", "10"), ("0.5", "0.5"),
                                       ("1e7", "10000000")])
def test_float_values_print_exactly(cli, cfg_file, raw, shown):
    assert cli("config", "set", "max_cost_usd", raw).output == f"max_cost_usd = {shown}\n"
    assert cli("config", "get", "max_cost_usd").output == f"{shown}\n"


# -- issue 18: hostile config files (items 15, 18, 22) ------------------------------------------


def test_a_config_symlinked_elsewhere_is_refused_and_never_echoed(cli, cfg_file, tmp_path):
    target = tmp_path / "shadow"
    target.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\ndaemon: SECRETLINE\n")
    cfg_file.symlink_to(target)
    for args in (("config", "get", "venue"), ("config", "list"), ("config", "set", "venue", "icml")):
        result = cli(*args)
        assert result.exit_code == 1, args
        assert "is a symbolic link" in result.output
        assert "SECRET" not in result.output
    assert target.read_text().startswith("root:")  # never written through


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfev\x00e\x00n\x00u\x00e\x00", "is UTF-16 text; save it as UTF-8"),
    (b"venue: icml\n\x00\x01\x02binary", "holds NUL bytes"),
    (b"venue: \xe9cml\n", "not UTF-8 text"),
    (b"a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n", "YAML anchors"),
    (b"venue: {nested: mapping}\n", "invalid value"),
    (b"ssh_config: [a, list]\n", "expected a string"),
    (b"max_cost_usd: null\n", "invalid value"),
    (b"max_retries: " + b"9" * 400 + b"\n", "invalid value"),
    (b"max_cost_usd: " + b"9" * 400 + b"\n", "invalid value"),
    (b"ssh_hosts: [{a: b}]\n", "expected a string"),
])
def test_malformed_config_files_get_a_clear_message(cli, cfg_file, content, message):
    cfg_file.write_bytes(content)
    result = cli("config", "list")
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert "SECRET" not in result.output


def test_a_config_that_is_a_fifo_or_huge_is_refused_without_hanging(cli, cfg_file):
    os.mkfifo(cfg_file)
    result = cli("config", "get", "venue")
    assert result.exit_code == 1 and "is a FIFO (named pipe), not a regular file" in result.output
    cfg_file.unlink()
    cfg_file.write_bytes(b"# " + b"x" * (config.MAX_CONFIG_BYTES + 1) + b"\n")
    result = cli("config", "get", "venue")
    assert result.exit_code == 1 and "over the" in result.output and "limit" in result.output


def test_concurrent_config_set_loses_no_update(cfg_file):
    """issue 18 item 22: 8 processes each set their own key 20 times; none is lost."""
    import subprocess
    import sys

    keys = ["experiment_checkpoint", "max_retries", "vastai_disk_gb", "lit_max_retries",
            "ssh_remote_dir", "ssh_python", "vastai_image", "ssh_config"]
    script = ("import sys\nfrom rstack import config\n"
              "for i in range(1, 21):\n"
              "    config.set_value(sys.argv[1], str(i))\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, key]) for key in keys]
    assert all(proc.wait(timeout=120) == 0 for proc in procs)
    cfg = config.ConfigFile.load()
    assert {key: str(cfg.raw(key)) for key in keys} == {key: "20" for key in keys}
