"""The improvement loop (`rstack program`): a program spec, a knowledge base, trials decided by the
comparison statistics, and a champion held in a git ref.

Each concern is one module so the shared-program server can call them without the CLI:
`spec` (program.md), `kb` (the `.rstack/program.jsonl` ledger and its read model), `gittree`
(candidate identity, scope, the champion ref), `decide` (KEEP/DISCARD/INCONCLUSIVE from
`rstack.analysis.compare`), `trial` (running the seeds through `rstack.runs`), `report`
(status/log/plot/macros).
"""
