"""experiment-plan.md: the schema (one test per malformed field), the loader and `rstack plan`."""

from __future__ import annotations

import copy
import io
import os
import json
import shutil
import sys

import pytest
from ruamel.yaml import YAML

from rstack import paths
from rstack.ledger import Ledger
from rstack.plan import PlanError, compile_plan, load_plan, parse_plan

TEMPLATE = paths.templates_dir() / "experiment-plan.md"


def valid() -> dict:
    return {
        "hypothesis": {"question": "q?", "claim": "c", "expected_direction": "lower",
                       "falsifiers": ["f"], "baseline_arm": "base", "metrics": ["val_loss", "acc"]},
        "data": {"sources": ["synthetic"], "schema": "x,y", "transforms": [], "provenance": "gen",
                 "size": "100"},
        "execution": {"profile": "local", "script": "train.py",
                      "arms": {"base": ["--lr", "0.01"], "treat": ["--lr", 0.1]},
                      "seeds": [0, 1, 2], "timeout_s": 60, "gpu": None, "max_cost_usd": None},
        "evaluation": {"primary_metric": "val_loss", "direction": "minimize",
                       "accept": {"kind": "relative", "threshold": 0.05}, "baselines": ["base"],
                       "sanity_checks": ["loss goes down"]},
        "publication": {"venue": "arxiv", "claims": ["c"]},
    }


def render(front: dict, body: str = "\n# notes\n") -> str:
    buf = io.StringIO()
    YAML().dump(front, buf)
    return "---\n" + buf.getvalue() + "---\n" + body


def write_plan(tmp_path, front: dict, name="experiment-plan.md"):
    path = tmp_path / name
    path.write_text(render(front))
    return path


