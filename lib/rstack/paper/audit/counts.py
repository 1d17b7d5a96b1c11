"""The count check: "five seeds", "3 runs", "two arms", "400 steps", in words or digits, anywhere in
the body, must be a count the plan or the analysis holds. Seeds, runs, trials and arms are checked
against the counts themselves (never against any plan value that happens to be equal); epochs,
steps, layers and examples against the plan values that describe them."""

from __future__ import annotations

import re
from typing import Any, Iterable

from .numbers import Candidate, _parse_number
from .prose import NUMBER_WORDS
from .report import PLAN_REL, AuditReport, Traced
from .scanner import Source, masked_text
from .study import Study

COUNT_NOUNS = ("seed", "run", "arm", "trial", "epoch", "step", "layer", "example")
_NUMBER_WORD = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
# A word between the number and the noun that shows the number counts something else ("3 of the
# runs", "1 std over seeds", "2 std across runs").
_STOP = {"of", "per", "the", "and", "or", "for", "with", "in", "on", "at", "to", "by", "from",
         "a", "an", "each", "every", "than", "that", "which", "these", "those", "all", "over",
         "across", "between", "among", "within"}
_COUNT = re.compile(
    rf"(?<![\w.,-])(?P<num>\d{{1,3}}(?:,\d{{3}})+|\d+|(?i:{_NUMBER_WORD}))"
    rf"(?P<mid>(?:[\s~]+[A-Za-z][A-Za-z-]*){{0,2}}?)[\s~]+"
    rf"(?P<noun>(?i:{'|'.join(noun + 's?' for noun in COUNT_NOUNS)}))\b")


# An earlier item of a list that ends in the noun: "384 train + " in "384 train + 128 validation
# examples" (the plan template's data.size), joined by +, /, a comma or "and".
_LIST_ITEM = re.compile(
    rf"(?<![\w.,-])(?P<num>\d{{1,3}}(?:,\d{{3}})+|\d+|(?i:{_NUMBER_WORD}))"
    rf"(?:[\s~]+[A-Za-z][A-Za-z-]*){{0,2}}[\s~]*(?:\+|/|,|\band\b)[\s~]*$")


def _value(token: str) -> float | None:
    word = NUMBER_WORDS.get(token.lower())
    return float(word) if word is not None else _parse_number(token)


def _stem(noun: str) -> str:
    noun = noun.lower()
    return noun[:-1] if noun.endswith("s") else noun


def _plan_mentions(value: Any, noun: str, path: str = "") -> Iterable[tuple[str, float]]:
    """(key, number) of plan values that describe `noun`: a count written before the noun in a
    plan string ("400 steps", "one hidden layer"), or a flag naming it (`--epochs 3`)."""
    if isinstance(value, str):
        for match in _COUNT.finditer(value):
            if _stem(match.group("noun")) != noun:
                continue
            tokens = [match.group("num")]
            head = value[:match.start()]
            while (item := _LIST_ITEM.search(head)) is not None:
                tokens.append(item.group("num"))
                head = head[:item.start()]
            for token in tokens:
                number = _value(token.replace(",", ""))
                if number is not None:
                    yield path, number
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _plan_mentions(item, noun, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str) and item.startswith("--") and noun in item.lower() \
                    and index + 1 < len(value):
                number = _parse_number(str(value[index + 1]))
                if number is not None:
                    yield f"{path}[{index + 1}]", number
            yield from _plan_mentions(item, noun, f"{path}[{index}]")


def _arg_values(study: Study) -> list[tuple[str, float]]:
    """Every number among the runs' arguments: a step or epoch count is often a bare flag value."""
    out = []
    plan = study.plan
    for arm in (plan.arms if plan is not None else []):
        for index, arg in enumerate(plan.arm_args(arm)):
            number = None if str(arg).startswith("-") else _parse_number(str(arg))
            if number is not None and number >= 1 and number == int(number):
                out.append((f"the args of arm {arm} [{index}]", number))
    return out


def allowed_counts(noun: str, study: Study, summary: dict | None) -> list[tuple[float, str]]:
    """(value, what it is) for every count the noun may state."""
    out: list[tuple[float, str]] = []
    summary = summary or {}
    per_arm = {arm: len(info.get("run_ids") or []) for arm, info in
               (summary.get("arms") or {}).items() if isinstance(info, dict)}
    if noun in ("seed", "run", "trial"):
        out += [(float(n), "seeds per arm") for n in sorted(study.seed_counts)]
    if noun in ("run", "trial") and per_arm:
        out.append((float(sum(per_arm.values())), "runs the analysis used"))
    if noun in ("run", "trial"):
        out += [(float(n), "runs in the ledger" if status == "all" else f"{status} runs")
                for status, n in sorted(study.run_counts.items())]
    if noun == "arm" and study.arm_count:
        out.append((float(study.arm_count), "arms in the plan"))
        if study.baseline:
            out.append((float(study.arm_count - 1), "arms besides the baseline"))
    if noun in ("epoch", "step", "layer", "example") and study.plan_raw:
        out += [(v, f"{PLAN_REL} {k}") for k, v in _plan_mentions(study.plan_raw, noun)]
        if noun in ("epoch", "step"):
            out += [(v, f"{PLAN_REL} {k}") for k, v in _arg_values(study)]
    return out


def audit_counts(report: AuditReport, source: Source, study: Study, summary: dict | None,
                 allows: list[Candidate]) -> frozenset[int]:
    """Check every count in the body; returns the offsets of the numbers it judged (the number
    check leaves them alone)."""
    text = source.text
    masked = masked_text(text)
    body = text.find("\\begin{document}")
    judged: set[int] = set()
    for match in _COUNT.finditer(masked, max(body, 0)):
        mid = match.group("mid").split()
        if any(w.lower() in _STOP for w in mid):
            continue
        token = match.group("num")
        value = _value(token.replace(",", ""))
        if value is None:
            continue
        judged.add(match.start("num"))
        noun = _stem(match.group("noun"))
        allowed = allowed_counts(noun, study, summary)
        where = source.at(match.start("num"))
        hit = next(((PLAN_REL if what.startswith(PLAN_REL) else "summary", what)
                    for v, what in allowed if abs(v - value) < 1e-9), None) or next(
            (("allow", a.detail) for a in allows if abs(a.value - value) < 1e-9), None)
        if hit is not None:
            origin = {PLAN_REL: "plan"}.get(hit[0], hit[0])
            report.traced.append(Traced(where["line"], token, origin, f"count of {noun}s: {hit[1]}",
                                        match="count", file=where["file"]))
            continue
        phrase = " ".join(match.group().split())
        first: dict[float, str] = {}
        for v, what in allowed:
            first.setdefault(v, what)
        known = "; ".join(f"{v:g} ({what})" for v, what in list(first.items())[:4]) or \
            "none recorded"
        report.add("numbers", f"count '{phrase}' ({value:g}) matches no {noun} count in the plan "
                   f"or the analysis (known: {known})", **source.at(match.start("num")),
                   hint=(f"state the {noun} count the runs had, declare it in {PLAN_REL}, or add "
                         f"`% rstack: allow {value:g} <reason>`"))
    return frozenset(judged)
