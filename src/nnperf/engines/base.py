"""The engine protocol every runtime adapter implements.

An :class:`Engine` turns a model and a :class:`~nnperf.types.RunConfig` into
:class:`EngineInstance` objects, one per device instance. Instances run already validated feeds;
validation, batching and timing live above, in :mod:`nnperf.runtime`. ``tests/test_engine_contract.py``
is the suite any engine must pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from nnperf.device import InstanceSpec
from nnperf.errors import InvalidInputError
from nnperf.model import ModelBlob
from nnperf.types import RunConfig, TensorDesc

__all__ = ["Engine", "EngineInstance", "NodePlacement", "get_engine"]


@dataclass(frozen=True)
class NodePlacement:
    """One node of the engine-optimised graph and the provider that runs it."""

    node: str
    op_type: str
    provider: str


@runtime_checkable
class EngineInstance(Protocol):
    """One loaded copy of a model on one device instance.

    ``run`` may be called from several threads at once; implementations make that safe.
    """

    @property
    def inputs(self) -> tuple[TensorDesc, ...]:
        """Model inputs (after any batch-size override)."""
        ...

    @property
    def outputs(self) -> tuple[TensorDesc, ...]:
        """Model outputs."""
        ...

    @property
    def providers(self) -> tuple[str, ...]:
        """Execution providers in use, in priority order."""
        ...

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run on validated feeds; return every output in :attr:`outputs` order."""
        ...

    def run_outputs(
        self, names: Sequence[str], feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        """Run and return only the named outputs, in the order given."""
        ...

    def placement(self) -> list[NodePlacement]:
        """Where each node of the engine-optimised graph runs."""
        ...

    def close(self) -> None:
        """Release the instance; further runs are errors."""
        ...


class Engine(Protocol):
    """A runtime that can load models."""

    name: str

    @property
    def version(self) -> str:
        """The runtime's version string."""
        ...

    def available_providers(self) -> tuple[str, ...]:
        """Providers this installation can use."""
        ...

    def load(
        self,
        model: ModelBlob,
        config: RunConfig,
        instance: InstanceSpec,
        *,
        profile_prefix: str | None = None,
    ) -> EngineInstance:
        """Create one instance of ``model`` on ``instance`` configured by ``config``.

        Args:
            model: the model bytes.
            config: how to run (graph level, prepacking, providers...).
            instance: which device/cores/threads.
            profile_prefix: when set, the engine records per-operator events to files with this
                prefix (the profiler's operator mode).
        """
        ...


def get_engine(name: str = "onnxruntime") -> Engine:
    """Return the engine called ``name`` (only ``onnxruntime`` today).

    Raises:
        InvalidInputError: an unknown engine name.
    """
    if name == "onnxruntime":
        from nnperf.engines.onnxruntime import OrtEngine

        return OrtEngine()
    raise InvalidInputError(f"engine: got {name!r}, expected 'onnxruntime'")
