"""The search space: which run configurations are worth measuring for a model on a machine.

The space has two kinds of axis:

* **primary** axes change how work is spread over the hardware and dominate the result: the device
  split ``cpu(T)*N`` (every factorisation ``T x N`` of the available cores), the host workers
  feeding the instances, the batch size (only when the model's batch axis is free and the
  objective is throughput), and the model variant (fp32 / fp16 / int8 files the user passes);
* **secondary** axes are engine knobs that rarely change the ranking of primary points: graph
  optimisation level, weight prepacking, memory pattern, execution mode, and on CUDA the cuDNN
  convolution algorithm search and CUDA-graph replay.

:meth:`SearchSpace.primary` is the full grid of primary axes with every secondary knob at its
default; :meth:`SearchSpace.variations` moves one secondary knob at a time away from its default
around a given primary point; :meth:`SearchSpace.grid` is the exhaustive product of everything
(what ``benchmarks/tune.py`` compares the search against).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnperf.device import available_cores, parse_device
from nnperf.errors import InvalidInputError
from nnperf.model import ModelBlob
from nnperf.types import ExecutionMode, GraphLevel, RunConfig

__all__ = [
    "BASE_VARIANT",
    "Candidate",
    "SearchSpace",
    "batch_axis_free",
    "build_space",
    "device_splits",
]

BASE_VARIANT = "base"
"""Name of the model the user tunes (as opposed to an extra variant file)."""

_CUDA_ALGO_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
_DEFAULT_BATCHES = (1, 2, 4, 8)


def device_splits(cores: int, *, kind: str = "cpu") -> tuple[str, ...]:
    """Device strings splitting ``cores`` over instances: ``cpu(T)*N`` for every ``T x N = cores``.

    Args:
        cores: logical CPUs to share out (>= 1).
        kind: ``"cpu"``; for ``"cuda"`` the splits are one or two instances on GPU 0.

    Returns:
        Device strings, fused (one instance, every thread) first; ``cpu(2)`` rather than
        ``cpu(2)*1``.
    """
    if cores < 1:
        raise InvalidInputError(f"cores: got {cores}, expected >= 1")
    if kind in ("cuda", "tensorrt"):
        return (f"{kind}:0", f"{kind}:0*2")
    out = []
    for n in range(1, cores + 1):
        if cores % n == 0:
            t = cores // n
            out.append(f"cpu({t})" if n == 1 else f"cpu({t})*{n}")
    return tuple(out)


def batch_axis_free(model: ModelBlob) -> bool:
    """Whether every (non-initializer) input has a symbolic leading dimension.

    Only then can ``batch_size`` be overridden without re-exporting the model.
    """
    import onnx

    proto = onnx.ModelProto.FromString(model.data)
    inits = {i.name for i in proto.graph.initializer}
    inputs = [vi for vi in proto.graph.input if vi.name not in inits]
    if not inputs:
        return False
    for vi in inputs:
        dims = vi.type.tensor_type.shape.dim
        if not dims or not (dims[0].HasField("dim_param") and dims[0].dim_param):
            return False
    return True


@dataclass(frozen=True)
class Candidate:
    """One point of the space: a run configuration and the model variant it runs.

    Attributes:
        config: the run configuration.
        variant: ``"base"`` for the tuned model, else the name of a user-given variant.
    """

    config: RunConfig
    variant: str = BASE_VARIANT

    @property
    def instances(self) -> int:
        """Engine instances of the device split."""
        return len(parse_device(self.config.device).instances)

    @property
    def complexity(self) -> int:
        """How far from the defaults the candidate is (0 = onnxruntime defaults, one instance).

        Used to break ties within measurement noise: the simpler configuration wins.
        """
        c = self.config
        d = RunConfig()
        score = 0
        if self.instances > 1:
            score += 1
        if c.workers is not None:
            score += 1
        if c.batch_size not in (None, 1):
            score += 1
        if self.variant != BASE_VARIANT:
            score += 1
        for name in ("graph_level", "prepack", "mem_pattern", "execution_mode", "cuda_graph"):
            if getattr(c, name) != getattr(d, name):
                score += 1
        score += len(c.provider_options)
        return score

    @property
    def label(self) -> str:
        """A compact, unique description, e.g. ``cpu(1)*2 w4 b8 level=extended``."""
        c = self.config
        parts = [c.device or "cpu"]
        if c.workers is not None:
            parts.append(f"w{c.workers}")
        if c.batch_size is not None:
            parts.append(f"b{c.batch_size}")
        if c.graph_level is not GraphLevel.ALL:
            parts.append(f"level={c.graph_level.value}")
        if not c.prepack:
            parts.append("no-prepack")
        if not c.mem_pattern:
            parts.append("no-mem-pattern")
        if c.execution_mode is not ExecutionMode.SEQUENTIAL:
            parts.append(c.execution_mode.value)
        for opts in c.provider_options.values():
            parts.extend(f"{k}={v}" for k, v in sorted(opts.items()))
        if c.cuda_graph:
            parts.append("cuda-graph")
        if self.variant != BASE_VARIANT:
            parts.append(f"[{self.variant}]")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"label": self.label, "variant": self.variant, "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        """Inverse of :meth:`to_dict`."""
        return cls(
            config=RunConfig.from_dict(data["config"]),
            variant=str(data.get("variant", BASE_VARIANT)),
        )


@dataclass(frozen=True)
class SearchSpace:
    """The axes to search. The first value of every secondary axis is its default.

    Attributes:
        devices: device strings (``cpu(2)``, ``cpu(1)*2``...).
        workers_per_instance: host threads per instance; 1 maps to ``workers=None`` (the default).
        batch_sizes: rows per query; 1 maps to ``batch_size=None``.
        variants: model variant names (``"base"`` first).
        graph_levels: graph optimisation levels (default ``all`` first).
        prepack: weight prepacking values (default ``True`` first).
        mem_pattern: memory-pattern values (default ``True`` first).
        execution_modes: sequential (default) first.
        cudnn_conv_algo_search: cuDNN algorithm search modes (CUDA only; empty elsewhere).
        cuda_graph: CUDA-graph replay values (CUDA only; ``(False,)`` elsewhere).
        base: settings every candidate inherits (e.g. ``spinning``, ``max_inflight``).
    """

    devices: tuple[str, ...]
    workers_per_instance: tuple[int, ...] = (1,)
    batch_sizes: tuple[int, ...] = (1,)
    variants: tuple[str, ...] = (BASE_VARIANT,)
    graph_levels: tuple[GraphLevel, ...] = (GraphLevel.ALL,)
    prepack: tuple[bool, ...] = (True,)
    mem_pattern: tuple[bool, ...] = (True,)
    execution_modes: tuple[ExecutionMode, ...] = (ExecutionMode.SEQUENTIAL,)
    cudnn_conv_algo_search: tuple[str, ...] = ()
    cuda_graph: tuple[bool, ...] = (False,)
    base: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        for name in ("devices", "workers_per_instance", "batch_sizes", "variants"):
            if not getattr(self, name):
                raise InvalidInputError(f"search space: {name} is empty; expected at least one")
        for dev in self.devices:
            parse_device(dev)  # validates
        for name in ("workers_per_instance", "batch_sizes"):
            for v in getattr(self, name):
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise InvalidInputError(
                        f"search space: {name} holds {v!r}; expected positive integers"
                    )

    def _config(
        self,
        device: str,
        workers_per_instance: int,
        batch: int,
        **secondary: Any,
    ) -> RunConfig:
        n = len(parse_device(device).instances)
        return self.base.replace(
            device=device,
            workers=None if workers_per_instance == 1 else workers_per_instance * n,
            batch_size=None if batch == 1 else batch,
            **secondary,
        )

    def _primary_points(self) -> Iterator[tuple[str, int, int, str]]:
        yield from itertools.product(
            self.devices, self.workers_per_instance, self.batch_sizes, self.variants
        )

    def _cuda_options(self, algo: str | None) -> dict[str, dict[str, str]]:
        opts = {k: dict(v) for k, v in self.base.provider_options.items()}
        if algo is None:
            return opts
        opts.setdefault("CUDAExecutionProvider", {})["cudnn_conv_algo_search"] = algo
        return opts

    def primary(self) -> list[Candidate]:
        """Every primary point with all secondary knobs at their defaults."""
        out = []
        for dev, wpi, batch, variant in self._primary_points():
            cfg = self._config(
                dev,
                wpi,
                batch,
                graph_level=self.graph_levels[0],
                prepack=self.prepack[0],
                mem_pattern=self.mem_pattern[0],
                execution_mode=self.execution_modes[0],
                cuda_graph=self.cuda_graph[0],
                provider_options=self._cuda_options(
                    self.cudnn_conv_algo_search[0] if self.cudnn_conv_algo_search else None
                ),
            )
            out.append(Candidate(cfg, variant))
        return out

    def variations(self, point: Candidate) -> list[Candidate]:
        """``point`` with one secondary knob moved off its default, for each knob and value."""
        c = point.config
        out: list[Candidate] = []
        for level in self.graph_levels[1:]:
            out.append(Candidate(c.replace(graph_level=level), point.variant))
        for prepack in self.prepack[1:]:
            out.append(Candidate(c.replace(prepack=prepack), point.variant))
        for mem in self.mem_pattern[1:]:
            out.append(Candidate(c.replace(mem_pattern=mem), point.variant))
        for mode in self.execution_modes[1:]:
            out.append(Candidate(c.replace(execution_mode=mode), point.variant))
        for algo in self.cudnn_conv_algo_search[1:]:
            out.append(
                Candidate(c.replace(provider_options=self._cuda_options(algo)), point.variant)
            )
        for graph in self.cuda_graph[1:]:
            out.append(Candidate(c.replace(cuda_graph=graph), point.variant))
        return out

    def grid(self) -> list[Candidate]:
        """The exhaustive product of every axis (can be large: primary x all secondary)."""
        algos: Sequence[str | None] = self.cudnn_conv_algo_search or (None,)
        out = []
        for (dev, wpi, batch, variant), level, prepack, mem, mode, algo, graph in itertools.product(
            self._primary_points(),
            self.graph_levels,
            self.prepack,
            self.mem_pattern,
            self.execution_modes,
            algos,
            self.cuda_graph,
        ):
            cfg = self._config(
                dev,
                wpi,
                batch,
                graph_level=level,
                prepack=prepack,
                mem_pattern=mem,
                execution_mode=mode,
                cuda_graph=graph,
                provider_options=self._cuda_options(algo),
            )
            out.append(Candidate(cfg, variant))
        return out

    @property
    def size(self) -> int:
        """Number of points in :meth:`grid`."""
        return (
            len(self.devices)
            * len(self.workers_per_instance)
            * len(self.batch_sizes)
            * len(self.variants)
            * len(self.graph_levels)
            * len(self.prepack)
            * len(self.mem_pattern)
            * len(self.execution_modes)
            * max(1, len(self.cudnn_conv_algo_search))
            * len(self.cuda_graph)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for reports)."""
        return {
            "devices": list(self.devices),
            "workers_per_instance": list(self.workers_per_instance),
            "batch_sizes": list(self.batch_sizes),
            "variants": list(self.variants),
            "graph_levels": [g.value for g in self.graph_levels],
            "prepack": list(self.prepack),
            "mem_pattern": list(self.mem_pattern),
            "execution_modes": [m.value for m in self.execution_modes],
            "cudnn_conv_algo_search": list(self.cudnn_conv_algo_search),
            "cuda_graph": list(self.cuda_graph),
            "size": self.size,
        }


