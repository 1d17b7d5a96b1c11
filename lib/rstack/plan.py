"""The experiment plan (`experiment-plan.md`): its schema, its loader, and its compiled run matrix.

Analysis and paper code read plans only through `load_plan`. A plan that fails validation is
never half-used: every problem is reported at once, each as `FILE: section.key: problem`.
"""

from __future__ import annotations

import hashlib
import math
import os
import posixpath
import re
import secrets
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from . import safeio
from .errors import SchemaError
from .paper.venues import VENUES
from .runners import PROFILES  # noqa: F401  (the one list of profiles; plan.PROFILES re-exports it)

PLAN_FILENAME = "experiment-plan.md"
DIRECTIONS = ("minimize", "maximize")
PAIRINGS = ("seed", "none")
ARM_RETRY = ("refuse", "adjust")  # refuse: a retry that changes the arm's args is not made
ARM_KEYS = ("name", "args", "label", "aliases", "retry", "seeds")
METRIC_KEYS = ("direction", "min_effect", "label")
ACCEPT_KINDS = ("absolute", "relative")
DEFAULT_PROTECTED = {"method": "--method", "model": "--model", "dataset": "--dataset",
                     "seq_len": "--seq-len"}
# Flags the runner adds itself (the artifact contract); an arm must not set them.
CONTRACT_FLAGS = ("--output-dir", "--output_dir", "--seed", "--smoke-test", "--smoke_test")
MIN_SEEDS = 3
_ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def valid_arm_name(name: object) -> bool:
    """Letters, digits, _ . - (at most 64, not starting with . _ -). fullmatch, not `$`: `$` also
    matches before a trailing newline, which let "sgd\\n" through."""
    return isinstance(name, str) and _ARM_NAME.fullmatch(name) is not None

MAX_PLAN_BYTES = 1024 * 1024  # a plan is a page of YAML and prose
_MAX_NUMBER = 2 ** 63  # integers beyond 64 bits reach no reader intact (float() overflows)
SECTIONS: dict[str, tuple[str, ...]] = {
    "hypothesis": ("question", "claim", "expected_direction", "falsifiers", "baseline_arm",
                   "metrics"),  # metrics: old form, replaced by evaluation.metrics
    "data": ("sources", "schema", "transforms", "provenance", "size"),
    "execution": ("profile", "script", "arms", "seeds", "seeds_reason", "timeout_s", "gpu",
                  "max_cost_usd", "protected", "python", "args"),
    "evaluation": ("primary_metric", "direction", "accept", "baselines", "sanity_checks",
                   "metrics", "pairing", "checks"),
    "publication": ("venue", "claims"),
}
OPTIONAL_KEYS = {"execution.seeds_reason", "execution.gpu", "execution.max_cost_usd",
                 "execution.protected", "data.transforms", "evaluation.baselines",
                 "evaluation.sanity_checks", "execution.python", "execution.args",
                 "evaluation.metrics", "evaluation.pairing", "evaluation.checks",
                 "hypothesis.metrics", "evaluation.direction"}


class PlanError(SchemaError):
    """The plan file is missing, malformed, or fails its schema."""


@dataclass(frozen=True)
class Hypothesis:
    question: str
    claim: str
    expected_direction: str
    falsifiers: list[str]
    baseline_arm: str
    metrics: list[str]  # the declared metric names (evaluation.metrics, or the old list)


@dataclass(frozen=True)
class Data:
    sources: list[str]
    schema: str
    transforms: list[str]
    provenance: str
    size: str


@dataclass(frozen=True)
class MetricSpec:
    """One declared metric. `direction` None means not declared: never better or worse."""

    name: str
    direction: str | None
    min_effect: float | None = None
    min_effect_relative: bool = False  # min_effect is a fraction of the baseline mean ("2%")
    label: str | None = None

    @property
    def display(self) -> str:
        return self.label or self.name

    def as_json(self) -> dict:
        return {"name": self.name, "direction": self.direction, "min_effect": self.min_effect,
                "min_effect_relative": self.min_effect_relative, "label": self.label}


