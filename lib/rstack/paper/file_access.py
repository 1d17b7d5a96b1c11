"""The paper audit's file-access check: a paper that reads files outside the project.

The build sandboxes every engine (openin_any=p, see build.SANDBOX_ENV); this check also refuses the
source itself, so a paper that tries (or an engine without kpathsea, such as tectonic) is caught.
Pure text scanning: never opens the files it names.
"""

from __future__ import annotations

import re
from typing import Iterator

# Primitives a paper has no reason to use: packages read their own files, a paper reads none.
_RAW_READ = re.compile(r"\\(openin|read)(?![A-Za-z@])")
# Commands that take a file name in braces (or, for \input, a bare name).
_FILE_COMMAND = re.compile(
    r"\\(input|include|InputIfFileExists|IfFileExists|includegraphics|lstinputlisting|"
    r"verbatiminput|bibliography|addbibresource|includepdf)(?![A-Za-z@])\s*(?:\[[^\]]*\]\s*)?"
    r"(?:\{([^}]*)\}|([^\s{}\\]+))")


def _outside(name: str) -> bool:
    """An absolute path, a home path, a parent directory or a dotfile: outside the project."""
    name = name.strip().strip('"')
    parts = [part for part in re.split(r"[\\/]", name) if part]
    return (name.startswith(("/", "~", "\\")) or bool(re.match(r"[A-Za-z]:[\\/]", name))
            or ".." in parts or any(part.startswith(".") and part not in (".",) for part in parts))


def find_file_access(text: str) -> Iterator[tuple[int, str]]:
    """(offset, message) for each raw read and each file command naming a path outside the
    project, in comment-free source text."""
    for match in _RAW_READ.finditer(text):
        yield match.start(), (f"\\{match.group(1)} reads a file or the terminal directly; a paper "
                              "has no reason to (the build refuses paths outside the project)")
    for match in _FILE_COMMAND.finditer(text):
        names = (match.group(2) if match.group(2) is not None else match.group(3)).split(",")
        for name in names:
            if name.strip() and _outside(name):
                yield match.start(), (f"\\{match.group(1)}{{{name.strip()}}} names a file outside "
                                      "the project (an absolute path, ~, .. or a dotfile)")


def audit_file_access(report, source) -> None:
    """The audit's hook: each finding under the `build` check, at its own file:line (the audit's
    Source maps offsets back to the hand-written \\input files it read in)."""
    for offset, message in find_file_access(source.text):
        report.add("build", message, **source.at(offset),
                   hint="keep every file the paper uses inside the project and name it relatively")


__all__ = ["audit_file_access", "find_file_access"]
