"""The artifact contract: flags, metrics.json validation, history reading and divergence."""

from __future__ import annotations

import json
import math
import random
import time

import pytest

from rstack.contract import (ContractError, check_divergence, contract_args, find_stray_metrics,
                             read_history, validate_metrics_file)
from rstack.errors import RStackError


def test_contract_args():
    assert contract_args("/tmp/o", 3, True) == ["--output-dir", "/tmp/o", "--seed", "3", "--smoke-test"]
    assert contract_args("o", 0, False) == ["--output-dir", "o", "--seed", "0"]
    assert contract_args("o", None, False) == ["--output-dir", "o"]


def test_valid_metrics(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"val_loss": 0.5, "acc": 1, "n": -3e-2}')
    assert validate_metrics_file(path) == {"val_loss": 0.5, "acc": 1, "n": -0.03}


def test_missing(tmp_path):
    with pytest.raises(ContractError) as err:
        validate_metrics_file(tmp_path / "metrics.json")
    assert err.value.category == "metrics-missing"
    assert isinstance(err.value, RStackError)


@pytest.mark.parametrize("text, needle", [
    ("", "empty"),
    ("  \n", "empty"),
    ('{"a": 1,', "line 1 column 9"),
    ('[1, 2]', "not a JSON object"),
    ("{}", "empty"),
    ('{"a": {"b": 1}}', "key 'a' is a nested object"),
    ('{"a": [1]}', "key 'a' is a list"),
    ('{"name": "x"}', "key 'name' is a string"),
    ('{"ok": true}', "key 'ok' is a bool"),
    ('{"v": null}', "key 'v' is null"),
    ('{"v": NaN}', "key 'v' is NaN"),
    ('{"v": Infinity}', "key 'v' is Infinity"),
    ('{"v": -Infinity}', "key 'v' is -Infinity"),
    # Keys are printed by `runs list`: an escape sequence or a newline would forge its output.
    ('{"a\\u001b]0;pwned\\u0007": 1}', "key 'a\\x1b]0;pwned\\x07' has a non-printable character"),
    ('{"a\\nforged": 1}', "key 'a\\nforged' has a non-printable character"),
])
def test_invalid(tmp_path, text, needle):
    path = tmp_path / "metrics.json"
    path.write_text(text)
    with pytest.raises(ContractError) as err:
        validate_metrics_file(path)
    assert err.value.category == "metrics-invalid"
    assert needle in err.value.message, err.value.message
    assert err.value.hint


def test_history(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_history(path) == []
    path.write_text('{"step": 0, "loss": 1.0}\n\n{"step": 1, "loss": 0.5}\n')
    assert read_history(path) == [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}]
    path.write_text('{"step": 0, "loss": 1.0}\n{"step": 1, "loss": NaN}\n')
    with pytest.raises(ContractError) as err:
        read_history(path)
    assert err.value.category == "metrics-nonfinite" and err.value.line == 2
    assert "loss is NaN at step 1" in err.value.message
    path.write_text('{"step": 0, "loss": -Infinity}\n')
    with pytest.raises(ContractError) as err:
        read_history(path)
    assert err.value.category == "metrics-nonfinite"
    path.write_text('{"step": 0, "loss": 1.0}\n{"step": 1, "lo\n')
    with pytest.raises(ContractError) as err:
        read_history(path)
    assert err.value.category == "metrics-invalid" and err.value.line == 2


def _hist(values, key="loss"):
    return [{"step": i, key: v} for i, v in enumerate(values)]


def test_divergence_detects_growth_and_regression():
    assert "grew" in check_divergence(_hist([1.0 * 3 ** i for i in range(20)]))
    spike = [2.0 * 0.8 ** i for i in range(30)] + [0.01 * 2 ** i for i in range(12)]
    message = check_divergence(_hist(spike, "train_loss"))
    assert message and "train_loss" in message


def test_divergence_passes_healthy_curves():
    rng = random.Random(0)
    noisy = [2.0 * math.exp(-i / 60) + rng.uniform(-0.15, 0.15) + 0.2 for i in range(400)]
    assert check_divergence(_hist(noisy)) is None
    flat = [1.0 + rng.uniform(-0.3, 0.3) for _ in range(100)]
    assert check_divergence(_hist(flat)) is None
    overfit = [2.3 * 0.7 ** i for i in range(20)] + [0.002 + 0.001 * i for i in range(20)]
    assert check_divergence(_hist(overfit, "val_loss")) is None
    assert check_divergence(_hist([1.0, 1e6])) is None  # too short to judge
    acc = [{"step": i, "accuracy": 0.01 * 3 ** i} for i in range(10)]
    assert check_divergence(acc) is None  # only losses are judged
    negative = [-1.0 - 0.1 * i for i in range(20)]
    assert check_divergence(_hist(negative, "nll_loss")) is None


def test_find_stray_metrics(tmp_path):
    since = time.time()
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "metrics.json").write_text("{}")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.json").write_text("{}")
    found = find_stray_metrics([tmp_path], since=since, exclude=tmp_path / "out")
    assert found == [tmp_path / "a" / "b" / "metrics.json"]
    assert find_stray_metrics([tmp_path], since=since + 100) == []


def test_history_line_with_two_objects_is_invalid(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 0, "loss": 1.0}\n{"step": 1}, {"step": 2}\n')
    with pytest.raises(ContractError) as err:
        read_history(path)
    assert err.value.category == "metrics-invalid" and err.value.line == 2


def test_loss_scale_is_not_judged():
    history = [{"step": i, "loss": 1.0 / (i + 1), "loss_scale": 2.0 ** i} for i in range(30)]
    assert check_divergence(history) is None


def test_divergence_judges_a_smoothed_loss_that_stays_up():
    # The incident: 15 logged points of a fine-tuning loss near 1e-4; the last sample is one
    # noisy mini-batch at x141 of the noisy minimum. That is noise, not a divergence.
    rng = random.Random(2)
    values = [0.01 * math.exp(-i / 1.5) + 1e-4 * math.exp(rng.gauss(0, 0.5)) for i in range(15)]
    values[-1] = 141 * min(values)
    assert check_divergence(_hist(values, "train_loss")) is None
    # Two spikes in the tail are still not a persistent rise.
    values[-3] = 141 * min(values)
    assert check_divergence(_hist(values, "train_loss")) is None
    # The same loss rising and staying up for the tail is one.
    risen = values[:10] + [min(values) * 50 * (1 + 0.1 * i) for i in range(8)]
    message = check_divergence(_hist(risen, "train_loss"))
    assert message and message.startswith("train_loss fell to") and "held for the last" in message


def test_divergence_window_and_persistence():
    from rstack.contract import divergence_window, smooth
    assert divergence_window(15) == (3, 3)
    assert divergence_window(80) == (9, 4)
    assert divergence_window(10_000) == (25, 500)
    assert smooth([1, 100, 1, 1, 50, 2], 3) == [1, 50.5, 1, 1, 1, 2]
