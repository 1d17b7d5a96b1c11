"""Run ids that are unique by construction: claimed against the ledger and results/ before launch.

A run id names its ledger records and its `results/<id>/` directory, so two runs sharing one would
overwrite each other's outputs and one would vanish from every listing. The id's random part only
makes collisions rare; this module makes them impossible: every id is checked against the ids the
ledger holds, the directories under results/ and the ids already claimed by this invocation, and
a taken id gets a `-2`, `-3`... suffix. The project run lock (rstack.runlock) makes the check and
the launch one step for all `rstack run`s of a project. Never writes anything.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path


class RunIds:
    """The ids taken in one project; `claim` returns a free one and marks it taken."""

    def __init__(self, root: Path, taken: set[str] | None = None):
        from . import runview

        self.root = Path(root)
        self.taken = set(runview.load(root).rows) if taken is None else set(taken)

    def is_free(self, run_id: str, output_dir: str) -> bool:
        return run_id not in self.taken and not (self.root / output_dir).exists()

    def claim(self, run_id: str, output_dir: str) -> str:
        candidate, number = run_id, 1
        while not self.is_free(candidate, output_dir.replace(run_id, candidate)):
            number += 1
            candidate = f"{run_id}-{number}"
        self.taken.add(candidate)
        return candidate

    def claim_spec(self, spec):
        """spec, or a copy with a free id (its output dir and command follow the id)."""
        new_id = self.claim(spec.run_id, spec.output_dir)
        if new_id == spec.run_id:
            return spec
        old_out = spec.output_dir
        new_out = old_out.replace(spec.run_id, new_id)
        command = [new_out if part == old_out else part for part in spec.command]
        return replace(spec, run_id=new_id, output_dir=new_out, command=command)


_SAFE = __import__("re").compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def is_safe(run_id: object) -> bool:
    """A run id that may name a file or directory: letters, digits, `_.-`, no leading dot, no
    path separator. Ids read from a ledger (a bundle from a stranger) are checked before use."""
    return isinstance(run_id, str) and _SAFE.fullmatch(run_id) is not None and ".." not in run_id
