"""The Open Inference Protocol (KServe v2) wire format: request/response types and codecs.

Transport-free: these functions turn bytes into :class:`InferenceRequest` and
:class:`InferenceResponse` into bytes; the HTTP adapter (:mod:`nnperf.serve.http`) only moves them,
and the load generator (:mod:`nnperf.bench.remote`) encodes requests with them without loading the
server.

Two encodings of tensor data are supported, as Triton and ``tritonclient.http`` use them:

* JSON: ``{"name", "datatype", "shape", "data"}`` with ``data`` a flat (or nested, row-major)
  list of numbers, booleans or strings.
* The binary tensor data extension: the body is a JSON header of
  ``Inference-Header-Content-Length`` bytes followed by the raw tensors, concatenated in the order
  of the inputs whose ``parameters.binary_data_size`` gives their length. ``BYTES`` tensors are
  serialized as 4-byte little-endian lengths each followed by the bytes. Outputs are sent binary
  when the request asks with ``parameters.binary_data`` on the output or
  ``parameters.binary_data_output`` on the request.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnperf.errors import InvalidInputError, UnsupportedError

__all__ = [
    "HEADER_LENGTH",
    "DATATYPES",
    "InferenceRequest",
    "InferenceResponse",
    "RequestedOutput",
    "Tensor",
    "datatype_of",
    "decode_request",
    "dtype_of",
    "encode_request",
    "encode_response",
    "decode_response",
]

HEADER_LENGTH = "Inference-Header-Content-Length"
"""HTTP header giving the JSON part's length in bytes when binary tensor data follows."""

DATATYPES: dict[str, str] = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}
"""v2 datatype name -> numpy dtype name (``BF16`` has no numpy dtype and is refused)."""

# Keyed by numpy dtype: they hash fast, while ``dtype.name`` is a Python-level property (slow
# per request).
_V2_BY_DTYPE: dict[Any, str] = {np.dtype(v): k for k, v in DATATYPES.items()}


def dtype_of(datatype: str) -> np.dtype[Any]:
    """The numpy dtype of a v2 datatype name (``FP32`` -> ``float32``).

    Raises:
        InvalidInputError: an unknown name.
        UnsupportedError: ``BF16``, which numpy cannot hold.
    """
    name = DATATYPES.get(datatype)
    if name is None:
        if datatype == "BF16":
            raise UnsupportedError(
                "datatype 'BF16' is not supported by this server (numpy has no bfloat16); "
                "send FP32 and let the model cast"
            )
        raise InvalidInputError(
            f"datatype {datatype!r} is not a v2 datatype; expected one of {sorted(DATATYPES)}"
        )
    return np.dtype(name)


def datatype_of(dtype: str | np.dtype[Any]) -> str:
    """The v2 datatype name of a numpy dtype (``float32`` -> ``FP32``; strings -> ``BYTES``).

    Raises:
        UnsupportedError: a dtype with no v2 name (``bfloat16``, complex).
    """
    d = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
    name = _V2_BY_DTYPE.get(d)
    if name is None and d.kind in ("U", "S"):
        return "BYTES"
    if name is None:
        raise UnsupportedError(f"numpy dtype {d.name!r} has no KServe v2 datatype")
    return name


@dataclass(frozen=True)
class Tensor:
    """One named tensor of a request or response.

    Attributes:
        name: the model's input or output name.
        data: the array (its dtype and shape give the v2 ``datatype`` and ``shape``).
        parameters: the tensor's v2 ``parameters`` (``binary_data_size`` is removed once decoded).
    """

    name: str
    data: np.ndarray
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def datatype(self) -> str:
        """The v2 datatype name."""
        return datatype_of(self.data.dtype)

    @property
    def shape(self) -> list[int]:
        """The shape as a list."""
        return [int(d) for d in self.data.shape]


@dataclass(frozen=True)
class RequestedOutput:
    """An entry of the request's ``outputs`` list.

    Attributes:
        name: output name.
        binary: send this output with the binary tensor extension.
    """

    name: str
    binary: bool = False


