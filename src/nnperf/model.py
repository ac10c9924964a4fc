"""Model sources: paths, bytes, ``onnx.ModelProto`` and ``zoo:NAME`` references, loaded once."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from nnperf.errors import InvalidInputError, ModelLoadError
from nnperf.types import Dim, TensorDesc

if TYPE_CHECKING:
    import onnx

__all__ = [
    "GraphIO",
    "ModelBlob",
    "ModelSource",
    "graph_io",
    "inline_external_data",
    "load_model",
    "load_proto",
]

ModelSource = Union[str, "os.PathLike[str]", bytes, "onnx.ModelProto", "ModelBlob"]
"""Anything nnperf accepts as a model."""


@dataclass(frozen=True)
class ModelBlob:
    """A model's serialized bytes with where they came from.

    Attributes:
        data: the serialized ONNX model.
        name: a short name (file stem or zoo name).
        path: the file path, or ``None`` for in-memory models.
        sha256: hex digest of ``data`` (the tuning-cache key).
    """

    data: bytes
    name: str
    path: str | None
    sha256: str

    def __repr__(self) -> str:
        return f"ModelBlob(name={self.name!r}, path={self.path!r}, bytes={len(self.data)})"


def _blob(data: bytes, name: str, path: str | None) -> ModelBlob:
    return ModelBlob(data=data, name=name, path=path, sha256=hashlib.sha256(data).hexdigest())


def load_model(model: ModelSource) -> ModelBlob:
    """Read a model from any accepted source.

    Args:
        model: a path to an ``.onnx`` file, ``zoo:NAME``, serialized bytes, an ``onnx.ModelProto`` or
            an already loaded :class:`ModelBlob`.

    Raises:
        ModelLoadError: the file is missing, unreadable, or not an ONNX model.
        NotFoundError: an unknown ``zoo:`` name.
        InvalidInputError: an object of another type.
    """
    if isinstance(model, ModelBlob):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        _check_onnx_bytes(data, "<bytes>")
        return _blob(data, "model", None)
    if isinstance(model, str) and model.startswith("zoo:"):
        from nnperf import zoo

        name = zoo.resolve(model)
        return _blob(zoo.model_bytes(name), name, None)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise ModelLoadError(
                f"model file {str(path)!r} does not exist; expected a path to an .onnx file or "
                "'zoo:NAME' (list them with 'nnperf zoo')"
            )
        if path.is_dir():
            raise ModelLoadError(f"model path {str(path)!r} is a directory; expected an .onnx file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read model file {str(path)!r}: {exc}") from exc
        _check_onnx_bytes(data, str(path))
        return _blob(data, path.stem, str(path))
    serialize = getattr(model, "SerializeToString", None)
    if callable(serialize) and type(model).__name__ == "ModelProto":
        data = serialize()
        if not isinstance(data, bytes):
            raise ModelLoadError("ModelProto.SerializeToString() did not return bytes")
        graph_name = getattr(getattr(model, "graph", None), "name", "") or "model"
        return _blob(data, str(graph_name), None)
    raise InvalidInputError(
        f"model: got {type(model).__name__}, expected a path, 'zoo:NAME', bytes or onnx.ModelProto"
    )


def _check_onnx_bytes(data: bytes, where: str) -> None:
    """Reject files that are plainly not ONNX before the engine gives a cryptic error."""
    import onnx
    from google.protobuf.message import DecodeError

    if not data:
        raise ModelLoadError(
            f"model {where!r} is empty (0 bytes); expected a serialized ONNX model"
        )
    try:
        proto = onnx.ModelProto.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"model {where!r} is not a valid ONNX file ({len(data)} bytes, protobuf parse failed: "
            f"{exc}); expected a serialized onnx.ModelProto — is the file truncated or of another "
            "format?"
        ) from None
    if not proto.HasField("graph") or not proto.opset_import:
        raise ModelLoadError(
            f"model {where!r} parsed but has no graph or opset ({len(data)} bytes); expected an "
            "ONNX model — is the file truncated or of another format?"
        )


@dataclass(frozen=True)
class GraphIO:
    """A model's graph inputs and outputs as its file declares them (before any engine runs it).

    Attributes:
        inputs: graph inputs that are not initializers; symbolic dims by name, unknown as None.
        outputs: graph outputs.
    """

    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]


_IO: dict[str, GraphIO] = {}
_IO_LOCK = threading.Lock()


def graph_io(model: ModelBlob) -> GraphIO:
    """The declared inputs and outputs of ``model`` (parsed once per model, by sha256)."""
    found = _IO.get(model.sha256)
    if found is not None:
        return found
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    proto = onnx.ModelProto.FromString(model.data)
    inits = {i.name for i in proto.graph.initializer}

    def descs(values: object) -> tuple[TensorDesc, ...]:
        out = []
        for vi in values:  # type: ignore[attr-defined]
            if vi.name in inits:
                continue
            tt = vi.type.tensor_type
            # Some exporters (Paddle2ONNX) store a dynamic dim as dim_value -1: unknown.
            shape: tuple[Dim, ...] = tuple(
                (d.dim_value if d.dim_value >= 0 else None)
                if d.HasField("dim_value")
                else (d.dim_param or None)
                for d in tt.shape.dim
            )
            try:
                dtype = str(tensor_dtype_to_np_dtype(tt.elem_type))
            except (KeyError, ValueError, TypeError):
                dtype = "object"
            if tt.elem_type == onnx.TensorProto.BFLOAT16:
                dtype = "bfloat16"
            out.append(TensorDesc(name=vi.name, shape=shape, dtype=dtype))
        return tuple(out)

    found = GraphIO(inputs=descs(proto.graph.input), outputs=descs(proto.graph.output))
    with _IO_LOCK:
        _IO[model.sha256] = found
        while len(_IO) > 64:  # small results; forget the oldest
            del _IO[next(iter(_IO))]
    return found


def load_proto(model: ModelSource) -> onnx.ModelProto:
    """``model`` as an ``onnx.ModelProto`` with every tensor in memory: tensors a file keeps as
    external data (models over 2 GB, many exporters' output) are read from beside it.

    Raises:
        ModelLoadError: the model cannot be read, or its external data is missing.
    """
    import onnx

    proto: onnx.ModelProto = onnx.ModelProto()
    if type(model).__name__ == "ModelProto":
        proto.CopyFrom(model)
        return proto
    blob = load_model(model)
    proto.ParseFromString(blob.data)
    if blob.path is not None and _has_external_data(proto):
        _read_external_data(proto, blob.path)
    return proto


def inline_external_data(model: ModelBlob) -> ModelSource:
    """``model`` itself, or, when its file keeps tensors as external data, an in-memory
    ``ModelProto`` holding them: for code that rebuilds models from bytes (pipeline stages), where
    nothing beside the file can be found."""
    import onnx

    if model.path is None:
        return model
    proto: onnx.ModelProto = onnx.ModelProto()
    proto.ParseFromString(model.data)
    if not _has_external_data(proto):
        return model
    _read_external_data(proto, model.path)
    return proto


def _has_external_data(proto: onnx.ModelProto) -> bool:
    import onnx

    external = onnx.TensorProto.EXTERNAL
    if any(t.data_location == external for t in proto.graph.initializer):
        return True
    return any(
        a.t.data_location == external
        for n in proto.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.HasField("t")
    )


def _read_external_data(proto: onnx.ModelProto, path: str) -> None:
    from onnx.external_data_helper import load_external_data_for_model

    folder = os.path.dirname(os.path.abspath(path))
    try:
        load_external_data_for_model(proto, folder)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model {path!r} keeps tensors in external data files that cannot be read from "
            f"{folder!r}: {exc}; expected them beside the .onnx file"
        ) from exc
