"""The incident registry: every way a training script or run fails, its hint, and whether to retry.

This is data. Preflight and the run launchers classify a failure with `diagnose` and then read the
category's hint and retry policy from INCIDENTS; nothing else keeps its own list of failure kinds.
`diagnose` only reads what the process printed and how it ended; it never runs anything.
"""

from __future__ import annotations

import os
import re
import signal as signal_module
from dataclasses import dataclass, field
from typing import Sequence

RETRY_POLICIES = (None, "oom-ladder", "lower-lr", "same")


@dataclass(frozen=True)
class Incident:
    """One failure category. `hint` may use {fields} filled from what diagnose extracted.

    retry: None = a code/config fault, never retried identically; "oom-ladder" = retry with a
    smaller batch / more gradient accumulation; "lower-lr" = retry with a lower learning rate;
    "same" = transient infrastructure, retry unchanged.
    """

    category: str
    title: str
    hint: str
    patterns: tuple[str, ...] = ()
    retry: str | None = None

    def __post_init__(self) -> None:
        if self.retry not in RETRY_POLICIES:
            raise ValueError(f"incident {self.category}: unknown retry policy {self.retry!r}")


def _registry(*incidents: Incident) -> dict[str, Incident]:
    return {incident.category: incident for incident in incidents}


# Order matters: when output matches several categories' patterns, the first listed wins.
INCIDENTS: dict[str, Incident] = _registry(
    Incident("syntax-error", "Syntax error",
             "fix the line shown ({location}); `python -m py_compile {script}` checks it without running",
             (r"^(SyntaxError|IndentationError|TabError)\b",)),
    Incident("missing-module", "Missing Python module",
             "install it: `pip install {package}` (and add {package} to the project's requirements)",
             (r"^ModuleNotFoundError: No module named ",
              r"^ImportError: No module named ")),
    Incident("bad-flags", "Script rejects the artifact contract's flags",
             "{flag_hint}; every RStack script accepts --output-dir DIR, --smoke-test and --seed N "
             "(see templates/train_template.py)",
             (r"error: unrecognized arguments:", r"error: the following arguments are required:",
              r"error: argument [^:]+: (invalid|expected)",)),
    Incident("cuda-oom", "CUDA out of memory",
             "lower the batch size (--batch-size) and raise --grad-accum to keep the effective "
             "batch, or pick a GPU with more memory",
             (r"CUDA out of memory", r"torch\.cuda\.OutOfMemoryError", r"OutOfMemoryError: CUDA",
              r"CUBLAS_STATUS_ALLOC_FAILED", r"CUDA error: out of memory",
              r"RESOURCE_EXHAUSTED: Out of memory"),
             retry="oom-ladder"),
    Incident("cuda-unavailable", "Script requires CUDA on a machine without it",
             "fall back to CPU: device = 'cuda' if torch.cuda.is_available() else 'cpu' "
             "(preflight runs with CUDA_VISIBLE_DEVICES=\"\")",
             (r"Torch not compiled with CUDA enabled", r"No CUDA GPUs are available",
              r"Found no NVIDIA driver", r"CUDA driver version is insufficient",
              r"no CUDA-capable device is detected", r"CUDA is not available",
              r"Attempting to deserialize object on a CUDA device",
              r"cudaGetDeviceCount", r"NVIDIA-SMI has failed")),
    Incident("disk-full", "Disk full",
             "free disk space on the machine (old checkpoints, caches), or write less "
             "(save fewer checkpoints)",
             (r"No space left on device", r"\[Errno 28\]", r"ENOSPC", r"Disk quota exceeded")),
    Incident("data-missing", "Data file missing",
             "the script looked for a file that is not there ({detail}); the script runs with its "
             "own directory as cwd: build paths from __file__ or a --data flag, and make sure the "
             "data is shipped or downloaded before training",
             (r"^FileNotFoundError\b", r"No such file or directory", r"^IsADirectoryError\b",
              r"does not exist")),
    Incident("shape-mismatch", "Tensor/array shape mismatch",
             "print the shapes just before {location}; a changed model width, sequence length or "
             "batch layout usually explains it",
             (r"shapes? .* not aligned", r"size mismatch", r"shapes cannot be multiplied",
              r"could not be broadcast", r"The size of tensor a", r"Expected input batch_size",
              r"cannot reshape array", r"shape '\[.*\]' is invalid", r"Dimension out of range",
              r"mismatch in dimension", r"Incompatible shapes", r"matmul: Input operand")),
    Incident("memory", "Memory blow-up",
             "RSS of the process tree passed the cap (peak {peak}); load data lazily, lower the "
             "batch size, or raise --memory-mb if the script truly needs it",
             (r"^MemoryError\b", r"numpy\.core\._exceptions\._ArrayMemoryError",
              r"Unable to allocate .* for an array", r"std::bad_alloc", r"Cannot allocate memory"),
             retry="oom-ladder"),
    Incident("crash", "Uncaught exception",
             "fix the error at {location}; reproduce it with `python {script} --smoke-test "
             "--output-dir /tmp/out`",
             (r"^Traceback \(most recent call last\):",)),
    Incident("exit-nonzero", "Non-zero exit without a traceback",
             "the script exited with status {exit_code} and printed no traceback: look for "
             "sys.exit()/os._exit() calls or an error the script catches and swallows"),
    Incident("killed-by-signal", "Killed by a signal",
             "{signal_hint}"),
    Incident("interrupted", "Interrupted",
             "the run was interrupted (Ctrl-C); start it again when ready"),
    Incident("hang", "Hang (no output, no file activity)",
             "the script printed nothing and wrote no file for {stall_s}; print progress every few "
             "seconds (and check for a blocking input(), a lock, or a wait on a network resource)"),
    Incident("smoke-ignored", "Smoke-test flag ignored",
             "--smoke-test must make the script do a few steps of everything and finish in seconds: "
             "cap the steps/epochs/data when the flag is set"),
    Incident("timeout", "Timed out",
             "the run exceeded its time limit ({timeout}); raise execution.timeout_s in the plan "
             "or shorten the run"),
    Incident("metrics-missing", "metrics.json missing",
             "write the final metrics to os.path.join(args.output_dir, 'metrics.json'){where_hint}"),
    Incident("metrics-invalid", "metrics.json invalid",
             "{fix}; metrics.json must be a flat JSON object of finite numbers, e.g. "
             "{{\"val_loss\": 0.41, \"accuracy\": 0.88}}"),
    Incident("metrics-nonfinite", "NaN/Infinity in the metrics history",
             "training produced NaN/Inf ({detail}); lower the learning rate, clip gradients, or "
             "guard log/div against zero",
             (r"loss (is|=|:)\s*nan", r"nan loss", r"Loss is NaN"),
             retry="lower-lr"),
    Incident("divergence", "Training diverged",
             "{detail}; lower the learning rate (--lr), add warm-up or gradient clipping",
             retry="lower-lr"),
    Incident("metrics-inconsistent", "metrics.json disagrees with metrics.jsonl",
             "{detail}; a try/except that writes default or placeholder values usually does "
             "this: let the exception propagate, and write metrics.json from the values you "
             "logged"),
    Incident("swallowed-exception", "Traceback, but exit 0",
             "the script printed a traceback ({detail}) and still exited 0: a try/except around "
             "the training loop hides the failure; re-raise it (or remove the except) so the run "
             "fails where it broke"),
    Incident("metrics-elsewhere", "A newer metrics.json outside the output dir",
             "{detail}; the copy in the output dir is stale (a placeholder or an earlier write): "
             "write the final metrics only to os.path.join(args.output_dir, 'metrics.json')"),
    Incident("flag-not-wired", "Arms differ in args but not in results",
             "{detail}; the flag that differs is probably parsed but never used: assert that it "
             "changes runtime behaviour (wire it into the model/optimizer), then preflight again"),
    Incident("memory-growth", "Memory grows every step",
             "{detail}; something accumulates per step (a list of losses or tensors that keep "
             "their graph, a cache): store .item() values, detach, or clear it"),
    Incident("history-steps", "metrics.jsonl steps missing or going backwards",
             "{detail}; write {{\"step\": global_step, ...}} on every metrics.jsonl line, never "
             "decreasing"),
    Incident("plan-metric-missing", "A metric the plan compares is missing",
             "{detail}; the smoke run must compute (on a few batches) every metric the plan "
             "declares with a direction, or the paid run can skip evaluation unnoticed"),
    Incident("check-failed", "A sanity check failed",
             "{detail}; the run finished, but a check in the plan's evaluation.checks failed, so "
             "its results are not used: fix the script (or the check, if it is wrong), then "
             "rstack run again"),
    Incident("nondeterministic", "Seed not honoured",
             "two runs with --seed {seed} gave different metrics ({detail}); seed every RNG from "
             "--seed (random, numpy, torch) and avoid time- or order-dependent randomness"),
    Incident("host-lost", "Host lost",
             "the connection to the machine was lost mid-run; it is retried unchanged",
             (r"Connection to \S+ closed by remote host", r"client_loop: send disconnect",
              r"ssh: connect to host .*: ",
              r"Host is down", r"No route to host"),
             retry="same"),
    Incident("preempted", "Preempted",
             "the provider reclaimed the machine (spot/preemptible); it is retried unchanged",
             (r"preempted", r"[Pp]reemption", r"spot instance interruption",
              r"instance was (terminated|reclaimed)"),
             retry="same"),
    # Raised by the remote runners (rstack.runs), never matched from output: the files that came
    # back differ from the manifest the remote side wrote. Re-running would not fix a transfer.
    Incident("artifact-mismatch", "Artifacts failed verification",
             "the downloaded outputs do not match the remote manifest; the remote copy was kept "
             "({remote_dir}): compare it by hand, or re-run"),
)

