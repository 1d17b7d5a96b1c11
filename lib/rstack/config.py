"""User configuration: one table of known keys, a commented YAML file, environment overrides.

Precedence: `RSTACK_<KEY>` in the environment, then `$RSTACK_HOME/config.yaml`, then the default.
Secrets (API keys, tokens) are never config keys: they come from the environment or a provider's
own auth store. Writes are atomic (temp file + rename), keep the user's comments, and leave mode 600.
"""

from __future__ import annotations

import fcntl
import io
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from . import atomic, paths, safeio
from .errors import ConfigError
from .paper.venues import VENUES
from .runners import PROFILES
from .tex import LATEX_ENGINES

MAX_CONFIG_BYTES = 256 * 1024  # a config is a few dozen lines; a bigger file is not one
_MAX_INT = 2 ** 63
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _short(raw: Any, limit: int = 60) -> str:
    """A value as shown in a message: repr, cut short (a 400-digit number is not echoed whole)."""
    try:
        text = repr(raw)
    except ValueError:  # an int too long for repr
        return "(a number too long to show)"
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True)
class Key:
    """One known configuration key: its type, the values it accepts and its default."""

    name: str
    kind: str  # enum | int | float | bool | url | str | list
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    # Optional extra check on the parsed value; returns an error text or None.
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)

    @property
    def env_var(self) -> str:
        return "RSTACK_" + self.name.upper()

    def describe_allowed(self) -> str:
        if self.kind == "enum":
            return "one of " + ", ".join(self.choices)
        if self.kind == "int":
            return f"an integer >= {self.minimum:g}" if self.minimum is not None else "an integer"
        if self.kind == "float":
            return f"a number >= {self.minimum:g}" if self.minimum is not None else "a number"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "url":
            return "an http(s) URL, or empty"
        if self.kind == "list":
            return "a comma-separated list"
        return "a string"

    def parse(self, raw: Any) -> Any:
        """Turn a raw value (a CLI/env string or a YAML scalar) into this key's type.

        Raises ValueError with the allowed values; callers add where the value came from.
        """
        value = self._parse(raw)
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ValueError(problem)
        return value

    def _parse(self, raw: Any) -> Any:
        if isinstance(raw, (dict, list, tuple)) and self.kind != "list":
            shape = "a mapping" if isinstance(raw, dict) else "a list"
            raise ValueError(f"invalid value for {self.name}: expected {self.describe_allowed()}, "
                             f"got {shape}")
        bad = ValueError(f"invalid value {_short(raw)} for {self.name}: expected "
                         f"{self.describe_allowed()}")
        if self.kind == "enum":
            text = str(raw).strip()
            if text not in self.choices:
                raise bad
            return text
        if self.kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise bad
        if self.kind == "int":
            if isinstance(raw, bool):
                raise bad
            try:
                value = int(str(raw).strip())
            except ValueError:
                raise bad from None
            if (self.minimum is not None and value < self.minimum) or abs(value) >= _MAX_INT:
                raise bad
            return value
        if self.kind == "float":
            if isinstance(raw, bool):
                raise bad
            try:
                value = float(str(raw).strip())
            except ValueError:
                raise bad from None
            if not math.isfinite(value) or (self.minimum is not None and value < self.minimum):
                raise bad
            return value
        if self.kind == "url":
            text = "" if raw is None else str(raw).strip()
            if text == "":
                return ""
            parsed = urlparse(text)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise bad
            return text.rstrip("/") if parsed.path not in ("", "/") else text
        if self.kind == "list":
            if raw is None:
                return []
            if isinstance(raw, (list, tuple)):
                if not all(isinstance(item, (str, int, float)) and not isinstance(item, bool)
                           for item in raw):
                    raise ValueError(f"invalid value for {self.name}: expected a string for "
                                     "each item of the list")
                items = [str(item).strip() for item in raw]
            else:
                items = [part.strip() for part in str(raw).split(",")]
            return [item for item in items if item]
        if self.kind == "str":
            return "" if raw is None else str(raw)
        raise AssertionError(f"unknown key kind {self.kind!r}")

    def format(self, value: Any) -> str:
        """The value as `config get` prints it and `config set` accepts it back."""
        if self.kind == "bool":
            return "true" if value else "false"
        if self.kind == "list":
            return ",".join(value)
        if self.kind == "float":
            # Shortest exact form (10, 0.5, 1234.5678): `:g` would round to 6 digits.
            return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else repr(value)
        return str(value)

    def to_yaml(self, value: Any) -> Any:
        if self.kind == "list":
            return ",".join(value)
        return value


