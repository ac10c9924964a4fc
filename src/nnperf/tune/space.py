"""The search space: which run configurations are worth measuring for a model on a machine.

The space has two kinds of axis:

* **primary** axes change how work is spread over the hardware and dominate the result: the
  engine (onnxruntime, OpenVINO) and its inference precision (f32; bf16/f16 where the engine and
  CPU offer them), the device split ``cpu(T)*N`` (every factorisation ``T x N`` of the available
  cores), the host workers feeding the instances, the batch size (only when the model's batch axis
  is free and the objective is throughput), and the model variant (fp32 / fp16 / int8 files the
  user passes, or int8 models built by ``quantize``);
* **secondary** axes are each engine's own knobs that rarely change the ranking of primary
  points: the engine proposes them (:meth:`nnperf.engines.base.Engine.variations`: onnxruntime's
  graph level, prepacking, memory pattern, execution mode, and on CUDA cuDNN's algorithm search
  and CUDA graphs; OpenVINO's performance hints).

:meth:`SearchSpace.primary` is the full grid of primary axes with every engine knob at its
default; :meth:`SearchSpace.variations` moves one knob at a time away from its default around a
given primary point; :meth:`SearchSpace.grid` is every primary point with its defaults and with
each variation (what ``benchmarks/tune.py`` compares the search against). The space proposes;
:mod:`nnperf.tune.search` measures and decides.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnperf.device import available_cores, parse_device
from nnperf.engines.config import RunConfig
from nnperf.engines.registry import DEFAULT_ENGINE, get_engine
from nnperf.errors import InvalidInputError
from nnperf.model import ModelBlob, graph_io

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
    if kind == "cuda":
        return ("cuda:0", "cuda:0*2")
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
    inputs = graph_io(model).inputs
    return bool(inputs) and all(d.shape and isinstance(d.shape[0], str) for d in inputs)


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
        score = 0
        if self.instances > 1:
            score += 1
        if c.workers is not None:
            score += 1
        if c.batch_size not in (None, 1):
            score += 1
        if self.variant != BASE_VARIANT:
            score += 1
        if c.engine != DEFAULT_ENGINE:
            score += 1
        if c.precision != "f32":
            score += 1
        for technique in (c.max_batch_size, c.pipeline_stages, c.split_batch):
            if technique is not None:
                score += 1
        return score + c.engine_options.complexity()

    @property
    def label(self) -> str:
        """A compact, unique description, e.g. ``cpu(1)*2 w4 b8 level=extended`` or
        ``openvino cpu(1)*2 bf16 [int8]`` (the default engine is not named)."""
        words = self.config.describe().split(" ")
        if words[0] == DEFAULT_ENGINE:
            words = words[1:]
        if self.variant != BASE_VARIANT:
            words.append(f"[{self.variant}]")
        return " ".join(words)

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
    """The axes to search.

    Attributes:
        devices: device strings (``cpu(2)``, ``cpu(1)*2``...).
        workers_per_instance: host threads per instance; 1 maps to ``workers=None`` (the default).
        batch_sizes: rows per query; 1 maps to ``batch_size=None``.
        variants: model variant names (``"base"`` first).
        engines: engines to compare (default onnxruntime only).
        precisions: inference precisions per engine (default ``f32`` only); ``f32`` first.
        knobs: whether each engine's own knobs are varied around the best points (default on).
        runtime: whether the runtime techniques (more workers, pipeline, merge and split
            batching) are tried around the best points (default on; see :meth:`techniques`).
        throughput: the objective is throughput (decides which techniques apply).
        merge: merge batching applies (the model's batch axis is free).
        base: settings every candidate inherits (e.g. ``max_inflight``); its engine options are
            the starting point for the engine they belong to.
    """

    devices: tuple[str, ...]
    workers_per_instance: tuple[int, ...] = (1,)
    batch_sizes: tuple[int, ...] = (1,)
    variants: tuple[str, ...] = (BASE_VARIANT,)
    engines: tuple[str, ...] = (DEFAULT_ENGINE,)
    precisions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    knobs: bool = True
    runtime: bool = True
    throughput: bool = True
    merge: bool = False
    base: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        for name in ("devices", "workers_per_instance", "batch_sizes", "variants", "engines"):
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
        for engine in self.engines:
            RunConfig(engine=engine)  # validates the name
        object.__setattr__(
            self, "precisions", {e: tuple(self.precisions.get(e, ("f32",))) for e in self.engines}
        )

    def _engine_base(self, engine: str) -> RunConfig:
        if engine == self.base.engine:
            return self.base
        return self.base.replace(engine=engine)

    def _config(
        self, engine: str, precision: str, device: str, workers_per_instance: int, batch: int
    ) -> RunConfig:
        n = len(parse_device(device).instances)
        return self._engine_base(engine).replace(
            device=device,
            precision=precision,
            workers=None if workers_per_instance == 1 else workers_per_instance * n,
            batch_size=None if batch == 1 else batch,
        )

    def _primary_points(self) -> Iterator[tuple[str, str, str, int, int, str]]:
        for engine in self.engines:
            yield from itertools.product(
                (engine,),
                self.precisions[engine],
                self.devices,
                self.workers_per_instance,
                self.batch_sizes,
                self.variants,
            )

    def primary(self) -> list[Candidate]:
        """Every primary point with all engine knobs at their defaults, coarse first.

        Every engine × precision × variant × device split at batch 1 and one worker per
        instance comes before any batch size or extra worker: those axes decide most (engines
        and precisions differ by 2-6x, batch and workers by tens of percent), so a budget that
        runs out before the end of the grid has still seen each of them. Within a level the grid
        order holds.
        """
        points = [
            Candidate(self._config(engine, precision, dev, wpi, batch), variant)
            for engine, precision, dev, wpi, batch, variant in self._primary_points()
        ]

        def level(c: Candidate) -> int:
            return int((c.config.batch_size or 1) != 1) + int(c.config.workers is not None)

        return sorted(points, key=level)

    def variations(self, point: Candidate) -> list[Candidate]:
        """``point`` with one engine knob moved off its default, for each knob and value, then
        with each runtime technique that applies to it (:meth:`techniques`)."""
        c = point.config
        out = []
        if self.knobs:
            out = [
                Candidate(c.replace(options=opts), point.variant)
                for _, opts in get_engine(c.engine).variations(c)
            ]
        return out + self.techniques(point)

    def techniques(self, point: Candidate) -> list[Candidate]:
        """The seeds' runtime decisions around ``point`` (AWS Neuron's note, Furiosa's guide):

        * more host workers per instance (4; the primary axis has 1 and 2) — "at least 4
          workers" keeps an instance busy while the others' host work runs;
        * a pipeline of one stage per instance (NeuronCore pipeline) on a split device;
        * merge batching of concurrent single-row queries (``max_batch_size`` 8, 1 ms) when the
          batch axis is free;
        * split batching: a query of B rows cut into B/N-row chunks across N instances (Neuron's
          dynamic batching), for latency objectives with multi-row queries.

        Throughput techniques for throughput objectives (offline, or within a latency budget),
        split batching for latency; none when ``runtime`` is off.
        """
        if not self.runtime:
            return []
        c = point.config
        n = point.instances
        out: list[RunConfig] = []
        rows = c.batch_size or 1
        if self.throughput:
            out.append(c.replace(workers=4 * n))
            if n >= 2 and rows == 1 and c.device is not None and c.device.startswith("cpu"):
                out.append(c.replace(pipeline_stages=n, workers=None))
            if rows == 1 and self.merge:
                out.append(c.replace(max_batch_size=8, max_delay_ms=1.0, workers=None))
        elif n >= 2 and rows >= 2 * n and rows % n == 0:
            out.append(c.replace(split_batch=rows // n))
        return [Candidate(cfg, point.variant) for cfg in out if cfg != c]

    def simpler(self, point: Candidate) -> Candidate:
        """``point``'s simpler neighbour: same engine, precision, device split and variant, every
        other setting at its default (the final round measures it beside ``point``, so a knob that
        only won by noise loses the tie-break)."""
        base = self._engine_base(point.config.engine)
        # A latency objective's rows per query are the user's, not a knob: keep them.
        rows = None if self.throughput else point.config.batch_size
        return Candidate(
            base.replace(
                device=point.config.device, precision=point.config.precision, batch_size=rows
            ),
            point.variant,
        )

    def grid(self) -> list[Candidate]:
        """Every primary point, with its defaults and with each one-knob variation (each
        configuration once)."""
        out: dict[str, Candidate] = {}
        for point in self.primary():
            for cand in (point, *self.variations(point)):
                out.setdefault(cand.label, cand)
        return list(out.values())

    @property
    def size(self) -> int:
        """Number of points in :meth:`grid`."""
        return len(self.grid())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for reports)."""
        return {
            "engines": list(self.engines),
            "precisions": {k: list(v) for k, v in self.precisions.items()},
            "devices": list(self.devices),
            "workers_per_instance": list(self.workers_per_instance),
            "batch_sizes": list(self.batch_sizes),
            "variants": list(self.variants),
            "knobs": self.knobs,
            "runtime": self.runtime,
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
    engines: Sequence[str] | None = None,
    precisions: Sequence[str] | None = None,
    base: RunConfig | None = None,
) -> SearchSpace:
    """The search space for ``model`` on this machine.

    Args:
        model: the loaded model (its inputs decide whether the batch axis is searched).
        throughput: the objective is throughput (searches workers and batch sizes); latency
            objectives search batch 1 with one worker.
        cores: logical CPUs to split (default: those available to this process).
        devices: explicit device candidates (default: every ``cpu(T)*N`` split of ``cores``; on a
            ``cuda`` list the CUDA knobs are searched too: cuDNN algorithm search, CUDA graphs,
            and the TensorRT provider where the onnxruntime build has it).
        batch_sizes: batch sizes to try when the batch axis is free (default 1, 2, 4, 8); with a
            latency objective, the rows per query to minimise the latency of (default 1).
        variants: names of extra model variants (the ``base`` model is always included).
        engines: engines to compare (default: ``base``'s engine, else onnxruntime).
        precisions: precisions to try on each engine, kept where the engine offers them on the
            device kind (default ``f32`` only; ``("f32", "bf16", "f16")`` searches all offered).
        base: settings every candidate inherits (default ``RunConfig()``).

    Raises:
        InvalidInputError: a bad device string or batch size, devices of mixed kinds, or an
            engine that is not installed.
    """
    n_cores = cores if cores is not None else len(available_cores())
    devs = tuple(devices) if devices else device_splits(n_cores)
    kinds = {parse_device(d).kind for d in devs}
    if len(kinds) > 1:
        raise InvalidInputError(
            f"device candidates {list(devs)} mix {sorted(kinds)}; expected one kind per tuning run"
        )
    kind = kinds.pop()
    free = batch_axis_free(model)
    if throughput and free:
        batches = tuple(batch_sizes) if batch_sizes else _DEFAULT_BATCHES
    elif free and batch_sizes:
        batches = tuple(batch_sizes)  # latency of queries this many rows each (split batching)
    else:
        batches = (1,)
    cfg = base or RunConfig()
    names = tuple(dict.fromkeys(engines)) if engines else (cfg.engine,)
    wanted = tuple(precisions) if precisions else ("f32",)
    offered: dict[str, tuple[str, ...]] = {}
    for name in names:
        have = get_engine(name).precisions(kind)
        if not have:
            raise InvalidInputError(
                f"engine {name!r} cannot run on device kind {kind!r}; expected an engine that "
                "offers it (onnxruntime runs CPU, CUDA and TensorRT; openvino runs CPU)"
            )
        offered[name] = tuple(p for p in wanted if p in have) or ("f32",)
    return SearchSpace(
        devices=devs,
        workers_per_instance=(1, 2) if throughput else (1,),
        batch_sizes=batches,
        variants=(BASE_VARIANT, *variants),
        engines=names,
        precisions=offered,
        throughput=throughput,
        merge=free,
        base=cfg,
    )