@dataclass(frozen=True)
class Arm:
    """One arm: its own args (appended after execution.args), display label, aliases the paper
    may use for it, and its retry policy (`adjust` lets a retry change the whole arm's args)."""

    name: str
    args: list[str]
    label: str | None = None
    aliases: list[str] = field(default_factory=list)
    retry: str = "refuse"
    seeds: list[int] | None = None  # None: execution.seeds

    @property
    def display(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Execution:
    profile: str
    script: str
    arms: dict[str, list[str]]  # arm name -> the arm's own args (without execution.args)
    seeds: list[int]
    seeds_reason: str | None
    timeout_s: float
    gpu: str | None
    max_cost_usd: float | None
    protected: dict[str, str]
    python: str | None = None  # interpreter of the runs; None: rstack's own (local) / python
    args: list[str] = field(default_factory=list)  # shared by every arm, before the arm's args
    arm_specs: dict[str, Arm] = field(default_factory=dict)


@dataclass(frozen=True)
class Accept:
    kind: str
    threshold: float


@dataclass(frozen=True)
class Evaluation:
    primary_metric: str
    direction: str  # the primary metric's declared direction
    accept: Accept
    baselines: list[str]
    sanity_checks: list[str]  # old free text; not executed (evaluation.checks is)
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    pairing: str = "seed"
    checks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Publication:
    venue: str
    claims: list[str]


@dataclass(frozen=True)
class Plan:
    """A validated plan. `raw` is the front matter as plain dicts/lists; `sha256` is the file's."""

    path: Path
    raw: dict
    sha256: str
    body: str
    hypothesis: Hypothesis
    data: Data
    execution: Execution
    evaluation: Evaluation
    publication: Publication
    warnings: tuple[str, ...] = ()  # loadable, but say what to change (old forms, no direction)

    # Shortcuts for the fields most callers want.
    @property
    def arms(self) -> dict[str, list[str]]:
        return self.execution.arms

    @property
    def seeds(self) -> list[int]:
        return self.execution.seeds

    @property
    def profile(self) -> str:
        return self.execution.profile

    @property
    def script(self) -> str:
        return self.execution.script

    @property
    def primary_metric(self) -> str:
        return self.evaluation.primary_metric

    @property
    def direction(self) -> str:
        return self.evaluation.direction

    @property
    def metrics(self) -> dict[str, MetricSpec]:
        return self.evaluation.metrics

    @property
    def arm_specs(self) -> dict[str, Arm]:
        return self.execution.arm_specs

    @property
    def paired(self) -> bool:
        return self.evaluation.pairing == "seed"

    @property
    def checks(self) -> list[str]:
        return self.evaluation.checks

    def arm_args(self, arm: str) -> list[str]:
        """The args of one arm's runs: execution.args, then the arm's own."""
        return [*self.execution.args, *self.execution.arms[arm]]

    def arm_seeds(self, arm: str) -> list[int]:
        spec = self.execution.arm_specs.get(arm)
        return list(spec.seeds) if spec is not None and spec.seeds else list(self.execution.seeds)

    def metric(self, name: str) -> MetricSpec:
        """The declared spec, or an undeclared one (direction None) for a metric the plan omits."""
        return self.evaluation.metrics.get(name) or MetricSpec(name, None)

    @property
    def baseline_arm(self) -> str:
        return self.hypothesis.baseline_arm

    @property
    def protected(self) -> dict[str, str]:
        return self.execution.protected

    @property
    def venue(self) -> str:
        return self.publication.venue


def display_path(path: Path) -> str:
    """The path as a person would type it from the cwd (relative when inside it)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def split_front_matter(text: str, where: str) -> tuple[str, str, int]:
    """(yaml text, markdown body, line number of the first YAML line)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise PlanError(f"{where}: no YAML front matter (the file must start with a line `---`)",
                        hint=f"copy the commented example: cp {_template_hint()} {PLAN_FILENAME}")
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            return "".join(lines[1:index]), "".join(lines[index + 1:]), 2
    raise PlanError(f"{where}: the front matter is not closed (no second `---` line)",
                    hint="end the YAML block with a line holding only `---`")


def _template_hint() -> str:
    from . import paths
    return str(paths.templates_dir() / PLAN_FILENAME)


class _Checker:
    """Collects problems as `where: dotted.key: text (line N)` while reading typed values.

    The schema (sections, optional keys) is the plan's; program.md's checker swaps in its own."""

    sections: dict[str, tuple[str, ...]] = SECTIONS
    optional_keys: set[str] = OPTIONAL_KEYS
    optional_sections: frozenset[str] = frozenset()

    def __init__(self, where: str, first_line: int):
        self.where = where
        self.first_line = first_line
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def problem(self, key: str, text: str, node: Any = None, name: Any = None) -> None:
        line = self._line(node, name)
        suffix = f" (line {line})" if line else ""
        self.problems.append(f"{self.where}: {key}: {text}{suffix}")

    def warn(self, key: str, text: str, node: Any = None, name: Any = None) -> None:
        line = self._line(node, name)
        suffix = f" (line {line})" if line else ""
        self.warnings.append(f"{self.where}: {key}: {text}{suffix}")

    def _line(self, node: Any, name: Any) -> int | None:
        try:
            if isinstance(node, CommentedMap) and name is not None:
                return node.lc.key(name)[0] + self.first_line
            if isinstance(node, CommentedSeq) and name is not None:
                return node.lc.item(name)[0] + self.first_line
            if node is not None and hasattr(node, "lc"):
                return node.lc.line + self.first_line
        except (KeyError, AttributeError, TypeError, IndexError):
            return None
        return None

    def section(self, root: Any, name: str) -> dict:
        keys = self.sections[name]
        if name not in root:
            if name not in self.optional_sections:
                self.problem(name, f"missing section (keys: {', '.join(keys)})")
            return {}
        value = root[name]
        if not isinstance(value, dict):
            self.problem(name, f"must be a mapping of {', '.join(keys)}", root, name)
            return {}
        for key in value:
            if key not in keys:
                self.problem(f"{name}.{key}", f"unknown key; known keys: {', '.join(keys)}",
                             value, key)
        for key in keys:
            if key not in value and f"{name}.{key}" not in self.optional_keys:
                self.problem(f"{name}.{key}", "missing", root, name)
        return value

    def text(self, sec: dict, sec_name: str, key: str, *, optional: bool = False,
             allow_number: bool = False) -> str | None:
        value = sec.get(key)
        if value is None:
            if key in sec and f"{sec_name}.{key}" not in OPTIONAL_KEYS:
                self.problem(f"{sec_name}.{key}", "must be a non-empty string, got None", sec, key)
            return None
        if allow_number and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            self.problem(f"{sec_name}.{key}", f"must be a non-empty string, got {_show(value)}",
                         sec, key)
            return None
        return value.strip()

    def strings(self, sec: dict, sec_name: str, key: str, *, min_items: int = 0) -> list[str]:
        if key not in sec:
            return []
        value = sec[key]
        if value is None:
            value = []
        if not isinstance(value, list):
            self.problem(f"{sec_name}.{key}", f"must be a list of strings, got {_show(value)}",
                         sec, key)
            return []
        out = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.problem(f"{sec_name}.{key}[{index}]",
                             f"must be a non-empty string, got {_show(item)}", value, index)
            else:
                out.append(item.strip())
        if len(value) < min_items:
            self.problem(f"{sec_name}.{key}", f"needs at least {min_items} item(s), got {len(value)}",
                         sec, key)
        return out

    def choice(self, sec: dict, sec_name: str, key: str, choices: tuple[str, ...]) -> str | None:
        value = sec.get(key)
        if key not in sec:
            return None
        if value not in choices:
            self.problem(f"{sec_name}.{key}", f"must be one of {', '.join(choices)}, got {_show(value)}",
                         sec, key)
            return None
        return value

    def number(self, sec: dict, sec_name: str, key: str, *, minimum: float | None = None,
               positive: bool = False, nullable: bool = False) -> float | None:
        if key not in sec or (nullable and sec.get(key) is None):
            return None
        value = sec[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
            abs(value) < _MAX_NUMBER if isinstance(value, int) else math.isfinite(value))
        if ok and positive and value <= 0:
            ok = False
        if ok and minimum is not None and value < minimum:
            ok = False
        if not ok:
            want = ("a number > 0" if positive else f"a number >= {minimum:g}" if minimum is not None
                    else "a number")
            if nullable:
                want += " or null"
            self.problem(f"{sec_name}.{key}", f"must be {want}, got {_show(value)}", sec, key)
            return None
        return float(value)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        return "(a number too long to show)"
    return text if len(text) <= 60 else text[:60] + "…"


def _arg_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _check_execution(chk: _Checker, ex: dict) -> Execution:
    profile = chk.choice(ex, "execution", "profile", PROFILES)
    script = chk.text(ex, "execution", "script")
    # Normalised, so `./../x.py` and `results/../../x` are seen for what they are; a symlink
    # that leaves the project is refused where the script is hashed (runs.provenance).
    if script is not None and (os.path.isabs(script)
                               or posixpath.normpath(script.replace("\\", "/")).split("/")[0] == ".."):
        chk.problem("execution.script", f"must be a path inside the project, got {script!r}", ex,
                    "script")
    arm_specs = _check_arms(chk, ex)
    arms = {name: spec.args for name, spec in arm_specs.items()}
    shared: list[str] = []
    if ex.get("args") is not None:
        shared = _arg_list(chk, ex, "args", "execution.args") or []
    python = chk.text(ex, "execution", "python") if ex.get("python") is not None else None
    seeds: list[int] = []
    raw_seeds = ex.get("seeds")
    if "seeds" in ex:
        if (not isinstance(raw_seeds, list) or not raw_seeds
                or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2 ** 32
                       for s in raw_seeds)):
            chk.problem("execution.seeds", f"must be a non-empty list of integers >= 0, got "
                        f"{_show(raw_seeds)}", ex, "seeds")
        elif len(set(raw_seeds)) != len(raw_seeds):
            chk.problem("execution.seeds", f"seeds repeat: {list(raw_seeds)}", ex, "seeds")
        else:
            seeds = [int(s) for s in raw_seeds]
    seeds_reason = chk.text(ex, "execution", "seeds_reason") if "seeds_reason" in ex else None
    if seeds and len(seeds) < MIN_SEEDS and not seeds_reason:
        chk.problem("execution.seeds",
                    f"{len(seeds)} seed(s) is fewer than {MIN_SEEDS}; add seeds, or give "
                    "execution.seeds_reason saying why fewer are enough", ex, "seeds")
    timeout = chk.number(ex, "execution", "timeout_s", positive=True)
    gpu = ex.get("gpu")
    if gpu is not None and (not isinstance(gpu, str) or not gpu.strip()):
        chk.problem("execution.gpu", f"must be a GPU name or null, got {_show(gpu)}", ex, "gpu")
        gpu = None
    if profile == "vastai" and not gpu:
        chk.problem("execution.gpu", "the vastai profile needs a GPU name (e.g. RTX_4090)", ex,
                    "gpu" if "gpu" in ex else None)
    cap = chk.number(ex, "execution", "max_cost_usd", minimum=0, nullable=True)
    protected = dict(DEFAULT_PROTECTED)
    if ex.get("protected") is not None:
        raw_prot = ex["protected"]
        if not isinstance(raw_prot, dict):
            chk.problem("execution.protected", "must be a mapping KEY: --flag", ex, "protected")
        else:
            protected = {}
            for key, flag in raw_prot.items():
                if not isinstance(flag, str) or not flag.startswith("-"):
                    chk.problem(f"execution.protected.{key}",
                                f"must be the flag that carries it (e.g. --{key}), got {_show(flag)}",
                                raw_prot, key)
                else:
                    protected[str(key)] = flag
    for name, spec in arm_specs.items():
        if spec.seeds and len(spec.seeds) < MIN_SEEDS and not seeds_reason:
            chk.problem(f"execution.arms.{name}.seeds",
                        f"{len(spec.seeds)} seed(s) is fewer than {MIN_SEEDS}; add seeds, or give "
                        "execution.seeds_reason saying why fewer are enough", ex, "arms")
    return Execution(profile=profile or "", script=script or "", arms=arms, seeds=seeds,
                     seeds_reason=seeds_reason, timeout_s=timeout or 0.0,
                     gpu=gpu.strip() if isinstance(gpu, str) else None, max_cost_usd=cap,
                     protected=protected, python=python, args=shared, arm_specs=arm_specs)