KEYS: dict[str, Key] = {}


def _check_lit_sources(value: list) -> str | None:
    from .literature.papers import SOURCES  # the literature concern owns the vocabulary

    unknown = [item for item in value if item not in SOURCES]
    if unknown or not value:
        return (f"lit_sources: {', '.join(unknown) or 'an empty list'} is not a list of sources; "
                f"use some of {', '.join(SOURCES)}")
    return None


# The one table of known keys. Later concerns add their rows here, so `config list`, the
# commented defaults and the environment overrides always see every key.
for _key in (
    Key("compute_preferred", "enum", "auto",
        "Where runs go: auto = modal when authenticated, else local.",
        choices=("auto", *PROFILES)),
    Key("venue", "enum", "arxiv", "Default paper venue template.",
        choices=VENUES),
    Key("experiment_checkpoint", "int", 3,
        "Ask the human to review after this many runs in /experiment.", minimum=1),
    Key("proactive", "bool", True, "Skills suggest the next phase without being asked."),
    Key("telemetry", "enum", "off", "Usage telemetry tier.",
        choices=("off", "anonymous", "community")),
    Key("telemetry_url", "url", "", "Where `rstack telemetry sync` POSTs events (empty: never)."),
    Key("max_cost_usd", "float", 10.0, "Spending cap for paid compute, in USD.", minimum=0),
    Key("latex_engine", "enum", "auto", "LaTeX engine: auto tries tectonic, latexmk, pdflatex.",
        choices=("auto", *LATEX_ENGINES)),
    Key("s2_api_url", "url", "https://api.semanticscholar.org/graph/v1",
        "Semantic Scholar Graph API base URL."),
    Key("arxiv_api_url", "url", "https://export.arxiv.org/api/query", "arXiv API query endpoint."),
    Key("s2_min_interval_s", "float", 1.0, "Minimum seconds between Semantic Scholar requests.",
        minimum=0),
    Key("arxiv_min_interval_s", "float", 3.0, "Minimum seconds between arXiv requests.", minimum=0),
    Key("lit_cache_ttl_s", "float", 7 * 24 * 3600.0,
        "Seconds a cached literature API response stays fresh (.rstack/cache/lit/).", minimum=0),
    Key("lit_timeout_s", "float", 30.0, "Timeout in seconds for each literature API request.",
        minimum=0.01),
    Key("lit_max_retries", "int", 4,
        "Retries of a literature API request after 429/5xx/timeouts (then it gives up).", minimum=0),
    Key("lit_backoff_s", "float", 2.0,
        "Base of the exponential backoff between literature API retries, in seconds.", minimum=0),
    Key("lit_retry_after_max_s", "float", 60.0,
        "Longest Retry-After wait honoured between literature API retries (longer ones are cut).",
        minimum=0),
    Key("openalex_api_url", "url", "https://api.openalex.org", "OpenAlex API base URL."),
    Key("crossref_api_url", "url", "https://api.crossref.org", "Crossref REST API base URL."),
    Key("openalex_min_interval_s", "float", 0.2, "Minimum seconds between OpenAlex requests.",
        minimum=0),
    Key("crossref_min_interval_s", "float", 0.5, "Minimum seconds between Crossref requests.",
        minimum=0),
    Key("lit_mailto", "str", "",
        "Contact e-mail sent to OpenAlex and Crossref as `mailto` (their polite pools); empty: none."),
    Key("lit_sources", "list", ["s2", "arxiv", "openalex"],
        "Sources `rstack lit search --source all` asks (s2, arxiv, openalex, crossref); "
        "verify --resolve and lit import look ids up in all four.",
        check=lambda value: _check_lit_sources(value)),
    Key("lit_coverage_min_score", "float", 0.08,
        "rstack lit coverage: TF-IDF cosine to the idea at which a paper counts as on-topic.",
        minimum=0),
    Key("lit_coverage_min_papers", "int", 3,
        "rstack lit coverage: on-topic papers lit-review.md must cite, else the review is thin.",
        minimum=1),
    Key("ssh_hosts", "list", [], "SSH hosts for the ssh profile (aliases or user@host:port)."),
    Key("ledger_fsync", "bool", True, "fsync each ledger append (durable across power loss)."),
    Key("reproduce_rtol", "float", 1e-6,
        "rstack reproduce: largest relative difference per metric that still counts as the same.",
        minimum=0),
    Key("modal_gpu_prices", "list", [],
        "Overrides of Modal's per-GPU USD/hour table (GPU=PRICE,...); see rstack/costs.py."),
    Key("vastai_max_dph", "float", 1.0,
        "Highest Vast.ai offer price searched, USD/hour; also the cost estimate per hour.", minimum=0),
    Key("max_retries", "int", 2, "Automatic retries per run (each applies a minimal fix).",
        minimum=0),
    Key("ssh_config", "str", "", "ssh client config file passed as `ssh -F` (empty: ssh's own)."),
    Key("ssh_sync", "enum", "auto", "How code reaches an ssh host: auto = rsync when both ends "
        "have it, else tar over ssh.", choices=("auto", "rsync", "tar")),
    Key("ssh_remote_dir", "str", "~/.rstack-remote",
        "Where ssh runs live on the remote host (runs/<run_id>, envs/<key>)."),
    Key("ssh_python", "str", "python3", "The remote interpreter that builds the run's venv."),
    Key("ssh_poll_s", "float", 2.0, "Seconds between polls of a remote run.", minimum=0.05),
    Key("ssh_lost_after_s", "float", 600.0,
        "A remote host silent this long (reconnects failing) is declared lost.", minimum=1),
    Key("ssh_timeout_grace_s", "float", 120.0,
        "A remote run still going this long past its timeout is killed by the local monitor.",
        minimum=0),
    Key("vastai_disk_gb", "int", 40, "Disk size of a rented Vast.ai instance, GB.", minimum=1),
    Key("vastai_image", "str", "pytorch/pytorch:latest", "Docker image for Vast.ai instances."),
    Key("vastai_start_timeout_s", "float", 600.0,
        "How long a new Vast.ai instance may take to reach `running`.", minimum=1),
    Key("vastai_poll_s", "float", 5.0, "Seconds between Vast.ai status polls.", minimum=0.05),
    Key("env_allow", "list", [], "Environment variables (names or patterns like WANDB_*) that "
        "training scripts may see although the secret policy would remove them."),
    Key("slurm_host", "str", "",
        "The slurm profile's login node, reached over ssh (empty: sbatch runs on this machine)."),
    Key("slurm_partition", "str", "", "sbatch --partition (empty: the cluster's default).",
        check=lambda v: _slurm_name_problem("slurm_partition", v)),
    Key("slurm_account", "str", "", "sbatch --account (empty: your default account).",
        check=lambda v: _slurm_name_problem("slurm_account", v)),
    Key("slurm_qos", "str", "", "sbatch --qos (empty: the default QOS).",
        check=lambda v: _slurm_name_problem("slurm_qos", v)),
    Key("slurm_time", "str", "",
        "sbatch --time (D-HH:MM:SS, HH:MM:SS, MM:SS or minutes); empty: the run's timeout + "
        "ssh_timeout_grace_s.",
        check=lambda v: _parse_problem(_slurm_script().parse_slurm_time, v)),
    Key("slurm_gres", "list", [],
        "GPU type -> sbatch --gres, GPU=GRES,... (e.g. A100=gpu:a100:1); a plan GPU needs a row.",
        check=lambda v: _parse_problem(_slurm_script().parse_gres_map, v)),
    Key("slurm_extra", "str", "",
        "Extra #SBATCH options, separated by ';' (e.g. --constraint=a100;--exclusive).",
        check=lambda v: _parse_problem(_slurm_script().parse_extra, v)),
    Key("slurm_remote_dir", "str", "~/.rstack-slurm",
        "Where slurm runs live on the cluster's shared filesystem (runs/, jobs/, envs/)."),
    Key("slurm_python", "str", "python3", "The cluster's interpreter that builds the run's venv."),
    Key("slurm_poll_s", "float", 5.0, "Seconds between squeue/sacct polls of a slurm run.",
        minimum=0.05),
    Key("max_gpu_hours", "float", 0.0,
        "The slurm allocation cap in GPU-hours (requested time x GPUs before submit, sacct after); "
        "0 = no cap.", minimum=0),
):
    KEYS[_key.name] = _key


