"""Numerical agreement between two models' outputs: max abs error, cosine similarity, top-1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError, NnperfError
from nnperf.model import ModelSource
from nnperf.optimize.config import run_config

__all__ = [
    "Agreement",
    "EquivalenceError",
    "OutputAccuracy",
    "assert_equivalent",
    "compare_models",
    "compare_outputs",
    "run_outputs",
    "label_accuracy",
    "output_accuracy",
]


class EquivalenceError(NnperfError, AssertionError):
    """Two models disagree beyond the given tolerance."""


@dataclass(frozen=True)
class Agreement:
    """How closely two sets of outputs agree.

    Attributes:
        max_abs_err: largest absolute difference over every output element.
        cosine: the smallest cosine similarity over outputs (each output flattened); 1.0 is identical.
        top1_agreement: fraction of rows whose arg-max matches, for outputs of shape
            ``(batch, classes)`` with more than one class; ``None`` for other outputs.
        outputs: how many outputs were compared.
    """

    max_abs_err: float
    cosine: float
    top1_agreement: float | None
    outputs: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "max_abs_err": self.max_abs_err,
            "cosine": self.cosine,
            "top1_agreement": self.top1_agreement,
            "outputs": self.outputs,
        }

    def __str__(self) -> str:
        top1 = "-" if self.top1_agreement is None else f"{self.top1_agreement:.3f}"
        return f"max_abs_err={self.max_abs_err:.4g} cosine={self.cosine:.6f} top1={top1}"


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def compare_outputs(
    reference: Sequence[np.ndarray] | Sequence[Sequence[np.ndarray]],
    candidate: Sequence[np.ndarray] | Sequence[Sequence[np.ndarray]],
) -> Agreement:
    """Compare outputs output by output (dequantised or cast to float64 first).

    Args:
        reference: the reference model's outputs, or a list of such lists (one per query).
        candidate: the candidate's outputs, same structure.

    Raises:
        InvalidInputError: different output counts or shapes.
    """
    ref = _flatten_queries(reference)
    cand = _flatten_queries(candidate)
    if len(ref) != len(cand):
        raise InvalidInputError(
            f"compare_outputs: got {len(cand)} candidate outputs, expected {len(ref)} (same as "
            "the reference)"
        )
    max_err = 0.0
    cos = 1.0
    top1_hits = 0
    top1_rows = 0
    for r, c in zip(ref, cand):
        r64 = np.asarray(r, dtype=np.float64)
        c64 = np.asarray(c, dtype=np.float64)
        if r64.shape != c64.shape:
            raise InvalidInputError(
                f"compare_outputs: candidate output shape {c64.shape}, expected {r64.shape}"
            )
        if r64.size:
            max_err = max(max_err, float(np.max(np.abs(r64 - c64))))
        cos = min(cos, _cosine(r64.ravel(), c64.ravel()))
        if r64.ndim == 2 and r64.shape[1] > 1:
            top1_hits += int(np.sum(np.argmax(r64, axis=1) == np.argmax(c64, axis=1)))
            top1_rows += r64.shape[0]
    top1 = top1_hits / top1_rows if top1_rows else None
    return Agreement(max_abs_err=max_err, cosine=cos, top1_agreement=top1, outputs=len(ref))


def _flatten_queries(outs: Sequence[Any]) -> list[np.ndarray]:
    if outs and isinstance(outs[0], (list, tuple)):
        # one list per query: concatenate each output over queries along axis 0
        n = len(outs[0])
        return [np.concatenate([np.atleast_1d(q[i]) for q in outs], axis=0) for i in range(n)]
    return [np.asarray(o) for o in outs]


def compare_models(
    reference: ModelSource,
    candidate: ModelSource,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    candidate_feeds: Sequence[Mapping[str, np.ndarray]] | None = None,
    config: RunConfig | None = None,
) -> Agreement:
    """Run both models on the real engine and compare their outputs.

    Args:
        reference: the original model.
        candidate: the edited model.
        feeds: queries for the reference (dicts by input name).
        candidate_feeds: queries for the candidate when its inputs differ (uint8 pixels, NHWC...);
            default: the same feeds.
        config: run configuration for both (default: ``RunConfig(device="cpu(1)")``).
    """
    cand_feeds = candidate_feeds if candidate_feeds is not None else feeds
    if len(cand_feeds) != len(feeds):
        raise InvalidInputError(
            f"candidate_feeds: got {len(cand_feeds)} queries, expected {len(feeds)}"
        )
    return compare_outputs(
        run_outputs(reference, feeds, config=config),
        run_outputs(candidate, cand_feeds, config=config),
    )


def run_outputs(
    model: ModelSource,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    config: RunConfig | None = None,
) -> list[list[np.ndarray]]:
    """The outputs of ``model`` on each feed, on the real engine (untimed).

    Args:
        config: run configuration (default: ``RunConfig(device="cpu(1)")``).
    """
    from nnperf.runtime import Session

    with Session(model, config=run_config(config)) as sess:
        return [sess.run(dict(f)) for f in feeds]


def assert_equivalent(
    reference: ModelSource,
    candidate: ModelSource,
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    candidate_feeds: Sequence[Mapping[str, np.ndarray]] | None = None,
    atol: float = 1e-4,
    min_cosine: float = 0.9999,
    config: RunConfig | None = None,
) -> Agreement:
    """Check that ``candidate`` computes what ``reference`` computes, within tolerance.

    Args:
        atol: largest allowed absolute difference (default 1e-4).
        min_cosine: smallest allowed cosine similarity (default 0.9999).

    Returns:
        The measured :class:`Agreement`.

    Raises:
        EquivalenceError: either tolerance is exceeded (the message gives both figures).
    """
    agreement = compare_models(
        reference, candidate, feeds, candidate_feeds=candidate_feeds, config=config
    )
    if agreement.max_abs_err > atol or agreement.cosine < min_cosine:
        raise EquivalenceError(
            f"models differ: {agreement}; expected max_abs_err <= {atol:g} and cosine >= "
            f"{min_cosine:g}"
        )
    return agreement


# -- per-output accuracy on real data (nnperf compare-models) ---------------------------------


@dataclass(frozen=True)
class OutputAccuracy:
    """How one output of a candidate model agrees with the reference over every query.

    Attributes:
        name: the output's name.
        max_abs_err / mean_abs_err: absolute error over every element.
        max_rel_err / mean_rel_err: ``|cand - ref| / max(|ref|, tiny)`` over every element.
        cosine: cosine similarity of the flattened outputs (all queries).
        violations: elements outside ``atol + rtol * |ref|`` (``numpy.isclose``'s rule).
        elements: elements compared.
        top1_agreement: fraction of rows whose arg-max matches (``(batch, classes)`` outputs).
        topk_agreement: fraction of rows whose reference top-1 is in the candidate's top-k.
        top_k: the k of ``topk_agreement``.
        atol / rtol: the tolerance checked.
    """

    name: str
    max_abs_err: float
    mean_abs_err: float
    max_rel_err: float
    mean_rel_err: float
    cosine: float
    violations: int
    elements: int
    top1_agreement: float | None
    topk_agreement: float | None
    top_k: int
    atol: float
    rtol: float

    @property
    def passed(self) -> bool:
        """Whether every element is within ``atol + rtol * |ref|``."""
        return self.violations == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "max_abs_err": self.max_abs_err,
            "mean_abs_err": self.mean_abs_err,
            "max_rel_err": self.max_rel_err,
            "mean_rel_err": self.mean_rel_err,
            "cosine": self.cosine,
            "violations": self.violations,
            "elements": self.elements,
            "top1_agreement": self.top1_agreement,
            "topk_agreement": self.topk_agreement,
            "top_k": self.top_k,
            "atol": self.atol,
            "rtol": self.rtol,
            "passed": self.passed,
        }


def _topk_hits(ref: np.ndarray, cand: np.ndarray, k: int) -> tuple[int, int]:
    """(rows whose reference arg-max is in the candidate's top-k, rows)."""
    k = min(k, ref.shape[1])
    top = np.argpartition(-cand, k - 1, axis=1)[:, :k]
    best = np.argmax(ref, axis=1)
    return int(np.sum(np.any(top == best[:, None], axis=1))), ref.shape[0]


def output_accuracy(
    names: Sequence[str],
    reference: Sequence[Sequence[np.ndarray]],
    candidate: Sequence[Sequence[np.ndarray]],
    *,
    atol: float = 1e-3,
    rtol: float = 1e-2,
    top_k: int = 5,
) -> list[OutputAccuracy]:
    """Per-output errors of ``candidate`` against ``reference`` (one list of outputs per query).

    Raises:
        InvalidInputError: query or output counts or shapes differ, or bad tolerances.
    """
    if atol < 0 or rtol < 0 or top_k < 1:
        raise InvalidInputError(
            f"atol={atol}, rtol={rtol}, top_k={top_k}: expected atol, rtol >= 0 and top_k >= 1"
        )
    if len(reference) != len(candidate):
        raise InvalidInputError(
            f"output_accuracy: got {len(candidate)} candidate queries, expected {len(reference)}"
        )
    ref = _flatten_queries(list(reference))
    cand = _flatten_queries(list(candidate))
    if len(ref) != len(cand) or len(ref) != len(names):
        raise InvalidInputError(
            f"output_accuracy: {len(names)} names, {len(ref)} reference and {len(cand)} "
            "candidate outputs; expected the same count"
        )
    out: list[OutputAccuracy] = []
    for name, r, c in zip(names, ref, cand):
        r64 = np.asarray(r, dtype=np.float64)
        c64 = np.asarray(c, dtype=np.float64)
        if r64.shape != c64.shape:
            raise InvalidInputError(
                f"output {name!r}: candidate shape {c64.shape}, expected {r64.shape}"
            )
        diff = np.abs(c64 - r64)
        rel = diff / np.maximum(np.abs(r64), np.finfo(np.float64).tiny)
        top1 = topk = None
        if r64.ndim == 2 and r64.shape[1] > 1:
            top1 = float(np.mean(np.argmax(r64, axis=1) == np.argmax(c64, axis=1)))
            hits, rows = _topk_hits(r64, c64, top_k)
            topk = hits / rows
        out.append(
            OutputAccuracy(
                name=name,
                max_abs_err=float(diff.max()) if diff.size else 0.0,
                mean_abs_err=float(diff.mean()) if diff.size else 0.0,
                max_rel_err=float(rel.max()) if rel.size else 0.0,
                mean_rel_err=float(rel.mean()) if rel.size else 0.0,
                cosine=_cosine(r64.ravel(), c64.ravel()),
                violations=int(np.sum(diff > atol + rtol * np.abs(r64))),
                elements=int(r64.size),
                top1_agreement=top1,
                topk_agreement=topk,
                top_k=top_k,
                atol=atol,
                rtol=rtol,
            )
        )
    return out


def label_accuracy(
    outputs: Sequence[Sequence[np.ndarray]], labels: np.ndarray, *, output: int = 0, top_k: int = 5
) -> tuple[float, float]:
    """(top-1, top-k) accuracy of one ``(batch, classes)`` output against integer labels (one
    per row, rows of all queries in order).

    Raises:
        InvalidInputError: the output is not ``(batch, classes)`` or the label count differs.
    """
    scores = _flatten_queries(list(outputs))[output]
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise InvalidInputError(
            f"accuracy needs a (batch, classes) output; output {output} has shape {scores.shape}"
        )
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if labels.size != scores.shape[0]:
        raise InvalidInputError(
            f"labels: got {labels.size}, expected one per row ({scores.shape[0]})"
        )
    top1 = float(np.mean(np.argmax(scores, axis=1) == labels))
    k = min(top_k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    topk = float(np.mean(np.any(top == labels[:, None], axis=1)))
    return top1, topk
