"""The incident registry and `diagnose`: each category from realistic output, hints filled in."""

from __future__ import annotations

import pytest

from rstack.incidents import (INCIDENTS, RETRY_POLICIES, diagnose, parse_traceback, pip_package)

REQUIRED = ("syntax-error missing-module bad-flags crash exit-nonzero hang smoke-ignored memory "
            "metrics-missing metrics-invalid metrics-nonfinite divergence nondeterministic cuda-oom "
            "cuda-unavailable data-missing shape-mismatch disk-full killed-by-signal timeout "
            "host-lost preempted").split()


def tb(script, *body):
    return ["Traceback (most recent call last):",
            f'  File "{script}", line 12, in <module>', "    main()",
            f'  File "{script}", line 8, in main', "    train(x)",
            '  File "/usr/lib/python3/site-packages/lib.py", line 99, in train', "    inner()",
            *body]


def test_registry_has_every_category_with_a_hint_and_valid_retry():
    for category in REQUIRED:
        assert category in INCIDENTS, category
    for category, incident in INCIDENTS.items():
        assert incident.category == category
        assert incident.hint and incident.title
        assert incident.retry in RETRY_POLICIES
    assert INCIDENTS["cuda-oom"].retry == "oom-ladder"
    assert INCIDENTS["divergence"].retry == "lower-lr"
    assert INCIDENTS["host-lost"].retry == "same"
    assert INCIDENTS["preempted"].retry == "same"
    assert INCIDENTS["crash"].retry is None


def test_crash_names_exception_and_innermost_user_frame(tmp_path):
    script = str(tmp_path / "train.py")
    d = diagnose(tb(script, "ValueError: bad value 3"), exit_code=1, signal=None, reason=None,
                 script_path=script)
    assert d.category == "crash"
    assert d.location == f"{script}:8"
    assert "ValueError: bad value 3" in d.message and f"{script}:8" in d.message
    assert f"{script}:8" in d.hint
    assert d.retry is None


@pytest.mark.parametrize("last, category", [
    ("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", "cuda-oom"),
    ("torch.cuda.OutOfMemoryError: CUDA out of memory.", "cuda-oom"),
    ("AssertionError: Torch not compiled with CUDA enabled", "cuda-unavailable"),
    ("RuntimeError: No CUDA GPUs are available", "cuda-unavailable"),
    ("FileNotFoundError: [Errno 2] No such file or directory: 'data/train.csv'", "data-missing"),
    ("ValueError: shapes (3,4) and (5,2) not aligned: 4 (dim 1) != 5 (dim 0)", "shape-mismatch"),
    ("RuntimeError: mat1 and mat2 shapes cannot be multiplied (4x3 and 5x2)", "shape-mismatch"),
    ("OSError: [Errno 28] No space left on device", "disk-full"),
    ("MemoryError", "memory"),
    ("numpy.core._exceptions._ArrayMemoryError: Unable to allocate 8.00 TiB for an array", "memory"),
    ("KeyError: 'lr'", "crash"),
])
def test_exception_categories(tmp_path, last, category):
    script = str(tmp_path / "train.py")
    d = diagnose(tb(script, last), exit_code=1, signal=None, reason=None, script_path=script)
    assert d.category == category, d
    assert d.location == f"{script}:8"


def test_missing_module_maps_to_pip_package(tmp_path):
    script = str(tmp_path / "train.py")
    d = diagnose(tb(script, "ModuleNotFoundError: No module named 'cv2'"), exit_code=1,
                 signal=None, reason=None, script_path=script)
    assert d.category == "missing-module"
    assert "'cv2'" in d.message and "opencv-python" in d.message
    assert "pip install opencv-python" in d.hint
    assert pip_package("sklearn.linear_model") == "scikit-learn"
    assert pip_package("PIL") == "Pillow" and pip_package("yaml") == "PyYAML"
    assert pip_package("some_pkg") == "some-pkg"


def test_bad_flags_names_the_flag_to_add():
    out = ["usage: train.py [-h] [--output-dir OUTPUT_DIR]",
           "train.py: error: unrecognized arguments: --seed 0 --smoke-test"]
    d = diagnose(out, exit_code=2, signal=None, reason=None, script_path="train.py")
    assert d.category == "bad-flags"
    assert "--seed" in d.message and "--smoke-test" in d.message
    assert "parser.add_argument('--seed', type=int, default=0)" in d.hint
    assert d.hint.startswith("add parser.add_argument(")
    required = ["usage: x", "x.py: error: the following arguments are required: --data"]
    d = diagnose(required, exit_code=2, signal=None, reason=None, script_path="x.py")
    assert d.category == "bad-flags" and "--data" in d.message and "default" in d.hint