ARMS_SHAPE = ("must be a non-empty mapping NAME: [extra args] (or NAME: {args: [...], label, "
              "aliases, retry}), or a list of {name, args, label, aliases, retry}")


def _arg_list(chk: _Checker, parent: Any, key: Any, where: str) -> list[str] | None:
    """A list of command-line arguments (strings or numbers), refusing the contract's flags."""
    args = parent[key]
    if args is None:
        return []
    if not isinstance(args, list):
        chk.problem(where, f"must be a list of arguments, got {_show(args)}", parent, key)
        return None
    texts = []
    for index, item in enumerate(args):
        text = _arg_text(item)
        if text is None:
            chk.problem(f"{where}[{index}]", f"must be a string or number, got {_show(item)}",
                        args, index)
            continue
        if text.split("=", 1)[0] in CONTRACT_FLAGS:
            chk.problem(f"{where}[{index}]",
                        f"{text.split('=', 1)[0]} is set by rstack run for every run "
                        "(the artifact contract); remove it from the arm", args, index)
            continue
        texts.append(text)
    return texts


def _check_arms(chk: _Checker, ex: dict) -> dict[str, Arm]:
    if "arms" not in ex:
        return {}
    raw = ex.get("arms")
    entries: list[tuple[Any, Any, Any, Any]] = []  # (name, value, parent node, key in parent)
    if isinstance(raw, dict) and raw:
        entries = [(name, value, raw, name) for name, value in raw.items()]
    elif isinstance(raw, list) and raw:
        for index, item in enumerate(raw):
            if not isinstance(item, dict) or "name" not in item:
                chk.problem(f"execution.arms[{index}]", "must be a mapping with a name: "
                            "{name: NAME, args: [...]}", raw, index)
                continue
            entries.append((item["name"], item, raw, index))
    else:
        chk.problem("execution.arms", ARMS_SHAPE, ex, "arms")
        return {}
    specs: dict[str, Arm] = {}
    for name, value, parent, key in entries:
        where = f"execution.arms.{name}"
        if not valid_arm_name(name):
            chk.problem(where, "arm names use letters, digits, '.', '_' and '-' only", parent, key)
            continue
        if name in specs:
            chk.problem(where, "arm names repeat", parent, key)
            continue
        if value is None or isinstance(value, list):
            args = _arg_list(chk, parent, key, where)
            if args is not None:
                specs[name] = Arm(name=name, args=args)
            continue
        if not isinstance(value, dict):
            chk.problem(where, f"must be a list of arguments, got {_show(value)}", parent, key)
            continue
        for k in value:
            if k not in ARM_KEYS or (k == "name" and isinstance(parent, dict)):
                chk.problem(f"{where}.{k}", "unknown key; known keys: args, label, aliases, retry, "
                            "seeds", value, k)
        args = _arg_list(chk, value, "args", f"{where}.args") if "args" in value else []
        label = chk.text(value, where, "label") if value.get("label") is not None else None
        aliases = chk.strings(value, where, "aliases")
        retry = chk.choice(value, where, "retry", ARM_RETRY) or "refuse"
        seeds = None
        if value.get("seeds") is not None:
            raw_seeds = value["seeds"]
            if (not isinstance(raw_seeds, list) or not raw_seeds or len(set(raw_seeds)) != len(raw_seeds)
                    or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in raw_seeds)):
                chk.problem(f"{where}.seeds", "must be a non-empty list of distinct integers >= 0, "
                            f"got {_show(raw_seeds)}", value, "seeds")
            else:
                seeds = [int(x) for x in raw_seeds]
        if args is not None:
            specs[name] = Arm(name=name, args=args, label=label, aliases=aliases, retry=retry,
                              seeds=seeds)
    return specs


