"""The paper: venue templates (venues), `paper new` (new), `paper build` (build), `paper audit` (audit).

Numbers reach the PDF only through analysis macros, and the audit refuses anything it cannot trace.
"""
