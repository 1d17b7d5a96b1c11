"""The one secret policy: which environment variables and which strings are secrets.

`scrub_env` decides what a script may see (preflight, `rstack run`, reproduce); `redact` is applied
to everything written to a ledger, a record's log tail, a bundle and telemetry. Nothing else in
rstack keeps its own list of secret names or patterns. This module never logs or returns a secret.
"""

from __future__ import annotations

import fnmatch
import os
import re
from typing import Any, Iterable, Mapping

REDACTED = "[REDACTED]"

# -- names -------------------------------------------------------------------------------------

# A word anywhere in the name (DB_PASSWORD, GITHUB_TOKEN, SLACK_WEBHOOK_URL).
_NAME_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "WEBHOOK",
               "BEARER", "APIKEY", "API_KEY", "ACCESS_KEY", "SESSION_KEY")
# Short words only as a whole `_`-separated part, or a part's ending (DB_PASS, MYSQL_PWD, GL_PAT,
# NPM_AUTH, SENTRY_DSN, OAUTH): as substrings they would match PATH, GIT_AUTHOR_NAME, KEYBOARD.
_NAME_PARTS = ("KEY", "PASS", "PWD", "PAT", "AUTH", "DSN", "COOKIE", "SIGNATURE")
_NAME_PART_ENDINGS = ("KEY", "PASS", "PWD", "AUTH", "TOKEN")
# Providers whose every variable is a credential or locates one.
_NAME_PREFIXES = ("AWS_", "MODAL_", "VAST_", "VASTAI_", "WANDB_API", "OPENAI_", "ANTHROPIC_",
                  "GH_", "GITHUB_", "GOOGLE_APPLICATION_", "AZURE_", "HUGGING_FACE_HUB_TOKEN")
_NAMES = frozenset({"NETRC", "PGPASSWORD", "DATABASE_URL", "GIT_ASKPASS", "SSH_ASKPASS",
                    "SSH_AUTH_SOCK", "S2_API_KEY", "HF_TOKEN", "DOCKER_AUTH_CONFIG"})
# Well-known names that match a part above but hold no secret (the shell's working directories).
_NOT_SECRET = frozenset({"PWD", "OLDPWD"})


def is_secret_name(name: str) -> bool:
    """True for an environment variable name that holds (or points at) a credential."""
    upper = name.upper()
    if upper in _NOT_SECRET:
        return False
    if upper in _NAMES or upper.startswith(_NAME_PREFIXES) or any(w in upper for w in _NAME_WORDS):
        return True
    parts = [part for part in re.split(r"[^A-Z0-9]+", upper) if part]
    return any(part in _NAME_PARTS or part.endswith(_NAME_PART_ENDINGS) for part in parts)


# -- values ------------------------------------------------------------------------------------

# Strings that are credentials wherever they appear. Specific shapes first.
_TOKEN_SHAPES = [
    re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]+"),
    re.compile(r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[A-Za-z0-9/_-]+"),
    re.compile(r"https://[A-Za-z0-9.-]*webhook\.office\.com/[^\s\"'<>]+"),
    re.compile(r"\bgh[opsur]_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bglpat-[A-Za-z0-9_-]{16,}"),  # GitLab personal access tokens
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),  # Hugging Face
    re.compile(r"\b(?:sk|pk|rk|ak|as)-[A-Za-z0-9_-]{12,}"),  # OpenAI/Anthropic/Stripe/Modal style
    re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"),  # Google API keys
    re.compile(r"\bnpm_[A-Za-z0-9]{30,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*"),  # JWTs
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
]
# user:password@ (and token@ for DSNs) in a URL: keep the scheme and host, drop the userinfo.
# The user may be empty: redis://:password@host is Redis's own form.
_URL_USERINFO = re.compile(r"(?<=://)(?:[^/\s:@\"'<>]+(?::[^/\s@\"'<>]*)?|:[^/\s@\"'<>]+)@"
                           r"(?=[^\s/@\"'<>]+)")
_URL_WITH_PASSWORD = re.compile(r"://[^/\s:@\"'<>]*:[^/\s@\"'<>]+@")
# A password or key inside a connection string (`Server=db;Password=...`, Azure's `AccountKey=`).
_CONNECTION_SECRET = re.compile(r"(?i)(?:^|;)\s*(?:password|pwd|account[ _]?key|"
                                r"shared[ _]?access[ _]?key)\s*=\s*[^;\s]")
# Secret words followed by their value: `api_key=...`, `token: ...`, `DB_PASS=...`,
# `Authorization: Bearer ...`, `hf_token hf_...`, `the password is ...`.
# The core word may carry a prefix (DB_, hf_) and a separator-led suffix (_url), never bare
# letters after it: "author", "tokens" and "my_path" are not secret words.
_SECRET_WORD = (r"[\w.-]*(?:api[_ -]?key|access[_ -]?key|account[_ -]?key|token|secret|passw(?:or)?d|passwd|pwd|"
                r"credentials?|auth|authorization|bearer|_pass|_pat|dsn|webhook|cookie)"
                r"(?:[_.-][\w.-]*)?(?![A-Za-z0-9])")
_ASSIGNMENT = re.compile(
    rf"(?i)(\b{_SECRET_WORD}[\"']?\s*[:=]\s*(?:bearer\s+|basic\s+|token\s+)?)"
    r"(\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)")
# "the password is hunter2": only for the password family (a "token is important" is prose).
_PASSWORD_IS = re.compile(r"(?i)(\b(?:passw(?:or)?d|passphrase|pwd)\s+(?:is|was)\s*:?\s+)"
                          r"(\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)")
