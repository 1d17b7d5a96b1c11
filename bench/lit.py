"""Literature speed: nearest over a large ledger, verify of a long bibliography, a cached search,
the coverage verdict that `rstack status` computes.

Goals: nearest over 5,000 papers < 2 s; verify of 500 citations < 2 s; a repeated (cached) search
< 0.5 s with zero network calls; coverage over 1,000 papers < 0.5 s (status runs it each time). Run: .venv/bin/python bench/lit.py [--papers N] [--cites N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from rstack.ledger import Ledger
from rstack.literature.bib import build_bib, write_bib
from rstack.literature.coverage import assess
from rstack.literature.nearest import nearest_papers
from rstack.literature.search import search_literature, seed_search_cache
from rstack.literature.verify import verify_citations

WORDS = ("attention sparse linear transformer graph neural network diffusion model language "
         "vision protein molecule reinforcement policy gradient optimizer adaptive scaling law "
         "retrieval memory compression quantization pruning distillation robust adversarial "
         "causal inference bayesian kernel spectral contrastive representation").split()


SYLLABLES = "ka lo mi ne ru sa ti vo ze pa qu ri".split()
# A vocabulary of ~20,000 made-up words besides the real ones, as a large real corpus would have.
RARE = sorted({"".join(random.Random(n).choice(SYLLABLES) for _ in range(4)) for n in range(30000)})


def fake_paper(i: int, rng: random.Random) -> dict:
    title = " ".join(rng.choice(WORDS) for _ in range(6)).capitalize() + f" {i}"
    abstract = " ".join(rng.choice(WORDS if rng.random() < 0.6 else RARE) for _ in range(150))
    return {"type": "paper", "key": f"author{i}2020{title.split()[0].lower()}", "title": title,
            "authors": [f"Ann Author{i}"], "year": 2000 + i % 25, "venue": "Bench Conference",
            "ids": {"s2": f"{i:040x}", "doi": None, "arxiv": None}, "abstract": abstract,
            "url": None, "citation_count": i, "sources": ["s2"], "query": "bench"}


def timed(label: str, goal: float, fn):
    start = time.perf_counter()
    value = fn()
    took = time.perf_counter() - start
    print(f"{label:<44} {took:7.3f} s   (goal < {goal:g} s) {'ok' if took < goal else 'SLOW'}")
    return value, took < goal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--papers", type=int, default=5000)
    parser.add_argument("--cites", type=int, default=500)
    args = parser.parse_args()
    rng = random.Random(0)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["RSTACK_HOME"] = str(root / "home")
        os.environ["RSTACK_LEDGER_FSYNC"] = "false"
        Ledger(root, "lit-review").append_many(fake_paper(i, rng) for i in range(args.papers))
        found, good = timed(f"nearest over {args.papers} papers (k=10)", 2.0,
                            lambda: nearest_papers(root, "sparse attention transformer", 10))
        ok &= good and len(found) == 10
        records = Ledger(root, "lit-review").records("paper")[: args.cites]
        keys = [r["key"] for r in records]
        write_bib(build_bib(root, keys=keys), root / "paper.bib")
        (root / "paper.tex").write_text("".join(f"\\cite{{{k}}}\n" for k in keys) +
                                        "\\bibliography{paper}\n")
        report, good = timed(f"verify {len(keys)} citations", 2.0,
                             lambda: verify_citations(root, "paper.tex", "paper.bib"))
        ok &= good and report.ok
        papers = Ledger(root, "lit-review").records("paper")[:1000]
        review = "".join(f"[@{r['key']}]\n" for r in papers[:40])
        _, good = timed("coverage over 1000 papers (status)", 0.5,
                        lambda: assess("sparse attention transformer for long documents", papers,
                                       review))
        ok &= good
        body = json.dumps({"total": 1, "offset": 0, "data": [{
            "paperId": "b" * 40, "externalIds": {}, "title": "Bench paper", "abstract": None,
            "year": 2024, "venue": "", "authors": [], "citationCount": 0,
            "openAccessPdf": None, "url": None}]})
        seed_search_cache(root, "bench query", s2_body=body)
        outcome, good = timed("cached search (--source s2)", 0.5,
                              lambda: search_literature(root, "bench query", source="s2"))
        ok &= good and outcome.network_calls == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
