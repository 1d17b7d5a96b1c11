"""Reading a user-editable input file (config, plan) without trusting what sits at its path.

A path may hold a symlink to /etc/shadow, a FIFO, /dev/zero, a directory, a 3 GB file, UTF-16 or
binary bytes, or YAML built to explode on load. Each is refused here with a sentence saying which,
never with the file's content. Callers turn `UnsafeInput` into their own error type.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class UnsafeInput(Exception):
    """The file at a path is not one rstack will read; `str()` is the reason, without content."""


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def why_not_a_file(path: Path) -> str:
    """Why a path that `is_file()` refused cannot be read: "no such file", or what is there."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    return f"is {file_kind(mode)}, not a regular file"


def check_regular(path: Path) -> None:
    """Raise UnsafeInput when something other than a regular file is at path (a missing path is
    fine: the caller creates it)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise UnsafeInput(f"{path} is {file_kind(mode)}, not a regular file")


def read_regular(path: Path, *, max_bytes: int) -> bytes:
    """The bytes of the regular file at path (never through a link), at most max_bytes.

    Raises FileNotFoundError when nothing is there, UnsafeInput for anything else that is wrong.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeInput(f"{path} is a symbolic link; rstack reads only a regular file "
                              "there (replace the link with a copy of the file)") from None
        if exc.errno == errno.ENOENT:
            raise
        raise UnsafeInput(f"{path}: cannot read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeInput(f"{path} is {file_kind(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeInput(f"{path} is {info.st_size:,} bytes, over the {max_bytes:,}-byte "
                              "limit for this file")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:  # grew while we read
                raise UnsafeInput(f"{path} is over the {max_bytes:,}-byte limit for this file")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def decode_text(path: Path, raw: bytes) -> str:
    """UTF-8 text, or UnsafeInput naming the encoding problem (UTF-16, binary, bad bytes)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsafeInput(f"{path} is UTF-16 text; save it as UTF-8")
    if b"\0" in raw:
        raise UnsafeInput(f"{path} holds NUL bytes: it is a binary file, not text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise UnsafeInput(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                          "save it as UTF-8") from None
    return text.removeprefix("\ufeff")


def yaml_alias_line(text: str) -> int | None:
    """The line of the first YAML anchor or alias in text, or None. rstack's YAML files never need
    them, and aliases are how a small file expands into gigabytes (a "billion laughs")."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import AliasEvent, NodeEvent

    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor):
                return event.start_mark.line + 1 if event.start_mark else 1
    except YAMLError:
        return None  # the loader reports the syntax error with its position
    return None


__all__ = ["UnsafeInput", "why_not_a_file", "check_regular", "decode_text", "file_kind", "read_regular",
           "yaml_alias_line"]
