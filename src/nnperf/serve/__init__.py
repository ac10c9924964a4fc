"""``nnperf serve``: KServe v2 (Open Inference Protocol) serving over the nnperf runtime.

Layers: :mod:`nnperf.protocol` (wire format, shared with the load generator) and :mod:`.dataplane` (models, repository, inference;
transport-free and usable from Python) under :mod:`.http` (Starlette/uvicorn) and
:mod:`.raysvc` (Ray Serve). :mod:`.metrics` holds the Prometheus instruments.
"""

from __future__ import annotations

from nnperf.protocol import InferenceRequest, InferenceResponse, Tensor
from nnperf.serve.dataplane import DataPlane, ModelRepository, ModelSettings, ServedModel

__all__ = [
    "DataPlane",
    "InferenceRequest",
    "InferenceResponse",
    "ModelRepository",
    "ModelSettings",
    "ServedModel",
    "Tensor",
]
