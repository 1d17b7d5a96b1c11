"""The number check: every typed number in a result region traces to a value analyze computed,
a plan value, an analysis setting or an `% rstack: allow` comment. Never edits anything."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from .report import PLAN_REL, AuditReport, Traced
from .scanner import (_NUMBER, _SCI, _SCRIPT, Source, _blank, _definitions, _regions,
                      _strip_comments, masked_text)

_ALLOW = re.compile(r"%\s*rstack:\s*allow\s+(?P<num>\S+)(?P<reason>.*)$")  # at the comment's start


# -- numbers ---------------------------------------------------------------------------------


@dataclass
class Candidate:
    value: float
    source: str  # summary | plan | allow | analysis-setting
    detail: str
    run_ids: list[str] = field(default_factory=list)
    text: str | None = None  # the exact printed text (summary quantities)
    arms: tuple[str, ...] = ()  # the arms whose runs it describes (for clause attribution)


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def significant_digits(typed: str) -> int:
    """Digits from the first non-zero one to the last one written: 0.09 -> 1, 0.090 -> 2, 200 -> 3.

    A typed integer is read as precise to its units, so its trailing zeros count.
    """
    return len(typed.replace(".", "").lstrip("0"))


def _parse_number(text: str) -> float | None:
    cleaned = text.replace("{,}", "").replace(",", "").replace("−", "-").strip().rstrip("%")
    cleaned = cleaned.replace("\\%", "")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _numbers_in(value: Any, path: str = "") -> Iterable[tuple[str, float]]:
    """(key path, number) for every numeric scalar in a YAML/JSON value, strings included."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        if math.isfinite(value):
            yield path, float(value)
    elif isinstance(value, str):
        for match in re.finditer(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", value):
            parsed = _parse_number(match.group())
            if parsed is not None:
                yield path, parsed
                yield path, abs(parsed)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers_in(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _numbers_in(item, f"{path}[{index}]")


def summary_candidates(summary: dict) -> list[Candidate]:
    """Every value analyze computed: the printed quantities first, then the raw statistics."""
    out: list[Candidate] = []
    for q in summary.get("quantities") or []:
        if isinstance(q, dict) and isinstance(q.get("value"), (int, float)):
            out.append(Candidate(float(q["value"]), "summary", f"\\{q.get('macro')}",
                                 list(q.get("run_ids") or []), text=q.get("text"),
                                 arms=quantity_arms(q)))
    arms = summary.get("arms") or {}
    for arm, info in arms.items():
        if not isinstance(info, dict):
            continue
        run_ids = list(info.get("run_ids") or [])
        for metric, stats in (info.get("metrics") or {}).items():
            if not isinstance(stats, dict):
                continue
            ids = list(stats.get("run_ids") or run_ids)
            for stat, value in stats.items():
                if stat == "values" and isinstance(value, list):
                    for v in value:
                        if isinstance(v, (int, float)) and not isinstance(v, bool):
                            out.append(Candidate(float(v), "summary",
                                                 f"{arm} {metric} value of one run", ids,
                                                 arms=(arm,)))
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    out.append(Candidate(float(value), "summary", f"{arm} {metric} {stat}", ids,
                                         arms=(arm,)))
            low, high = stats.get("ci_low"), stats.get("ci_high")
            if isinstance(low, (int, float)) and isinstance(high, (int, float)):
                out.append(Candidate((high - low) / 2, "summary", f"{arm} {metric} CI half-width",
                                     ids, arms=(arm,)))
    for comp in summary.get("comparisons") or []:
        if not isinstance(comp, dict):
            continue
        ids = list((arms.get(comp.get("arm")) or {}).get("run_ids") or []) + \
            list((arms.get(comp.get("baseline")) or {}).get("run_ids") or [])
        pair = tuple(str(a) for a in (comp.get("arm"), comp.get("baseline")) if a is not None)
        for stat in ("delta", "rel_delta", "p_value", "n", "n_baseline", "ci_low", "ci_high",
                     "diff", "rel_diff", "p", "p_adjusted", "boot_low", "boot_high"):
            value = comp.get(stat)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.append(Candidate(float(value), "summary",
                                     f"{comp.get('arm')} vs {comp.get('baseline')} "
                                     f"{comp.get('metric')} {stat}", ids, arms=pair))
    # Differences between any two arms' means ("7.1 percentage points" between two accuracies).
    names = sorted(arms)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ma = ((arms.get(a) or {}).get("metrics") or {})
            mb = ((arms.get(b) or {}).get("metrics") or {})
            for metric in sorted(set(ma) & set(mb)):
                x, y = (ma.get(metric) or {}).get("mean"), (mb.get(metric) or {}).get("mean")
                if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)):
                    out.append(Candidate(float(x) - float(y), "summary",
                                         f"{a} - {b} {metric} difference of means", [],
                                         arms=(a, b)))
    return out


