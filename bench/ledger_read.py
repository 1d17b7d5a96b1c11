"""Ledger read speed: append 100,000 records, then time a full read and a filtered read.

Goal: each read under 1 s. Run: .venv/bin/python bench/ledger_read.py [--records N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rstack.ledger import Ledger, dumps_record
from rstack.records import RECORD_TYPES

GOAL_S = 1.0


def sample(i: int) -> dict:
    if i % 10 == 0:
        spec = RECORD_TYPES["preflight"].required
        record = {"type": "preflight", "script": "train.py", "script_sha256": "a" * 64,
                  "verdict": "PASS", "category": None, "duration_s": 1.25}
        assert set(spec) <= set(record), "preflight gained required fields; update the bench"
        return record
    return {"type": "note", "text": f"note {i}", "step": i, "loss": 1.0 / (i + 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(Path(tmp), "experiments", fsync=False)
        start = time.perf_counter()
        # Validated like any append, then written in one go: this measures reading, not fsyncs.
        lines = [dumps_record(ledger.prepare(sample(i))) for i in range(args.records)]
        ledger.path.parent.mkdir(parents=True, exist_ok=True)
        with ledger.path.open("w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        prepared_s = time.perf_counter() - start
        size_mb = ledger.path.stat().st_size / 1e6

        # Wall time is the goal; CPU time is printed too, since a shared machine's load inflates
        # wall time without saying anything about the code.
        start, cpu = time.perf_counter(), time.process_time()
        full = ledger.read()
        full_s, full_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        filtered = ledger.read(types=["preflight"])
        filtered_s, filtered_cpu = time.perf_counter() - start, time.process_time() - cpu

    assert len(full.records) == args.records and not full.problems
    assert len(filtered.records) == (args.records + 9) // 10
    print(f"records:       {args.records:,} ({size_mb:.1f} MB), validated+written in {prepared_s:.2f} s")
    print(f"load average:  {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"full read:     {full_s:.3f} s wall, {full_cpu:.3f} s cpu ({len(full.records):,} records)  "
          f"{'OK' if full_s < GOAL_S else 'SLOWER THAN'} goal {GOAL_S:g} s")
    print(f"filtered read: {filtered_s:.3f} s wall, {filtered_cpu:.3f} s cpu "
          f"({len(filtered.records):,} preflight records)  "
          f"{'OK' if filtered_s < GOAL_S else 'SLOWER THAN'} goal {GOAL_S:g} s")
    return 0 if full_s < GOAL_S and filtered_s < GOAL_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
