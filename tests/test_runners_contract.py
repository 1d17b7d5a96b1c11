"""The runner contract: one registry of profiles, one vocabulary, every runner a whole Runner."""

from __future__ import annotations

import inspect

import click
import pytest

from rstack import config, plan, records
from rstack.cli import run as cli_run
from rstack.runners import PROFILES, RUNNERS, runner_class
from rstack.runners.base import STATUSES, Runner


def _choices(command: click.Command, option: str) -> tuple[str, ...]:
    param = next(p for p in command.params if p.name == option)
    return tuple(param.type.choices)


def _enum(record_type: str, field: str) -> tuple[str, ...]:
    spec = records.RECORD_TYPES[record_type].required[field]
    assert spec.startswith("enum:")
    return tuple(spec[len("enum:"):].split(","))


def test_every_list_of_profiles_derives_from_the_registry():
    assert PROFILES == tuple(RUNNERS)
    assert _choices(cli_run.run_command, "profile") == PROFILES
    assert config.KEYS["compute_preferred"].choices == ("auto", *PROFILES)
    assert plan.PROFILES == PROFILES
    assert _enum("run.started", "profile") == PROFILES
    from rstack.cli import program as cli_program
    assert _choices(cli_program.init_command, "profile") == PROFILES


def test_every_list_of_run_statuses_derives_from_base():
    assert _enum("run.finished", "status") == STATUSES
    assert _choices(cli_run.list_command, "status") == (*STATUSES, "running")


@pytest.mark.parametrize("profile", PROFILES)
def test_each_registered_runner_is_a_whole_runner(profile):
    cls = runner_class(profile)
    assert issubclass(cls, Runner)
    assert cls.profile == profile
    assert cls.launch is not Runner.launch, "launch is the one method every runner implements"
    assert isinstance(cls.persistence, str) and cls.persistence
    assert cls.monitoring is True
    if cls.can_reattach:
        assert cls.reattach is not Runner.reattach
    assert cls.remote == (profile != "local")


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="unknown profile 'k8s'"):
        runner_class("k8s")


def test_base_has_no_getattr_probes_in_runs():
    from rstack import runs

    assert "getattr(" not in inspect.getsource(runs)


def test_venues_are_defined_once_by_the_paper_concern():
    from rstack.cli import paper as cli_paper
    from rstack.paper import build, venues

    assert config.KEYS["venue"].choices == venues.VENUES
    assert plan.VENUES == venues.VENUES
    assert build.VENUES is venues.VENUES
    assert _choices(cli_paper.paper_group.commands["new"], "venue") == venues.VENUES
    assert _choices(cli_paper.venue_group.commands["fetch"], "name") == venues.VENUES


def test_latex_engines_are_defined_once():
    from rstack import compute, tex
    from rstack.cli import paper as cli_paper
    from rstack.paper import build

    assert config.KEYS["latex_engine"].choices == ("auto", *tex.LATEX_ENGINES)
    assert compute.LATEX_ENGINES == build.ENGINES == tex.LATEX_ENGINES
    assert _choices(cli_paper.paper_group.commands["build"], "engine") == ("auto", *tex.LATEX_ENGINES)