def build_space(
    model: ModelBlob,
    *,
    throughput: bool,
    cores: int | None = None,
    devices: Sequence[str] | None = None,
    batch_sizes: Sequence[int] | None = None,
    variants: Sequence[str] = (),
    base: RunConfig | None = None,
) -> SearchSpace:
    """The search space for ``model`` on this machine.

    Args:
        model: the loaded model (its inputs decide whether the batch axis is searched).
        throughput: the objective is throughput (searches workers and batch sizes); latency
            objectives search batch 1 with one worker.
        cores: logical CPUs to split (default: those available to this process).
        devices: explicit device candidates (default: every ``cpu(T)*N`` split of ``cores``; on a
            ``cuda``/``tensorrt`` list the CUDA knobs are searched too).
        batch_sizes: batch sizes to try when the batch axis is free (default 1, 2, 4, 8).
        variants: names of extra model variants (the ``base`` model is always included).
        base: settings every candidate inherits (default ``RunConfig()``).

    Raises:
        InvalidInputError: a bad device string or batch size, or devices of mixed kinds.
    """
    n_cores = cores if cores is not None else len(available_cores())
    devs = tuple(devices) if devices else device_splits(n_cores)
    kinds = {parse_device(d).kind for d in devs}
    if len(kinds) > 1:
        raise InvalidInputError(
            f"device candidates {list(devs)} mix {sorted(kinds)}; expected one kind per tuning run"
        )
    kind = kinds.pop()
    if throughput and batch_axis_free(model):
        batches = tuple(batch_sizes) if batch_sizes else _DEFAULT_BATCHES
    else:
        batches = (1,)
    gpu = kind in ("cuda", "tensorrt")
    return SearchSpace(
        devices=devs,
        workers_per_instance=(1, 2) if throughput else (1,),
        batch_sizes=batches,
        variants=(BASE_VARIANT, *variants),
        graph_levels=(GraphLevel.ALL, GraphLevel.EXTENDED, GraphLevel.BASIC),
        prepack=(True, False),
        mem_pattern=(True, False),
        execution_modes=(ExecutionMode.SEQUENTIAL, ExecutionMode.PARALLEL),
        cudnn_conv_algo_search=_CUDA_ALGO_SEARCH if kind == "cuda" else (),
        cuda_graph=(False, True) if gpu and kind == "cuda" else (False,),
        base=base or RunConfig(),
    )