def load_front_matter(yaml_text: str, where: str, first_line: int, *, error: type[SchemaError],
                      hint: str) -> Any:
    """The front matter's YAML (round-trip, so values keep their lines), or `error` naming the
    line of the first syntax problem (plan.md and program.md share this)."""
    try:
        return YAML(typ="rt").load(yaml_text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + first_line}" if mark else ""
        raise error(f"{where}{line}: malformed YAML front matter "
                    f"({exc.problem or exc.context or 'parse error'})", hint=hint) from None
    except YAMLError as exc:
        raise error(f"{where}: malformed YAML front matter ({exc})") from None


def parse_plan(text: str, *, path: Path, where: str | None = None) -> Plan:
    """Validate plan text; raise PlanError listing every problem."""
    where = where or display_path(path)
    yaml_text, body, first_line = split_front_matter(text, where)
    alias = safeio.yaml_alias_line(yaml_text)
    if alias is not None:
        raise PlanError(f"{where}:{first_line + alias - 1}: YAML anchors and aliases (&name, *name) "
                        "are not allowed in a plan", hint="write each value out in full")
    root = load_front_matter(yaml_text, where, first_line, error=PlanError,
                             hint="fix that line; the example plan in templates/ shows the layout")
    if not isinstance(root, dict):
        raise PlanError(f"{where}: the front matter must be a mapping with the sections "
                        f"{', '.join(SECTIONS)}", hint=f"see {_template_hint()}")
    chk = _Checker(where, first_line)
    for key in root:
        if key not in SECTIONS:
            chk.problem(str(key), f"unknown section; sections: {', '.join(SECTIONS)}", root, key)
    hy = chk.section(root, "hypothesis")
    da = chk.section(root, "data")
    ex = chk.section(root, "execution")
    ev = chk.section(root, "evaluation")
    pu = chk.section(root, "publication")

    hypothesis = Hypothesis(
        question=chk.text(hy, "hypothesis", "question") or "",
        claim=chk.text(hy, "hypothesis", "claim") or "",
        expected_direction=chk.text(hy, "hypothesis", "expected_direction") or "",
        falsifiers=chk.strings(hy, "hypothesis", "falsifiers", min_items=1),
        baseline_arm=chk.text(hy, "hypothesis", "baseline_arm") or "",
        metrics=chk.strings(hy, "hypothesis", "metrics", min_items=1),
    )
    old_metrics = list(hypothesis.metrics)
    data = Data(
        sources=chk.strings(da, "data", "sources", min_items=1),
        schema=chk.text(da, "data", "schema") or "",
        transforms=chk.strings(da, "data", "transforms"),
        provenance=chk.text(da, "data", "provenance") or "",
        size=chk.text(da, "data", "size", allow_number=True) or "",
    )
    execution = _check_execution(chk, ex)
    accept = Accept(kind="", threshold=0.0)
    raw_accept = ev.get("accept")
    if "accept" in ev:
        if not isinstance(raw_accept, dict):
            chk.problem("evaluation.accept", "must be a mapping {kind: absolute|relative, "
                        "threshold: NUMBER}", ev, "accept")
        else:
            for key in raw_accept:
                if key not in ("kind", "threshold"):
                    chk.problem(f"evaluation.accept.{key}", "unknown key; known keys: kind, threshold",
                                raw_accept, key)
            for key in ("kind", "threshold"):
                if key not in raw_accept:
                    chk.problem(f"evaluation.accept.{key}", "missing", ev, "accept")
            kind = chk.choice(raw_accept, "evaluation.accept", "kind", ACCEPT_KINDS)
            threshold = chk.number(raw_accept, "evaluation.accept", "threshold")
            accept = Accept(kind=kind or "", threshold=threshold if threshold is not None else 0.0)
    primary = chk.text(ev, "evaluation", "primary_metric") or ""
    metric_specs = _check_metrics(chk, ev, hy, primary, old_metrics)
    pairing = _check_pairing(chk, ev, execution)
    checks = _check_checks(chk, ev, set(metric_specs))
    sanity = chk.strings(ev, "evaluation", "sanity_checks")
    if sanity:
        chk.warn("evaluation.sanity_checks", "free text that nothing runs; write each as an "
                 "expression under evaluation.checks (e.g. \"last(train_loss) < "
                 "first(train_loss)\"), then delete sanity_checks", ev, "sanity_checks")
    if hypothesis.metrics != list(metric_specs):
        hypothesis = Hypothesis(**{**hypothesis.__dict__, "metrics": list(metric_specs)})
    primary_spec = metric_specs.get(primary)
    evaluation = Evaluation(
        primary_metric=primary,
        direction=(primary_spec.direction if primary_spec else None) or "",
        accept=accept,
        baselines=chk.strings(ev, "evaluation", "baselines"),
        sanity_checks=sanity,
        metrics=metric_specs,
        pairing=pairing,
        checks=checks,
    )
    publication = Publication(
        venue=chk.choice(pu, "publication", "venue", VENUES) or "",
        claims=chk.strings(pu, "publication", "claims", min_items=1),
    )
    # Cross-field rules: the names that tie the sections together must agree.
    if hypothesis.baseline_arm and execution.arms and hypothesis.baseline_arm not in execution.arms:
        chk.problem("hypothesis.baseline_arm", f"{hypothesis.baseline_arm!r} is not an arm in "
                    f"execution.arms ({', '.join(execution.arms)})", hy, "baseline_arm")
    for name, spec in execution.arm_specs.items():
        if spec.retry == "adjust" and name == hypothesis.baseline_arm:
            chk.warn(f"execution.arms.{name}.retry", "the baseline arm may change its args on a "
                     "retry (every seed is re-run with the adjusted value); the comparison then "
                     "is against the adjusted baseline")
    for index, name in enumerate(evaluation.baselines):
        if execution.arms and name not in execution.arms:
            chk.problem(f"evaluation.baselines[{index}]", f"{name!r} is not an arm in execution.arms "
                        f"({', '.join(execution.arms)})", ev.get("baselines"), index)
    if chk.problems:
        count = len(chk.problems)
        raise PlanError("\n".join(chk.problems),
                        hint=f"fix the {count} problem(s) above, then: rstack plan check",
                        problems=list(chk.problems))
    return Plan(path=path, raw=_plain(root), sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                body=body, hypothesis=hypothesis, data=data, execution=execution,
                evaluation=evaluation, publication=publication, warnings=tuple(chk.warnings))