# import name -> PyPI distribution, where they differ (the common surprises).
PIP_PACKAGES: dict[str, str] = {
    "cv2": "opencv-python", "sklearn": "scikit-learn", "PIL": "Pillow", "yaml": "PyYAML",
    "skimage": "scikit-image", "bs4": "beautifulsoup4", "Crypto": "pycryptodome",
    "dateutil": "python-dateutil", "dotenv": "python-dotenv", "jwt": "PyJWT",
    "google.protobuf": "protobuf", "attr": "attrs", "serial": "pyserial", "usb": "pyusb",
    "magic": "python-magic", "gi": "PyGObject", "wx": "wxPython", "OpenSSL": "pyOpenSSL",
    "fitz": "PyMuPDF", "docx": "python-docx", "pptx": "python-pptx", "Levenshtein": "python-Levenshtein",
    "git": "GitPython", "faiss": "faiss-cpu", "tensorflow_datasets": "tensorflow-datasets",
    "lightgbm": "lightgbm", "torch": "torch", "torchvision": "torchvision", "jax": "jax[cpu]",
    "sentencepiece": "sentencepiece", "tokenizers": "tokenizers", "umap": "umap-learn",
    "Bio": "biopython", "mpl_toolkits": "matplotlib", "pytorch_lightning": "pytorch-lightning",
    "lightning": "lightning", "huggingface_hub": "huggingface-hub", "tensorboardX": "tensorboardX",
}