def quantity_arms(q: dict) -> tuple[str, ...]:
    """The arms a numbers.tex quantity describes: its arm, and its baseline for a comparison."""
    arms = [str(q["arm"])] if q.get("arm") else []
    if q.get("baseline"):
        arms.append(str(q["baseline"]))
    return tuple(arms)


def analysis_constants(summary: dict) -> list[Candidate]:
    """The analysis's own settings, which a paper states as design: the confidence level (0.95
    and 95), alpha, the minimum seed count and each arm's number of seeds."""
    out: list[Candidate] = []
    confidence = summary.get("confidence")
    if isinstance(confidence, (int, float)) and not isinstance(confidence, bool):
        out.append(Candidate(float(confidence), "analysis-setting", "summary.json confidence"))
        out.append(Candidate(float(confidence) * 100, "analysis-setting",
                             "summary.json confidence, in percent"))
    for key in ("alpha", "min_seeds"):
        value = summary.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(Candidate(float(value), "analysis-setting", f"summary.json {key}"))
    for arm, info in (summary.get("arms") or {}).items():
        if isinstance(info, dict) and info.get("run_ids"):
            out.append(Candidate(float(len(info["run_ids"])), "analysis-setting",
                                 f"summary.json arms.{arm}: number of seeds (runs)",
                                 list(info["run_ids"])))
    return out


def plan_candidates(raw: dict) -> list[Candidate]:
    out = [Candidate(v, "plan", f"{PLAN_REL} {path}") for path, v in _numbers_in(raw)]
    execution = raw.get("execution") if isinstance(raw.get("execution"), dict) else {}
    if isinstance(execution.get("seeds"), list):
        out.append(Candidate(float(len(execution["seeds"])), "plan",
                             f"{PLAN_REL} execution.seeds: number of seeds"))
    if isinstance(execution.get("arms"), dict):
        out.append(Candidate(float(len(execution["arms"])), "plan",
                             f"{PLAN_REL} execution.arms: number of arms"))
    return out


@dataclass
class Typed:
    """A number as the paper wrote it."""
    text: str  # the digits as typed, without grouping commas
    value: float
    percent: bool  # `\%` follows it
    scientific: bool  # 1e-3, 10^{-3}, 2 \times 10^{4}