def test_syntax_error_without_traceback_header(tmp_path):
    script = str(tmp_path / "s.py")
    out = [f'  File "{script}", line 3', "    def f(:", "          ^",
           "SyntaxError: invalid syntax"]
    d = diagnose(out, exit_code=1, signal=None, reason=None, script_path=script)
    assert d.category == "syntax-error"
    assert d.location == f"{script}:3"
    assert "def f(:" in d.message


def test_reasons_map_to_categories():
    assert diagnose([], exit_code=None, signal=9, reason="stall", script_path=None,
                    stall_s=10).category == "hang"
    d = diagnose([], exit_code=None, signal=9, reason="memory", script_path=None, peak_rss_mb=4200.4,
                 memory_mb=4096)
    assert d.category == "memory" and "4200 MB" in d.message and "4096 MB cap" in d.message
    assert diagnose([], exit_code=None, signal=9, reason="timeout", script_path=None,
                    timeout_s=30).category == "timeout"
    assert diagnose([], exit_code=None, signal=None, reason="host-lost",
                    script_path=None).retry == "same"


def test_plain_exits_and_signals():
    d = diagnose(["working", "giving up"], exit_code=3, signal=None, reason=None, script_path=None)
    assert d.category == "exit-nonzero" and "status 3" in d.message and "giving up" in d.message
    assert "status 3" in d.hint
    d = diagnose([], exit_code=None, signal=9, reason=None, script_path=None)
    assert d.category == "killed-by-signal" and "SIGKILL" in d.message and "OOM" in d.hint
    d = diagnose(["ok"], exit_code=0, signal=None, reason=None, script_path=None)
    assert d.category is None


def test_output_patterns_without_traceback():
    d = diagnose(["Connection to 10.0.0.5 closed by remote host."], exit_code=255, signal=None,
                 reason=None, script_path=None)
    assert d.category == "host-lost"
    d = diagnose(["Your spot instance was preempted"], exit_code=1, signal=None, reason=None,
                 script_path=None)
    assert d.category == "preempted"


def test_parse_traceback_takes_the_last_chained_exception(tmp_path):
    out = ["Traceback (most recent call last):", '  File "a.py", line 1, in <module>', "    x",
           "KeyError: 'a'", "", "During handling of the above exception, another exception occurred:",
           "", "Traceback (most recent call last):", '  File "a.py", line 5, in <module>', "    y",
           "ValueError: second"]
    parsed = parse_traceback(out)
    assert parsed.exc_type == "ValueError" and parsed.exc_message == "second"
    assert parsed.frames[-1].line == 5 and parsed.source_line == "y"


def test_hang_message_tells_busy_from_blocked():
    busy = diagnose(["epoch 1"], exit_code=None, signal=9, reason="stall", script_path=None,
                    stall_s=10, stall_cpu_s=9.5, stall_window_s=10.0)
    assert "a silent computation" in busy.message and "last output: epoch 1" in busy.message
    blocked = diagnose([], exit_code=None, signal=9, reason="stall", script_path=None,
                       stall_s=10, stall_cpu_s=0.0, stall_window_s=10.0)
    assert "blocked" in blocked.message and "it printed nothing" in blocked.message


def test_traceback_after_an_input_prompt_is_found(tmp_path):
    script = tmp_path / "train.py"
    tail = ["Overwrite checkpoint? [y/N] Traceback (most recent call last):",
            f'  File "{script}", line 12, in <module>',
            "    answer = input('Overwrite checkpoint? [y/N] ')",
            "EOFError: EOF when reading a line"]
    diag = diagnose(tail, exit_code=1, script_path=script)
    assert diag.category == "crash" and diag.location == f"{script}:12"
    assert "EOFError" in diag.message


def test_a_stdlib_frame_is_never_reported_as_the_scripts_line(tmp_path):
    import json
    import os
    stdlib = os.path.dirname(json.__file__)
    tail = ["Traceback (most recent call last):",
            f'  File "{stdlib}/decoder.py", line 353, in raw_decode',
            "    obj, end = self.scan_once(s, idx)",
            "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)"]
    diag = diagnose(tail, exit_code=1, script_path=tmp_path / "train.py")
    assert diag.location is None and "decoder.py" not in diag.hint
    # a script started by a relative path (the runner's form, cwd = project root) is still found
    tail = ["Traceback (most recent call last):",
            '  File "train.py", line 7, in <module>',
            "    main()",
            f'  File "{stdlib}/decoder.py", line 353, in raw_decode',
            "json.decoder.JSONDecodeError: Expecting value"]
    assert diagnose(tail, exit_code=1, script_path=tmp_path / "train.py").location == "train.py:7"