def pip_package(module: str) -> str:
    """The likely PyPI package for an import name (`cv2` -> `opencv-python`)."""
    if module in PIP_PACKAGES:
        return PIP_PACKAGES[module]
    top = module.split(".")[0]
    return PIP_PACKAGES.get(top, top.replace("_", "-"))


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    func: str | None


@dataclass(frozen=True)
class Traceback:
    frames: tuple[Frame, ...]
    exc_type: str
    exc_message: str
    source_line: str | None  # the code shown under the innermost frame (or the SyntaxError line)

    @property
    def exception_line(self) -> str:
        return f"{self.exc_type}: {self.exc_message}" if self.exc_message else self.exc_type


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong. category is None only when the process ended normally (exit 0)."""

    category: str | None
    message: str
    hint: str
    location: str | None = None  # "file:line" inside the user's script when known
    details: dict = field(default_factory=dict)

    @property
    def retry(self) -> str | None:
        return INCIDENTS[self.category].retry if self.category else None

    def as_json(self) -> dict:
        return {"category": self.category, "message": self.message, "hint": self.hint,
                "location": self.location}


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?\s*$')
_EXC = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<msg>.*))?$")
_TB_START = "Traceback (most recent call last):"


def parse_traceback(lines: Sequence[str]) -> Traceback | None:
    """The last Python traceback in lines (or a bare SyntaxError report), or None."""
    lines = list(lines)
    # A prompt left on the line by input() ("Enter x: Traceback ...") still starts a traceback.
    starts = [i for i, line in enumerate(lines) if line.rstrip().endswith(_TB_START)]
    start = starts[-1] if starts else None
    if start is None:
        # `python broken.py` prints a SyntaxError without a "Traceback" header.
        for i in range(len(lines) - 1, -1, -1):
            if re.match(r"^(SyntaxError|IndentationError|TabError)\b", lines[i]):
                start = max(0, i - 5)
                while start < i and not _FRAME.match(lines[start]):
                    start += 1
                break
        if start is None:
            return None
    frames: list[Frame] = []
    source: str | None = None
    exc_type = exc_msg = None
    i = start + (1 if lines[start].rstrip().endswith(_TB_START) else 0)
    while i < len(lines):
        line = lines[i]
        match = _FRAME.match(line)
        if match:
            frames.append(Frame(match["file"], int(match["line"]), match["func"]))
            source = None
            if i + 1 < len(lines) and lines[i + 1].startswith("    ") and not _FRAME.match(lines[i + 1]):
                source = lines[i + 1].strip()
            i += 1
            continue
        if line.startswith(" ") or not line.strip():
            i += 1
            continue
        exc = _EXC.match(line)
        if exc:
            exc_type, exc_msg = exc["type"], (exc["msg"] or "").strip()
            break
        i += 1
    if exc_type is None:
        return None
    return Traceback(tuple(frames), exc_type, exc_msg, source)


def _same_file(a: str, b: str | os.PathLike | None) -> bool:
    if b is None:
        return False
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        # A frame of a script started by a relative path (`python train.py` in the project
        # root) names it relative to that cwd, which need not be ours.
        return (not os.path.isabs(a) and not a.startswith("<")
                and os.path.abspath(b).endswith(os.sep + os.path.normpath(a)))
    except (OSError, ValueError):
        return False


def _library_file(path: str) -> bool:
    """A frame in the standard library or an installed package: never the script's line."""
    import sysconfig

    if path.startswith("<") or "site-packages" in path or "dist-packages" in path:
        return True
    real = os.path.realpath(path)
    for key in ("stdlib", "platstdlib"):
        root = sysconfig.get_paths().get(key)
        if root and real.startswith(os.path.realpath(root) + os.sep):
            return True
    return False


