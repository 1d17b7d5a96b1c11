"""The plan's sanity checks (`evaluation.checks`): small expressions over one run's metrics and
history, such as `final(val_acc) >= 0.5` or `last(train_loss) < first(train_loss)`.

Parsed with Python's `ast` and walked against a whitelist: only comparisons, `and`/`or`/`not`,
+ - * /, numbers, metric names and the functions in FUNCTIONS. Nothing here ever calls `eval`,
`exec` or `compile` on a check, so a plan cannot run code.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field

from .contract import is_finite_number

MAX_LENGTH = 500
# Functions over a metric's series (its values in metrics.jsonl, in step order). `final` prefers
# the metrics.json value, which is what analysis reports.
SERIES_FUNCTIONS = ("final", "last", "first", "min", "max", "mean", "count")
SCALAR_FUNCTIONS = ("abs",)
FUNCTIONS = SERIES_FUNCTIONS + SCALAR_FUNCTIONS
# Names every run has besides its metrics.
BUILTIN_NAMES = ("step",)

_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_BINARY = (ast.Add, ast.Sub, ast.Mult, ast.Div)


class CheckSyntaxError(ValueError):
    """A check that does not parse or uses something outside the whitelist."""


@dataclass(frozen=True)
class CheckResult:
    expr: str
    passed: bool
    values: dict = field(default_factory=dict)  # e.g. {"final(val_acc)": 0.42}
    error: str | None = None  # why it could not be evaluated (a missing metric)

    def describe(self) -> str:
        shown = ", ".join(f"{k} = {_fmt(v)}" for k, v in self.values.items())
        state = "ok" if self.passed else "FAILED"
        tail = f" ({self.error})" if self.error else (f" ({shown})" if shown else "")
        return f"{state}: {self.expr}{tail}"

    def as_json(self) -> dict:
        return {"check": self.expr, "passed": self.passed, "values": dict(self.values),
                "error": self.error}


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def parse(expr: str, known_names: set[str] | None = None) -> ast.Expression:
    """Parse and validate a check; `known_names` (the plan's metrics) rejects unknown names."""
    if not isinstance(expr, str) or not expr.strip():
        raise CheckSyntaxError("a check must be a non-empty expression")
    if len(expr) > MAX_LENGTH:
        raise CheckSyntaxError(f"a check is at most {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise CheckSyntaxError(f"does not parse ({exc.msg} at column {exc.offset})") from None
    top = tree.body
    if not (isinstance(top, (ast.Compare, ast.BoolOp))
            or (isinstance(top, ast.UnaryOp) and isinstance(top.op, ast.Not))):
        raise CheckSyntaxError("a check must be a comparison such as `final(val_acc) >= 0.5`")
    for node in ast.walk(tree):
        _allowed(node, known_names)
    return tree


def _allowed(node: ast.AST, known: set[str] | None) -> None:
    if isinstance(node, (ast.Expression, ast.Load, ast.And, ast.Or, ast.Not, ast.USub, ast.UAdd)
                  + _COMPARE + _BINARY):
        return
    if isinstance(node, (ast.BoolOp, ast.Compare)):
        return
    if isinstance(node, ast.UnaryOp):
        return
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, _BINARY):
            raise CheckSyntaxError(f"operator {type(node.op).__name__} is not allowed "
                                   "(use + - * / and comparisons)")
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float)) and not isinstance(node.value, complex):
            return
        raise CheckSyntaxError(f"only numbers are allowed as constants, got {node.value!r}")
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            return
        if known is not None and node.id not in known and node.id not in BUILTIN_NAMES:
            raise CheckSyntaxError(f"unknown name {node.id!r}: declare it under "
                                   "evaluation.metrics, or use one of "
                                   f"{', '.join(sorted(known | set(BUILTIN_NAMES)))}")
        return
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            shown = name or ast.unparse(node.func)
            raise CheckSyntaxError(f"unknown function {shown!r} (known: {', '.join(FUNCTIONS)})")
        if node.keywords or len(node.args) != 1:
            raise CheckSyntaxError(f"{name}() takes exactly one argument")
        if name in SERIES_FUNCTIONS and not isinstance(node.args[0], ast.Name):
            raise CheckSyntaxError(f"{name}() takes a metric name, e.g. {name}(val_loss)")
        return
    raise CheckSyntaxError(f"{type(node).__name__} is not allowed in a check")


