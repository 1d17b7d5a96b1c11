"""Literature search, BibTeX and citation verification against the lit-review ledger.

A paper may cite only what an API returned and the ledger recorded; `verify` checks that rule.
Nothing here invents metadata: every paper record is built from a Semantic Scholar or arXiv answer.
"""