def _metric_snippet(specs: dict[str, str | None]) -> str:
    parts = [f"{name}: {{direction: {d or 'minimize|maximize'}}}" for name, d in specs.items()]
    return "evaluation.metrics: {" + ", ".join(parts) + "}"


def _check_metrics(chk: _Checker, ev: dict, hy: dict, primary: str,
                   old_metrics: list[str]) -> dict[str, MetricSpec]:
    """evaluation.metrics (the map), or the old hypothesis.metrics + evaluation.direction."""
    old_direction = chk.choice(ev, "evaluation", "direction", DIRECTIONS)
    raw = ev.get("metrics")
    if "metrics" not in ev:
        # The old form: a list of names and one direction for the primary metric. Convert it
        # without guessing the others' directions from their names.
        if not old_metrics and "metrics" not in hy:
            chk.problem("evaluation.metrics", "missing: declare each metric with its direction, "
                        "e.g. evaluation.metrics: {val_loss: {direction: minimize}}", ev)
            return {}
        names = old_metrics or ([primary] if primary else [])
        if primary and names and primary not in names:
            chk.problem("evaluation.primary_metric", f"{primary!r} is not listed in "
                        f"hypothesis.metrics ({', '.join(names)})", ev, "primary_metric")
        specs = {name: MetricSpec(name, old_direction if name == primary else None)
                 for name in names}
        if "direction" not in ev and primary:
            chk.problem("evaluation.metrics", f"the primary metric {primary!r} has no direction; "
                        f"write {_metric_snippet({primary: None})}", ev)
        if names:
            chk.warn("evaluation.metrics", "old plan form (hypothesis.metrics + "
                     "evaluation.direction): only the primary metric has a direction now, the "
                     "others are reported as 'direction not declared'; convert it to "
                     + _metric_snippet({n: s.direction for n, s in specs.items()})
                     + " and delete hypothesis.metrics and evaluation.direction", ev)
        return specs
    if not isinstance(raw, dict) or not raw:
        chk.problem("evaluation.metrics", "must be a non-empty mapping NAME: {direction: "
                    "minimize|maximize, min_effect: NUMBER or \"2%\", label: TEXT}", ev, "metrics")
        return {}
    specs: dict[str, MetricSpec] = {}
    for name, entry in raw.items():
        where = f"evaluation.metrics.{name}"
        if not isinstance(name, str) or not name.strip():
            chk.problem(where, "metric names are non-empty strings", raw, name)
            continue
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            chk.problem(where, "must be a mapping {direction: minimize|maximize, min_effect, "
                        f"label}}, got {_show(entry)}", raw, name)
            continue
        for key in entry:
            if key not in METRIC_KEYS:
                chk.problem(f"{where}.{key}", f"unknown key; known keys: {', '.join(METRIC_KEYS)}",
                            entry, key)
        direction = entry.get("direction")
        if direction is not None and direction not in DIRECTIONS:
            chk.problem(f"{where}.direction", f"must be one of {', '.join(DIRECTIONS)}, got "
                        f"{_show(direction)} (minimize: lower is better, e.g. a loss or an "
                        "error; maximize: higher is better)", entry, "direction")
            direction = None
        min_effect, relative = _min_effect(chk, entry, where)
        if min_effect is not None and "direction" not in entry:
            chk.problem(f"{where}.min_effect", "min_effect is the smallest difference that "
                        "matters in the metric's direction, but the metric has no direction; "
                        "add direction: minimize|maximize", entry, "min_effect")
        label = chk.text(entry, where, "label") if entry.get("label") is not None else None
        specs[name] = MetricSpec(name, direction, min_effect, relative, label)
        if "direction" not in entry and name != primary:
            chk.warn(f"{where}.direction", "not declared: this metric is reported as "
                     "'direction not declared' and never called better or worse; add "
                     "direction: minimize|maximize if the paper compares it", raw, name)
    if primary and primary not in specs:
        chk.problem("evaluation.primary_metric", f"{primary!r} is not declared in "
                    f"evaluation.metrics ({', '.join(specs)})", ev, "primary_metric")
    elif primary and specs[primary].direction is None:
        if old_direction and "direction" not in (raw.get(primary) or {}):
            specs[primary] = MetricSpec(**{**specs[primary].__dict__, "direction": old_direction})
        elif "direction" not in (raw.get(primary) or {}):
            chk.problem(f"evaluation.metrics.{primary}.direction", "missing: the primary metric "
                        "needs a direction (minimize|maximize)", raw, primary)
    if old_direction:
        declared = specs.get(primary).direction if primary in specs else None
        if declared and declared != old_direction:
            chk.problem("evaluation.direction", f"{old_direction!r} disagrees with evaluation."
                        f"metrics.{primary}.direction {declared!r}; delete evaluation.direction",
                        ev, "direction")
        else:
            chk.warn("evaluation.direction", f"old form; write it as evaluation.metrics.{primary}"
                     ".direction and delete evaluation.direction", ev, "direction")
    if old_metrics:
        extra = [m for m in old_metrics if m not in specs]
        if extra:
            chk.problem("hypothesis.metrics", f"{', '.join(extra)} not declared in "
                        "evaluation.metrics; declare them there and delete hypothesis.metrics",
                        hy, "metrics")
        else:
            chk.warn("hypothesis.metrics", "replaced by evaluation.metrics; delete it", hy,
                     "metrics")
    return specs


