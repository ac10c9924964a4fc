"""``nnperf serve``: KServe v2 (Open Inference Protocol) serving over the nnperf runtime.

Layers: :mod:`.protocol` (wire format) and :mod:`.dataplane` (models, repository, inference;
transport-free and usable from Python) under :mod:`.http` (Starlette/uvicorn) and
:mod:`.raysvc` (Ray Serve). :mod:`.metrics` holds the Prometheus instruments.
"""

from __future__ import annotations

from nnperf.serve.dataplane import DataPlane, ModelRepository, ModelSettings, ServedModel
from nnperf.serve.protocol import InferenceRequest, InferenceResponse, Tensor

__all__ = [
    "DataPlane",
    "InferenceRequest",
    "InferenceResponse",
    "ModelRepository",
    "ModelSettings",
    "ServedModel",
    "Tensor",
]
