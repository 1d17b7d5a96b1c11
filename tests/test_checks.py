"""evaluation.checks: the whitelist parser and the evaluator over one run's metrics and history."""

import pytest

from rstack.checks import CheckSyntaxError, evaluate, parse

HISTORY = [{"step": 0, "train_loss": 2.0, "val_acc": 0.4},
           {"step": 200, "train_loss": 1.0},
           {"step": 399, "train_loss": 0.5, "val_acc": 0.7}]
METRICS = {"val_acc": 0.72, "train_loss": 0.5}


@pytest.mark.parametrize("expr,passed,values", [
    ("final(val_acc) >= 0.5", True, {"final(val_acc)": 0.72}),
    ("final(val_acc) >= 0.8", False, {"final(val_acc)": 0.72}),
    ("last(train_loss) < first(train_loss)", True, {"last(train_loss)": 0.5,
                                                    "first(train_loss)": 2.0}),
    ("max(step) == 399", True, {"max(step)": 399.0}),
    ("count(train_loss) == 3 and min(train_loss) > 0", True, {"count(train_loss)": 3,
                                                             "min(train_loss)": 0.5}),
    ("val_acc > 0.7", True, {"final(val_acc)": 0.72}),  # a bare name is its final value
    ("abs(last(val_acc) - final(val_acc)) < 0.05", True, {"last(val_acc)": 0.7,
                                                          "final(val_acc)": 0.72}),
    ("not mean(train_loss) > 2", True, {"mean(train_loss)": 3.5 / 3}),
    ("0 < final(val_acc) <= 1", True, {"final(val_acc)": 0.72}),
])
def test_evaluate(expr, passed, values):
    result = evaluate(expr, METRICS, HISTORY)
    assert result.passed is passed and result.error is None
    assert result.values == pytest.approx(values)


def test_missing_metric_fails_with_a_reason():
    result = evaluate("final(val_f1) > 0.5", METRICS, HISTORY)
    assert not result.passed
    assert result.error == "val_f1 is not in this run's metrics.json or metrics.jsonl"
    assert result.describe() == ("FAILED: final(val_f1) > 0.5 (val_f1 is not in this run's "
                                 "metrics.json or metrics.jsonl)")
    assert evaluate("last(train_loss) < first(train_loss)", METRICS, []).error == (
        "train_loss is not in this run's metrics.jsonl")


def test_describe_shows_values():
    assert evaluate("last(train_loss) < first(train_loss)", METRICS, HISTORY).describe() == (
        "ok: last(train_loss) < first(train_loss) (last(train_loss) = 0.5, "
        "first(train_loss) = 2)")


@pytest.mark.parametrize("expr,message", [
    ("__import__('os').system('touch pwned') == 0", "unknown function"),
    ("final(val_acc).real > 0", "Attribute is not allowed"),
    ("final(val_acc) ** 1000000 > 0", "operator Pow is not allowed"),
    ("[x for x in ()] == []", "not allowed"),
    ("final('val_acc') > 0", "final() takes a metric name"),
    ("final(val_acc, 1) > 0", "takes exactly one argument"),
    ("lambda: 1", "a check must be a comparison"),
    ("final(val_acc) >", "does not parse"),
    ("'a' < 'b'", "only numbers are allowed"),
    ("x" * 501, "at most 500 characters"),
])
def test_refused(expr, message, tmp_path):
    with pytest.raises(CheckSyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(expr)
    assert not (tmp_path / "pwned").exists()


def test_known_names():
    parse("final(val_acc) > 0 and max(step) > 0", {"val_acc"})
    with pytest.raises(CheckSyntaxError, match="unknown name 'val_accuracy'"):
        parse("final(val_accuracy) > 0", {"val_acc"})


@pytest.mark.parametrize("expr,metrics,history", [
    ("1" + "0" * 400 + " / 3 > 0", {}, []),  # int / int: "result too large for a float"
    ("1" + "0" * 400 + " + 0.5 > 0", {}, []),  # int + float: "int too large to convert"
    ("final(x) > 0", {"x": 10 ** 400}, []),  # a caller that skipped the metrics contract
    ("final(x) > 0", {}, [{"x": 10 ** 400}]),
    ("mean(x) > 0", {}, [{"x": 1e308}, {"x": 1e308}]),  # fsum: "intermediate overflow"
])
def test_overflow_is_a_failed_check_not_a_crash(expr, metrics, history):
    result = evaluate(expr, metrics, history)
    assert result.passed is False and result.error is not None


class _CountedHistory(list):
    scans = 0

    def __iter__(self):
        type(self).scans += 1
        return super().__iter__()


def test_a_metric_series_is_read_once_per_check():
    # "mean(x)+mean(x)+..." (60 calls in 500 characters) scanned a 1M-record history 60 times
    # (42 s for one check): each metric's series is built once per evaluation.
    history = _CountedHistory([{"step": i, "x": float(i)} for i in range(10)])
    result = evaluate("mean(x)" + " + mean(x)" * 40 + " + max(x) + count(x) > 0", {}, history)
    assert result.passed and result.values["mean(x)"] == 4.5
    assert _CountedHistory.scans == 1
