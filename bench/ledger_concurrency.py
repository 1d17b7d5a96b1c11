"""Ledger concurrency: 8 writer processes x 1,000 appends each; every line must survive intact.

Each append takes the ledger's exclusive lock and writes one line with one write, so the count of
valid lines must be exactly writers x appends. Run: .venv/bin/python bench/ledger_concurrency.py
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

from rstack.ledger import Ledger


def writer(args: tuple[str, int, int, bool]) -> float:
    root, index, count, fsync = args
    ledger = Ledger(Path(root), "experiments", fsync=fsync)
    start = time.perf_counter()
    for i in range(count):
        ledger.append({"type": "note", "text": f"writer {index} append {i}", "writer": index,
                       "i": i, "pad": "x" * (50 + (i % 7) * 40)})
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--no-fsync", dest="fsync", action="store_false",
                        help="skip the fsync after each append (the default config fsyncs)")
    args = parser.parse_args()
    expected = args.writers * args.appends
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.writers) as pool:
            per_writer = pool.map(writer, [(tmp, w, args.appends, args.fsync)
                                           for w in range(args.writers)])
        wall = time.perf_counter() - start
        result = Ledger(Path(tmp), "experiments").read()
        seen = {(r["writer"], r["i"]) for r in result.records}
    valid = len(result.records)
    ok = valid == expected and not result.problems and len(seen) == expected
    print(f"writers:      {args.writers} processes x {args.appends:,} appends "
          f"(fsync {'on' if args.fsync else 'off'})")
    print(f"wall time:    {wall:.2f} s ({expected / wall:,.0f} appends/s overall; slowest writer "
          f"{max(per_writer):.2f} s)")
    print(f"lines:        {result.line_count:,} total, {valid:,} valid, "
          f"{len(result.problems)} damaged, {len(seen):,} distinct (writer, i)")
    print(f"result:       {'OK' if ok else 'FAIL'}: expected exactly {expected:,} valid lines")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
