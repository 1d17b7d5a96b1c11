"""Runners execute one run on one kind of machine and hand back a RawOutcome with its outputs local.

They never judge a run or write run.started/run.finished: rstack.runs does that for every profile.
"""

from __future__ import annotations


def make_runner(profile: str, root, **options):
    """The runner for a profile (imported lazily: modal is heavy and optional at runtime)."""
    if profile == "local":
        from .local import LocalRunner
        return LocalRunner(root, **options)
    if profile == "ssh":
        from .ssh import SshRunner
        return SshRunner.from_config(root, **options)
    if profile == "vastai":
        from .vastai import VastaiRunner
        return VastaiRunner(root, **options)
    if profile == "modal":
        from .modal_app import ModalRunner
        return ModalRunner(root, **options)
    raise ValueError(f"unknown profile {profile!r}")
