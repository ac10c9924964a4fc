"""``nnperf serve``: KServe v2 (Open Inference Protocol) serving over the nnperf runtime.

Layers: :mod:`nnperf.protocol` (wire format, shared with the load generator);
:mod:`.settings` (how a model is served), :mod:`.repository` (a folder of models),
:mod:`.model` (one served model) and :mod:`.dataplane` (every model, health, inference;
transport-free and usable from Python) under :mod:`.http` (Starlette/uvicorn) and
:mod:`.raysvc` (Ray Serve). :mod:`.metrics` holds the Prometheus instruments.
"""

from __future__ import annotations

from nnperf.protocol import InferenceRequest, InferenceResponse, Tensor
from nnperf.serve.dataplane import DataPlane
from nnperf.serve.model import ServedModel
from nnperf.serve.repository import ModelRepository
from nnperf.serve.settings import ModelSettings

__all__ = [
    "DataPlane",
    "InferenceRequest",
    "InferenceResponse",
    "ModelRepository",
    "ModelSettings",
    "ServedModel",
    "Tensor",
]
