"""The artifact contract every RStack experiment script follows, and the checks of what it wrote.

`python SCRIPT --output-dir DIR [--smoke-test] [--seed N]` writes DIR/metrics.json (a flat object of
finite numbers) and optionally DIR/metrics.jsonl (one object per step). This module builds the
flags and validates the files; it never runs a script.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Any

from .errors import RStackError

OUTPUT_DIR_FLAG = "--output-dir"
SMOKE_FLAG = "--smoke-test"
SMOKE_FLAG_ALIASES = ("--smoke-test", "--smoke_test")
SEED_FLAG = "--seed"
OUTPUT_DIR_ENV = "RSTACK_OUTPUT_DIR"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "metrics.jsonl"

# Divergence thresholds (see check_divergence).
GROWTH_FACTOR = 100.0  # final loss this many times the starting loss: grew by orders of magnitude
REGRESSION_FACTOR = 10.0  # final loss this many times its own minimum ...
REGRESSION_SHARE = 0.5  # ... having given back at least this share of the progress made
MIN_POINTS = 5


class ContractError(RStackError):
    """A script's outputs break the artifact contract. `category` is an incidents category."""

    def __init__(self, message: str, *, category: str, hint: str | None = None,
                 key: str | None = None, line: int | None = None):
        super().__init__(message, hint=hint)
        self.category = category
        self.key = key
        self.line = line


def contract_args(output_dir: str | os.PathLike, seed: int | None, smoke: bool) -> list[str]:
    """The contract's flags: --output-dir DIR [--seed N] [--smoke-test]."""
    args = [OUTPUT_DIR_FLAG, str(output_dir)]
    if seed is not None:
        args += [SEED_FLAG, str(int(seed))]
    if smoke:
        args.append(SMOKE_FLAG)
    return args


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"a bool ({json.dumps(value)})"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"a string ({json.dumps(value)[:40]})"
    if isinstance(value, dict):
        return "a nested object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, int) and not is_finite_number(value):
        return "an integer too large for a float"
    return type(value).__name__


def is_finite_number(value: Any) -> bool:
    """A bool-free int or float that is finite as a float (a 400-digit int is not: float() of it
    overflows, and every consumer of a metric turns it into a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _parse_json(text: str | bytes, **options) -> Any:
    """json.loads whose refusals are all ValueError: a 5,001-digit integer (the int limit) and
    100,000-deep nesting (RecursionError) are invalid input here, not crashes of the caller."""
    try:
        return json.loads(text, **options)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None


def validate_metrics_object(data: Any, *, where: str = METRICS_FILE) -> dict:
    """Check a parsed metrics.json value; raises ContractError (metrics-invalid)."""
    if not isinstance(data, dict):
        raise ContractError(f"{where}: the top level is {_describe(data)}, not a JSON object",
                            category="metrics-invalid",
                            hint='write a flat object: json.dump({"val_loss": loss}, f)')
    if not data:
        raise ContractError(f"{where}: the object is empty ({{}}); it needs at least one metric",
                            category="metrics-invalid",
                            hint="write the final metrics, e.g. {\"val_loss\": 0.41}")
    for key, value in data.items():
        if not key.isprintable():  # printed by `runs list`: an escape sequence would forge it
            raise ContractError(f"{where}: key {key!r} has a non-printable character",
                                category="metrics-invalid", key=key,
                                hint="name metrics with printable text, e.g. \"val/loss\"")
        if not is_finite_number(value):
            what = _describe(value)
            fix = ("flatten it: one key per number (e.g. \"val/loss\")" if isinstance(value, (dict, list))
                   else "write a finite number (float(x)); drop non-numeric values")
            raise ContractError(f"{where}: key {key!r} is {what}; every value must be a finite number",
                                category="metrics-invalid", hint=fix, key=key)
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ContractError(f"{METRICS_FILE}: key {key!r} appears twice; which value counts "
                                "is undefined", category="metrics-invalid", key=key,
                                hint="write each metric once (json.dump of a dict cannot repeat)")
        seen[key] = value
    return seen


def validate_metrics_file(path: str | os.PathLike) -> dict:
    """Read and check metrics.json; raises ContractError metrics-missing / metrics-invalid."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # Never follow it: a link to /etc/shadow would be read into the error message.
        raise ContractError(f"{path} is {'a symbolic link' if path.is_symlink() else 'not a regular file'}"
                            "; metrics.json must be a regular file the script wrote",
                            category="metrics-invalid", hint="write the file itself with json.dump")
    if not path.is_file():
        raise ContractError(f"{path} was not written", category="metrics-missing",
                            hint=f"write the final metrics to os.path.join(args.output_dir, "
                                 f"'{METRICS_FILE}')")
    raw = path.read_bytes()
    if not raw.strip():
        raise ContractError(f"{path}: the file is empty", category="metrics-invalid",
                            hint="json.dump the metrics dict and close the file before exiting")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractError(f"{path}: not UTF-8 text (byte {exc.start})", category="metrics-invalid",
                            hint="write it with json.dump") from None
    try:
        # NaN/Infinity parse here so the offending key can be named; a repeated key is refused
        # (json.loads would keep the last value silently).
        data = _parse_json(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        line = text.splitlines()[exc.lineno - 1] if exc.lineno - 1 < len(text.splitlines()) else ""
        raise ContractError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} (char {exc.pos}): "
            f"{exc.msg}" + (f"; the line reads: {line[:120]}" if line else ""),
            category="metrics-invalid", line=exc.lineno,
            hint="write it with json.dump(metrics, f) instead of formatting JSON by hand") from None
    except ValueError as exc:  # the int digit limit, or nesting too deep
        raise ContractError(f"{path}: cannot be read as metrics ({str(exc)[:120]})",
                            category="metrics-invalid",
                            hint="write a flat object of float metrics with json.dump") from None
    return validate_metrics_object(data, where=str(path))