@dataclass(frozen=True)
class InferenceRequest:
    """A decoded v2 inference request.

    Attributes:
        inputs: the input tensors, in request order.
        id: the request's ``id`` (echoed in the response), or ``None``.
        outputs: the outputs asked for; ``None``: every output.
        binary_output: request-level ``binary_data_output`` (every output binary by default).
        parameters: the request's other ``parameters``.
    """

    inputs: tuple[Tensor, ...]
    id: str | None = None
    outputs: tuple[RequestedOutput, ...] | None = None
    binary_output: bool = False
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def feeds(self) -> dict[str, np.ndarray]:
        """The inputs as ``{name: array}``.

        Raises:
            InvalidInputError: the same input name given twice.
        """
        out: dict[str, np.ndarray] = {}
        for t in self.inputs:
            if t.name in out:
                raise InvalidInputError(
                    f"input {t.name!r} appears more than once; expected each input once"
                )
            out[t.name] = t.data
        return out


@dataclass(frozen=True)
class InferenceResponse:
    """A v2 inference response.

    Attributes:
        model_name: the served model's name.
        model_version: its version.
        outputs: the output tensors.
        id: the request's ``id``.
        binary_outputs: names of the outputs to send with the binary extension.
    """

    model_name: str
    model_version: str
    outputs: tuple[Tensor, ...]
    id: str | None = None
    binary_outputs: frozenset[str] = frozenset()

    def as_dict(self) -> dict[str, np.ndarray]:
        """The outputs as ``{name: array}``."""
        return {t.name: t.data for t in self.outputs}


# -- decoding -------------------------------------------------------------------------------------
def _json_header(body: bytes, header_length: int | None) -> tuple[dict[str, Any], memoryview]:
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise InvalidInputError(
                f"{HEADER_LENGTH}: got {header_length}, but the body has {len(body)} bytes; "
                "expected the length of the JSON header, at most the body length"
            )
        head, rest = body[:header_length], memoryview(body)[header_length:]
    else:
        head, rest = body, memoryview(b"")
    try:
        obj = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"request body is not valid JSON ({exc}); expected a v2 inference request "
            '{"inputs": [{"name", "datatype", "shape", "data"}]}'
            + (f" in the first {header_length} bytes" if header_length is not None else "")
        ) from None
    if not isinstance(obj, dict):
        raise InvalidInputError(
            f"request body: got a JSON {type(obj).__name__}, expected an object with 'inputs'"
        )
    return obj, rest


def _shape_of(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in raw
    ):
        raise InvalidInputError(
            f"{where} 'shape': got {raw!r}, expected a list of non-negative integers"
        )
    return tuple(raw)


