"""`program.md`: the research program's front matter (objective, acceptance rule, trial design,
scope, budget) and prose. Read only through `load_program`; never half-used when invalid.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SchemaError
from ..plan import (DEFAULT_PROTECTED, DIRECTIONS, PROFILES, PlanError, _Checker, _show,
                    display_path, load_front_matter, split_front_matter)

PROGRAM_FILENAME = "program.md"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SECTIONS: dict[str, tuple[str, ...]] = {
    "name": (),
    "objective": ("metric", "direction"),
    "accept": ("min_effect", "alpha"),
    "trial": ("script", "args", "seeds", "timeout_s", "profile", "gpu"),
    "confirm": ("seeds",),
    "scope": ("editable", "protected"),
    "budget": ("max_trials", "max_cost_usd", "max_hours"),
    "baseline": (),
}
REQUIRED = ("name", "objective", "accept", "trial", "confirm", "scope")
OPTIONAL_KEYS = {"accept.alpha", "trial.args", "trial.timeout_s", "trial.profile", "trial.gpu",
                 "scope.protected", "budget.max_trials", "budget.max_cost_usd", "budget.max_hours"}


class ProgramError(SchemaError):
    """program.md is missing or invalid, or the program's state forbids the action."""


@dataclass(frozen=True)
class Program:
    path: Path
    sha256: str
    name: str
    metric: str
    direction: str
    min_effect: float
    alpha: float
    script: str
    args: list[str]
    seeds: list[int]
    confirm_seeds: list[int]
    timeout_s: float
    profile: str
    gpu: str | None
    editable: list[str]
    protected: dict[str, str]
    max_trials: int | None
    max_cost_usd: float | None
    max_hours: float | None
    baseline: str | None
    body: str
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "name": self.name,
                "objective": {"metric": self.metric, "direction": self.direction},
                "accept": {"min_effect": self.min_effect, "alpha": self.alpha},
                "trial": {"script": self.script, "args": self.args, "seeds": self.seeds,
                          "timeout_s": self.timeout_s, "profile": self.profile, "gpu": self.gpu},
                "confirm": {"seeds": self.confirm_seeds},
                "scope": {"editable": self.editable, "protected": self.protected},
                "budget": {"max_trials": self.max_trials, "max_cost_usd": self.max_cost_usd,
                           "max_hours": self.max_hours},
                "baseline": self.baseline, "warnings": self.warnings}


class _ProgramChecker(_Checker):
    """plan.py's line-numbered checker with program.md's sections."""

    sections = SECTIONS
    optional_keys = OPTIONAL_KEYS
    optional_sections = frozenset(SECTIONS) - frozenset(REQUIRED)

    def seeds(self, sec: dict, sec_name: str, key: str) -> list[int]:
        # The comparisons module never calls fewer seeds a difference; one number, its own.
        from ..analysis.compare import MIN_SEEDS as min_items

        value = sec.get(key)
        if key not in sec:
            return []
        if not isinstance(value, list) or not all(isinstance(s, int) and not isinstance(s, bool)
                                                  and 0 <= s < 2 ** 32 for s in value):
            self.problem(f"{sec_name}.{key}", "must be a list of integers from 0 to 4294967295, "
                         f"got {_show(value)}", sec, key)
            return []
        if len(set(value)) != len(value):
            self.problem(f"{sec_name}.{key}", f"has a repeated seed: {value}", sec, key)
        if len(value) < min_items:
            self.problem(f"{sec_name}.{key}", f"needs at least {min_items} seeds (an interval of the "
                         f"difference needs them), got {len(value)}", sec, key)
        return [int(s) for s in value]