def user_frame(tb: Traceback, script_path: str | os.PathLike | None) -> Frame | None:
    """The innermost frame inside the user's script; else inside its directory; else the last."""
    if not tb.frames:
        return None
    for frame in reversed(tb.frames):
        if _same_file(frame.file, script_path):
            return frame
    if script_path is not None:
        base = os.path.realpath(os.path.dirname(os.path.abspath(script_path)))
        for frame in reversed(tb.frames):
            path = os.path.realpath(frame.file) if not frame.file.startswith("<") else ""
            if path.startswith(base + os.sep) and "site-packages" not in path:
                return frame
    outside = [frame for frame in tb.frames if not _library_file(frame.file)]
    return outside[-1] if outside else None


def _match_category(texts: Sequence[str], skip: Sequence[str] = ()) -> str | None:
    for category, incident in INCIDENTS.items():
        if category in skip:
            continue
        for pattern in incident.patterns:
            regex = re.compile(pattern, re.IGNORECASE if category in ("preempted",) else 0)
            if any(regex.search(text) for text in texts):
                return category
    return None


def _signal_name(number: int) -> str:
    try:
        return signal_module.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _fmt_seconds(value) -> str:
    return f"{value:g} s" if isinstance(value, (int, float)) else "the limit"


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def make_diagnosis(category: str, message: str, *, location: str | None = None, **fields) -> Diagnosis:
    """A Diagnosis for category with its registry hint filled from fields."""
    incident = INCIDENTS[category]
    values = _Fields(location=location or "the failing line", **fields)
    hint = incident.hint.format_map(values)
    return Diagnosis(category, message, hint, location, dict(fields))


