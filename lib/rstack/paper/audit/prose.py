"""Sentences and clauses of the paper's prose, with offsets into the audited text.

A clause is the unit a number is attributed in: "X for A against Y for B" is two clauses, so a
value of B in A's clause is a misattribution. Pure text functions over `Source.text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .scanner import masked_text

NEGATION = re.compile(r"\b(?:not|no|non|without|never|neither|nor|lack(?:s|ing)?|n't|cannot|"
                      r"fails?\s+to|failed\s+to)\W+(?:\w+\W+){0,2}$", re.I)
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
                "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
                "nineteen": 19, "twenty": 20, "hundred": 100, "thousand": 1000}

# Hard breaks: a sentence never runs across these.
_BREAK = re.compile(r"\\(?:(?:sub)*section|paragraph|begin|end|item|caption|maketitle|title)\b\*?"
                    r"|\\\\|\n[ \t]*\n")
_SENTENCE_END = re.compile(r"[.!?](?=\s+(?:[A-Z(\\]|$))")
_ABBREV = re.compile(r"(?:\bal|\be\.g|\bi\.e|\bFigs?|\bSecs?|\bEqs?|\bTabs?|\bvs|\bcf|\betc|\bresp|"
                     r"\bapprox|\bNo|\bresp)$")
# Words that separate clauses whatever stands around them.
_CLAUSE_WORDS = re.compile(r"\b(?:against|versus|vs\.?|compared\s+(?:with|to)|while|whereas|but|"
                           r"whilst)\b|;", re.I)


def plain(text: str) -> str:
    """Prose with LaTeX commands, braces and math shifts blanked, offsets kept (val\\_loss reads
    as val__loss, which the name patterns accept)."""
    text = text.replace("\\_", "__").replace("\\%", " %")
    return re.sub(r"\\[A-Za-z@]+\*?|\\.|[{}$~]", lambda m: " " * len(m.group()), text)


@dataclass
class Clause:
    start: int
    end: int
    sentence: tuple[int, int]


def sentences(text: str, words: str, start: int = 0) -> list[tuple[int, int]]:
    """(start, end) of each sentence from `start`: hard breaks come from the LaTeX `text`,
    sentence ends from its plain `words` (same offsets)."""
    end = len(text)
    cuts = {start, end}
    for match in _BREAK.finditer(text, start, end):
        cuts.update((match.start(), match.end()))
    for match in _SENTENCE_END.finditer(words, start, end):
        if not _ABBREV.search(words[max(start, match.start() - 8):match.start()]):
            cuts.add(match.end())
    points = sorted(cuts)
    return [(a, b) for a, b in zip(points, points[1:]) if words[a:b].strip()]


class Prose:
    """The audited text cut into sentences and clauses; `clause_at` finds a number's clause."""

    def __init__(self, text: str, arms_in):
        self.text = text
        self.words = plain(masked_text(text))
        self._arms_in = arms_in
        body = text.find("\\begin{document}")
        self.body_start = 0 if body < 0 else body
        self.sentences = sentences(text, self.words, self.body_start)
        self.clauses: list[Clause] = []
        for sentence in self.sentences:
            self.clauses += self._clauses(sentence)

    def arms(self, start: int, end: int) -> list[tuple[int, int, str]]:
        return [(start + a, start + b, arm) for a, b, arm in self._arms_in(self.words[start:end])]

    def _clauses(self, sentence: tuple[int, int]) -> list[Clause]:
        start, end = sentence
        pieces = []
        cut = start
        for match in _CLAUSE_WORDS.finditer(self.words, start, end):
            pieces.append((cut, match.start()))
            cut = match.end()
        pieces.append((cut, end))
        out: list[Clause] = []
        for a, b in pieces:
            # commas split a piece only between arm mentions ("A reaches X, B reaches Y")
            parts = []
            cut = a
            for comma in re.finditer(",", self.words[a:b]):
                parts.append((cut, a + comma.start()))
                cut = a + comma.end()
            parts.append((cut, b))
            current = parts[0]
            for part in parts[1:]:
                if self.arms(*current) and self.arms(*part):
                    out.append(Clause(current[0], current[1], sentence))
                    current = part
                else:
                    current = (current[0], part[1])
            out.append(Clause(current[0], current[1], sentence))
        return out

    def clause_at(self, offset: int) -> Clause | None:
        for clause in self.clauses:
            if clause.start <= offset < clause.end:
                return clause
        return None

    def sentence_at(self, offset: int) -> tuple[int, int] | None:
        for sentence in self.sentences:
            if sentence[0] <= offset < sentence[1]:
                return sentence
        return None
