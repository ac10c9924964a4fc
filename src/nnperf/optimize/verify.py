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
    "assert_equivalent",
    "compare_models",
    "compare_outputs",
    "run_outputs",
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
