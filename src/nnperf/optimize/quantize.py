"""Calibrated int8 quantization to QDQ models (Furiosa's ``Calibrator`` and ``quantize``).

Calibration: min-max, entropy and percentile use onnxruntime's calibrators; MSE and SQNR are
nnperf's own range search (clip ranges tried on sampled activations, the one with the least
quantization error kept). Each method comes asymmetric or symmetric. Quantization hands the ranges
to ``onnxruntime.quantization.quantize_static`` through its calibration cache (a ``TensorsData``
JSON file), so precomputed ranges need no calibration run.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError, NnperfError
from nnperf.model import ModelSource
from nnperf.optimize.editor import ModelEditor, as_proto, get_output_names, get_pure_input_names
from nnperf.optimize.verify import Agreement, compare_outputs

__all__ = [
    "CalibrationMethod",
    "Calibrator",
    "LayerSensitivity",
    "QuantizeCandidate",
    "QuantizeChoice",
    "choose_quantization",
    "layer_sensitivity",
    "prepare",
    "quantize",
    "random_dataset",
]

Sample = Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray
ProgressFn = Callable[[int], None]


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


def _method(value: str | CalibrationMethod) -> CalibrationMethod:
    try:
        return CalibrationMethod(str(value).lower().replace("-", "_"))
    except ValueError:
        raise InvalidInputError(
            f"calibration method: got {value!r}, expected one of "
            f"{[m.value for m in CalibrationMethod]}"
        ) from None


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
    model: ModelSource, count: int, *, seed: int = 0, batch: int = 1
) -> list[dict[str, np.ndarray]]:
    """``count`` random feeds for ``model`` (uniform [0, 1) floats, small ints), for smoke tests.

    Random calibration says nothing about accuracy; use real data for deployed models.
    """
    from nnperf.runtime import Session

    rng = np.random.default_rng(seed)
    with Session(model, config=RunConfig(device="cpu(1)")) as sess:
        descs = sess.inputs
    out = []
    for _ in range(count):
        feed: dict[str, np.ndarray] = {}
        for d in descs:
            shape = [
                int(s) if isinstance(s, int) else (batch if i == 0 else 1)
                for i, s in enumerate(d.shape)
            ]
            if np.issubdtype(np.dtype(d.dtype), np.floating):
                feed[d.name] = rng.random(shape, dtype=np.float32).astype(d.dtype)
            else:
                feed[d.name] = rng.integers(0, 2, size=shape).astype(d.dtype)
        out.append(feed)
    return out


class _Reader:
    """onnxruntime ``CalibrationDataReader`` over an iterable, counting samples."""

    def __init__(self, data: Iterable[Sample], names: Sequence[str], progress: ProgressFn | None):
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
            self._progress(self.count)
        return _feed_dict(sample, self._names)

    def __iter__(self) -> _Reader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def prepare(model: ModelSource) -> onnx.ModelProto:
    """Pre-process a float model for quantization (onnxruntime's ``quant_pre_process``).

    Shape inference and onnxruntime's basic graph optimisation (BatchNorm folded into Conv,
    constant folding), so that each quantized op maps onto an int8 kernel. Calibrate the
    *prepared* model: tensor names may change.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    proto = as_proto(model)
    with tempfile.TemporaryDirectory(prefix="nnperf-prep-") as tmp:
        src, dst = os.path.join(tmp, "in.onnx"), os.path.join(tmp, "out.onnx")
        onnx.save(proto, src)
        try:
            quant_pre_process(src, dst, skip_symbolic_shape=True)
        except Exception as exc:
            raise NnperfError(f"quantization pre-processing failed: {exc}") from exc
        return onnx.load(dst)