_PERCENT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*%\s*$")


def _min_effect(chk: _Checker, entry: dict, where: str) -> tuple[float | None, bool]:
    if entry.get("min_effect") is None:
        return None, False
    value = entry["min_effect"]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and value >= 0:
        return float(value), False
    if isinstance(value, str) and _PERCENT.match(value):
        return float(_PERCENT.match(value).group(1)) / 100.0, True
    chk.problem(f"{where}.min_effect", "must be a number >= 0 (absolute, in the metric's units) "
                f"or a percentage of the baseline mean such as \"2%\", got {_show(value)}",
                entry, "min_effect")
    return None, False


def _check_pairing(chk: _Checker, ev: dict, execution: Execution) -> str:
    seed_sets = {tuple(spec.seeds) if spec.seeds else tuple(execution.seeds)
                 for spec in execution.arm_specs.values()}
    same = len(seed_sets) <= 1
    if ev.get("pairing") is None:
        return "seed" if same else "none"
    pairing = chk.choice(ev, "evaluation", "pairing", PAIRINGS)
    if pairing == "seed" and not same:
        chk.problem("evaluation.pairing", "seed pairing needs every arm to run the same seeds "
                    f"(the arms run {' vs '.join(str(list(s)) for s in sorted(seed_sets))}); give "
                    "the arms the same seeds, or set pairing: none", ev, "pairing")
    return pairing or "none"


