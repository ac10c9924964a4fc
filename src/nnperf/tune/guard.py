"""The accuracy guard: no candidate wins on speed alone.

Every candidate's outputs are compared with the reference — the tuned (base) model on onnxruntime's
CPU provider at f32 — on the same inputs. A candidate whose smallest cosine similarity over the
outputs is below ``min_cosine`` is reported and rejected, never chosen. Numbers depend on the
engine, its precision, the model variant and the engine's options, not on the device split or
worker count, so each distinct numeric setting is checked once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError
from nnperf.model import ModelBlob, graph_io
from nnperf.runtime.session import Session
from nnperf.tune.space import Candidate

__all__ = ["DEFAULT_MIN_COSINE", "AccuracyCheck", "AccuracyGuard", "guard_feeds"]

DEFAULT_MIN_COSINE = 0.99
_REFERENCE_KEY = "onnxruntime f32 base"


@dataclass(frozen=True)
class AccuracyCheck:
    """One numeric setting against the reference.

    Attributes:
        cosine: the smallest cosine similarity over outputs and inputs (1.0 is identical).
        max_abs_err: the largest absolute difference.
        passed: ``cosine >= min_cosine``.
        samples: how many inputs were compared.
    """

    cosine: float
    max_abs_err: float
    passed: bool
    samples: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "cosine": round(self.cosine, 6),
            "max_abs_err": float(f"{self.max_abs_err:.6g}"),
            "passed": self.passed,
            "samples": self.samples,
        }


class AccuracyGuard:
    """Checks candidates against the reference outputs of the base model.

    Args:
        models: the base model (``"base"``) and every variant, by variant name.
        feeds: the inputs to compare on (batch 1 each; held-out samples when calibrating).
        min_cosine: the least cosine similarity a candidate may have (default 0.99).
    """

    def __init__(
        self,
        models: Mapping[str, ModelBlob],
        feeds: Sequence[Mapping[str, np.ndarray]],
        *,
        min_cosine: float = DEFAULT_MIN_COSINE,
    ) -> None:
        if not 0.0 < min_cosine <= 1.0:
            raise InvalidInputError(
                f"min_cosine: got {min_cosine!r}, expected a number in (0, 1] (cosine similarity "
                "of a candidate's outputs to the f32 reference; 0.99 is the default)"
            )
        if not feeds:
            raise InvalidInputError("accuracy guard: got no inputs, expected at least one")
        self.models = models
        self.feeds = [dict(f) for f in feeds]
        self.min_cosine = min_cosine
        with Session(models["base"], config=RunConfig(device="cpu(1)")) as ref:
            self.reference = [ref.run(f) for f in self.feeds]
        self._checked: dict[str, AccuracyCheck] = {}

    @staticmethod
    def key(candidate: Candidate) -> str:
        """What decides a candidate's numbers: engine, precision, variant and engine options."""
        c = candidate.config
        return " ".join([c.engine, c.precision, candidate.variant, *c.engine_options.changes()])

    def check(self, candidate: Candidate) -> AccuracyCheck:
        """Compare ``candidate`` with the reference (once per numeric setting).

        Raises:
            nnperf.errors.NnperfError: the candidate cannot be loaded or run (the search records
                it as failed).
        """
        key = self.key(candidate)
        found = self._checked.get(key)
        if found is not None:
            return found
        if key == _REFERENCE_KEY:  # the reference itself
            found = AccuracyCheck(1.0, 0.0, True, len(self.feeds))
            self._checked[key] = found
            return found
        from nnperf.optimize.verify import compare_outputs

        cfg = candidate.config.replace(device="cpu(1)", workers=None, batch_size=None)
        with Session(self.models[candidate.variant], config=cfg) as sess:
            outs = [sess.run(f) for f in self.feeds]
        agreement = compare_outputs(self.reference, outs)
        found = AccuracyCheck(
            cosine=agreement.cosine,
            max_abs_err=agreement.max_abs_err,
            passed=agreement.cosine >= self.min_cosine,
            samples=len(self.feeds),
        )
        self._checked[key] = found
        return found

    def describe(self, check: AccuracyCheck) -> str:
        """Why a candidate was rejected, in one line."""
        return (
            f"rejected: cosine {check.cosine:.4f} to the f32 reference is below --min-cosine "
            f"{self.min_cosine:g} (max abs error {check.max_abs_err:.3g}, {check.samples} input(s))"
        )


def guard_feeds(
    model: ModelBlob,
    *,
    count: int = 4,
    seed: int = 0,
    dims: Mapping[str, int] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> list[dict[str, np.ndarray]]:
    """``count`` synthetic batch-1 inputs for the guard (different seeds), from the model's
    declared inputs at the sizes the search runs (``dims``/``shapes``: its base config's).

    Raises:
        InvalidInputError: a symbolic non-batch dimension without a size.
    """
    from nnperf.bench.inputs import make_feeds

    inputs = graph_io(model).inputs
    return [
        make_feeds(inputs, batch_size=1, seed=seed + i, dims=dims, shapes=shapes)
        for i in range(count)
    ]