class Calibrator:
    """Collect activation statistics and compute a quantization range per tensor.

    Args:
        model: the float model (prepare it first with :func:`prepare` for best results).
        method: a :class:`CalibrationMethod` or its name (default ``min_max_asym``).
        percentage: percentile kept by the percentile method (default 99.99).
        samples_per_tensor: values kept per tensor per sample by MSE/SQNR (default 4096).

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
    ) -> None:
        self.method = _method(method)
        if not 0.0 < percentage <= 100.0:
            raise InvalidInputError(f"percentage: got {percentage}, expected 0 < p <= 100")
        self.percentage = percentage
        self._proto = as_proto(model)
        self._inputs = get_pure_input_names(self._proto)
        self._samples = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="nnperf-calib-")
        self._ort: Any = None
        self._k = samples_per_tensor
        self._rng = np.random.default_rng(seed)
        # MSE / SQNR state
        self._session: Any = None
        self._tensors: list[str] = []
        self._lo: dict[str, float] = {}
        self._hi: dict[str, float] = {}
        self._blocks: dict[str, list[np.ndarray]] = {}
        if self.method.family in ("min_max", "entropy", "percentile"):
            self._ort = self._ort_calibrator()
        else:
            self._own_session()

    def _ort_calibrator(self) -> Any:
        from onnxruntime.quantization.calibrate import CalibrationMethod as OrtMethod
        from onnxruntime.quantization.calibrate import create_calibrator

        path = os.path.join(self._tmp.name, "model.onnx")
        onnx.save(self._proto, path)
        ort_method = {
            "min_max": OrtMethod.MinMax,
            "entropy": OrtMethod.Entropy,
            "percentile": OrtMethod.Percentile,
        }[self.method.family]
        # symmetric ranges are derived from the asymmetric ones in compute_range (Furiosa's rule:
        # [0, a] for never-negative tensors), so onnxruntime always calibrates asymmetric
        extra: dict[str, Any] = {"symmetric": False}
        if self.method.family == "percentile":
            extra["percentile"] = self.percentage
        return create_calibrator(
            Path(path),
            augmented_model_path=os.path.join(self._tmp.name, "augmented.onnx"),
            calibrate_method=ort_method,
            providers=["CPUExecutionProvider"],
            extra_options=extra,
        )

    def _own_session(self) -> None:
        from nnperf.runtime import Session

        inferred = onnx.shape_inference.infer_shapes(self._proto)
        floats = {
            vi.name
            for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
            if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        }
        inits = {i.name for i in inferred.graph.initializer}
        names: list[str] = [n for n in self._inputs if n in floats]
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
        self._session = Session(augmented, config=RunConfig(device="cpu(1)"))
        self._out_names = [o.name for o in self._session.outputs]

    def collect_data(self, dataset: Iterable[Sample], *, progress: ProgressFn | None = None) -> int:
        """Run the model on every sample and accumulate statistics.

        Args:
            dataset: samples: a dict by input name, a list in input order, or one array.
            progress: called with the running sample count after each sample.

        Returns:
            How many samples this call consumed.
        """
        reader = _Reader(dataset, self._inputs, progress)
        if self._ort is not None:
            with contextlib.redirect_stdout(io.StringIO()):  # onnxruntime prints progress
                self._ort.collect_data(reader)
        else:
            for feed in reader:
                outs = self._session.run(feed)
                for name, value in zip(self._out_names, outs):
                    if name in self._tensors:
                        self._accumulate(name, np.asarray(value, dtype=np.float32))
        self._samples += reader.count
        return reader.count

    def _accumulate(self, name: str, value: np.ndarray) -> None:
        flat = value.ravel()
        if flat.size == 0:
            return
        self._lo[name] = min(self._lo.get(name, np.inf), float(flat.min()))
        self._hi[name] = max(self._hi.get(name, -np.inf), float(flat.max()))
        if flat.size > self._k:
            flat = self._rng.choice(flat, self._k, replace=False)
        self._blocks.setdefault(name, []).append(flat.copy())

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
        if self._ort is not None:
            with contextlib.redirect_stdout(io.StringIO()):
                data = self._ort.compute_data()
            out: dict[str, tuple[float, float]] = {}
            for name in data:
                lo, hi = data[name].range_value
                out[name] = self._shape(
                    float(np.asarray(lo).ravel()[0]), float(np.asarray(hi).ravel()[0])
                )
            return out
        return {name: self._search(name) for name in self._tensors if name in self._lo}

    def _shape(self, lo: float, hi: float) -> tuple[float, float]:
        """Symmetric methods: (-a, a), or (0, a) when nothing was negative (Furiosa's rule)."""
        if not self.method.symmetric:
            return (lo, hi)
        a = max(abs(lo), abs(hi))
        return (0.0, a) if lo >= 0 else (-a, a)

    def _search(self, name: str) -> tuple[float, float]:
        lo0, hi0 = min(self._lo[name], 0.0), max(self._hi[name], 0.0)
        blocks = self._blocks[name]
        values = np.concatenate(blocks).astype(np.float64)
        best: tuple[float, tuple[float, float]] | None = None
        for frac in np.linspace(0.1, 1.0, 46):
            if self.method.symmetric:
                a = max(-lo0, hi0) * frac
                cand = (0.0, a) if lo0 >= 0 else (-a, a)
            else:
                cand = (lo0 * frac, hi0 * frac)
            if cand[1] - cand[0] <= 0:
                continue
            if self.method.family == "mse":
                score = float(np.mean((values - _fake_quant(values, *cand)) ** 2))
            else:  # sqnr: mean over samples of the SQNR in dB, negated to minimise
                snrs = []
                for b in blocks:
                    b64 = b.astype(np.float64)
                    noise = float(np.sum((b64 - _fake_quant(b64, *cand)) ** 2))
                    signal = float(np.sum(b64**2))
                    snrs.append(10 * np.log10((signal + 1e-30) / (noise + 1e-30)))
                score = -float(np.mean(snrs))
            if best is None or score < best[0]:
                best = (score, cand)
        if best is None:
            return (float(lo0), float(hi0) if hi0 > lo0 else float(lo0) + 1e-6)
        return (float(best[1][0]), float(best[1][1]))

    def close(self) -> None:
        """Release the calibration session and temporary files. Idempotent."""
        if self._session is not None:
            self._session.close()
            self._session = None
        self._ort = None
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


_QTYPES = ("uint8", "int8")


def quantize(
    model: ModelSource,
    ranges: Mapping[str, tuple[float, float]],
    *,
    per_channel: bool = True,
    activation_type: str = "uint8",
    weight_type: str = "int8",
    with_quantize: bool = True,
    normalized_pixel_outputs: Sequence[int] | None = None,
    nodes_to_exclude: Sequence[str] = (),
    nodes_to_quantize: Sequence[str] | None = None,
) -> onnx.ModelProto:
    """Quantize ``model`` to a QDQ model with the given activation ranges.

    Args:
        model: the float model the ranges were computed on.
        ranges: tensor name -> (min, max), e.g. from :meth:`Calibrator.compute_range`.
        per_channel: per-output-channel weight scales (default on; markedly more accurate).
        activation_type: ``uint8`` (default; the fast u8s8 kernels on x86) or ``int8``.
        weight_type: ``int8`` (default) or ``uint8``.
        with_quantize: ``False`` makes every float input take uint8 values directly
            (Furiosa's ``with_quantize=False``): the float input is assumed to carry pixel values
            in [0, 255]; for normalised inputs use ``ModelEditor.convert_input_type`` with
            ``mean``/``std`` on the result instead.
        normalized_pixel_outputs: output indices whose values lie in [0, 1]; they become uint8
            0..255 instead of dequantized float32.
        nodes_to_exclude: node names kept in float (e.g. the worst of :func:`layer_sensitivity`).
        nodes_to_quantize: quantize only these nodes (default: every supported node).

    Raises:
        InvalidInputError: bad types or output indices, or no ranges.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod as OrtMethod,
    )
    from onnxruntime.quantization.calibrate import (
        TensorsData,
        save_tensors_data,
    )

    for label, value in (("activation_type", activation_type), ("weight_type", weight_type)):
        if value not in _QTYPES:
            raise InvalidInputError(f"{label}: got {value!r}, expected one of {_QTYPES}")
    if not ranges:
        raise InvalidInputError("quantize: got no ranges; run a Calibrator first")
    proto = as_proto(model)
    ranges = _clamp_activation_ranges(proto, ranges)
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    data = {
        str(k): (np.array(float(lo), dtype=np.float32), np.array(float(hi), dtype=np.float32))
        for k, (lo, hi) in ranges.items()
    }
    with tempfile.TemporaryDirectory(prefix="nnperf-quant-") as tmp:
        src, dst = os.path.join(tmp, "in.onnx"), os.path.join(tmp, "out.onnx")
        cache = os.path.join(tmp, "ranges.json")
        onnx.save(proto, src)
        save_tensors_data(TensorsData(OrtMethod.MinMax, data), cache)
        quantize_static(
            src,
            dst,
            None,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=qtype[activation_type],
            weight_type=qtype[weight_type],
            nodes_to_exclude=list(nodes_to_exclude) or None,
            nodes_to_quantize=list(nodes_to_quantize) if nodes_to_quantize else None,
            calibrate_method=OrtMethod.MinMax,
            calibration_cache_path=cache,
        )
        out = onnx.load(dst)
    if not with_quantize or normalized_pixel_outputs:
        editor = ModelEditor(out)
        if not with_quantize:
            for name in editor.get_pure_input_names():
                vi = next(v for v in editor.model.graph.input if v.name == name)
                if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                    editor.convert_input_type(name, "uint8", pixel_scale=1.0)
        names = get_output_names(out)
        for index in normalized_pixel_outputs or ():
            if not 0 <= index < len(names):
                raise InvalidInputError(
                    f"normalized_pixel_outputs: index {index} out of range; the model has "
                    f"{len(names)} outputs"
                )
            editor.convert_output_type(names[index], "uint8", range=(0.0, 1.0))
        out = editor.model
    return out


def _clamp_activation_ranges(
    model: onnx.ModelProto, ranges: Mapping[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """Clip the ranges of Relu/Clip outputs to what those ops can produce.

    onnxruntime's QDQ quantizer removes Relu and Clip and lets the following QuantizeLinear do
    the clamping, which is only right when the output range starts at the clamp value. A
    symmetric range such as (-a, a) on a Relu output would silently drop the Relu (measured
    here: cosine 0.42 against float on a two-conv model), so the range is clamped first.
    """
    out = dict(ranges)
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if not node.output or node.output[0] not in out:
            continue
        lo, hi = out[node.output[0]]
        if node.op_type == "Relu":
            lo = max(lo, 0.0)
        elif node.op_type == "Clip":
            if len(node.input) > 1 and node.input[1] in consts:
                lo = max(lo, float(consts[node.input[1]]))
            if len(node.input) > 2 and node.input[2] in consts:
                hi = min(hi, float(consts[node.input[2]]))
        else:
            continue
        out[node.output[0]] = (lo, max(hi, lo + 1e-6))
    return out


# -- choosing a configuration by measurement -------------------------------------------------------


@dataclass(frozen=True)
class QuantizeCandidate:
    """One quantization configuration, measured.

    Attributes:
        activation_type: ``uint8`` or ``int8``.
        per_channel: per-channel weight scales.
        latency_ms: median latency of one query at one thread.
        agreement: outputs compared with the float model on the evaluation feeds.
        meets_target: whether ``agreement.cosine`` reached the target.
    """

    activation_type: str
    per_channel: bool
    latency_ms: float
    agreement: Agreement
    meets_target: bool

    @property
    def label(self) -> str:
        """Short text, e.g. ``u8 act / per-channel``."""
        act = "u8" if self.activation_type == "uint8" else "s8"
        return f"{act} act / {'per-channel' if self.per_channel else 'per-tensor'}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "activation_type": self.activation_type,
            "per_channel": self.per_channel,
            "latency_ms": self.latency_ms,
            "agreement": self.agreement.to_dict(),
            "meets_target": self.meets_target,
        }


@dataclass(frozen=True)
class QuantizeChoice:
    """The result of :func:`choose_quantization`.

    Attributes:
        model: the chosen quantized model.
        chosen: the chosen candidate.
        candidates: every measured candidate.
        float_latency_ms: the float model's median latency, same conditions.
        explanation: why this candidate was chosen, in one paragraph.
    """

    model: onnx.ModelProto = field(repr=False)
    chosen: QuantizeCandidate
    candidates: tuple[QuantizeCandidate, ...]
    float_latency_ms: float
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the model)."""
        return {
            "chosen": self.chosen.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
            "float_latency_ms": self.float_latency_ms,
            "explanation": self.explanation,
        }


def _median_latency_ms(
    model: ModelSource, feeds: Sequence[dict[str, np.ndarray]], iters: int
) -> float:
    from nnperf.runtime import Session

    with Session(model, config=RunConfig(device="cpu(1)")) as sess:
        for f in feeds[:2]:
            sess.run(f)
        times = []
        for i in range(iters):
            f = feeds[i % len(feeds)]
            t0 = time.perf_counter_ns()
            sess.run(f)
            times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1e6


def _run_all(model: ModelSource, feeds: Sequence[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    from nnperf.runtime import Session

    with Session(model, config=RunConfig(device="cpu(1)")) as sess:
        return [sess.run(f) for f in feeds]


def choose_quantization(
    model: ModelSource,
    ranges: Mapping[str, tuple[float, float]],
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    min_cosine: float = 0.99,
    iters: int = 20,
    candidates: Sequence[tuple[str, bool]] = (
        ("uint8", True),
        ("int8", True),
        ("uint8", False),
        ("int8", False),
    ),
    nodes_to_exclude: Sequence[str] = (),
) -> QuantizeChoice:
    """Try quantization configurations, measure each, keep the fastest that is accurate enough.

    Args:
        model: the (prepared) float model.
        ranges: calibrated ranges.
        feeds: evaluation queries (also used for timing).
        min_cosine: accuracy target: cosine similarity to the float outputs (default 0.99).
        iters: timed runs per candidate (default 20; median kept).
        candidates: (activation_type, per_channel) pairs to try.
        nodes_to_exclude: nodes kept in float in every candidate.
    """
    if not feeds:
        raise InvalidInputError("choose_quantization: got no feeds; expected at least one query")
    reference = _run_all(model, feeds)
    float_ms = _median_latency_ms(model, feeds, iters)
    measured: list[tuple[QuantizeCandidate, onnx.ModelProto]] = []
    for act, per_channel in candidates:
        q = quantize(
            model,
            ranges,
            per_channel=per_channel,
            activation_type=act,
            nodes_to_exclude=nodes_to_exclude,
        )
        agreement = compare_outputs(reference, _run_all(q, feeds))
        cand = QuantizeCandidate(
            activation_type=act,
            per_channel=per_channel,
            latency_ms=_median_latency_ms(q, feeds, iters),
            agreement=agreement,
            meets_target=agreement.cosine >= min_cosine,
        )
        measured.append((cand, q))
    good = [m for m in measured if m[0].meets_target]
    pool = good or measured
    best, best_model = (
        min(pool, key=lambda m: m[0].latency_ms)
        if good
        else max(pool, key=lambda m: m[0].agreement.cosine)
    )
    speedup = float_ms / best.latency_ms if best.latency_ms > 0 else float("nan")
    if good:
        why = (
            f"chose {best.label}: the fastest of {len(good)} candidate(s) with cosine >= "
            f"{min_cosine} ({best.agreement.cosine:.4f}); {best.latency_ms:.3f} ms vs float "
            f"{float_ms:.3f} ms ({speedup:.2f}x)."
        )
    else:
        why = (
            f"no candidate reached cosine {min_cosine}; chose the most accurate, {best.label} "
            f"(cosine {best.agreement.cosine:.4f}). Keep the most sensitive layers in float "
            "(layer_sensitivity / --keep-float) or calibrate on real data."
        )
    if speedup < 1.0:
        why += (
            " int8 is SLOWER than float here: Q/DQ conversions around ops without int8 kernels, "
            "or a model too small for int8 to pay off; see the profiler's external-operator "
            "table for the QuantizeLinear/DequantizeLinear time."
        )
    return QuantizeChoice(
        model=best_model,
        chosen=best,
        candidates=tuple(m[0] for m in measured),
        float_latency_ms=float_ms,
        explanation=why,
    )


@dataclass(frozen=True)
class LayerSensitivity:
    """Error one quantized node adds on its own.

    Attributes:
        node: node name.
        op_type: its operator.
        max_abs_err: max abs error of the model outputs with only this node quantized.
        cosine: cosine similarity of the outputs with only this node quantized.
    """

    node: str
    op_type: str
    max_abs_err: float
    cosine: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "node": self.node,
            "op_type": self.op_type,
            "max_abs_err": self.max_abs_err,
            "cosine": self.cosine,
        }


_QUANTIZABLE = ("Conv", "MatMul", "Gemm", "ConvTranspose")


def layer_sensitivity(
    model: ModelSource,
    ranges: Mapping[str, tuple[float, float]],
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    per_channel: bool = True,
    activation_type: str = "uint8",
    progress: ProgressFn | None = None,
) -> list[LayerSensitivity]:
    """Quantize one Conv/MatMul/Gemm node at a time and measure the error each adds.

    Returns:
        One entry per node, worst (lowest cosine) first. Pass the first few names as
        ``quantize(..., nodes_to_exclude=...)`` to keep them in float.
    """
    proto = as_proto(model)
    reference = _run_all(proto, feeds)
    result = []
    targets = [n for n in proto.graph.node if n.op_type in _QUANTIZABLE]
    for i, node in enumerate(targets):
        if not node.name:
            continue
        q = quantize(
            proto,
            ranges,
            per_channel=per_channel,
            activation_type=activation_type,
            nodes_to_quantize=[node.name],
        )
        agreement = compare_outputs(reference, _run_all(q, feeds))
        result.append(
            LayerSensitivity(
                node=node.name,
                op_type=node.op_type,
                max_abs_err=agreement.max_abs_err,
                cosine=agreement.cosine,
            )
        )
        if progress is not None:
            progress(i + 1)
    return sorted(result, key=lambda s: s.cosine)
