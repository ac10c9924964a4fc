"""Calibration (Furiosa's ``Calibrator``): activation ranges per tensor from sample data.

Min-max, entropy and percentile use onnxruntime's calibrators; MSE and SQNR are nnperf's own range
search (clip ranges tried on sampled activations, the one with the least quantization error kept).
Each method comes asymmetric or symmetric.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from nnperf.errors import InvalidInputError
from nnperf.model import ModelSource, graph_io, load_model
from nnperf.optimize.config import run_config
from nnperf.optimize.editor import as_proto, get_pure_input_names
from nnperf.optimize.quantize import prepare as _prepare_model
from nnperf.types import Progress, ProgressFn, check_dims_and_shapes

__all__ = ["CalibrationMethod", "Calibrator", "Sample", "random_dataset"]

Sample = Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray
Range = tuple[float, float]


class CalibrationMethod(str, Enum):
    """Calibration methods (Furiosa's names, lower case)."""

    MIN_MAX_ASYM = "min_max_asym"
    MIN_MAX_SYM = "min_max_sym"
    ENTROPY_ASYM = "entropy_asym"
    ENTROPY_SYM = "entropy_sym"
    PERCENTILE_ASYM = "percentile_asym"
    PERCENTILE_SYM = "percentile_sym"
    MSE_ASYM = "mse_asym"
    MSE_SYM = "mse_sym"
    SQNR_ASYM = "sqnr_asym"
    SQNR_SYM = "sqnr_sym"

    def __str__(self) -> str:
        return str(self.value)

    @property
    def symmetric(self) -> bool:
        """Whether ranges are symmetric around zero."""
        return self.value.endswith("_sym")

    @property
    def family(self) -> str:
        """``min_max``, ``entropy``, ``percentile``, ``mse`` or ``sqnr``."""
        return self.value.rsplit("_", 1)[0]


_FAMILY_SPELLINGS = {
    "minmax": "min_max",
    "entropy": "entropy",
    "percentile": "percentile",
    "mse": "mse",
    "sqnr": "sqnr",
}
_KIND_SPELLINGS = {
    "": "asym",
    "asym": "asym",
    "asymmetric": "asym",
    "sym": "sym",
    "symmetric": "sym",
}


def _aliases() -> dict[str, CalibrationMethod]:
    """Every accepted spelling, compacted to lower-case letters: ``minmaxasym``, ``minmax``..."""
    out: dict[str, CalibrationMethod] = {}
    for compact, family in _FAMILY_SPELLINGS.items():
        for suffix, kind in _KIND_SPELLINGS.items():
            out[compact + suffix] = CalibrationMethod(f"{family}_{kind}")
    return out


_ALIASES = _aliases()


def _method(value: str | CalibrationMethod) -> CalibrationMethod:
    """Resolve a calibration method name as the seed and onnxruntime spell them.

    Case, ``-``/``_``/spaces and a ``CalibrationMethod.`` prefix are ignored, and a family
    without ``_sym``/``_asym`` is asymmetric (Furiosa's and onnxruntime's default):
    ``MIN_MAX_ASYM``, ``min_max``, ``minmax``, ``MinMax``, ``Percentile``, ``entropy-sym``...
    """
    if isinstance(value, CalibrationMethod):
        return value
    text = str(value).strip().lower()
    text = text.removeprefix("calibrationmethod.")
    found = _ALIASES.get("".join(ch for ch in text if ch.isalpha()))
    if found is None:
        raise InvalidInputError(
            f"calibration method: got {value!r}, expected one of "
            f"{[m.value for m in CalibrationMethod]} (any case, '-' or '_' or nothing between "
            "words; without _sym/_asym: asymmetric, e.g. 'MIN_MAX_ASYM', 'minmax')"
        )
    return found


def _feed_dict(sample: Sample, names: Sequence[str]) -> dict[str, np.ndarray]:
    if isinstance(sample, Mapping):
        return {k: np.asarray(v) for k, v in sample.items()}
    if isinstance(sample, np.ndarray):
        return {names[0]: sample}
    values = list(sample)
    if len(values) != len(names):
        raise InvalidInputError(
            f"calibration sample: got {len(values)} arrays, expected {len(names)} ({names})"
        )
    return {n: np.asarray(v) for n, v in zip(names, values)}


def random_dataset(
    model: ModelSource,
    count: int,
    *,
    seed: int = 0,
    batch: int = 1,
    dims: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> list[dict[str, np.ndarray]]:
    """``count`` random feeds for ``model``, for smoke tests: ``nnperf bench``'s synthetic inputs
    (:func:`nnperf.bench.inputs.make_feeds`: standard-normal floats, small non-negative ints,
    all-ones masks), the leading symbolic dimension set to ``batch``; other symbolic dimensions
    need a size in ``dims`` / ``shapes`` (no silent 1).

    Random calibration says nothing about accuracy; use real data for deployed models.

    Raises:
        InvalidInputError: a symbolic non-batch dimension without a size, or ``dims`` /
            ``shapes`` naming a dimension or input the model does not have.
    """
    from nnperf.bench.inputs import make_feeds

    descs = graph_io(load_model(model)).inputs
    check_dims_and_shapes(descs, dims=dims, shapes=shapes)
    return [
        make_feeds(descs, batch_size=batch, seed=seed + i, dims=dims, shapes=shapes)
        for i in range(count)
    ]


class _Reader:
    """onnxruntime ``CalibrationDataReader`` over an iterable, counting samples."""

    def __init__(self, data: Iterable[Sample], names: Sequence[str], progress: ProgressFn | None):
        self._total = len(data) if isinstance(data, Sized) else 0
        self._it: Iterator[Sample] = iter(data)
        self._names = names
        self._progress = progress
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        try:
            sample = next(self._it)
        except StopIteration:
            return None
        self.count += 1
        if self._progress is not None:
            self._progress(Progress(self.count, self._total, what="calibrating"))
        return _feed_dict(sample, self._names)

    def __iter__(self) -> _Reader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


_ORT_METHODS = {"min_max": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
"""Method family -> onnxruntime ``CalibrationMethod`` member; the other families are searched."""


class _OrtStatistics:
    """Min-max, entropy and percentile: onnxruntime's calibrators (always asymmetric; symmetric
    ranges are derived from them by the caller, Furiosa's rule)."""

    def __init__(self, proto: onnx.ModelProto, family: str, percentage: float, tmp: str) -> None:
        from onnxruntime.quantization.calibrate import CalibrationMethod as OrtMethod
        from onnxruntime.quantization.calibrate import create_calibrator

        path = os.path.join(tmp, "model.onnx")
        onnx.save(proto, path)
        extra: dict[str, Any] = {"symmetric": False}
        if family == "percentile":
            extra["percentile"] = percentage
        self._ort: Any = create_calibrator(
            Path(path),
            augmented_model_path=os.path.join(tmp, "augmented.onnx"),
            calibrate_method=getattr(OrtMethod, _ORT_METHODS[family]),
            providers=["CPUExecutionProvider"],
            extra_options=extra,
        )

    def collect(self, reader: _Reader) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # onnxruntime prints progress
            self._ort.collect_data(reader)

    def ranges(self, shape: Callable[[float, float], tuple[float, float]]) -> dict[str, Range]:
        with contextlib.redirect_stdout(io.StringIO()):
            data = self._ort.compute_data()
        out: dict[str, Range] = {}
        for name in data:
            lo, hi = data[name].range_value
            out[name] = shape(float(np.asarray(lo).ravel()[0]), float(np.asarray(hi).ravel()[0]))
        return out

    def close(self) -> None:
        self._ort = None


def _mse(values: list[np.ndarray], lo: float, hi: float) -> float:
    """Mean squared quantization error over every kept value."""
    v = np.concatenate(values).astype(np.float64)
    return float(np.mean((v - _fake_quant(v, lo, hi)) ** 2))


def _neg_sqnr(values: list[np.ndarray], lo: float, hi: float) -> float:
    """Minus the mean over samples of the SQNR in dB (minimised like an error)."""
    snrs = []
    for b in values:
        b64 = b.astype(np.float64)
        noise = float(np.sum((b64 - _fake_quant(b64, lo, hi)) ** 2))
        signal = float(np.sum(b64**2))
        snrs.append(10 * np.log10((signal + 1e-30) / (noise + 1e-30)))
    return -float(np.mean(snrs))


_SEARCH_SCORES: dict[str, Callable[[list[np.ndarray], float, float], float]] = {
    "mse": _mse,
    "sqnr": _neg_sqnr,
}
"""Method family -> the error a candidate range is scored by (lower is better)."""


class _SearchStatistics:
    """MSE and SQNR: nnperf's range search over sampled activations."""

    def __init__(
        self,
        proto: onnx.ModelProto,
        family: str,
        inputs: Sequence[str],
        samples_per_tensor: int,
        seed: int,
    ) -> None:
        from nnperf.runtime import Session

        self._score = _SEARCH_SCORES[family]
        self._k = samples_per_tensor
        self._rng = np.random.default_rng(seed)
        self._lo: dict[str, float] = {}
        self._hi: dict[str, float] = {}
        self._blocks: dict[str, list[np.ndarray]] = {}
        inferred = onnx.shape_inference.infer_shapes(proto)
        floats = {
            vi.name
            for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
            if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        }
        inits = {i.name for i in inferred.graph.initializer}
        names: list[str] = [n for n in inputs if n in floats]
        for node in inferred.graph.node:
            names.extend(o for o in node.output if o in floats and o not in inits)
        self._tensors = list(dict.fromkeys(names))
        augmented = onnx.ModelProto()
        augmented.CopyFrom(inferred)
        present = {o.name for o in augmented.graph.output}
        for name in self._tensors:
            if name not in present:
                augmented.graph.output.append(
                    onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                )
        self._session: Any = Session(augmented, config=run_config())
        self._out_names = [o.name for o in self._session.outputs]

    def collect(self, reader: _Reader) -> None:
        wanted = set(self._tensors)
        for feed in reader:
            outs = self._session.run(feed)
            for name, value in zip(self._out_names, outs):
                if name in wanted:
                    self._accumulate(name, np.asarray(value, dtype=np.float32))

    def _accumulate(self, name: str, value: np.ndarray) -> None:
        flat = value.ravel()
        if flat.size == 0:
            return
        self._lo[name] = min(self._lo.get(name, np.inf), float(flat.min()))
        self._hi[name] = max(self._hi.get(name, -np.inf), float(flat.max()))
        if flat.size > self._k:
            flat = self._rng.choice(flat, self._k, replace=False)
        self._blocks.setdefault(name, []).append(flat.copy())

    def ranges(self, shape: Callable[[float, float], tuple[float, float]]) -> dict[str, Range]:
        return {name: self._search(name, shape) for name in self._tensors if name in self._lo}

    def _search(self, name: str, shape: Callable[[float, float], tuple[float, float]]) -> Range:
        lo0, hi0 = min(self._lo[name], 0.0), max(self._hi[name], 0.0)
        blocks = self._blocks[name]
        best: tuple[float, Range] | None = None
        for frac in np.linspace(0.1, 1.0, 46):
            cand = shape(lo0 * frac, hi0 * frac)
            if cand[1] - cand[0] <= 0:
                continue
            score = self._score(blocks, *cand)
            if best is None or score < best[0]:
                best = (score, cand)
        if best is None:
            return (float(lo0), float(hi0) if hi0 > lo0 else float(lo0) + 1e-6)
        return (float(best[1][0]), float(best[1][1]))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


class Calibrator:
    """Collect activation statistics and compute a quantization range per tensor.

    Args:
        model: the float model.
        method: a :class:`CalibrationMethod` or its name (default ``min_max_asym``); the seed's
            spellings are accepted too (``MIN_MAX_ASYM``, ``min_max``, ``minmax``...).
        percentage: percentile kept by the percentile method (default 99.99).
        samples_per_tensor: values kept per tensor per sample by MSE/SQNR (default 4096).
        seed: seed of the MSE/SQNR value sampling (default 0).
        prepare: calibrate the graph :func:`nnperf.optimize.prepare` makes of ``model``
            (default on, as ``nnperf quantize`` does), the one :func:`quantize` quantizes by
            default; :attr:`model` is that graph.

    ``collect_data`` may be called many times; ``compute_range`` uses everything collected.
    """

    def __init__(
        self,
        model: ModelSource,
        method: str | CalibrationMethod = CalibrationMethod.MIN_MAX_ASYM,
        *,
        percentage: float = 99.99,
        samples_per_tensor: int = 4096,
        seed: int = 0,
        prepare: bool = True,
    ) -> None:
        self.method = _method(method)
        if not 0.0 < percentage <= 100.0:
            raise InvalidInputError(f"percentage: got {percentage}, expected 0 < p <= 100")
        self.percentage = percentage
        self._proto = _prepare_model(model) if prepare else as_proto(model)
        self._inputs = get_pure_input_names(self._proto)
        self._samples = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="nnperf-calib-")
        family = self.method.family
        self._stats: _OrtStatistics | _SearchStatistics = (
            _OrtStatistics(self._proto, family, percentage, self._tmp.name)
            if family in _ORT_METHODS
            else _SearchStatistics(self._proto, family, self._inputs, samples_per_tensor, seed)
        )

    @property
    def model(self) -> onnx.ModelProto:
        """The graph being calibrated (prepared unless ``prepare=False``); the ranges' tensor
        names are its tensor names."""
        return self._proto

    def collect_data(self, dataset: Iterable[Sample], *, progress: ProgressFn | None = None) -> int:
        """Run the model on every sample and accumulate statistics.

        Args:
            dataset: samples: a dict by input name, a list in input order, or one array.
            progress: called after each sample with a :class:`~nnperf.types.Progress`: samples
                done, of ``len(dataset)`` when it has one.

        Returns:
            How many samples this call consumed.
        """
        reader = _Reader(dataset, self._inputs, progress)
        self._stats.collect(reader)
        self._samples += reader.count
        return reader.count

    def compute_range(self) -> dict[str, tuple[float, float]]:
        """The range (min, max) per calibrated tensor.

        Symmetric methods give ``(-a, a)``, or ``(0, a)`` for tensors that were never negative.

        Raises:
            InvalidInputError: ``collect_data`` was never called (or saw no samples).
        """
        if self._samples == 0:
            raise InvalidInputError(
                "compute_range: no calibration data; call collect_data(dataset) first"
            )
        return self._stats.ranges(self._shape)

    def _shape(self, lo: float, hi: float) -> Range:
        """Symmetric methods: (-a, a), or (0, a) when nothing was negative (Furiosa's rule)."""
        if not self.method.symmetric:
            return (lo, hi)
        a = max(abs(lo), abs(hi))
        return (0.0, a) if lo >= 0 else (-a, a)

    def close(self) -> None:
        """Release the calibration session and temporary files. Idempotent."""
        self._stats.close()
        self._tmp.cleanup()

    def __enter__(self) -> Calibrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fake_quant(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scale = (hi - lo) / 255.0
    zp = np.round(-lo / scale)
    q = np.clip(np.round(values / scale) + zp, 0, 255)
    return np.asarray((q - zp) * scale)
