"""The noise-aware decision among finalists: a winner must beat the runner-up by more than the
measured noise, else the simplest configuration within noise wins. Pure: no model is run here."""

from __future__ import annotations

import math
from collections.abc import Sequence

from nnperf.errors import InvalidInputError, UnsupportedError
from nnperf.tune.objective import Objective
from nnperf.tune.results import CandidateResult, median, noise

__all__ = ["decide"]


def decide(
    finalists: Sequence[CandidateResult], objective: Objective, *, min_noise: float = 0.02
) -> tuple[CandidateResult, CandidateResult | None, float, float, str]:
    """Pick the winner among measured finalists, noise-aware.

    The best median wins outright only if it beats the runner-up by more than the noise (the larger
    robust spread of their side-by-side repeat ratios, at least ``min_noise``). Otherwise every finalist within
    noise of the best is a tie and the simplest of them (fewest knobs off their defaults) wins.

    Returns:
        ``(winner, runner_up, ratio, noise, reason)``; ``ratio`` is the best median over the
        runner-up's in "times better".

    Raises:
        UnsupportedError: no finalist has a measurement because every one failed (their
            errors are quoted).
        InvalidInputError: no finalist has a measurement (the time budget ran out).
    """
    measured = [c for c in finalists if c.ranked and not math.isnan(c.median)]
    if not measured:
        errors: dict[str, list[str]] = {}
        for c in finalists:
            if c.error:
                errors.setdefault(c.error, []).append(c.label)
        if errors:
            # Every candidate failed (no CUDA provider, a model the engine rejects...): an
            # environment failure, with what the candidates said.
            said = "; ".join(
                f"{', '.join(labels[:3])}{' ...' if len(labels) > 3 else ''}: {error}"
                for error, labels in list(errors.items())[:3]
            )
            raise UnsupportedError(
                f"no candidate could be measured: every one failed or was rejected ({said})"
            )
        raise InvalidInputError(
            "no candidate could be measured within the time budget; expected at least one "
            "successful run: raise --time-budget-s"
        )
    sign = -1.0 if objective.higher_is_better else 1.0
    order = sorted(measured, key=lambda c: (sign * c.median, c.candidate.complexity))
    best = order[0]
    unit = objective.unit
    if len(order) == 1:
        return best, None, math.inf, best.noise, "the only candidate measured"
    runner = order[1]
    ratio, noise = _compare(best, runner, objective, min_noise)
    if ratio - 1.0 > noise:
        reason = (
            f"{best.label} ({best.median:,.4g} {unit}) beats the runner-up {runner.label} "
            f"({runner.median:,.4g} {unit}) by {ratio:.3f}x, more than the measured noise "
            f"(±{100 * noise:.1f} %)"
        )
        return best, runner, ratio, noise, reason
    ties = [best]
    for c in order[1:]:
        r_c, n_c = _compare(best, c, objective, min_noise)
        if r_c - 1.0 <= n_c:
            ties.append(c)
    simplest = min(ties, key=lambda c: (c.candidate.complexity, sign * c.median))
    if simplest is best:
        reason = (
            f"{best.label} ({best.median:,.4g} {unit}) is within noise (±{100 * noise:.1f} %) of "
            f"{runner.label} ({ratio:.3f}x) and is the simplest of the tied configurations"
        )
        return best, runner, ratio, noise, reason
    r, n = _compare(best, simplest, objective, min_noise)
    reason = (
        f"the best median, {best.label} ({best.median:,.4g} {unit}), measured {r:.3f}x "
        f"{simplest.label} ({simplest.median:,.4g} {unit}) side by side, within the measured "
        f"noise (±{100 * n:.1f} %); the simpler configuration wins"
    )
    return simplest, best, 1.0 / r if r > 0 else 0.0, n, reason


def _paired(c: CandidateResult, phase: str) -> list[float]:
    return [m.value for m in c.measurements if m.phase == phase]


def _compare(
    best: CandidateResult, other: CandidateResult, objective: Objective, min_noise: float
) -> tuple[float, float]:
    """How many times better ``best`` is than ``other``, and the relative noise of that ratio.

    When both were measured in the same interleaved round (A B A B...), the ratio is the median
    of the per-repeat ratios and the noise their robust spread: runs taken side by side share the
    machine's load at that moment, so a neighbour's burst cancels out. Otherwise: the ratio of
    medians, and the larger of the two candidates' noise.
    """
    phase = best.ranked[-1].phase if best.ranked else ""
    a, b = _paired(best, phase), _paired(other, phase)
    n = min(len(a), len(b))
    if phase.startswith("round") and n >= 2:
        ratios = [objective.ratio(x, y) for x, y in zip(a[:n], b[:n])]
        return median(ratios), max(noise(ratios), min_noise)
    ratio = objective.ratio(best.median, other.median)
    return ratio, max(best.noise, other.noise, min_noise)