def _check_checks(chk: _Checker, ev: dict, metric_names: set[str]) -> list[str]:
    from .checks import CheckSyntaxError, parse

    exprs = chk.strings(ev, "evaluation", "checks")
    raw = ev.get("checks") or []
    for index, expr in enumerate(exprs):
        try:
            parse(expr, metric_names if metric_names else None)
        except CheckSyntaxError as exc:
            chk.problem(f"evaluation.checks[{index}]", f"{expr!r}: {exc}", raw, index)
    return exprs


def default_plan_path(root: Path) -> Path:
    return Path(root) / PLAN_FILENAME


def load_plan(path: str | os.PathLike) -> Plan:
    """Read and validate a plan file; raise PlanError (`FILE: section.key: problem`)."""
    path = Path(path)
    where = display_path(path)
    try:
        raw = safeio.read_regular(path, max_bytes=MAX_PLAN_BYTES)
        text = safeio.decode_text(Path(where), raw)
    except FileNotFoundError:
        raise PlanError(f"{where}: no such plan file",
                        hint=f"write one from the example: cp {_template_hint()} {where}") from None
    except safeio.UnsafeInput as exc:
        raise PlanError(str(exc).replace(str(path), where, 1),
                        hint="the plan is a UTF-8 text file of at most 1 MB (rstack plan check)") from None
    plan = parse_plan(text, path=path.resolve(), where=where)
    # The digest is of the bytes on disk, so it matches `sha256sum experiment-plan.md`.
    return Plan(**{**plan.__dict__, "sha256": hashlib.sha256(raw).hexdigest()})


# --------------------------------------------------------------------------------------------
# Compiling a plan into runs