def _exact(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _rounds_to(value: float, typed: Typed) -> bool:
    if typed.scientific:
        return _exact(value, typed.value)
    decimals = _decimals(typed.text)
    return f"{abs(value):.{decimals}f}" == f"{abs(typed.value):.{decimals}f}"


def trace_number(typed: Typed, declared: list[Candidate],
                 computed: list[Candidate]) -> tuple[Candidate, str, str] | None:
    """(candidate, match, detail) for a typed number, or None. The order is the point:

    1. declared values (the plan, allow comments, the analysis's own settings), by exact value,
       so a design number is never credited to a result it happens to round to;
    2. a quantity whose text in numbers.tex is exactly what was typed;
    3. any computed value that rounds to the typed number at its printed precision, only when
       that precision carries at least 2 significant digits (0.09 matches too much to mean a
       thing).
    A percentage (`\\%` right after the number) may also be a value times 100.
    """
    scales = [(1.0, "")] + ([(100.0, ", x100 as a percentage")] if typed.percent else [])
    for candidate in declared:
        for factor, note in scales:
            if _exact(candidate.value * factor, typed.value) or \
                    _exact(abs(candidate.value) * factor, typed.value):
                return candidate, "exact", candidate.detail + note
    if not typed.scientific:
        for candidate in computed:
            if candidate.text is not None and candidate.text.lstrip("+-") == typed.text:
                return candidate, "printed", f"{candidate.detail} (printed {candidate.text})"
    if typed.scientific or significant_digits(typed.text) >= 2:
        for candidate in computed:
            for factor, note in scales:
                if _rounds_to(candidate.value * factor, typed):
                    return candidate, "rounded", (
                        f"{candidate.detail} = {candidate.value:.6g}{note}, rounded to "
                        f"{_decimals(typed.text)} decimal(s)")
    return None


def _near_miss(typed: Typed, computed: list[Candidate]) -> Candidate | None:
    """A computed value a too-short typed number rounds to (for the hint only)."""
    for candidate in computed:
        if _rounds_to(candidate.value, typed):
            return candidate
    return None


# "7.1 percentage points", "3.2~pp", "1.5 p.p.": a difference of two percentages, read like `\%`.
_POINTS = re.compile(r"(?:\s|~|\\,)*(?:percentage[\s~]+points?|pp\b|p\.p\.)", re.I)
# Words that may follow a number as a unit of change: "a 7.3-fold gain", "4x", "1.5-times".
_MULTIPLIER_SUFFIX = re.compile(r"-?(?:fold|times|x|X)", re.I)


# "mean $\pm$ 1 std", "±2 standard deviations", "$\pm 2\sigma$": how a band or error bar is
# drawn, not a result. Only 1, 2 or 3 and both sides: "0.81 ± 0.03 std" and "2.3 standard
# deviations" are results.
_PLUS_MINUS_BEFORE = re.compile(r"(?:\\pm|±)[\s$~{]*$")
_STD_AFTER = re.compile(r"[\s$~}]*(?:\\sigma\b|σ|std\b|s\.d\.|sd\b|standard[\s~]+deviations?\b)",
                        re.I)


def _band_width(text: str, start: int, end: int) -> bool:
    return bool(text[start:end] in ("1", "2", "3")
                and _PLUS_MINUS_BEFORE.search(text[max(0, start - 12):start])
                and _STD_AFTER.match(text, end))


def _letter_attached(text: str, start: int, end: int) -> bool:
    """A digit run that is part of a name: CIFAR-10, ResNet50, GPT-2, Llama-2-7B, 3D, 1st, x86.

    The word around the number (letters, digits, `-`, `_`, `.` on the left) decides: a letter
    anywhere else in it makes a name, except a multiplier or magnitude suffix (4x, 7.3-fold,
    10k, 7B) after a number with no letter before it. A range such as 0.3-0.5 has no letter, so
    both of its numbers are checked.
    """
    left = start
    while left > 0 and (text[left - 1].isalnum() or text[left - 1] in "-_."):
        left -= 1
    right = end
    while right < len(text) and (text[right].isalnum() or text[right] in "-_"):
        right += 1
    before, after = text[left:start], text[end:right]
    if not any(c.isalpha() for c in before) and (
            after in ("k", "K", "M", "B") or _MULTIPLIER_SUFFIX.fullmatch(after)):
        return False
    return any(c.isalpha() for c in before + after)


@dataclass
class Hit:
    """A typed number the number check read, for the checks that judge its context."""
    start: int
    end: int
    text: str
    region: str  # "abstract", "table", "section 'Results'", "definition of \\foo"
    traced: Candidate | None
    declared: list[Candidate]  # every declared value it equals (plan, allow, settings)
    computed: list[Candidate]  # every computed value it matches


def matching(typed: Typed, declared: list[Candidate],
             computed: list[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
    """Every declared and every computed candidate a typed number matches, by the rules of
    `trace_number` (the attribution check needs all of them, not the first)."""
    found_declared, found_computed = [], []
    for candidate in declared:
        if trace_number(typed, [candidate], []) is not None:
            found_declared.append(candidate)
    for candidate in computed:
        if trace_number(typed, [], [candidate]) is not None:
            found_computed.append(candidate)
    return found_declared, found_computed


def audit_numbers(report: AuditReport, source: Source, summary: dict | None,
                  plan_raw: dict | None, allows: list[Candidate], *,
                  skip: frozenset[int] = frozenset()) -> list[Hit]:
    """Trace every typed number of the result regions; returns what it read (offsets in
    `skip` are judged by the count check instead)."""
    out: list[Hit] = []
    declared = (plan_candidates(plan_raw) if plan_raw else []) + allows + \
        (analysis_constants(summary) if summary else [])
    computed = summary_candidates(summary) if summary else []
    text = source.text
    masked = masked_text(text)
    seen: set[int] = set()
    # Floats and the abstract first, so a number is reported as in the figure, not its section.
    definitions = _definitions(text)
    regions = sorted(_regions(text), key=lambda r: (r[2].startswith("section"), r[0]))
    for start, end, what in definitions + regions:
        if what.startswith("definition of "):
            # masked_text blanks definitions whole; mask the body alone, and its #1 parameters.
            chunk = re.sub(r"#+\d", lambda m: " " * len(m.group()), masked_text(text[start:end]))
        else:
            chunk = masked[start:end]
        report.macros_used += len(re.findall(r"\\rs[A-Z][A-Za-z]*", text[start:end]))
        consumed: list[tuple[int, int]] = []
        hits: list[tuple[int, int, str, float, bool]] = []
        for match in _SCI.finditer(chunk):
            if match.group("mant") is not None:
                value = float(match.group("mant")) * 10 ** int(match.group("e1").replace("−", "-"))
            elif match.group("emant") is not None:
                value = float(match.group("emant")) * 10 ** int(match.group("e4"))
            else:
                exp = match.group("e2") or match.group("e3")
                value = 10 ** float(exp.replace("−", "-"))
            hits.append((start + match.start(), start + match.end(), match.group(), value, True))
            consumed.append((match.start(), match.end()))
        for span in consumed:
            chunk = _blank(chunk, *span)
        chunk = _SCRIPT.sub(lambda m: " " * len(m.group()), chunk)
        for match in _NUMBER.finditer(chunk):
            abs_start, abs_end = start + match.start("num"), start + match.end("num")
            if _letter_attached(text, abs_start, abs_end) or _band_width(text, abs_start, abs_end):
                continue
            if abs_end < len(text) and text[abs_end] == "." and abs_end + 1 < len(text) \
                    and text[abs_end + 1].isdigit():
                continue  # part of a longer dotted token already judged
            value = _parse_number(match.group("num"))
            if value is None:
                continue
            hits.append((abs_start, abs_end, match.group("num"), value, False))
        for abs_start, abs_end, typed_text, value, scientific in hits:
            if abs_start in seen or abs_start in skip:
                continue
            seen.add(abs_start)
            percent = bool(re.match(r"\s*\\%", text[abs_end:abs_end + 4]) or
                           _POINTS.match(text, abs_end))
            where = source.at(abs_start)
            line = where["line"]
            plain = typed_text.replace("{,}", "").replace(",", "")
            typed = Typed(plain, abs(value), percent, scientific)
            found = trace_number(typed, declared, computed)
            if found is not None:
                candidate, how, detail = found
                report.traced.append(Traced(line, typed_text, candidate.source, detail,
                                            candidate.run_ids, how, file=where["file"]))
                all_declared, all_computed = matching(typed, declared, computed)
                out.append(Hit(abs_start, abs_end, typed_text, what, candidate, all_declared,
                               all_computed))
                continue
            hint = ("quote it with its \\rs... macro from analysis/numbers.tex, declare it in "
                    f"experiment-plan.md, or add `% rstack: allow {plain} <reason>`")
            near = None if scientific else _near_miss(typed, computed)
            if near is not None:
                hint = (f"{plain} has fewer than 2 significant digits, too few to trace by "
                        f"rounding (it would pass for {near.detail} = {near.value:.4g}); " + hint)
            report.add("numbers",
                       f"typed number {typed_text}{'%' if percent else ''} in the {what} matches "
                       "no analysed run, plan value or allow comment", **where, hint=hint)
    return out


def parse_allows(report: AuditReport, raw: str, file: str | None = None) -> list[Candidate]:
    """`% rstack: allow NUMBER REASON` lines (the directive must open the line's comment)."""
    allows = []
    stripped = _strip_comments(raw).split("\n")
    for number, line in enumerate(raw.split("\n"), start=1):
        code = stripped[number - 1].rstrip()
        match = _ALLOW.match(line[len(code):].lstrip()) if len(code) < len(line) else None
        if not match:
            continue
        value = _parse_number(match.group("num"))
        reason = match.group("reason").strip()
        if value is None:
            report.add("numbers", f"`rstack: allow` needs a number, got {match.group('num')!r}",
                       line=number, file=file,
                       hint="write `% rstack: allow 1000 images in the test split`")
            continue
        if not reason:
            report.add("numbers", f"`rstack: allow {match.group('num')}` gives no reason",
                       line=number, file=file,
                       hint="say why the number is not a result, after the number")
            continue
        allows.append(Candidate(value, "allow", reason))
    return allows

