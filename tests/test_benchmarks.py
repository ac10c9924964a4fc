"""The foundation and runtime benchmark scripts still run (smoke runs; their figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["overhead.py", "--quick"],
        ["fidelity.py", "--quick", "--model", "zoo:mnist"],
        ["concurrency.py", "--quick", "--models", "mnist"],
        ["engines.py", "--quick"],
        ["loadgen.py", "--quick"],
        ["attack.py", "--quick"],
        ["serve.py", "--quick", "--ray"],
    ],
    ids=["overhead", "fidelity", "concurrency", "engines", "loadgen", "attack", "serve"],
)
def test_benchmark_smoke(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCH,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "ratio" in proc.stdout or "÷ raw" in proc.stdout