def problems_of(front: dict, tmp_path, monkeypatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    path = write_plan(tmp_path, front)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    return info.value.problems


def test_template_plan_is_valid_and_typed():
    plan = load_plan(TEMPLATE)
    assert plan.arms == {"baseline": ["--lr", "0.01"], "treatment": ["--lr", "0.1"]}
    assert plan.seeds == [0, 1, 2]
    assert plan.primary_metric == "val_loss" and plan.direction == "minimize"
    assert plan.baseline_arm == "baseline" and plan.venue == "arxiv"
    assert plan.protected["seq_len"] == "--seq-len"
    assert plan.evaluation.accept.kind == "relative" and plan.evaluation.accept.threshold == 0.05
    assert plan.raw["execution"]["timeout_s"] == 600 and isinstance(plan.raw, dict)
    import hashlib
    assert plan.sha256 == hashlib.sha256(TEMPLATE.read_bytes()).hexdigest()


def test_numbers_in_arms_become_strings(tmp_path):
    plan = load_plan(write_plan(tmp_path, valid()))
    assert plan.arms["treat"] == ["--lr", "0.1"]
    assert plan.execution.max_cost_usd is None and plan.execution.gpu is None
    assert plan.protected == {"method": "--method", "model": "--model", "dataset": "--dataset",
                              "seq_len": "--seq-len"}


def _set(front, dotted, value):
    node = front
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value


_DELETE = object()

MALFORMED = [
    ("hypothesis.question", "", "hypothesis.question: must be a non-empty string, got ''"),
    ("hypothesis.claim", _DELETE, "hypothesis.claim: missing"),
    ("hypothesis.expected_direction", 3, "hypothesis.expected_direction: must be a non-empty string, got 3"),
    ("hypothesis.falsifiers", [], "hypothesis.falsifiers: needs at least 1 item(s), got 0"),
    ("hypothesis.falsifiers", "one", "hypothesis.falsifiers: must be a list of strings, got 'one'"),
    ("hypothesis.baseline_arm", "nope", "hypothesis.baseline_arm: 'nope' is not an arm in execution.arms (base, treat)"),
    ("hypothesis.metrics", [1], "hypothesis.metrics[0]: must be a non-empty string, got 1"),
    ("hypothesis.extra", "x", "hypothesis.extra: unknown key; known keys: question, claim"),
    ("data.sources", [], "data.sources: needs at least 1 item(s), got 0"),
    ("data.schema", _DELETE, "data.schema: missing"),
    ("data.transforms", {"a": 1}, "data.transforms: must be a list of strings, got a mapping"),
    ("data.provenance", None, "data.provenance: must be a non-empty string, got None"),
    ("data.size", ["big"], "data.size: must be a non-empty string, got a list"),
    ("execution.profile", "cloud", "execution.profile: must be one of local, ssh, vastai, modal, slurm, got 'cloud'"),
    ("execution.script", "/abs/train.py", "execution.script: must be a path inside the project, got '/abs/train.py'"),
    ("execution.script", _DELETE, "execution.script: missing"),
    ("execution.arms", {}, "execution.arms: must be a non-empty mapping NAME: [extra args]"),
    ("execution.arms", ["a"], "execution.arms[0]: must be a mapping with a name: {name: NAME, args: [...]}"),
    ("execution.arms", 3, "execution.arms: must be a non-empty mapping NAME: [extra args]"),
    ("execution.arms.treat", {"args": ["--lr", "1"], "retry": "always"}, "execution.arms.treat.retry: must be one of refuse, adjust, got 'always'"),
    ("execution.arms.treat", {"args": [], "colour": "red"}, "execution.arms.treat.colour: unknown key; known keys: args, label, aliases, retry, seeds"),
    ("execution.arms.treat", {"args": [], "aliases": "x"}, "execution.arms.treat.aliases: must be a list of strings, got 'x'"),
    ("execution.args", "--epochs 3", "execution.args: must be a list of arguments, got '--epochs 3'"),
    ("execution.args", ["--seed", "1"], "execution.args[0]: --seed is set by rstack run"),
    ("execution.python", "", "execution.python: must be a non-empty string, got ''"),
    ("evaluation.metrics", ["val_loss"], "evaluation.metrics: must be a non-empty mapping NAME: {direction: minimize|maximize"),
    ("evaluation.metrics", {"val_loss": {"direction": "lower"}}, "evaluation.metrics.val_loss.direction: must be one of minimize, maximize, got 'lower' (minimize: lower is better"),
    ("evaluation.metrics", {"val_loss": {"direction": "minimize", "min_effect": "a lot"}}, "evaluation.metrics.val_loss.min_effect: must be a number >= 0 (absolute, in the metric's units) or a percentage of the baseline mean such as \"2%\", got 'a lot'"),
    ("evaluation.metrics", {"val_loss": {"direction": "minimize", "min_effect": -1}}, "evaluation.metrics.val_loss.min_effect: must be a number >= 0"),
    ("evaluation.metrics", {"val_loss": {"direction": "minimize"}, "acc": {"min_effect": 0.1}}, "evaluation.metrics.acc.min_effect: min_effect is the smallest difference that matters in the metric's direction, but the metric has no direction; add direction: minimize|maximize"),
    ("evaluation.metrics", {"val_loss": {"direction": "minimize", "unit": "nats"}}, "evaluation.metrics.val_loss.unit: unknown key; known keys: direction, min_effect, label"),
    ("evaluation.metrics", {"acc": {"direction": "maximize"}}, "evaluation.primary_metric: 'val_loss' is not declared in evaluation.metrics (acc)"),
    ("evaluation.pairing", "arm", "evaluation.pairing: must be one of seed, none, got 'arm'"),
    ("evaluation.checks", ["final(acc) >="], "evaluation.checks[0]: 'final(acc) >=': does not parse"),
    ("evaluation.checks", ["median(acc) > 0.5"], "evaluation.checks[0]: 'median(acc) > 0.5': unknown function 'median' (known: final, last, first, min, max, mean, count, abs)"),
    ("evaluation.checks", ["final(accuracy) > 0.5"], "evaluation.checks[0]: 'final(accuracy) > 0.5': unknown name 'accuracy': declare it under evaluation.metrics"),
    ("evaluation.checks", ["__import__('os').system('x') == 0"], "evaluation.checks[0]: \"__import__('os').system('x') == 0\": unknown function"),
    ("evaluation.checks", ["final(acc)"], "evaluation.checks[0]: 'final(acc)': a check must be a comparison"),
    ("execution.arms.treat", "--lr 0.1", "execution.arms.treat: must be a list of arguments, got '--lr 0.1'"),
    ("execution.arms.treat", ["--lr", True], "execution.arms.treat[1]: must be a string or number, got True"),
    ("execution.arms.treat", ["--seed", "3"], "execution.arms.treat[0]: --seed is set by rstack run"),
    ("execution.arms.treat", ["--output-dir=x"], "execution.arms.treat[0]: --output-dir is set by rstack run"),
    ("execution.arms.bad name", [], "execution.arms.bad name: arm names use letters"),
    ("execution.seeds", [0, 1], "execution.seeds: 2 seed(s) is fewer than 3; add seeds, or give execution.seeds_reason"),
    ("execution.seeds", [0, 0, 1], "execution.seeds: seeds repeat: [0, 0, 1]"),
    ("execution.seeds", [0, -1, 2], "execution.seeds: must be a non-empty list of integers >= 0, got a list"),
    ("execution.seeds", "0,1,2", "execution.seeds: must be a non-empty list of integers >= 0, got '0,1,2'"),
    ("execution.seeds", [], "execution.seeds: must be a non-empty list of integers >= 0"),
    ("execution.seeds_reason", "", "execution.seeds_reason: must be a non-empty string, got ''"),
    # issue 18 item 18: numbers no reader can use
    ("execution.seeds", [0, 1, 10 ** 400], "execution.seeds: must be a non-empty list of integers >= 0"),
    ("execution.timeout_s", 10 ** 400, "execution.timeout_s: must be a number > 0, got 1000000"),
    ("execution.max_cost_usd", -(10 ** 400), "execution.max_cost_usd: must be a number >= 0 or null"),
    ("execution.timeout_s", 0, "execution.timeout_s: must be a number > 0, got 0"),
    ("execution.timeout_s", "1h", "execution.timeout_s: must be a number > 0, got '1h'"),
    ("execution.timeout_s", _DELETE, "execution.timeout_s: missing"),
    ("execution.gpu", 7, "execution.gpu: must be a GPU name or null, got 7"),
    ("execution.max_cost_usd", -1, "execution.max_cost_usd: must be a number >= 0 or null, got -1"),
    ("execution.protected", ["--model"], "execution.protected: must be a mapping KEY: --flag"),
    ("execution.protected", {"model": "model"}, "execution.protected.model: must be the flag that carries it (e.g. --model), got 'model'"),
    ("execution.seed", [1], "execution.seed: unknown key; known keys: profile, script"),
    ("evaluation.primary_metric", "bleu", "evaluation.primary_metric: 'bleu' is not listed in hypothesis.metrics (val_loss, acc)"),
    ("evaluation.direction", "down", "evaluation.direction: must be one of minimize, maximize, got 'down'"),
    ("evaluation.accept", 0.1, "evaluation.accept: must be a mapping {kind: absolute|relative, threshold: NUMBER}"),
    ("evaluation.accept.kind", "ratio", "evaluation.accept.kind: must be one of absolute, relative, got 'ratio'"),
    ("evaluation.accept.threshold", "big", "evaluation.accept.threshold: must be a number, got 'big'"),
    ("evaluation.accept.threshold", _DELETE, "evaluation.accept.threshold: missing"),
    ("evaluation.accept.unit", "x", "evaluation.accept.unit: unknown key; known keys: kind, threshold"),
    ("evaluation.baselines", ["ghost"], "evaluation.baselines[0]: 'ghost' is not an arm in execution.arms (base, treat)"),
    ("evaluation.sanity_checks", [""], "evaluation.sanity_checks[0]: must be a non-empty string, got ''"),
    ("publication.venue", "nature", "publication.venue: must be one of arxiv, neurips, icml, iclr, acl, got 'nature'"),
    ("publication.claims", [], "publication.claims: needs at least 1 item(s), got 0"),
    ("publication", _DELETE, "publication: missing section (keys: venue, claims)"),
    ("data", "none", "data: must be a mapping of sources, schema"),
    ("results", {"a": 1}, "results: unknown section; sections: hypothesis, data, execution"),
]


@pytest.mark.parametrize("dotted,value,expected", MALFORMED,
                         ids=[f"{d}={'DEL' if v is _DELETE else v!r}" for d, v, _ in MALFORMED])
def test_each_malformed_field_is_named(tmp_path, monkeypatch, dotted, value, expected):
    front = copy.deepcopy(valid())
    _set(front, dotted, value)
    problems = problems_of(front, tmp_path, monkeypatch)
    assert any(p.startswith("experiment-plan.md: " + expected) for p in problems), problems


def test_fewer_seeds_allowed_with_reason(tmp_path):
    front = valid()
    front["execution"]["seeds"] = [0]
    front["execution"]["seeds_reason"] = "deterministic evaluation; seed does not matter"
    assert load_plan(write_plan(tmp_path, front)).seeds == [0]


def test_vastai_needs_gpu(tmp_path, monkeypatch):
    front = valid()
    front["execution"]["profile"] = "vastai"
    problems = problems_of(front, tmp_path, monkeypatch)
    assert problems == ["experiment-plan.md: execution.gpu: the vastai profile needs a GPU name "
                        "(e.g. RTX_4090) (line 34)"]


def test_every_problem_reported_at_once_with_lines(tmp_path, monkeypatch):
    front = valid()
    front["execution"]["seeds"] = [0, 1]
    front["evaluation"]["direction"] = "sideways"
    problems = problems_of(front, tmp_path, monkeypatch)
    assert len(problems) == 2
    assert all("(line " in p for p in problems)
    text = (tmp_path / "experiment-plan.md").read_text().splitlines()
    line = int(problems[0].rsplit("(line ", 1)[1].rstrip(")"))
    assert text[line - 1].strip().startswith("seeds:")


@pytest.mark.parametrize("text,expected", [
    ("hypothesis: {}\n", "experiment-plan.md: no YAML front matter"),
    ("---\nhypothesis: {}\n", "experiment-plan.md: the front matter is not closed"),
    ("---\nhypothesis: [\n---\n", "experiment-plan.md:3: malformed YAML front matter"),
    ("---\n- a\n---\n", "experiment-plan.md: the front matter must be a mapping"),
])
def test_structural_errors(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiment-plan.md").write_text(text)
    with pytest.raises(PlanError) as info:
        load_plan(tmp_path / "experiment-plan.md")
    assert str(info.value).startswith(expected)


def test_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PlanError, match="experiment-plan.md: no such plan file"):
        load_plan(tmp_path / "experiment-plan.md")


def test_compile_matrix_and_costs(project, monkeypatch):
    front = valid()
    front["execution"].update(profile="modal", gpu="A10G", timeout_s=3600, max_cost_usd=100)
    plan = load_plan(write_plan(project, front))
    matrix = compile_plan(plan, root=project)
    assert [(r.arm, r.seed) for r in matrix.runs] == [("base", 0), ("base", 1), ("base", 2),
                                                      ("treat", 0), ("treat", 1), ("treat", 2)]
    run = matrix.runs[3]
    assert run.command == ["python", "train.py", "--lr", "0.1", "--output-dir", run.output_dir,
                           "--seed", "0"]
    assert run.output_dir == f"results/{run.run_id}" and run.cost_estimate_usd == 1.10
    assert matrix.total_usd == pytest.approx(6.60) and matrix.cap_usd == 100
    assert len({r.run_id for r in matrix.runs}) == 6
    assert sorted(r.run_id for r in matrix.runs)[0][:8].isdigit()


def test_compile_narrows_arms_and_seeds(project):
    plan = load_plan(write_plan(project, valid()))
    matrix = compile_plan(plan, root=project, arms=["treat"], seeds=[5])
    assert [(r.arm, r.seed) for r in matrix.runs] == [("treat", 5)]
    with pytest.raises(PlanError, match="no arm named 'ghost'"):
        compile_plan(plan, root=project, arms=["ghost"])


def test_modal_price_override_and_unknown_gpu(project, monkeypatch):
    front = valid()
    front["execution"].update(profile="modal", gpu="H100", timeout_s=1800)
    plan = load_plan(write_plan(project, front))
    monkeypatch.setenv("RSTACK_MODAL_GPU_PRICES", "H100=2.0")
    assert compile_plan(plan, root=project).runs[0].cost_estimate_usd == 1.0
    front["execution"]["gpu"] = "TPUv9"
    plan = load_plan(write_plan(project, front))
    from rstack.errors import ConfigError
    with pytest.raises(ConfigError, match="no Modal price for GPU 'TPUv9'"):
        compile_plan(plan, root=project)


# ---- the CLI


def _project_with_template(project):
    shutil.copy(TEMPLATE, project / "experiment-plan.md")
    (project / "train.py").write_text("print('hi')\n")


def test_cli_check_ok_and_json(project, cli):
    _project_with_template(project)
    result = cli("plan", "check")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: experiment-plan.md (2 arm(s) x 3 seed(s), profile local")
    data = json.loads(cli("plan", "check", "--json").output)
    assert data["ok"] is True and data["arms"] == ["baseline", "treatment"]


def test_cli_check_reports_problems_exit_1(project, cli):
    front = valid()
    front["execution"]["seeds"] = [1, 2]
    write_plan(project, front)
    (project / "train.py").write_text("")
    result = cli("plan", "check")
    assert result.exit_code == 1
    assert "experiment-plan.md: execution.seeds: 2 seed(s) is fewer than 3" in result.output
    assert "fix: fix the 1 problem(s) above, then: rstack plan check" in result.output


def test_cli_check_missing_script(project, cli):
    shutil.copy(TEMPLATE, project / "experiment-plan.md")
    result = cli("plan", "check")
    assert result.exit_code == 1
    assert "execution.script: 'train.py' does not exist under the project root" in result.output


def test_cli_compile_text_json_and_cap(project, cli):
    _project_with_template(project)
    result = cli("plan", "compile")
    assert result.exit_code == 0, result.output
    assert "6 run(s); estimate $0.00, spent $0.00, cap $10.00" in result.output
    data = json.loads(cli("plan", "compile", "--json").output)
    assert len(data["runs"]) == 6 and data["within_cap"] is True
    assert data["runs"][0]["command"][1:6] == ["train.py", "--steps", "400", "--lr", "0.01"]

    front = valid()
    front["execution"].update(profile="modal", gpu="H100", timeout_s=3600, max_cost_usd=20)
    write_plan(project, front)
    Ledger(project, "experiments").append({
        "type": "run.finished", "run_id": "r0", "arm": "base", "seed": 0, "status": "ok",
        "exit_code": 0, "category": None, "hint": None, "metrics": {"val_loss": 1.0},
        "artifacts": [], "duration_s": 1.0, "cost_usd": 1.5})
    result = cli("plan", "compile")
    assert result.exit_code == 1
    assert ("cost cap: spent $1.50 + estimate $23.70 = $25.20 exceeds the cap $20.00; "
            "nothing was started") in result.output


# ---- declared metrics, pairing, checks, shared args, interpreter, arm specs (issue 11)

def new_form() -> dict:
    front = valid()
    del front["hypothesis"]["metrics"]
    del front["evaluation"]["direction"]
    del front["evaluation"]["sanity_checks"]
    front["evaluation"]["metrics"] = {
        "val_loss": {"direction": "minimize", "min_effect": 0.01, "label": "Validation loss"},
        "acc": {"direction": "maximize", "min_effect": "2%"},
        "train_ece": None}
    front["evaluation"]["checks"] = ["final(acc) >= 0.5", "last(val_loss) < first(val_loss)",
                                     "max(step) == 400"]
    front["execution"]["args"] = ["--epochs", 3]
    front["execution"]["python"] = ".venv/bin/python"
    front["execution"]["arms"] = {
        "base": {"args": ["--lr", "0.01"], "label": "plain SGD", "aliases": ["SGD baseline"]},
        "treat": {"args": ["--lr", 0.1], "retry": "adjust"}}
    return front


def test_new_form_is_typed(tmp_path, monkeypatch):
    from rstack.plan import Arm, MetricSpec

    monkeypatch.chdir(tmp_path)
    plan = load_plan(write_plan(tmp_path, new_form()))
    assert plan.metrics["val_loss"] == MetricSpec("val_loss", "minimize", 0.01, False,
                                                  "Validation loss")
    assert plan.metrics["acc"] == MetricSpec("acc", "maximize", 0.02, True, None)
    assert plan.metrics["train_ece"].direction is None
    assert plan.metric("not_declared") == MetricSpec("not_declared", None)
    assert plan.direction == "minimize" and plan.primary_metric == "val_loss"
    assert plan.hypothesis.metrics == ["val_loss", "acc", "train_ece"]
    assert plan.evaluation.pairing == "seed" and plan.paired
    assert plan.checks[2] == "max(step) == 400"
    assert plan.arms == {"base": ["--lr", "0.01"], "treat": ["--lr", "0.1"]}
    assert plan.arm_args("treat") == ["--epochs", "3", "--lr", "0.1"]
    assert plan.arm_specs["base"] == Arm("base", ["--lr", "0.01"], "plain SGD", ["SGD baseline"],
                                         "refuse", None)
    assert plan.arm_specs["treat"].retry == "adjust" and plan.arm_specs["treat"].display == "treat"
    # the only warning: a metric without a direction, naming the key to add
    assert len(plan.warnings) == 1
    assert plan.warnings[0].startswith(
        "experiment-plan.md: evaluation.metrics.train_ece.direction: not declared: this metric is "
        "reported as 'direction not declared' and never called better or worse; add direction: "
        "minimize|maximize if the paper compares it (line ")


def test_arms_as_a_list_with_names(tmp_path):
    front = new_form()
    front["execution"]["arms"] = [{"name": "base", "args": ["--lr", "0.01"], "label": "SGD"},
                                  {"name": "treat", "args": ["--lr", "0.1"]}]
    plan = load_plan(write_plan(tmp_path, front))
    assert list(plan.arms) == ["base", "treat"] and plan.arm_specs["base"].label == "SGD"


def test_compile_appends_arm_args_after_shared_args_and_uses_the_interpreter(tmp_path):
    front = new_form()
    plan = load_plan(write_plan(tmp_path, front))
    matrix = compile_plan(plan, root=tmp_path, spent_usd=0.0)
    run = [r for r in matrix.runs if r.arm == "treat"][0]
    assert run.args == ["--epochs", "3", "--lr", "0.1"]
    assert run.command[0] == str(tmp_path / ".venv" / "bin" / "python")
    assert run.command[2:6] == ["--epochs", "3", "--lr", "0.1"]


def test_old_plan_loads_with_a_conversion_warning_and_no_guessed_direction(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = load_plan(write_plan(tmp_path, valid()))
    assert plan.metrics["val_loss"].direction == "minimize"
    assert plan.metrics["acc"].direction is None  # never guessed from the name
    text = "\n".join(plan.warnings)
    assert ("old plan form (hypothesis.metrics + evaluation.direction): only the primary metric "
            "has a direction now, the others are reported as 'direction not declared'; convert "
            "it to evaluation.metrics: {val_loss: {direction: minimize}, acc: {direction: "
            "minimize|maximize}} and delete hypothesis.metrics and evaluation.direction") in text
    assert "evaluation.sanity_checks: free text that nothing runs" in text


def test_pairing_seed_refused_when_arms_run_different_seeds(tmp_path, monkeypatch):
    front = new_form()
    front["execution"]["arms"]["treat"]["seeds"] = [0, 1, 3]
    assert load_plan(write_plan(tmp_path, front)).evaluation.pairing == "none"  # the default
    front["evaluation"]["pairing"] = "seed"
    problems = problems_of(front, tmp_path, monkeypatch)
    assert len(problems) == 1
    assert problems[0].startswith(
        "experiment-plan.md: evaluation.pairing: seed pairing needs every arm to run the same "
        "seeds (the arms run [0, 1, 2] vs [0, 1, 3]); give the arms the same seeds, or set "
        "pairing: none (line ")


def test_primary_metric_needs_a_direction(tmp_path, monkeypatch):
    front = new_form()
    front["evaluation"]["metrics"]["val_loss"] = {"label": "loss"}
    problems = problems_of(front, tmp_path, monkeypatch)
    assert any("evaluation.metrics.val_loss.direction: missing: the primary metric needs a "
               "direction (minimize|maximize)" in p for p in problems), problems


def test_plan_check_prints_warnings_and_python_must_exist(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from rstack.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("print(1)\n")
    write_plan(tmp_path, new_form())
    result = CliRunner().invoke(main, ["plan", "check", "--project", str(tmp_path)])
    assert result.exit_code == 1
    assert ("execution.python: '.venv/bin/python' is not an interpreter" in result.output
            and "uv venv && uv pip install -r requirements.txt" in result.output)
    front = new_form()
    front["execution"]["python"] = sys.executable
    write_plan(tmp_path, front)
    result = CliRunner().invoke(main, ["plan", "check", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "warning: experiment-plan.md: evaluation.metrics.train_ece.direction" in result.output
    result = CliRunner().invoke(main, ["plan", "check", "--json", "--project", str(tmp_path)])
    payload = json.loads(result.output)
    assert payload["metrics"]["acc"] == {"name": "acc", "direction": "maximize", "min_effect": 0.02,
                                         "min_effect_relative": True, "label": None}
    assert payload["pairing"] == "seed" and len(payload["warnings"]) == 1


# -- issue 18 item 18: plan files that are not plain UTF-8 text files ----------------------------


def _plan_path(tmp_path):
    return tmp_path / "experiment-plan.md"


@pytest.mark.parametrize("make, message", [
    (lambda p: os.mkfifo(p), "is a FIFO (named pipe), not a regular file"),
    (lambda p: p.symlink_to("/dev/zero"), "is a symbolic link"),
    (lambda p: p.mkdir(), "is a directory, not a regular file"),
    (lambda p: p.write_bytes(b"---\n" + b"# x\n" * 300_000), "limit for this file"),
    (lambda p: p.write_bytes("---\nx: 1\n---\n".encode("utf-16")), "is UTF-16 text"),
    (lambda p: p.write_bytes(b"---\n\x00\x01binary\n---\n"), "holds NUL bytes"),
    (lambda p: p.write_text("---\na: &a [x, x, x]\nb: [*a, *a, *a]\n---\n"),
     "YAML anchors and aliases"),
])
def test_plan_files_that_are_not_text_get_a_clear_message(tmp_path, make, message):
    path = _plan_path(tmp_path)
    make(path)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert message in info.value.message