_CONTRACT_FLAG_HINTS = {
    "--output-dir": "parser.add_argument('--output-dir', default=os.environ.get('RSTACK_OUTPUT_DIR', 'out'))",
    "--smoke-test": "parser.add_argument('--smoke-test', '--smoke_test', action='store_true')",
    "--seed": "parser.add_argument('--seed', type=int, default=0)",
}


def _bad_flags(tail: Sequence[str]) -> Diagnosis | None:
    for line in reversed(tail):
        match = re.search(r"error: unrecognized arguments: (.*)$", line)
        if match:
            given = match[1].split()
            flags = [f for f in _CONTRACT_FLAG_HINTS if any(g.split("=")[0] == f for g in given)]
            if "--smoke_test" in given and "--smoke-test" not in flags:
                flags.append("--smoke-test")
            others = [g for g in given if g.startswith("-") and g.split("=")[0] not in flags]
            if flags:
                adds = "; ".join(_CONTRACT_FLAG_HINTS[f] for f in flags)
                return make_diagnosis(
                    "bad-flags",
                    f"the script's argument parser rejects {', '.join(flags)} "
                    f"(argparse: unrecognized arguments: {match[1].strip()})",
                    flag=flags[0], flag_hint=f"add {adds}")
            return make_diagnosis(
                "bad-flags", f"the script's argument parser rejects {match[1].strip()}",
                flag=others[0] if others else match[1].strip(),
                flag_hint=f"accept {', '.join(others) or match[1].strip()} in the parser or drop it "
                          "from the extra arguments")
        match = re.search(r"error: the following arguments are required: (.*)$", line)
        if match:
            return make_diagnosis(
                "bad-flags", f"the script requires {match[1].strip()}, which the contract does not pass",
                flag=match[1].strip(),
                flag_hint=f"give {match[1].strip()} a default (required=False), or pass it after "
                          "`--` (rstack preflight SCRIPT -- {0} VALUE)".replace("{0}", match[1].split(",")[0].strip()))
        match = re.search(r"error: (argument [^:]+: .*)$", line)
        if match:
            return make_diagnosis("bad-flags", f"the script's argument parser says: {match[1]}",
                                  flag=match[1], flag_hint="make the flag accept the contract's value")
    return None