def _slurm_name_problem(key: str, value: str) -> str | None:
    # It becomes an `#SBATCH --KEY=VALUE` line: a space or newline would change the batch script.
    if value and not re.fullmatch(r"[A-Za-z0-9_.,:+-]+", value):
        return f"{key} {value!r} may hold only letters, digits and _ . , : + -"
    return None


def _slurm_script():
    from .runners import slurm_script  # imported when a slurm key is checked, not with config

    return slurm_script


def _parse_problem(parse: Callable[[Any], Any], value: Any) -> str | None:
    """What the parser that reads the value at launch says is wrong with it (its ValueError)."""
    try:
        parse(value)
    except ValueError as exc:
        return str(exc)
    return None


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def known_key(name: str) -> Key:
    try:
        return KEYS[name]
    except KeyError:
        raise ConfigError(
            f"unknown config key {name!r}. Known keys: {', '.join(sorted(KEYS))}",
            hint="rstack config list shows every key with its value and default",
        ) from None


class ConfigFile:
    """The parsed `config.yaml` (comments kept). Missing file = empty mapping."""

    def __init__(self, path: Path, data: CommentedMap, exists: bool, header: str = ""):
        self.path = path
        self.data = data
        self.exists = exists
        # A file of comments only parses to None; keep its text so a first `set` does not drop it.
        self.header = header

    @classmethod
    def load(cls, path: Path | None = None) -> "ConfigFile":
        path = Path(path) if path else paths.config_path()
        try:
            text = safeio.decode_text(path, safeio.read_regular(path, max_bytes=MAX_CONFIG_BYTES))
        except FileNotFoundError:
            return cls(path, CommentedMap(), exists=False)
        except safeio.UnsafeInput as exc:
            raise ConfigError(f"{exc}; the file was left untouched",
                              hint=f"move {path} aside and re-run ./setup (or `rstack config set "
                                   "KEY VALUE`) to write a fresh config") from None
        alias = safeio.yaml_alias_line(text)
        if alias is not None:
            raise ConfigError(f"{path}:{alias}: YAML anchors and aliases (&name, *name) are not "
                              "allowed in the config; the file was left untouched",
                              hint=f"write each value out in full on line {alias} of {path}")
        try:
            data = _yaml().load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            problem = exc.problem or exc.context or "malformed YAML"
            raise ConfigError(
                f"{where}: malformed YAML ({problem}); the file was left untouched",
                hint=f"edit line {mark.line + 1 if mark else '?'} of {path}, or move the file aside "
                     "and re-run ./setup to write fresh defaults",
            ) from None
        except (YAMLError, RecursionError, ValueError) as exc:
            # Never echo the content: the message names the error's type only.
            raise ConfigError(f"{path}: malformed YAML ({type(exc).__name__}); the file was left "
                              "untouched",
                              hint=f"fix {path} by hand or move it aside") from None
        if data is None:
            return cls(path, CommentedMap(), exists=True, header=text)
        if not isinstance(data, CommentedMap):
            raise ConfigError(
                f"{path}: expected a mapping of `key: value` lines, found {type(data).__name__}",
                hint=f"rewrite {path} as `key: value` lines (rstack config list shows the keys)",
            )
        return cls(path, data, exists=True)

    def line_of(self, name: str) -> int | None:
        try:
            return self.data.lc.key(name)[0] + 1
        except (KeyError, AttributeError, TypeError):
            return None

    def raw(self, name: str) -> Any:
        return self.data.get(name)

    def has(self, name: str) -> bool:
        return name in self.data

    def typed(self, key: Key) -> Any:
        raw = self.data[key.name]
        try:
            return key.parse(raw)
        except ValueError as exc:
            line = self.line_of(key.name)
            where = f"{self.path}:{line}" if line else str(self.path)
            raise ConfigError(
                f"{where}: {exc}",
                hint=f"rstack config set {key.name} <value>  (or rstack config unset {key.name})",
            ) from None

    def unknown_keys(self) -> list[str]:
        return [str(name) for name in self.data if name not in KEYS]

    def save(self) -> None:
        """Atomic write: temp file in the same directory, fsync, rename; mode 600."""
        buf = io.StringIO()
        if self.header:
            buf.write(self.header if self.header.endswith("\n") else self.header + "\n")
        if self.data:
            _yaml().dump(self.data, buf)
        atomic.write_text(self.path, buf.getvalue(), mode=0o600, fsync=True)
        self.exists = True
        if self.data:
            # Comments now belong to the mapping ruamel wrote; do not repeat them on the next save.
            self.header = ""
            reloaded = ConfigFile.load(self.path)
            self.data = reloaded.data