def read_history(path: str | os.PathLike) -> list[dict]:
    """The records of metrics.jsonl ([] when absent); raises ContractError on NaN/Inf or bad lines."""
    path = Path(path)
    if not path.is_file():
        return []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    numbers = [n for n, line in enumerate(lines, start=1) if line.strip()]
    try:
        # One C-level parse of the whole history is ~10x faster than json.loads per line.
        records = _parse_json(b"[" + b",".join(line for line in lines if line.strip()) + b"]")
        if len(records) != len(numbers) or not all(isinstance(r, dict) for r in records):
            raise ValueError("a line is not exactly one object")
    except ValueError:
        records = None  # find the offending line and say where it is
    if records is None:
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = _parse_json(line.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ContractError(f"{path}:{number}: not valid JSON ({exc})",
                                    category="metrics-invalid", line=number,
                                    hint="write one json.dumps(record) per line") from None
            if not isinstance(record, dict):
                raise ContractError(f"{path}:{number}: a line must be a JSON object, got "
                                    f"{_describe(record)}", category="metrics-invalid", line=number,
                                    hint='write {"step": n, "loss": x} per line')
            records.append(record)
    for number, record in zip(numbers, records):
        for key, value in record.items():
            if isinstance(value, int) and not isinstance(value, bool) \
                    and not is_finite_number(value):
                raise ContractError(f"{path}:{number}: {key} is {_describe(value)}",
                                    category="metrics-invalid", key=key, line=number,
                                    hint="log float metrics (float(x)), one object per line")
            if isinstance(value, float) and not math.isfinite(value):
                raise ContractError(
                    f"{path}:{number}: {key} is {_describe(value)}"
                    + (f" at step {record['step']}" if "step" in record else ""),
                    category="metrics-nonfinite", key=key, line=number,
                    hint="training produced NaN/Inf: lower the learning rate, clip gradients, "
                         "or guard log/div against zero")
    return records


def is_loss_key(key: str) -> bool:
    """A loss to judge for divergence: `loss`, `train_loss`, `val/loss`, not `loss_scale` (mixed
    precision grows it on purpose) or a loss's weight/coefficient."""
    lowered = key.lower()
    return "loss" in lowered and not any(word in lowered for word in ("scale", "weight", "coef"))


def _loss_series(history: list[dict]) -> dict[str, list[tuple[Any, float]]]:
    series: dict[str, list[tuple[Any, float]]] = {}
    for index, record in enumerate(history):
        step = record.get("step", index)
        for key, value in record.items():
            if key == "step" or not is_loss_key(key) or not is_finite_number(value):
                continue
            series.setdefault(key, []).append((step, float(value)))
    return series


def check_steps(history: list[dict]) -> str | None:
    """A message when a metrics.jsonl record has no numeric `step` or the steps go backwards (a
    per-epoch counter restarting): curves and `max(step)` checks need one increasing axis."""
    previous = None
    for number, record in enumerate(history, start=1):
        step = record.get("step")
        if not is_finite_number(step):
            return (f"record {number} of metrics.jsonl has no numeric step (keys: "
                    f"{', '.join(map(str, record)) or 'none'}); every line needs \"step\": the "
                    "global optimizer step")
        if previous is not None and step < previous:
            return (f"step goes backwards at record {number} of metrics.jsonl ({previous:g} -> "
                    f"{step:g}): a per-epoch counter? log the global step")
        previous = step
    return None


CONSISTENCY_RTOL = 0.1


def check_consistency(metrics: dict, history: list[dict], *, rtol: float = CONSISTENCY_RTOL,
                      atol: float = 1e-9) -> str | None:
    """A message when metrics.json disagrees with metrics.jsonl for the same key at the same step:
    the step metrics.json names, else the last logged step (a swallowed exception that wrote
    defaults or placeholders into metrics.json). Beyond rtol (10%), so a final full-batch
    recomputation of a logged mini-batch value is not flagged."""
    if not history:
        return None
    step = metrics.get("step") if is_finite_number(metrics.get("step")) else history[-1].get("step")
    at_step = [rec for rec in history if rec.get("step") == step]
    if not at_step:
        return None
    for key, value in metrics.items():
        if key == "step" or not is_finite_number(value):
            continue
        logged = next((rec[key] for rec in reversed(at_step) if is_finite_number(rec.get(key))),
                      None)
        if logged is not None and not math.isclose(value, logged, rel_tol=rtol, abs_tol=atol):
            return (f"metrics.json says {key}={value!r} but metrics.jsonl logged {key}={logged!r} "
                    f"at the same step ({step:g})")
    return None


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing running median: point i is the median of the `window` points ending at i, so a
    single mini-batch spike (or dip) moves it by at most one rank."""
    return [statistics.median(values[max(0, i - window + 1):i + 1]) for i in range(len(values))]


def divergence_window(n: int) -> tuple[int, int]:
    """(running-median window, points a rise must persist) for a series of n points."""
    window = max(3, min(25, n // 10))
    return window | 1, max(3, n // 20)


def check_divergence(history: list[dict]) -> str | None:
    """A message when a loss in history diverged, else None.

    Judged on a smoothed loss (a trailing running median, see divergence_window), and the rise
    must persist: the last `persist` smoothed points all stay GROWTH_FACTOR x the starting loss,
    or all stay REGRESSION_FACTOR x the smoothed minimum after giving back at least
    REGRESSION_SHARE of the progress made. Mini-batch noise on a loss near zero (one sample at
    x141 of a noisy minimum) is therefore never a divergence. Only keys containing "loss" are
    judged; series shorter than MIN_POINTS are not.
    """
    for key, points in _loss_series(history).items():
        if len(points) < MIN_POINTS:
            continue
        values = [v for _, v in points]
        window, persist = divergence_window(len(values))
        smoothed = smooth(values, window)
        start = statistics.median(values[:window])
        tail = smoothed[-persist:]
        final = smoothed[-1]
        low = min(smoothed)
        low_step = points[smoothed.index(low)][0]
        first_step, last_step = points[0][0], points[-1][0]
        if start > 0 and min(tail) >= GROWTH_FACTOR * start:
            return (f"{key} grew from {start:.4g} (step {first_step}) to {final:.4g} "
                    f"(step {last_step}), x{final / start:.3g} (running median of {window} "
                    f"points, held for the last {persist})")
        if start <= 0 < min(tail) and min(tail) - start >= GROWTH_FACTOR * max(abs(start), 1e-8):
            return f"{key} grew from {start:.4g} (step {first_step}) to {final:.4g} (step {last_step})"
        if (low > 0 and min(tail) >= REGRESSION_FACTOR * low
                and final - low >= REGRESSION_SHARE * max(start - low, 0.0)):
            return (f"{key} fell to {low:.4g} (step {low_step}) and then rose to {final:.4g} "
                    f"(step {last_step}), x{final / low:.3g} its minimum (running median of "
                    f"{window} points, held for the last {persist})")
    return None


def find_stray_metrics(search_dirs: list[Path], *, since: float,
                       exclude: Path | None = None, max_depth: int = 3) -> list[Path]:
    """metrics.json files modified at or after `since` under search_dirs (the wrong-place check)."""
    found: list[Path] = []
    seen: set[str] = set()
    exclude_real = os.path.realpath(exclude) if exclude else None
    for base in search_dirs:
        base = Path(base)
        if not base.is_dir():
            continue
        stack = [(base, 0)]
        while stack:
            directory, depth = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if depth < max_depth and entry.name not in (".git", "__pycache__", "node_modules",
                                                                    ".venv", "site-packages"):
                            stack.append((Path(entry.path), depth + 1))
                    elif entry.name == METRICS_FILE and entry.stat().st_mtime >= since - 0.1:
                        real = os.path.realpath(entry.path)
                        if real in seen:
                            continue
                        if exclude_real and real.startswith(exclude_real + os.sep):
                            continue
                        seen.add(real)
                        found.append(Path(entry.path))
                except OSError:
                    continue
    return found