def _decode_bytes_tensor(buf: memoryview, count: int, where: str) -> np.ndarray:
    items: list[bytes] = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(buf):
            raise InvalidInputError(f"{where}: BYTES data ends early; expected {count} elements")
        (n,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if pos + n > len(buf):
            raise InvalidInputError(f"{where}: BYTES element of {n} bytes runs past the data")
        items.append(bytes(buf[pos : pos + n]))
        pos += n
    if pos != len(buf):
        raise InvalidInputError(
            f"{where}: {len(buf) - pos} bytes left after {count} BYTES elements"
        )
    arr = np.empty(count, dtype=object)
    arr[:] = items
    return arr


def _flatten_json(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        flat: list[Any] = []
        stack = [data]
        # Row-major flatten of nested lists without recursion limits.
        while stack:
            cur = stack.pop()
            if isinstance(cur, list):
                stack.extend(reversed(cur))
            else:
                flat.append(cur)
        return flat
    return data


def decode_request(body: bytes, *, header_length: int | None = None) -> InferenceRequest:
    """Parse a v2 inference request (JSON, or JSON header + binary tensor data).

    Args:
        body: the HTTP body.
        header_length: the ``Inference-Header-Content-Length`` value; ``None`` for pure JSON.

    Raises:
        InvalidInputError: bad JSON, missing fields, an element count that does not match the
            shape, truncated or surplus binary data.
        UnsupportedError: a datatype this server cannot hold (``BF16``).
    """
    obj, binary = _json_header(body, header_length)
    raw_inputs = obj.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInputError(
            "request: 'inputs' is missing or empty; expected a list of "
            '{"name", "datatype", "shape", "data"} objects'
        )
    pos = 0
    tensors: list[Tensor] = []
    for i, raw in enumerate(raw_inputs):
        if not isinstance(raw, dict):
            raise InvalidInputError(f"inputs[{i}]: got {type(raw).__name__}, expected an object")
        name = raw.get("name")
        if not isinstance(name, str):
            raise InvalidInputError(f"inputs[{i}] 'name': got {name!r}, expected a string")
        where = f"input {name!r}"
        datatype = raw.get("datatype")
        if not isinstance(datatype, str):
            raise InvalidInputError(f"{where} 'datatype': got {datatype!r}, expected e.g. 'FP32'")
        dtype = dtype_of(datatype)
        shape = _shape_of(raw.get("shape"), where)
        count = math.prod(shape)
        params = dict(raw.get("parameters") or {})
        size = params.pop("binary_data_size", None)
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInputError(
                    f"{where} 'binary_data_size': got {size!r}, expected a byte count"
                )
            if pos + size > len(binary):
                raise InvalidInputError(
                    f"{where}: binary data truncated: needs bytes {pos}..{pos + size} of the "
                    f"binary part but it has {len(binary)}; expected the body to hold every "
                    "tensor's binary_data_size bytes after the JSON header"
                )
            chunk = binary[pos : pos + size]
            pos += size
            if datatype == "BYTES":
                arr = _decode_bytes_tensor(chunk, count, where)
            else:
                expected = count * dtype.itemsize
                if size != expected:
                    raise InvalidInputError(
                        f"{where}: binary_data_size {size} does not match {datatype} "
                        f"{list(shape)} ({expected} bytes); expected shape and size to agree"
                    )
                # A read-only view of the body (kept alive by the array): no copy of what may
                # be megabytes of image, unless the JSON header left it misaligned for the dtype.
                arr = np.frombuffer(chunk, dtype=dtype)
                if arr.ctypes.data % dtype.alignment:
                    arr = arr.copy()
        else:
            if "data" not in raw:
                raise InvalidInputError(
                    f"{where}: no 'data' and no parameters.binary_data_size; expected one of them"
                )
            flat = _flatten_json(raw["data"])
            if len(flat) != count:
                raise InvalidInputError(
                    f"{where}: 'data' has {len(flat)} elements, shape {list(shape)} needs "
                    f"{count}; expected data of exactly the shape's size"
                )
            if datatype == "BYTES":
                arr = np.empty(count, dtype=object)
                arr[:] = [s.encode() if isinstance(s, str) else s for s in flat]
            else:
                try:
                    arr = np.asarray(flat, dtype=dtype)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise InvalidInputError(
                        f"{where}: 'data' does not convert to {datatype} ({exc}); expected "
                        f"{dtype.name} values"
                    ) from None
        tensors.append(Tensor(name=name, data=arr.reshape(shape), parameters=params))
    if pos != len(binary):
        raise InvalidInputError(
            f"the binary part has {len(binary)} bytes but the inputs' binary_data_size add up to "
            f"{pos}; expected them to match"
        )
    req_params = dict(obj.get("parameters") or {})
    binary_output = bool(req_params.pop("binary_data_output", False))
    outputs: tuple[RequestedOutput, ...] | None = None
    raw_outputs = obj.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise InvalidInputError(
                f"request 'outputs': got {type(raw_outputs).__name__}, expected a list"
            )
        outs = []
        for i, o in enumerate(raw_outputs):
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise InvalidInputError(f"outputs[{i}]: expected an object with a string 'name'")
            p = o.get("parameters") or {}
            outs.append(
                RequestedOutput(name=o["name"], binary=bool(p.get("binary_data", binary_output)))
            )
        outputs = tuple(outs)
    rid = obj.get("id")
    return InferenceRequest(
        inputs=tuple(tensors),
        id=None if rid is None else str(rid),
        outputs=outputs,
        binary_output=binary_output,
        parameters=req_params,
    )


# -- encoding -------------------------------------------------------------------------------------
def _raw_bytes(arr: np.ndarray) -> bytes:
    if arr.dtype.kind in ("O", "U", "S"):
        parts = []
        for item in arr.reshape(-1):
            b = item.encode() if isinstance(item, str) else bytes(item)
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(arr).tobytes()


def _json_data(arr: np.ndarray) -> list[Any]:
    flat = arr.reshape(-1)
    if flat.dtype.kind in ("O", "S"):
        return [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in flat]
    values: list[Any] = flat.tolist()
    return values


def _encode(
    header: dict[str, Any], tensors: Sequence[Tensor], binary_names: frozenset[str], key: str
) -> tuple[bytes, int | None]:
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for t in tensors:
        entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": t.shape}
        params = dict(t.parameters)
        if t.name in binary_names:
            raw = _raw_bytes(t.data)
            params["binary_data_size"] = len(raw)
            blobs.append(raw)
        else:
            entry["data"] = _json_data(t.data)
        if params:
            entry["parameters"] = params
        entries.append(entry)
    header[key] = entries
    head = json.dumps(header, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


def encode_response(response: InferenceResponse) -> tuple[bytes, int | None]:
    """Serialize a response; returns ``(body, header_length)``.

    ``header_length`` is ``None`` for a pure JSON body, else the value for the
    ``Inference-Header-Content-Length`` header (binary outputs follow the JSON).
    """
    header: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
    }
    if response.id is not None:
        header["id"] = response.id
    return _encode(header, response.outputs, response.binary_outputs, "outputs")


def encode_request(
    inputs: Mapping[str, np.ndarray],
    *,
    binary: bool = True,
    outputs: Sequence[str] | None = None,
    binary_output: bool = True,
    request_id: str | None = None,
) -> tuple[bytes, int | None]:
    """Serialize a request (the load generator's and the tests' client side).

    Args:
        inputs: ``{name: array}``.
        binary: send the tensors with the binary extension (default) instead of JSON lists.
        outputs: the outputs to ask for; ``None``: all.
        binary_output: ask for binary outputs.
        request_id: the request ``id``.

    Returns:
        ``(body, header_length)``; ``header_length`` is ``None`` for a pure JSON body.
    """
    header: dict[str, Any] = {}
    if request_id is not None:
        header["id"] = request_id
    if outputs is not None:
        header["outputs"] = [
            {"name": n, "parameters": {"binary_data": binary_output}} for n in outputs
        ]
    elif binary_output:
        header["parameters"] = {"binary_data_output": True}
    tensors = [Tensor(name=k, data=np.asarray(v)) for k, v in inputs.items()]
    names = frozenset(inputs) if binary else frozenset()
    return _encode(header, tensors, names, "inputs")


def decode_response(body: bytes, *, header_length: int | None = None) -> InferenceResponse:
    """Parse a v2 inference response (JSON, or JSON header + binary outputs).

    Raises:
        InvalidInputError: a malformed body.
    """
    obj, binary = _json_header(body, header_length)
    if "error" in obj:
        raise InvalidInputError(f"server returned an error: {obj['error']}")
    raw_outputs = obj.get("outputs")
    if not isinstance(raw_outputs, list):
        raise InvalidInputError("response has no 'outputs' list; expected a v2 inference response")
    # The response's tensors use the same layout as a request's inputs.
    fake = dict(obj)
    fake["inputs"] = raw_outputs
    blob = json.dumps(fake).encode()
    req = decode_request(blob + bytes(binary), header_length=len(blob))
    return InferenceResponse(
        model_name=str(obj.get("model_name", "")),
        model_version=str(obj.get("model_version", "")),
        outputs=req.inputs,
        id=None if obj.get("id") is None else str(obj["id"]),
    )
