"""RStack: the exact, checkable half of a research workflow driven by Claude Code skills.

The package never decides research questions; it records, validates and refuses.
"""

__version__ = "0.1.0"
