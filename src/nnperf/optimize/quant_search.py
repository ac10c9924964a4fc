"""Choosing a quantization by measurement: candidates timed and checked against the float model
(:func:`choose_quantization`), and the error each quantized layer adds alone
(:func:`layer_sensitivity`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError
from nnperf.model import ModelSource
from nnperf.optimize.editor import as_proto
from nnperf.optimize.measure import Contender, measure_models
from nnperf.optimize.quantize import prepare as _prepare_model
from nnperf.optimize.quantize import quantize
from nnperf.optimize.verify import Agreement, compare_outputs, run_outputs
from nnperf.types import Progress, ProgressFn

__all__ = [
    "LayerSensitivity",
    "QuantizeCandidate",
    "QuantizeChoice",
    "choose_quantization",
    "layer_sensitivity",
]


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


COSINE_TIE = 1e-3
"""Cosines this close count as equally accurate when no candidate meets the target."""


def choose_quantization(
    model: ModelSource,
    ranges: Mapping[str, tuple[float, float]],
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    min_cosine: float = 0.99,
    iters: int = 20,
    rounds: int = 5,
    candidates: Sequence[tuple[str, bool]] = (
        ("uint8", True),
        ("int8", True),
        ("uint8", False),
        ("int8", False),
    ),
    nodes_to_exclude: Sequence[str] = (),
    prepare: bool = True,
    config: RunConfig | None = None,
) -> QuantizeChoice:
    """Try quantization configurations, measure each, keep the fastest that is accurate enough.

    The float model and every candidate are timed together, interleaved
    (:func:`nnperf.optimize.measure.measure_models`), at one thread, on ``config``'s engine: the
    fastest activation type or weight granularity can differ by engine (onnxruntime's s8
    activations are 2.4x slower than u8 on ResNet-50 on an AMX Xeon; OpenVINO runs both with
    its own int8 kernels).

    Args:
        model: the float model (pre-processed here unless ``prepare=False``).
        ranges: calibrated ranges (of the prepared graph, e.g. from ``Calibrator(model)``).
        feeds: evaluation queries (also used for timing).
        min_cosine: accuracy target: cosine similarity to the float outputs (default 0.99).
        iters: timed runs per candidate (default 20; median kept).
        rounds: rounds the timed runs are spread over (default 5).
        candidates: (activation_type, per_channel) pairs to try.
        nodes_to_exclude: nodes kept in float in every candidate.
        prepare: :func:`~nnperf.optimize.prepare` the model first (default on, as
            :func:`~nnperf.optimize.quantize` does); the float baseline is the prepared model.
        config: where to measure (default ``RunConfig(device="cpu(1)")``: onnxruntime, one
            thread); e.g. ``RunConfig(engine="openvino", device="cpu(1)")``.
    """
    if not feeds:
        raise InvalidInputError("choose_quantization: got no feeds; expected at least one query")
    base = _prepare_model(model) if prepare else as_proto(model)
    models = {
        (act, per_channel): quantize(
            base,
            ranges,
            per_channel=per_channel,
            activation_type=act,
            nodes_to_exclude=nodes_to_exclude,
            prepare=False,
        )
        for act, per_channel in candidates
    }
    contenders = {"float": Contender(base, feeds, config)}
    contenders.update(
        {f"{act}/{pc}": Contender(q, feeds, config) for (act, pc), q in models.items()}
    )
    measured_all = measure_models(contenders, iters=iters, rounds=rounds, return_outputs=True)
    reference = measured_all["float"].outputs
    float_ms = measured_all["float"].times.latency_ms
    measured: list[tuple[QuantizeCandidate, onnx.ModelProto]] = []
    for (act, per_channel), q in models.items():
        m = measured_all[f"{act}/{per_channel}"]
        agreement = compare_outputs(reference, m.outputs)
        cand = QuantizeCandidate(
            activation_type=act,
            per_channel=per_channel,
            latency_ms=m.times.latency_ms,
            agreement=agreement,
            meets_target=agreement.cosine >= min_cosine,
        )
        measured.append((cand, q))
    good = [m for m in measured if m[0].meets_target]
    if good:
        best, best_model = min(good, key=lambda m: m[0].latency_ms)
    else:
        # None reaches the target: the most accurate, where "most accurate" is a tie within
        # COSINE_TIE (a 2e-4 cosine gain is no reason to take s8 activations at 1.7x the
        # latency, measured on a trained EfficientNet-Lite0), and the fastest of the tie.
        top = max(m[0].agreement.cosine for m in measured)
        tied = [m for m in measured if m[0].agreement.cosine >= top - COSINE_TIE]
        best, best_model = min(tied, key=lambda m: m[0].latency_ms)
    speedup = float_ms / best.latency_ms if best.latency_ms > 0 else float("nan")
    if good:
        why = (
            f"chose {best.label}: the fastest of {len(good)} candidate(s) with cosine >= "
            f"{min_cosine} ({best.agreement.cosine:.4f}); {best.latency_ms:.3f} ms vs float "
            f"{float_ms:.3f} ms ({speedup:.2f}x)."
        )
    else:
        why = (
            f"no candidate reached cosine {min_cosine}; chose the fastest of the most accurate "
            f"(within {COSINE_TIE:g} of the best cosine), {best.label} (cosine "
            f"{best.agreement.cosine:.4f}). Keep the most sensitive layers in float "
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
    prepare: bool = True,
) -> list[LayerSensitivity]:
    """Quantize one Conv/MatMul/Gemm node at a time and measure the error each adds.

    Args:
        prepare: :func:`~nnperf.optimize.prepare` the model first (default on, as
            :func:`~nnperf.optimize.quantize` does); node names are the prepared graph's.

    Returns:
        One entry per node, worst (lowest cosine) first. Pass the first few names as
        ``quantize(..., nodes_to_exclude=...)`` to keep them in float.
    """
    proto = _prepare_model(model) if prepare else as_proto(model)
    reference = run_outputs(proto, feeds)
    result = []
    targets = [n for n in proto.graph.node if n.op_type in _QUANTIZABLE]
    for i, node in enumerate(targets):
        if progress is not None:
            progress(Progress(i, len(targets), what=f"{node.op_type} {node.name}"))
        if not node.name:
            continue
        q = quantize(
            proto,
            ranges,
            per_channel=per_channel,
            activation_type=activation_type,
            nodes_to_quantize=[node.name],
            prepare=False,
        )
        agreement = compare_outputs(reference, run_outputs(q, feeds))
        result.append(
            LayerSensitivity(
                node=node.name,
                op_type=node.op_type,
                max_abs_err=agreement.max_abs_err,
                cosine=agreement.cosine,
            )
        )
    if progress is not None:
        progress(Progress(len(targets), len(targets), what="done"))
    return sorted(result, key=lambda s: s.cosine)