def new_run_id(arm: str, seed: int | None, now: datetime | None = None) -> str:
    """Sortable by start time: `YYYYmmdd-HHMMSS-<arm>-s<seed>-<4 hex>`. An arm name that had to
    be shortened or changed to fit gets 8 hex of its sha256 after it, so distinct arms never share
    a prefix; rstack.runids makes the whole id unique before launch."""
    now = now or datetime.now(timezone.utc)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", arm)[:40] or "run"
    if safe != arm:
        safe += "-" + hashlib.sha256(arm.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    seed_part = f"-s{seed}" if seed is not None else ""
    return f"{now.strftime('%Y%m%d-%H%M%S')}-{safe}{seed_part}-{secrets.token_hex(2)}"


def contract_flags(output_dir: str, seed: int | None) -> list[str]:
    """The artifact-contract flags for one run (--output-dir DIR --seed N)."""
    from .contract import contract_args

    return contract_args(output_dir, seed, False)


@dataclass
class CompiledRun:
    run_id: str
    arm: str
    seed: int
    args: list[str]
    command: list[str]
    output_dir: str  # project-relative, results/<run_id>
    profile: str
    gpu: str | None
    timeout_s: float
    cost_estimate_usd: float

    def as_json(self) -> dict:
        return {"run_id": self.run_id, "arm": self.arm, "seed": self.seed, "args": self.args,
                "command": self.command, "output_dir": self.output_dir, "profile": self.profile,
                "gpu": self.gpu, "timeout_s": self.timeout_s,
                "cost_estimate_usd": self.cost_estimate_usd}


@dataclass
class Matrix:
    plan_path: str
    plan_sha256: str
    script: str
    profile: str
    runs: list[CompiledRun]
    total_usd: float
    spent_usd: float
    cap_usd: float
    problems: list[str] = field(default_factory=list)

    @property
    def within_cap(self) -> bool:
        return self.spent_usd + self.total_usd <= self.cap_usd + 1e-9

    def as_json(self) -> dict:
        return {"plan": {"path": self.plan_path, "sha256": self.plan_sha256},
                "script": self.script, "profile": self.profile,
                "runs": [run.as_json() for run in self.runs],
                "total_estimate_usd": round(self.total_usd, 6), "spent_usd": round(self.spent_usd, 6),
                "cap_usd": self.cap_usd, "within_cap": self.within_cap}


def python_for(profile: str, plan: Plan | None = None, root: Path | None = None) -> str:
    """The interpreter a run's command names: the plan's `execution.python` when set (a venv
    folder means its bin/python; relative paths are from the project root), else this one
    locally and the remote venv's `python` elsewhere."""
    declared = plan.execution.python if plan is not None else None
    if not declared:
        return sys.executable if profile == "local" else "python"
    if profile != "local":
        return declared  # a path on the remote machine, as written
    path = Path(declared)
    if not path.is_absolute():
        path = Path(root or plan.path.parent) / path
    if path.is_dir():
        path = path / "bin" / "python"
    return str(path)


def cost_cap(plan: Plan) -> float:
    from . import config
    return plan.execution.max_cost_usd if plan.execution.max_cost_usd is not None else float(
        config.get("max_cost_usd"))


def compile_plan(plan: Plan, *, root: Path, arms: list[str] | None = None,
                 seeds: list[int] | None = None, profile: str | None = None,
                 spent_usd: float | None = None) -> Matrix:
    """The run matrix arm x seed, with per-run cost estimates, the total, what is spent and the cap.

    `arms`/`seeds`/`profile` narrow or override the plan (as `rstack run --arm/--seeds/--profile`).
    """
    from . import costs

    ex = plan.execution
    profile = profile or ex.profile
    if profile not in PROFILES:
        raise PlanError(f"unknown profile {profile!r}", hint=f"use one of {', '.join(PROFILES)}")
    chosen = list(ex.arms) if not arms else arms
    python = python_for(profile, plan, root)
    for name in chosen:
        if name not in ex.arms:
            raise PlanError(f"{display_path(plan.path)}: execution.arms: no arm named {name!r}",
                            hint=f"arms in the plan: {', '.join(ex.arms)}")
    if spent_usd is None:
        from .guards import spent_usd as ledger_spent
        spent_usd = ledger_spent(root)
    per_run = costs.estimate_run_usd(profile, ex.gpu, ex.timeout_s)
    runs = []
    for name in chosen:
        for seed in (plan.arm_seeds(name) if seeds is None else list(seeds)):
            run_id = new_run_id(name, seed)
            out = f"results/{run_id}"
            args = plan.arm_args(name)
            command = [python, ex.script, *args, *contract_flags(out, seed)]
            runs.append(CompiledRun(run_id=run_id, arm=name, seed=seed, args=args, command=command,
                                    output_dir=out, profile=profile, gpu=ex.gpu,
                                    timeout_s=ex.timeout_s, cost_estimate_usd=per_run))
    total = round(per_run * len(runs), 6)
    return Matrix(plan_path=display_path(plan.path), plan_sha256=plan.sha256, script=ex.script,
                  profile=profile, runs=runs, total_usd=total, spent_usd=float(spent_usd),
                  cap_usd=cost_cap(plan))


def check_plan_files(plan: Plan, root: Path) -> list[str]:
    """Problems outside the schema: the script must exist where the plan says."""
    problems = []
    script = Path(root) / plan.execution.script
    if not script.is_file():
        problems.append(f"{display_path(plan.path)}: execution.script: {plan.execution.script!r} "
                        f"does not exist under the project root {root}")
    if plan.execution.python and plan.profile == "local":
        python = Path(python_for("local", plan, Path(root)))
        if not (python.is_file() and os.access(python, os.X_OK)):
            problems.append(f"{display_path(plan.path)}: execution.python: "
                            f"{plan.execution.python!r} is not an interpreter ({python} is "
                            "missing or not executable); create the project venv: uv venv && "
                            "uv pip install -r requirements.txt")
    return problems
