"""Helpers for tests that must prove no process a supervised script started is left behind."""

from __future__ import annotations

import time

import psutil

from rstack.procwatch import TOKEN_VAR


def leftover_processes(marker: str, wait_s: float = 3.0) -> list[psutil.Process]:
    """Live processes whose command line contains marker (zombies count as dead)."""
    deadline = time.monotonic() + wait_s
    while True:
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            try:
                if proc.info["status"] == psutil.STATUS_ZOMBIE:
                    continue
                if marker in " ".join(proc.info["cmdline"] or []):
                    found.append(proc)
            except psutil.Error:
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


__all__ = ["leftover_processes", "TOKEN_VAR"]
