"""procwatch.supervise: limits, output streaming, and that nothing the command started survives."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
import uuid

import pytest

from rstack.procwatch import TOKEN_VAR, supervise

from procwatch_fixtures import leftover_processes


def _script(tmp_path, body: str):
    path = tmp_path / f"s_{uuid.uuid4().hex[:8]}.py"
    path.write_text(textwrap.dedent(body))
    return path


def _run(tmp_path, body, **kw):
    path = _script(tmp_path, body)
    kw.setdefault("cwd", tmp_path)
    kw.setdefault("env", None)
    return supervise([sys.executable, str(path)], **kw)


def test_exit_status_output_and_log(tmp_path):
    log = tmp_path / "logs" / "out.log"
    lines = []
    outcome = _run(tmp_path, """
        import sys
        print("hello")
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """, log_path=log, on_line=lines.append)
    assert outcome.exit_code == 3 and outcome.signal is None and outcome.reason is None
    assert outcome.output_tail == ["hello", "to stderr"]
    assert lines == ["hello", "to stderr"]
    assert log.read_text() == "hello\nto stderr\n"
    assert not outcome.ok
    assert outcome.duration_s > 0


def test_tail_is_bounded_and_progress_bars_collapse(tmp_path):
    outcome = _run(tmp_path, """
        import sys
        for i in range(500):
            print(i)
        sys.stdout.write("step 1\\rstep 2\\rstep 3\\n")
        sys.stdout.write("no newline at end")
    """, tail_lines=5)
    assert outcome.exit_code == 0 and outcome.ok
    assert outcome.output_tail == ["497", "498", "499", "step 3", "no newline at end"]


def test_env_gets_token_and_passed_env(tmp_path):
    outcome = _run(tmp_path, f"""
        import os
        print(os.environ.get("MY_VAR"), bool(os.environ.get("{TOKEN_VAR}")))
    """, env={"MY_VAR": "abc", "PATH": os.environ["PATH"]})
    assert outcome.output_tail == ["abc True"]


def test_own_session(tmp_path):
    # The session leader is the containment shim (rstack/_reaper.py) or, off Linux, the command.
    outcome = _run(tmp_path, """
        import os
        print(os.getsid(0), os.getpgid(0), os.getsid(0) == os.getpgid(0))
    """)
    sid, pgid, leader = outcome.output_tail[0].split()
    assert leader == "True" and int(sid) != os.getsid(0)
    assert int(sid) == outcome.pid


def test_stall_kills_silent_script(tmp_path):
    marker = uuid.uuid4().hex
    outcome = _run(tmp_path, f"""
        import time
        print("started {marker}", flush=True)
        time.sleep(120)
    """, stall_s=1.0)
    assert outcome.reason == "stall"
    assert outcome.exit_code is None and outcome.signal == 9
    assert 1.0 <= outcome.duration_s < 6
    assert outcome.output_tail == [f"started {marker}"]


def test_printing_script_is_not_a_stall(tmp_path):
    outcome = _run(tmp_path, """
        import time
        for i in range(12):
            print("progress", i, flush=True)
            time.sleep(0.25)
    """, stall_s=1.5)
    assert outcome.reason is None and outcome.exit_code == 0


def test_file_activity_is_not_a_stall(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    outcome = _run(tmp_path, f"""
        import time
        for i in range(12):
            with open({str(out / 'ckpt.txt')!r}, "a") as f:
                f.write("x" * (i + 1))
            time.sleep(0.25)
    """, stall_s=1.5, activity_paths=[out])
    assert outcome.reason is None and outcome.exit_code == 0


def test_timeout(tmp_path):
    outcome = _run(tmp_path, """
        import time
        while True:
            print("busy", flush=True)
            time.sleep(0.1)
    """, timeout_s=1.5, stall_s=10)
    assert outcome.reason == "timeout"
    assert 1.5 <= outcome.duration_s < 8


def test_memory_counts_the_whole_tree_and_kills_early(tmp_path):
    marker = uuid.uuid4().hex
    outcome = _run(tmp_path, f"""
        import subprocess, sys, time
        code = "x = bytearray(120 * 1024 * 1024)\\nimport time\\ntime.sleep(60)  # {marker}"
        kids = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(3)]
        time.sleep(60)
    """, memory_mb=250, stall_s=30)
    assert outcome.reason == "memory"
    assert outcome.peak_rss_mb > 250
    assert outcome.duration_s < 20
    assert leftover_processes(marker) == []


def test_setsid_grandchild_is_killed_after_normal_exit(tmp_path):
    marker = uuid.uuid4().hex
    outcome = _run(tmp_path, f"""
        import subprocess, sys, time
        code = "import os, time\\nos.setsid()\\nif os.fork(): os._exit(0)\\ntime.sleep(300)  # {marker}"
        subprocess.Popen([sys.executable, "-c", code]).wait()
        time.sleep(0.3)
        print("parent done")
    """, stall_s=30)
    assert outcome.exit_code == 0 and outcome.reason is None
    assert outcome.leftover_killed >= 1
    assert leftover_processes(marker) == []


def test_stall_kills_children_holding_the_pipe(tmp_path):
    marker = uuid.uuid4().hex
    outcome = _run(tmp_path, f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time\\ntime.sleep(300)  # {marker}"])
        time.sleep(300)
    """, stall_s=1.0)
    assert outcome.reason == "stall"
    assert leftover_processes(marker) == []


def test_keyboard_interrupt_kills_then_reraises(tmp_path):
    marker = uuid.uuid4().hex
    path = _script(tmp_path, f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time\\ntime.sleep(300)  # {marker}"])
        while True:
            print("tick", flush=True)
            time.sleep(0.1)
    """)
    seen = []

    def interrupt(line):
        seen.append(line)
        if len(seen) == 5:
            import _thread
            _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        supervise([sys.executable, str(path)], cwd=tmp_path, env=None, on_line=interrupt,
                  timeout_s=60)
    assert leftover_processes(marker) == []


def test_peak_rss_of_short_script_is_reported(tmp_path):
    outcome = _run(tmp_path, """
        x = bytearray(80 * 1024 * 1024)
        for i in range(0, len(x), 4096):
            x[i] = 1
    """)
    assert outcome.exit_code == 0
    assert outcome.peak_rss_mb >= 80


def test_concurrent_supervisions_stay_separate(tmp_path):
    results = {}

    def go(name, code):
        results[name] = _run(tmp_path, code)

    threads = [threading.Thread(target=go, args=("a", "print('a')")),
               threading.Thread(target=go, args=("b", "import sys; print('b'); sys.exit(4)"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["a"].output_tail == ["a"] and results["a"].exit_code == 0
    assert results["b"].output_tail == ["b"] and results["b"].exit_code == 4


def test_signal_death_is_reported(tmp_path):
    outcome = _run(tmp_path, """
        import os, signal
        os.kill(os.getpid(), signal.SIGTERM)
    """)
    assert outcome.exit_code is None and outcome.signal == 15 and outcome.reason is None
