"""What a run costs besides time: resident memory and process CPU.

Both seed SDKs warn that every worker and outstanding request costs memory, so the "how many
instances" trade-off is judged on memory too. On Linux the resident set is read from
``/proc/self/status``; the peak (``VmHWM``) is reset at the start of a run through
``/proc/self/clear_refs`` so it is this run's, not the process's lifetime peak. Elsewhere the
peak is ``getrusage``'s, for the whole process (``peak_scope: "process"``).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CpuClock",
    "MemoryMeter",
    "MemoryReport",
    "peak_rss_mib",
    "reset_peak_rss",
    "rss_mib",
]

_STATUS = "/proc/self/status"


def _status_kib(key: str) -> int | None:
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mib() -> float:
    """The process's resident set size now, in MiB (0 where it cannot be read)."""
    kib = _status_kib("VmRSS:")
    if kib is None:
        return 0.0
    return kib / 1024.0


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux ``clear_refs`` 5); whether it
    worked."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_rss_mib(reset_ok: bool) -> tuple[float, str]:
    """(peak RSS in MiB, ``"run"`` when measured since :func:`reset_peak_rss` else
    ``"process"``)."""
    kib = _status_kib("VmHWM:") if reset_ok else None
    if kib is not None:
        return kib / 1024.0, "run"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return (peak / 2**20 if sys.platform == "darwin" else peak / 1024.0), "process"


@dataclass(frozen=True)
class MemoryReport:
    """Resident memory of one run, in MiB.

    Attributes:
        rss_before_mib: before the model was loaded.
        load_mib: what loading the model and every instance added (``None``: not loaded here).
        per_instance_mib: what each instance added as it loaded, plus its first (warm-up) run,
            where the arena and memory pattern are allocated; empty when instances were not
            loaded (or first run) one at a time under the benchmark's eye (a session passed in,
            a pipeline's stages).
        peak_rss_mib: the highest resident set during the run.
        peak_scope: ``"run"`` (reset at the start) or ``"process"`` (lifetime peak).
    """

    rss_before_mib: float = 0.0
    load_mib: float | None = None
    per_instance_mib: tuple[float, ...] = ()
    peak_rss_mib: float = 0.0
    peak_scope: str = "process"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (MiB, one decimal)."""
        return {
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "peak_scope": self.peak_scope,
            "rss_before_mib": round(self.rss_before_mib, 1),
            "load_mib": None if self.load_mib is None else round(self.load_mib, 1),
            "per_instance_mib": [round(m, 1) for m in self.per_instance_mib],
        }


class MemoryMeter:
    """Measures one run: :meth:`start` before loading, :meth:`report` after measuring."""

    def __init__(self) -> None:
        self._reset_ok = False
        self._before = 0.0

    def start(self) -> None:
        """Reset the peak mark and note the resident set before loading."""
        self._reset_ok = reset_peak_rss()
        self._before = rss_mib()

    def report(
        self, load_mib: float | None = None, per_instance_mib: Sequence[float] = ()
    ) -> MemoryReport:
        """The run's memory, peak read now."""
        peak, scope = peak_rss_mib(self._reset_ok)
        return MemoryReport(
            rss_before_mib=self._before,
            load_mib=load_mib,
            per_instance_mib=tuple(per_instance_mib),
            peak_rss_mib=peak,
            peak_scope=scope,
        )


class CpuClock:
    """Process CPU time (user + system, every thread) over an interval, as a percentage of one
    core: 200 % means two cores busy the whole time."""

    def __init__(self) -> None:
        self._cpu0 = 0.0
        self._wall0 = 0

    def start(self) -> None:
        """Start the interval."""
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter_ns()

    def percent(self) -> float:
        """CPU % since :meth:`start`."""
        wall = (time.perf_counter_ns() - self._wall0) / 1e9
        return 100.0 * (time.process_time() - self._cpu0) / wall if wall > 0 else 0.0