@dataclass(frozen=True)
class Resolved:
    key: Key
    value: Any
    source: str  # env | file | default

    def as_json(self) -> dict:
        return {
            "key": self.key.name,
            "value": self.value,
            "source": self.source,
            "default": self.key.default,
            "type": self.key.kind,
            "allowed": self.key.describe_allowed(),
            "env": self.key.env_var,
        }


# The config file is read once per process while it is unchanged (same size, mtime and inode).
_READ_CACHE: dict[Path, tuple[tuple, ConfigFile]] = {}


def _current_file() -> ConfigFile:
    """The user's config file for reading, parsed once while it stays the same file."""
    path = paths.config_path()
    try:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        return ConfigFile.load(path)
    cached = _READ_CACHE.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    cfg = ConfigFile.load(path)
    _READ_CACHE[path] = (stamp, cfg)
    return cfg


def resolve(name: str, cfg: ConfigFile | None = None) -> Resolved:
    key = known_key(name)
    env = os.environ.get(key.env_var)
    if env is not None:
        try:
            return Resolved(key, key.parse(env), "env")
        except ValueError as exc:
            raise ConfigError(f"environment {key.env_var}={env!r}: {exc}",
                              hint=f"unset {key.env_var} or give it {key.describe_allowed()}") from None
    cfg = cfg if cfg is not None else _current_file()
    if cfg.has(name):
        return Resolved(key, cfg.typed(key), "file")
    return Resolved(key, key.default, "default")


