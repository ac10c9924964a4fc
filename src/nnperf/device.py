"""Device specifications: which engine instances to create, with how many threads, on which cores.

The grammar follows FuriosaAI's single-PE vs fused-PE device strings, mapped onto CPU cores:

=================  ==========================================================================
``cpu``            one instance using every core available to this process
``cpu(T)``         one instance with T intra-op threads
``cpu(T)*N``       N instances x T intra-op threads each (``cpu*N``: the cores shared out)
``cpu:0-1``        one instance pinned to cores 0 and 1 (two threads)
``cpu:0,cpu:1``    two instances, each pinned to one core (comma-joined items)
``cuda`` / ``cuda:0`` / ``cuda:0*2``   instances on a CUDA device (``*N``: N instances)
=================  ==========================================================================

A device says where instances run, not how an engine runs there: TensorRT is one of onnxruntime's
execution providers on a CUDA device (``cuda:0`` with the engine option
``providers=tensorrt,cuda,cpu``), so ``tensorrt:0`` is an error that says so.

``NNPERF_DEVICES`` in the environment is the default when no device is given; it never overrides an
explicit argument. Cores are the Linux logical CPU numbers ``os.sched_getaffinity`` reports.

This module sits beside ``types`` at the bottom of the package because ``RunConfig`` validates its
device string with it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from nnperf.errors import InvalidInputError

__all__ = ["DEVICES_ENV", "DeviceSpec", "InstanceSpec", "available_cores", "parse_device"]

DEVICES_ENV = "NNPERF_DEVICES"
_KINDS = ("cpu", "cuda")

_FIX = (
    "expected one of: 'cpu', 'cpu(T)', 'cpu(T)*N', 'cpu:0-1', 'cpu:0,cpu:1', 'cuda', 'cuda:0', "
    "'cuda:0*N'"
)


def available_cores() -> tuple[int, ...]:
    """The logical CPUs this process may run on, sorted."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class InstanceSpec:
    """One engine instance.

    Attributes:
        kind: ``"cpu"`` or ``"cuda"``.
        threads: intra-op threads of the instance (CPU); 1 on GPUs (host side).
        cores: logical CPUs the instance's threads are pinned to, or ``None`` for no pinning.
        device_id: GPU ordinal for ``cuda``; ``None`` on CPU.
    """

    kind: str
    threads: int
    cores: tuple[int, ...] | None = None
    device_id: int | None = None

    @property
    def label(self) -> str:
        """A short human label, e.g. ``cpu(1)``, ``cpu:0-1`` or ``cuda:0``."""
        if self.kind != "cpu":
            return f"{self.kind}:{self.device_id}"
        if self.cores is not None:
            return "cpu:" + _format_cores(self.cores)
        return f"cpu({self.threads})"


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed device string: the engine instances to create.

    Attributes:
        text: the canonical device string.
        instances: one entry per engine instance.
    """

    text: str
    instances: tuple[InstanceSpec, ...]

    @property
    def kind(self) -> str:
        """The kind shared by every instance (``cpu`` or ``cuda``)."""
        return self.instances[0].kind

    @property
    def pinned(self) -> bool:
        """Whether the instances' threads are pinned to cores."""
        return any(i.cores is not None for i in self.instances)

    @property
    def total_threads(self) -> int:
        """Threads over all instances."""
        return sum(i.threads for i in self.instances)


def _format_cores(cores: tuple[int, ...]) -> str:
    if len(cores) > 1 and cores == tuple(range(cores[0], cores[-1] + 1)):
        return f"{cores[0]}-{cores[-1]}"
    return ",".join(str(c) for c in cores)


_CPU_SHARED = re.compile(r"^cpu(?:\((\d+)\))?(?:\*(\d+))?$")
_CPU_PINNED = re.compile(r"^cpu:(\d+)(?:-(\d+))?$")
_GPU = re.compile(r"^(cuda)(?::(\d+))?(?:\*(\d+))?$")
_TENSORRT = re.compile(r"^(?:tensorrt|trt)(?::(\d+))?(?:\*(\d+))?$")