# `api key Zm9v...`: a secret word, a space, then a long token mixing letters and digits (so
# prose such as "secret sharing 2PC-protocols" stays).
_WORD_THEN_TOKEN = re.compile(
    rf"(?i)(\b{_SECRET_WORD}\s+)(?=[A-Za-z0-9._~+/=-]*\d)(?=[A-Za-z0-9._~+/=-]*[A-Za-z])"
    r"([A-Za-z0-9._~+/=-]{16,})")
_BEARER = re.compile(r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]{6,})")
# `mysql -pSECRET` / `-p SECRET` after a client that takes a password that way.
_DASH_P = re.compile(r"(\b(?:mysql|mysqldump|mysqladmin|mariadb)\b[^\n]*?\s-p)(?!\s)(\S+)")
# Elsewhere only a value mixing letters with digits or symbols (`-phunter22`), so flags such as
# `-pretrained` or ports such as `-p8080` stay.
_DASH_P_ANY = re.compile(r"(?<![\w-])(-p)(?=[^\s]*[A-Za-z])(?=[^\s]*[0-9!#$%^&*+~])"
                         r"([A-Za-z0-9!#$%^&*_+.~-]{6,})(?=\s|$)")
# Long opaque strings (letters and digits mixed, 32+): for telemetry only (hashes look like this).
_OPAQUE = re.compile(r"\b(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[A-Za-z])[A-Za-z0-9+/_-]{32,}={0,2}")
_MIN_ENV_SECRET = 8  # shorter environment values are too likely to occur in ordinary text


def is_secret_value(value: str) -> bool:
    """True when a value is a credential whatever its variable is called (a token's shape, a URL
    with a password, a webhook URL)."""
    if _URL_WITH_PASSWORD.search(value) or _CONNECTION_SECRET.search(value):
        return True
    return any(pattern.search(value) for pattern in _TOKEN_SHAPES)


def _env_secret_values(env: Mapping[str, str]) -> list[str]:
    values = {value for name, value in env.items()
              if is_secret_name(name) and len(value) >= _MIN_ENV_SECRET
              and not value.startswith("/") and not any(c.isspace() for c in value)}
    return sorted(values, key=len, reverse=True)


def redact(text: str, *, env: Mapping[str, str] | None = None, opaque: bool = False,
           _env_values: list[str] | None = None) -> str:
    """`text` with every credential-shaped string replaced by [REDACTED].

    Also removes the literal values of this process's secret environment variables (a script that
    prints $DB_PASS is caught even when the value has no telling shape). `opaque` also removes long
    mixed letter-digit strings (telemetry), which would destroy hashes elsewhere.
    """
    if not text:
        return text
    values = _env_values if _env_values is not None else _env_secret_values(
        os.environ if env is None else env)
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern in _TOKEN_SHAPES:
        text = pattern.sub(REDACTED, text)
    text = _URL_USERINFO.sub(REDACTED + "@", text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _ASSIGNMENT.sub(_keep_redacted(1, 2), text)
    text = _PASSWORD_IS.sub(_keep_redacted(1, 2), text)
    text = _WORD_THEN_TOKEN.sub(_keep_redacted(1, 2), text)
    text = _DASH_P.sub(lambda m: m.group(1) + REDACTED, text)
    text = _DASH_P_ANY.sub(_dash_p, text)
    if opaque:
        text = _OPAQUE.sub(REDACTED, text)
    return text


def _keep_redacted(prefix: int, value: int):
    def sub(match: re.Match) -> str:
        if REDACTED in match.group(value):
            return match.group(0)
        return match.group(prefix) + REDACTED
    return sub


def _dash_p(match: re.Match) -> str:
    value = match.group(2)
    # `-p` followed by a number is usually a port or a count (`-p8080`); a password mixes.
    if value.isdigit() or value == REDACTED:
        return match.group(0)
    return match.group(1) + REDACTED


def redact_value(value: Any, _env_values: list[str] | None = None) -> Any:
    """A JSON value with every string inside it redacted (keys kept)."""
    if _env_values is None:  # the environment is scanned once per record, not once per string
        _env_values = _env_secret_values(os.environ)
    if isinstance(value, str):
        return redact(value, _env_values=_env_values)
    if isinstance(value, dict):
        return {key: redact_value(item, _env_values) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_value(item, _env_values) for item in value]
    return value


# -- environments ------------------------------------------------------------------------------


def _allowed(name: str, allow: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in allow)


def scrub_env(env: Mapping[str, str], allow: Iterable[str] = ()) -> dict[str, str]:
    """The variables of `env` a script may see: none whose name or value is a secret, except the
    names `allow` lets through (exact names or shell patterns such as `WANDB_*`)."""
    allow = tuple(allow)
    return {name: value for name, value in env.items()
            if _allowed(name, allow) or not (is_secret_name(name) or is_secret_value(value))}


def configured_allow() -> list[str]:
    """The `env_allow` setting: names (or patterns) a project's scripts may see despite the policy."""
    from . import config  # local: reading YAML is not needed to redact

    return list(config.get("env_allow"))


def script_env(extra: Mapping[str, str] | None = None, *, base: Mapping[str, str] | None = None,
               allow: Iterable[str] | None = None) -> dict[str, str]:
    """The environment a training script starts with: `base` (default: this process's) scrubbed by
    the policy and `env_allow`, then `extra` (rstack's own variables) on top."""
    env = scrub_env(os.environ if base is None else base,
                    configured_allow() if allow is None else allow)
    env.update(extra or {})
    return env


__all__ = ["REDACTED", "configured_allow", "is_secret_name", "is_secret_value", "redact",
           "redact_value", "script_env", "scrub_env"]