def get(name: str, cfg: ConfigFile | None = None) -> Any:
    """The effective, typed value of a key (env, then file, then default)."""
    return resolve(name, cfg).value


def resolve_all(cfg: ConfigFile | None = None) -> list[Resolved]:
    cfg = cfg if cfg is not None else _current_file()
    return [resolve(name, cfg) for name in sorted(KEYS)]


@contextmanager
def _write_lock(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of one config file across processes (a sidecar lock file, as
    the ledgers do: the config itself is replaced by rename on every save)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot lock {path} for writing ({exc.strerror})",
                          hint=f"make {path.parent} writable") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def set_value(name: str, raw: str, path: Path | None = None) -> Any:
    key = known_key(name)
    try:
        value = key.parse(raw)
    except ValueError as exc:
        raise ConfigError(str(exc), hint=f"rstack config set {name} <{key.describe_allowed()}>") from None
    path = Path(path) if path else paths.config_path()
    with _write_lock(path):
        cfg = ConfigFile.load(path)
        cfg.data[name] = key.to_yaml(value)
        cfg.save()
    return value


def unset(name: str, path: Path | None = None) -> bool:
    """Remove a key from the file (its default applies again). Returns whether it was set."""
    known_key(name)
    path = Path(path) if path else paths.config_path()
    with _write_lock(path):
        cfg = ConfigFile.load(path)
        if name not in cfg.data:
            return False
        del cfg.data[name]
        cfg.save()
    return True


def default_file_text() -> str:
    """The commented config.yaml that ./setup writes: every key commented out at its default."""
    lines = [
        "# RStack configuration. Uncomment a line to change it, or use `rstack config set KEY VALUE`.",
        "# Every key can be overridden for one command by RSTACK_<KEY> in the environment.",
        "# Secrets (API keys, tokens) never go here: they come from the environment.",
        "",
    ]
    for name in sorted(KEYS):
        key = KEYS[name]
        lines.append(f"# {key.help} Allowed: {key.describe_allowed()}.")
        default = key.format(key.default)
        lines.append(f"# {name}: {default}" if default != "" else f"# {name}: ''")
        lines.append("")
    return "\n".join(lines)


def init_file(path: Path | None = None) -> bool:
    """Write the commented defaults when no config exists. Returns True when it wrote one."""
    path = Path(path) if path else paths.config_path()
    if path.exists():
        ConfigFile.load(path)  # still validate: a broken file should be reported at setup
        return False
    atomic.write_text(path, default_file_text(), mode=0o600, fsync=True)
    return True