def diagnose(output_tail: Sequence[str], *, exit_code: int | None, signal: int | None = None,
             reason: str | None = None, script_path: str | os.PathLike | None = None,
             **context) -> Diagnosis:
    """Classify how a process ended from its last output lines and its exit status.

    reason is procwatch's ("timeout" | "stall" | "memory" | "interrupted") or a launcher's own
    ("host-lost" | "preempted"); context may carry stall_s, timeout_s and peak_rss_mb for hints.
    """
    tail = [line.rstrip("\n") for line in output_tail]
    script = str(script_path) if script_path is not None else "SCRIPT"
    tb = parse_traceback(tail)
    frame = user_frame(tb, script_path) if tb else None
    location = f"{frame.file}:{frame.line}" if frame else None
    if reason == "stall":
        stall = context.get("stall_s")
        cpu, window = context.get("stall_cpu_s"), context.get("stall_window_s")
        busy = ""
        if isinstance(cpu, (int, float)) and isinstance(window, (int, float)) and window > 0:
            busy = (f"; it used {cpu:.1f} s of CPU in the last {window:.1f} s: a silent computation "
                    "(print progress)" if cpu >= 0.1 * window else
                    f"; it used {cpu:.1f} s of CPU in the last {window:.1f} s: blocked (input(), "
                    "a lock, a child, the network)")
        last = next((line.strip() for line in reversed(tail) if line.strip()), "")
        said = f"; last output: {last[:200]}" if last else "; it printed nothing"
        return make_diagnosis("hang", f"no output and no file activity for {_fmt_seconds(stall)}; "
                              f"killed{busy}{said}", stall_s=_fmt_seconds(stall))
    if reason == "memory":
        peak = context.get("peak_rss_mb")
        peak_text = f"{peak:.0f} MB" if isinstance(peak, (int, float)) else "unknown"
        cap = context.get("memory_mb")
        cap_text = f" over the {cap:.0f} MB cap" if isinstance(cap, (int, float)) else ""
        return make_diagnosis("memory", f"memory use of the process tree reached {peak_text}{cap_text}; "
                              "killed early", peak=peak_text)
    if reason == "timeout":
        timeout = context.get("timeout_s")
        return make_diagnosis("timeout", f"still running after {_fmt_seconds(timeout)}; killed",
                              timeout=_fmt_seconds(timeout))
    if reason in ("interrupted", "cancelled"):
        return make_diagnosis("interrupted", f"{reason} before it finished")
    if reason in ("host-lost", "preempted"):
        return make_diagnosis(reason, INCIDENTS[reason].title)
    if exit_code == 0 and signal is None:
        return Diagnosis(None, "exited normally (status 0)", "", None)

    bad = _bad_flags(tail) if exit_code == 2 or signal is None else None
    if bad is not None:
        return bad
    if tb is not None:
        exc_line = tb.exception_line
        if tb.exc_type in ("SyntaxError", "IndentationError", "TabError"):
            # The SyntaxError's own frame (no ", in func") is the offending file.
            syn = tb.frames[-1] if tb.frames else frame
            loc = f"{syn.file}:{syn.line}" if syn else location
            shown = f": {tb.source_line}" if tb.source_line else ""
            return make_diagnosis("syntax-error", f"{exc_line} at {loc}{shown}", location=loc,
                                  script=script)
        missing = re.match(r"No module named '?([\w.]+)'?", tb.exc_message)
        if tb.exc_type in ("ModuleNotFoundError", "ImportError") and missing:
            module = missing[1]
            package = pip_package(module)
            return make_diagnosis(
                "missing-module",
                f"module {module!r} is not installed (imported at {location or 'unknown location'}); "
                f"likely pip package: {package}", location=location, module=module, package=package)
        where = f" at {location}" if location else ""
        code_text = f" (`{tb.source_line}`)" if tb.source_line else ""
        category = _match_category([exc_line], skip=("crash", "syntax-error", "missing-module",
                                                     "bad-flags"))
        if category is None:
            category = _match_category(tail[-40:], skip=("crash", "syntax-error", "missing-module",
                                                         "bad-flags", "host-lost", "preempted"))
        category = category or "crash"
        detail = tb.exc_message or tb.exc_type
        return make_diagnosis(category, f"{exc_line}{where}{code_text}", location=location,
                              script=script, detail=detail, peak="unknown")
    category = _match_category(tail[-40:], skip=("crash",))
    if category is not None and category not in ("bad-flags", "syntax-error", "missing-module"):
        last = next((line for line in reversed(tail) if line.strip()), "")
        return make_diagnosis(category, f"{INCIDENTS[category].title}: {last.strip()}",
                              detail=last.strip(), peak="unknown")
    if signal is not None:
        name = _signal_name(signal)
        if signal == signal_module.SIGKILL:
            hint = ("SIGKILL from outside usually means the kernel's OOM killer (check `dmesg`) or a "
                    "scheduler limit; lower memory use or ask for a larger machine")
        else:
            hint = f"something sent {name} to the script; check the scheduler/provider logs"
        return make_diagnosis("killed-by-signal", f"killed by {name}", signal_hint=hint,
                              signal=signal)
    last_lines = [line for line in tail if line.strip()][-3:]
    said = f"; last output: {' | '.join(s.strip() for s in last_lines)}" if last_lines else \
        "; it printed nothing"
    return make_diagnosis("exit-nonzero", f"exited with status {exit_code} without a traceback{said}",
                          exit_code=exit_code)


def incident_for(category: str) -> Incident:
    """The registry entry for category (KeyError names the unknown category)."""
    try:
        return INCIDENTS[category]
    except KeyError:
        raise KeyError(f"unknown incident category {category!r}; known: {', '.join(INCIDENTS)}") from None


__all__ = ["INCIDENTS", "Incident", "Diagnosis", "diagnose", "make_diagnosis", "parse_traceback",
           "user_frame", "pip_package", "PIP_PACKAGES"]