def parse_program(text: str, *, path: Path, where: str | None = None) -> Program:
    """Validate program.md text; raise ProgramError listing every problem with its line."""
    where = where or display_path(path)
    try:
        yaml_text, body, first_line = split_front_matter(text, where)
    except PlanError as exc:
        raise ProgramError(exc.message, hint="rstack program init writes a commented program.md") \
            from None
    root = load_front_matter(yaml_text, where, first_line, error=ProgramError,
                             hint="fix that line; rstack program init shows the layout")
    if not isinstance(root, dict):
        raise ProgramError(f"{where}: the front matter must be a mapping with the keys "
                           f"{', '.join(SECTIONS)}", hint="rstack program init shows the layout")
    chk = _ProgramChecker(where, first_line)
    for key in root:
        if key not in SECTIONS:
            chk.problem(str(key), f"unknown key; keys: {', '.join(SECTIONS)}", root, key)
    name = None
    if "name" not in root:
        chk.problem("name", "missing (a short name: letters, digits, . _ -)")
    elif not isinstance(root["name"], str) or not _NAME.match(root["name"]):
        chk.problem("name", f"must be letters, digits, . _ - (at most 64), got {_show(root['name'])}",
                    root, "name")
    else:
        name = root["name"]
    ob = chk.section(root, "objective")
    ac = chk.section(root, "accept")
    tr = chk.section(root, "trial")
    co = chk.section(root, "confirm")
    sc = chk.section(root, "scope")
    bu = chk.section(root, "budget")

    metric = chk.text(ob, "objective", "metric")
    direction = chk.choice(ob, "objective", "direction", DIRECTIONS)
    min_effect = chk.number(ac, "accept", "min_effect", minimum=0)
    alpha = chk.number(ac, "accept", "alpha", positive=True)
    if alpha is not None and alpha >= 0.5:
        chk.problem("accept.alpha", f"must be below 0.5, got {alpha:g}", ac, "alpha")
    script = chk.text(tr, "trial", "script")
    if script is not None and (script.startswith("/") or script.startswith("..")):
        chk.problem("trial.script", f"must be a path inside the project, got {script!r}", tr, "script")
    args = chk.strings(tr, "trial", "args")
    for flag in ("--seed", "--output-dir"):
        if any(a == flag or a.startswith(flag + "=") for a in args):
            chk.problem("trial.args", f"{flag} is set by rstack for every run; remove it", tr, "args")
    seeds = chk.seeds(tr, "trial", "seeds")
    timeout_s = chk.number(tr, "trial", "timeout_s", positive=True)
    profile = chk.choice(tr, "trial", "profile", PROFILES)
    gpu = chk.text(tr, "trial", "gpu") if tr.get("gpu") is not None else None
    confirm = chk.seeds(co, "confirm", "seeds")
    overlap = sorted(set(seeds) & set(confirm))
    if overlap:
        chk.problem("confirm.seeds", f"must be fresh seeds, but {overlap} are also trial seeds "
                    "(a confirmation on the same seeds confirms nothing)", co, "seeds")
    editable = chk.strings(sc, "scope", "editable", min_items=1)
    for item in editable:
        if item.startswith("/") or ".." in Path(item).parts:
            chk.problem("scope.editable", f"{item!r} must be a path inside the project", sc, "editable")
    protected = dict(DEFAULT_PROTECTED)
    if "protected" in sc:
        value = sc["protected"]
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v.startswith("--")
                for k, v in value.items()):
            chk.problem("scope.protected", "must map a name to a --flag, e.g. {model: --model}",
                        sc, "protected")
        else:
            protected = {str(k): str(v) for k, v in value.items()}
    max_trials = None
    if bu.get("max_trials") is not None:
        value = bu["max_trials"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            chk.problem("budget.max_trials", f"must be an integer >= 1, got {_show(value)}", bu,
                        "max_trials")
        else:
            max_trials = int(value)
    max_cost = chk.number(bu, "budget", "max_cost_usd", minimum=0, nullable=True)
    max_hours = chk.number(bu, "budget", "max_hours", positive=True, nullable=True)
    baseline = None
    if "baseline" in root and root["baseline"] is not None:
        if not isinstance(root["baseline"], str) or not root["baseline"].strip():
            chk.problem("baseline", f"must be a git ref (a branch, tag or commit), got "
                        f"{_show(root['baseline'])}", root, "baseline")
        else:
            baseline = root["baseline"].strip()
    if chk.problems:
        raise ProgramError("\n".join(chk.problems), problems=chk.problems,
                           hint="fix each line named above, then: rstack program check")
    warnings = []
    if script not in editable and not any(Path(script).match(p) for p in editable):
        warnings.append(f"{where}: trial.script {script!r} is not in scope.editable: the loop can "
                        "only change the other editable files")
    return Program(path=path, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), name=name,
                   metric=metric, direction=direction, min_effect=float(min_effect),
                   alpha=float(alpha) if alpha is not None else 0.05, script=script, args=args,
                   seeds=seeds, confirm_seeds=confirm,
                   timeout_s=float(timeout_s) if timeout_s is not None else 300.0,
                   profile=profile or "local", gpu=gpu, editable=editable, protected=protected,
                   max_trials=max_trials, max_cost_usd=max_cost, max_hours=max_hours,
                   baseline=baseline, body=body, warnings=warnings)