class _Missing(Exception):
    pass


class _Evaluator:
    def __init__(self, metrics: dict, history: list[dict]):
        self.metrics = metrics or {}
        self.history = history or []
        self.values: dict = {}
        self._series: dict[str, list[float]] = {}

    def series(self, name: str) -> list[float]:
        # Built once per name: a 500-character check can call mean(x) 60 times.
        if name not in self._series:
            self._series[name] = [float(rec[name]) for rec in self.history
                                  if isinstance(rec, dict) and _number(rec.get(name))]
        return self._series[name]

    def call(self, fn: str, arg: ast.AST):
        if fn == "abs":
            return abs(self.eval(arg))
        name = arg.id  # validated: a Name
        if f"{fn}({name})" in self.values:
            return self.values[f"{fn}({name})"]
        if fn == "final" and _number(self.metrics.get(name)):
            value = float(self.metrics[name])
        else:
            values = self.series(name)
            if fn == "count":
                value = len(values)
            elif not values:
                where = "metrics.json or metrics.jsonl" if fn == "final" else "metrics.jsonl"
                raise _Missing(f"{name} is not in this run's {where}")
            else:
                value = {"final": values[-1], "last": values[-1], "first": values[0],
                         "min": min(values), "max": max(values),
                         "mean": math.fsum(values) / len(values)}[fn]
        self.values[f"{fn}({name})"] = value
        return value

    def eval(self, node: ast.AST):
        if isinstance(node, ast.Expression):
            return self.eval(node.body)
        if isinstance(node, ast.BoolOp):
            results = [bool(self.eval(v)) for v in node.values]  # evaluate all: show every value
            return all(results) if isinstance(node.op, ast.And) else any(results)
        if isinstance(node, ast.UnaryOp):
            value = self.eval(node.operand)
            if isinstance(node.op, ast.Not):
                return not value
            return -value if isinstance(node.op, ast.USub) else +value
        if isinstance(node, ast.BinOp):
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise _Missing("division by zero")
            return {ast.Add: lambda: left + right, ast.Sub: lambda: left - right,
                    ast.Mult: lambda: left * right, ast.Div: lambda: left / right}[type(node.op)]()
        if isinstance(node, ast.Compare):
            left = self.eval(node.left)
            for op, comparator in zip(node.ops, node.comparators):
                right = self.eval(comparator)
                ok = {ast.Lt: left < right, ast.LtE: left <= right, ast.Gt: left > right,
                      ast.GtE: left >= right, ast.Eq: left == right,
                      ast.NotEq: left != right}[type(op)]
                if not ok:
                    return False
                left = right
            return True
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):  # a bare name means its final value
            return self.call("final", node)
        if isinstance(node, ast.Call):
            return self.call(node.func.id, node.args[0])
        raise CheckSyntaxError(f"{type(node).__name__} is not allowed in a check")


def _number(value) -> bool:
    return is_finite_number(value)  # a 400-digit int is not: float() of it overflows


def evaluate(expr: str, metrics: dict | None, history: list[dict] | None) -> CheckResult:
    """Evaluate one check on one run (metrics.json values, metrics.jsonl records)."""
    tree = parse(expr)
    ev = _Evaluator(metrics or {}, history or [])
    try:
        passed = bool(ev.eval(tree))
    except _Missing as exc:
        return CheckResult(expr, False, dict(ev.values), str(exc))
    except OverflowError:  # a 400-digit constant in float arithmetic, fsum of 1e308s
        return CheckResult(expr, False, dict(ev.values), "a number overflows a float")
    return CheckResult(expr, passed, dict(ev.values))


def evaluate_all(exprs: list[str], metrics: dict | None,
                 history: list[dict] | None) -> list[CheckResult]:
    return [evaluate(expr, metrics, history) for expr in exprs]


def judge_checks(exprs: list[str], metrics: dict | None,
                 history_path) -> tuple[list[dict], str | None]:
    """Every check on one finished run: (results as JSON, the failures in one line or None)."""
    from pathlib import Path

    from .contract import read_history

    history = read_history(Path(history_path)) if Path(history_path).is_file() else []
    results = evaluate_all(exprs, metrics, history)
    failed = [r.describe() for r in results if not r.passed]
    return [r.as_json() for r in results], ("; ".join(failed) if failed else None)
