"""``python -m nnperf``."""

from __future__ import annotations

from nnperf.cli import entry

if __name__ == "__main__":
    entry()