def parse_device(text: str | None = None, *, cores: tuple[int, ...] | None = None) -> DeviceSpec:
    """Parse a device string (see the module docstring for the grammar).

    Args:
        text: the device string; ``None`` takes ``$NNPERF_DEVICES``, then ``"cpu"``.
        cores: the logical CPUs to share out (default: those this process may use).

    Returns:
        The parsed :class:`DeviceSpec`.

    Raises:
        InvalidInputError: the string is malformed, names cores this process cannot use, or asks for
            more threads than there are cores.
    """
    if text is None:
        text = os.environ.get(DEVICES_ENV) or "cpu"
    if not isinstance(text, str):
        raise InvalidInputError(f"device: got {type(text).__name__}, expected a string; {_FIX}")
    usable = cores if cores is not None else available_cores()
    compact = text.replace(" ", "").lower()
    if not compact:
        raise InvalidInputError(f"device: got an empty string; {_FIX}")
    items = compact.split(",")
    instances: list[InstanceSpec] = []
    for item in items:
        instances.extend(_parse_item(item, text, usable))
    kinds = {i.kind for i in instances}
    if len(kinds) > 1:
        raise InvalidInputError(
            f"device {text!r}: mixes {sorted(kinds)}; expected instances of one kind (run one "
            "benchmark per device kind)"
        )
    pinned = [c for i in instances if i.cores is not None for c in i.cores]
    if len(pinned) != len(set(pinned)):
        raise InvalidInputError(
            f"device {text!r}: a core is pinned to two instances; expected disjoint core sets, "
            "e.g. 'cpu:0,cpu:1'"
        )
    if len(items) > 1 and any(i.cores is None and i.kind == "cpu" for i in instances):
        raise InvalidInputError(
            f"device {text!r}: comma-joined CPU items must each name cores ('cpu:0,cpu:1'); "
            "for unpinned instances write 'cpu(T)*N'"
        )
    return DeviceSpec(text=compact, instances=tuple(instances))


def _parse_item(item: str, text: str, usable: tuple[int, ...]) -> list[InstanceSpec]:
    m = _CPU_SHARED.match(item)
    if m:
        threads_s, count_s = m.groups()
        count = int(count_s) if count_s else 1
        if count < 1:
            raise InvalidInputError(f"device {text!r}: instance count must be >= 1; got {count}")
        if threads_s is None:
            threads = max(1, len(usable) // count)
        else:
            threads = int(threads_s)
            if threads < 1:
                raise InvalidInputError(f"device {text!r}: threads must be >= 1; got {threads}")
        if threads * count > len(usable) * 4:
            raise InvalidInputError(
                f"device {text!r}: {count} instance(s) x {threads} thread(s) = {threads * count} "
                f"threads for {len(usable)} core(s); expected at most 4 threads per core "
                f"(try 'cpu(1)*{len(usable)}')"
            )
        return [InstanceSpec(kind="cpu", threads=threads) for _ in range(count)]
    m = _CPU_PINNED.match(item)
    if m:
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise InvalidInputError(f"device {text!r}: core range {lo}-{hi} is reversed")
        cores = tuple(range(lo, hi + 1))
        missing = [c for c in cores if c not in usable]
        if missing:
            raise InvalidInputError(
                f"device {text!r}: core(s) {missing} are not available to this process; "
                f"expected cores among {list(usable)}"
            )
        return [InstanceSpec(kind="cpu", threads=len(cores), cores=cores)]
    m = _TENSORRT.match(item)
    if m:
        dev_s, count_s = m.groups()
        cuda = f"cuda:{dev_s or 0}" + (f"*{count_s}" if count_s else "")
        raise InvalidInputError(
            f"device {text!r}: TensorRT is an onnxruntime execution provider, not a device; "
            f"expected the CUDA device it runs on with the providers as an engine option: "
            f"--device {cuda} --engine-option providers=tensorrt,cuda,cpu (Python: "
            f"device={cuda!r}, options={{'providers': ['tensorrt', 'cuda', 'cpu']}})"
        )
    m = _GPU.match(item)
    if m:
        kind, dev_s, count_s = m.groups()
        count = int(count_s) if count_s else 1
        if count < 1:
            raise InvalidInputError(f"device {text!r}: instance count must be >= 1; got {count}")
        return [
            InstanceSpec(kind=kind, threads=1, device_id=int(dev_s) if dev_s else 0)
            for _ in range(count)
        ]
    raise InvalidInputError(f"device {text!r}: cannot parse {item!r}; {_FIX}")