def program_path(root: Path) -> Path:
    return Path(root) / PROGRAM_FILENAME


def load_program(root: Path, path: str | Path | None = None) -> Program:
    """Read and validate program.md (default: at the project root)."""
    path = Path(path) if path else program_path(root)
    where = display_path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ProgramError(f"{where}: no program file",
                           hint="rstack program init --metric val_loss --direction minimize "
                                "--script train.py --editable train.py") from None
    except OSError as exc:
        raise ProgramError(f"{where}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProgramError(f"{where}: not UTF-8 text", hint="save program.md as UTF-8") from None
    program = parse_program(text, path=path.resolve(), where=where)
    return program


TEMPLATE = """\
---
# The research program `rstack program` and the /improve skill follow. `rstack program check`
# validates it (every problem with its line).
name: {name}
objective: {{metric: {metric}, direction: {direction}}}   # the one metric a trial is judged on
accept:
  min_effect: {min_effect}   # KEEP only when the improvement's 95% lower bound exceeds this
  alpha: 0.05          # 1 - confidence of that interval
trial:
  script: {script}
  args: []             # shared by every run; --seed and --output-dir are added by rstack
  seeds: {seeds}       # every candidate and the champion run these (paired by seed)
  timeout_s: {timeout_s}
  profile: {profile}
  # gpu: A10G          # for modal/vastai trials (priced in the budget estimate)
confirm:
  seeds: {confirm}     # fresh seeds a candidate must also pass before it becomes champion
scope:
  editable: {editable} # the only files a trial may change
  protected: {{model: --model, dataset: --dataset}}   # flags a trial may not change
budget:
  max_trials: {max_trials}
  max_cost_usd: {max_cost_usd}
  max_hours: {max_hours}
baseline: {baseline}        # the first champion (a git ref); `rstack program baseline` runs it
---

# {name}

## Direction
What should improve, and why it matters.

## Ideas
- Changes worth trying, one hypothesis each.

## Constraints
- What the agent must not try (the scope above is enforced by code; say why here).
"""


def render_template(*, name: str, metric: str, direction: str, min_effect: float, script: str,
                    editable: list[str], seeds: list[int], confirm: list[int], timeout_s: float,
                    profile: str, max_trials: int, max_cost_usd: float, max_hours: float,
                    baseline: str) -> str:
    def flow(items):
        return "[" + ", ".join(str(i) for i in items) + "]"

    return TEMPLATE.format(name=name, metric=metric, direction=direction, min_effect=min_effect,
                           script=script, editable=flow(editable), seeds=flow(seeds),
                           confirm=flow(confirm), timeout_s=f"{timeout_s:g}", profile=profile,
                           max_trials=max_trials, max_cost_usd=f"{max_cost_usd:g}",
                           max_hours=f"{max_hours:g}", baseline=baseline)


def init_program(root: Path, *, force: bool = False, **fields) -> Path:
    """Write a commented program.md (validated before it is written); refuse to overwrite."""
    from ..atomic import write_text

    path = program_path(root)
    if path.exists() and not force:
        raise ProgramError(f"{display_path(path)} already exists; nothing was written",
                           hint="edit it by hand, or rstack program init --force to replace it")
    text = render_template(**fields)
    parse_program(text, path=path)
    write_text(path, text)
    return path

