"""Split batching (AWS Neuron dynamic batching): a user batch of any size on instances built for a
fixed batch.

:class:`SplitBatcher` cuts a user batch larger than the instances' batch size into chunks of that
size along dim 0, pads the tail chunk (repeating its last row), runs the chunks concurrently on a
Runner's instances (or one after another on a Session) and concatenates the outputs: the result
equals one big run. The dim-0 helpers here are shared with merge batching
(:mod:`nnperf.runtime.batcher`): both need every input and output to carry the batch on dim 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnperf.errors import InvalidInputError
from nnperf.runtime.feeds import FeedValidator, Inputs
from nnperf.runtime.runner import Runner
from nnperf.runtime.session import Session
from nnperf.types import TensorDesc

__all__ = ["SplitBatcher", "run_split"]


def fixed_batch(inputs: Sequence[TensorDesc]) -> int | None:
    """The instances' fixed batch size (leading dim of the inputs), or ``None`` if free."""
    dims = {d.shape[0] for d in inputs if d.shape}
    fixed = [d for d in dims if isinstance(d, int)]
    return fixed[0] if len(fixed) == 1 and len(dims) == 1 else None


def row_validator(inputs: Sequence[TensorDesc]) -> FeedValidator:
    """A validator that accepts any number of rows on dim 0 of every input (shared by all)."""
    for d in inputs:
        if not d.shape:
            raise InvalidInputError(
                f"input {d.name!r} is a scalar; batching needs a batch dimension (dim 0) on "
                "every input"
            )
    # One symbol for dim 0 of every input, so their row counts must agree; named as the model
    # names it (error messages show it), else "batch".
    rows = next((d.shape[0] for d in inputs if isinstance(d.shape[0], str)), "batch")
    return FeedValidator(
        [TensorDesc(d.name, (rows, *d.shape[1:]), d.dtype, d.layout) for d in inputs]
    )


def check_outputs(outputs: Sequence[TensorDesc]) -> None:
    for d in outputs:
        if not d.shape:
            raise InvalidInputError(
                f"output {d.name!r} is a scalar; batching needs a batch dimension (dim 0) on "
                "every output"
            )


def pad_rows(arr: np.ndarray, rows: int) -> np.ndarray:
    """``arr`` grown to ``rows`` rows by repeating its last row."""
    missing = rows - arr.shape[0]
    if missing <= 0:
        return arr
    return np.concatenate([arr, np.repeat(arr[-1:], missing, axis=0)])


def rows_of(feeds: dict[str, np.ndarray]) -> int:
    return int(next(iter(feeds.values())).shape[0])


class SplitBatcher:
    """Runs a user batch of any size on instances built for a fixed batch (Neuron dynamic batching).

    Example::

        runner = nnperf.create_runner(model, device="cpu(1)*2", batch_size=4)
        outputs = SplitBatcher(runner).run(x)   # x: 10 rows -> chunks 4 + 4 + 2 (padded to 4)

    On a :class:`Runner` the chunks run concurrently over its instances; on a :class:`Session`
    they run one after another on the calling thread.
    """

    def __init__(self, target: Runner | Session, *, chunk_size: int | None = None) -> None:
        """Wrap ``target`` (not owned: closing it stays the caller's job).

        Args:
            target: the Runner (concurrent chunks) or Session (sequential chunks) to run on.
            chunk_size: rows per chunk; default the instances' fixed batch size (``batch_size=``
                or a static leading dim).

        Raises:
            InvalidInputError: no chunk size given or fixed, or a model without a batch dim.
        """
        self.target = target
        fixed = fixed_batch(target.inputs)
        if chunk_size is None:
            chunk_size = fixed
        if chunk_size is None or isinstance(chunk_size, bool) or chunk_size < 1:
            raise InvalidInputError(
                f"chunk_size: got {chunk_size!r}, expected a positive integer; pass chunk_size= "
                "or fix the model's batch with batch_size="
            )
        if fixed is not None and chunk_size != fixed:
            raise InvalidInputError(
                f"chunk_size={chunk_size}: the instances run batches of exactly {fixed} rows; "
                f"expected chunk_size={fixed} (or omit it)"
            )
        self.chunk_size = chunk_size
        self._pad = fixed is not None
        self._validator = row_validator(target.inputs)
        check_outputs(target.outputs)

    def run(self, inputs: Inputs) -> list[np.ndarray]:
        """Run a batch of any number of rows; the outputs equal one run of the whole batch.

        Raises:
            InvalidInputError: a bad feed or an empty batch.
            EngineError: a chunk failed.
        """
        feeds = self._validator.normalise(inputs)
        rows = rows_of(feeds)
        if rows == 0:
            raise InvalidInputError("inputs have 0 rows on dim 0; expected at least one row")
        size = self.chunk_size
        chunks: list[dict[str, np.ndarray]] = []
        for start in range(0, rows, size):
            chunk = {k: v[start : start + size] for k, v in feeds.items()}
            if self._pad and rows - start < size:
                chunk = {k: pad_rows(v, size) for k, v in chunk.items()}
            chunks.append(chunk)
        target = self.target
        if isinstance(target, Runner):
            futures = [target.submit(c) for c in chunks]
            try:
                parts = [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        else:
            parts = [target.run(c) for c in chunks]
        if len(parts) == 1:
            return [o[:rows] for o in parts[0]]
        return [np.concatenate([p[i] for p in parts])[:rows] for i in range(len(parts[0]))]


def run_split(
    target: Runner | Session, inputs: Inputs, *, chunk_size: int | None = None
) -> list[np.ndarray]:
    """One-shot :meth:`SplitBatcher.run` (see :class:`SplitBatcher`)."""
    return SplitBatcher(target, chunk_size=chunk_size).run(inputs)
