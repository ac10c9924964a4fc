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
    "MAX_RANK",
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
        allow_nan: request-level ``allow_nan``: JSON outputs may carry the non-standard
            ``NaN``/``Infinity`` literals (default false: such an output is refused; ask for it
            binary instead).
    """

    inputs: tuple[Tensor, ...]
    id: str | None = None
    outputs: tuple[RequestedOutput, ...] | None = None
    binary_output: bool = False
    parameters: Mapping[str, Any] = field(default_factory=dict)
    allow_nan: bool = False

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
        allow_nan: JSON outputs may carry ``NaN``/``Infinity`` literals (the request's
            ``allow_nan``); default false: standard JSON only.
    """

    model_name: str
    model_version: str
    outputs: tuple[Tensor, ...]
    id: str | None = None
    binary_outputs: frozenset[str] = frozenset()
    allow_nan: bool = False

    def as_dict(self) -> dict[str, np.ndarray]:
        """The outputs as ``{name: array}``."""
        return {t.name: t.data for t in self.outputs}


# -- decoding -------------------------------------------------------------------------------------
MAX_RANK = 32
"""Most dimensions a request tensor may have."""

_MAX_DIM = 2**63 - 1
_SCALARS = (str, int, float, bool)
# JSON value types each datatype's ``data`` may hold (``bool`` is an ``int`` to Python: exact types).
_FLOAT_KINDS = frozenset({int, float})
_INT_KINDS = frozenset({int})


def _describe(value: Any) -> str:
    """What a JSON value is, quoted briefly (client data is never echoed whole)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"the number {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}" + ("..." if len(value) > 40 else "")
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return f"an object with {len(value)} key(s)"
    return type(value).__name__


def _reject_constant(name: str) -> Any:
    raise InvalidInputError(
        f"request body: the non-standard JSON constant {name} is not accepted; expected standard "
        "JSON numbers (send NaN or infinite values as binary tensor data)"
    )


def _parse_json(head: bytes | memoryview, what: str, *, allow_nan: bool = False) -> Any:
    hint = (
        'expected a v2 inference request {"inputs": [{"name", "datatype", "shape", "data"}]}'
        if what == "request"
        else "expected a v2 inference response"
    )
    try:
        return json.loads(bytes(head), parse_constant=None if allow_nan else _reject_constant)
    except InvalidInputError:
        raise
    except RecursionError:
        raise InvalidInputError(
            f"{what} body: JSON nested too deep to parse; {hint} (arrays nested at most as "
            f"deep as the tensor's rank, {MAX_RANK} at most)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{what} body is not valid JSON ({exc}); {hint}") from None
    except ValueError as exc:  # Python's limit on the digits of an integer literal
        raise InvalidInputError(
            f"{what} body is not valid JSON here: an integer literal is too long ({exc}); "
            f"{hint} with numbers that fit their datatype"
        ) from None


def _json_header(
    body: bytes, header_length: int | None, what: str = "request", *, allow_nan: bool = False
) -> tuple[dict[str, Any], memoryview]:
    if header_length is not None:
        if (
            isinstance(header_length, bool)
            or not isinstance(header_length, int)
            or not 0 <= header_length <= len(body)
        ):
            raise InvalidInputError(
                f"{HEADER_LENGTH}: got {header_length!r}, but the body has {len(body)} bytes; "
                "expected the length of the JSON header, at most the body length"
            )
        view = memoryview(body)
        head, rest = view[:header_length], view[header_length:]
    else:
        head, rest = memoryview(body), memoryview(b"")
    obj = _parse_json(head, what, allow_nan=allow_nan)
    if not isinstance(obj, dict):
        raise InvalidInputError(
            f"{what} body: got {_describe(obj)}, expected an object with "
            + ("'inputs'" if what == "request" else "'outputs'")
        )
    return obj, rest


def _shape_of(raw: Any, where: str) -> tuple[int, ...]:
    if not isinstance(raw, list):
        raise InvalidInputError(
            f"{where} 'shape': got {_describe(raw)}, expected a list of non-negative integers"
        )
    if len(raw) > MAX_RANK:
        raise InvalidInputError(
            f"{where} 'shape' has rank {len(raw)}; expected at most {MAX_RANK} dimensions"
        )
    for d in raw:
        if type(d) is not int or not 0 <= d <= _MAX_DIM:
            raise InvalidInputError(
                f"{where} 'shape': got {_describe(d)} in it, expected a list of non-negative "
                "integers below 2**63"
            )
    return tuple(raw)


def _parameters(raw: Any, where: str) -> dict[str, Any]:
    """A v2 ``parameters`` object: names to strings, numbers or booleans."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInputError(
            f"{where} 'parameters': got {_describe(raw)}, expected a JSON object of "
            "name: string, number or boolean"
        )
    for key, value in raw.items():
        if not isinstance(value, _SCALARS):
            raise InvalidInputError(
                f"{where} 'parameters' {key[:40]!r}: got {_describe(value)}, expected a string, "
                "number or boolean"
            )
    return dict(raw)


def _flag(params: dict[str, Any], key: str, where: str, default: bool) -> bool:
    """Pop the boolean parameter ``key`` (JSON ``true``/``false`` only)."""
    value = params.pop(key, default)
    if not isinstance(value, bool):
        raise InvalidInputError(
            f"{where} parameter {key!r}: got {_describe(value)}, expected true or false"
        )
    return value


def _check_datatype(datatype: Any, where: str, expected: str | None) -> tuple[str, np.dtype[Any]]:
    """The datatype and its numpy dtype; BF16 is always a mismatch (numpy cannot hold it)."""
    if not isinstance(datatype, str):
        raise InvalidInputError(
            f"{where} 'datatype': got {_describe(datatype)}, expected e.g. 'FP32'"
        )
    if datatype not in DATATYPES and datatype != "BF16":
        raise InvalidInputError(
            f"{where} 'datatype': got {datatype[:40]!r}, which is not a v2 datatype; expected one "
            f"of {sorted([*DATATYPES, 'BF16'])}"
        )
    if expected is not None and datatype != expected:
        raise InvalidInputError(
            f"{where}: datatype mismatch: got {datatype}, expected {expected}, the model's "
            f"datatype for this input; send {expected} data (GET /v2/models/NAME lists them)"
        )
    if datatype == "BF16":
        raise InvalidInputError(
            f"{where}: datatype mismatch: got BF16, and no input of a model served here is "
            "bfloat16 (numpy cannot hold it); expected the model's datatype (GET "
            "/v2/models/NAME lists them)"
        )
    return datatype, np.dtype(DATATYPES[datatype])


def _decode_bytes_tensor(buf: memoryview, count: int, where: str) -> np.ndarray:
    if count > len(buf) // 4:
        raise InvalidInputError(
            f"{where}: BYTES data of {len(buf)} bytes cannot hold {count} elements (each needs a "
            "4-byte length); expected the shape's element count"
        )
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


def _flat_json(
    data: Any, shape: tuple[int, ...], count: int, datatype: str, where: str
) -> list[Any]:
    """The values of ``data``: a flat list, or lists nested exactly as ``shape`` (row-major)."""
    if not isinstance(data, list):
        raise InvalidInputError(
            f"{where} 'data': got {_describe(data)}, expected a list of {count} {datatype} values"
        )
    flat = data
    if data and isinstance(data[0], list):
        level: list[Any] = [data]
        for dim in shape:
            nxt: list[Any] = []
            for item in level:
                if not isinstance(item, list) or len(item) != dim:
                    raise InvalidInputError(
                        f"{where} 'data' is neither a flat list nor nested as the shape "
                        f"{list(shape)} (ragged, or nested differently); expected {count} "
                        "values, flat or nested as the shape (row-major)"
                    )
                nxt.extend(item)
            level = nxt
        flat = level
    if len(flat) != count:
        raise InvalidInputError(
            f"{where}: 'data' has {len(flat)} elements, shape {list(shape)} needs {count}; "
            "expected data of exactly the shape's size"
        )
    return flat


def _json_tensor(
    data: Any,
    shape: tuple[int, ...],
    count: int,
    datatype: str,
    dtype: np.dtype[Any],
    where: str,
    *,
    allow_nan: bool = False,
) -> np.ndarray:
    flat = _flat_json(data, shape, count, datatype, where)
    if datatype == "BYTES":
        allowed: frozenset[type] = frozenset({str})
        expected = "strings"
    elif datatype == "BOOL":
        allowed, expected = frozenset({bool}), "true or false"
    elif dtype.kind == "f":
        allowed, expected = _FLOAT_KINDS, "numbers"
    else:
        allowed, expected = _INT_KINDS, "integers"
    kinds = set(map(type, flat))
    if not kinds <= allowed:
        bad = next(v for v in flat if type(v) not in allowed)
        raise InvalidInputError(
            f"{where} 'data': got {_describe(bad)} in it, expected {datatype} values "
            f"(JSON {expected})"
        )
    if datatype == "BYTES":
        strings = np.empty(count, dtype=object)
        strings[:] = [s.encode() for s in flat]
        return strings
    values: np.ndarray | None
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.array(flat, dtype=dtype)
    except (OverflowError, ValueError, TypeError):
        values = None
    if values is None or (dtype.kind == "f" and not allow_nan and not np.isfinite(values).all()):
        if dtype.kind == "f":
            bound = f"finite values of magnitude up to {float(np.finfo(dtype).max):.6g}"
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            bound = f"integers in [{info.min}, {info.max}]"
        else:
            bound = "true or false"
        raise InvalidInputError(
            f"{where} 'data': a value does not fit in {datatype}; expected {bound}"
        )
    return values


def _decode_tensors(
    raw_tensors: list[Any],
    binary: memoryview,
    what: str,
    datatypes: Mapping[str, str] | None,
    *,
    allow_nan: bool = False,
) -> tuple[Tensor, ...]:
    """The tensors of a request's ``inputs`` (``what="input"``) or a response's ``outputs``."""
    pos = 0
    tensors: list[Tensor] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_tensors):
        if not isinstance(raw, dict):
            raise InvalidInputError(
                f"{what}s[{i}]: got {_describe(raw)}, expected an object with 'name', "
                "'datatype', 'shape' and 'data'"
            )
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInputError(
                f"{what}s[{i}] 'name': got {_describe(name)}, expected a non-empty string"
            )
        where = f"{what} {name[:60]!r}"
        if name in seen:
            raise InvalidInputError(f"{where} appears more than once; expected each {what} once")
        seen.add(name)
        datatype, dtype = _check_datatype(
            raw.get("datatype"), where, None if datatypes is None else datatypes.get(name)
        )
        shape = _shape_of(raw.get("shape"), where)
        count = math.prod(shape)
        params = _parameters(raw.get("parameters"), where)
        size = params.pop("binary_data_size", None)
        if size is not None:
            if "data" in raw:
                raise InvalidInputError(
                    f"{where}: has both 'data' and parameters.binary_data_size; expected one of "
                    "them"
                )
            if type(size) is not int or size < 0:
                raise InvalidInputError(
                    f"{where} 'binary_data_size': got {_describe(size)}, expected a byte count"
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
            arr = _json_tensor(
                raw["data"], shape, count, datatype, dtype, where, allow_nan=allow_nan
            )
        try:
            arr = arr.reshape(shape)
        except ValueError:
            raise InvalidInputError(
                f"{where} 'shape' {list(shape)} is too large to hold; expected a tensor shape"
            ) from None
        tensors.append(Tensor(name=name, data=arr, parameters=params))
    if pos != len(binary):
        raise InvalidInputError(
            f"the binary part has {len(binary)} bytes but the {what}s' binary_data_size add up "
            f"to {pos}; expected them to match"
        )
    return tuple(tensors)


def decode_request(
    body: bytes,
    *,
    header_length: int | None = None,
    datatypes: Mapping[str, str] | None = None,
) -> InferenceRequest:
    """Parse a v2 inference request (JSON, or JSON header + binary tensor data), strictly.

    Standard JSON only (no ``NaN``/``Infinity``); ``shape`` a list of at most
    :data:`MAX_RANK` non-negative integers; ``data`` a flat list, or lists nested exactly as the
    shape, of the datatype's JSON type (numbers, integers, booleans or strings; never ``null``
    or numbers in strings) and within its range; ``parameters`` objects of strings, numbers and
    booleans, with ``binary_data_output``/``binary_data``/``allow_nan`` booleans; ``id`` a
    string; ``outputs`` a non-empty list of distinct names.

    Args:
        body: the HTTP body.
        header_length: the ``Inference-Header-Content-Length`` value; ``None`` for pure JSON.
        datatypes: the model's v2 datatype per input name; an input of another datatype is
            refused before its data is read ("datatype mismatch").

    Raises:
        InvalidInputError: anything malformed (the message names the field, what it got and
            what was expected). ``BF16`` is refused as a datatype mismatch: numpy cannot hold
            it, so no served model takes it.
    """
    obj, binary = _json_header(body, header_length)
    raw_inputs = obj.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInputError(
            "request: 'inputs' is missing or empty; expected a list of "
            '{"name", "datatype", "shape", "data"} objects'
        )
    tensors = _decode_tensors(raw_inputs, binary, "input", datatypes)
    req_params = _parameters(obj.get("parameters"), "request")
    binary_output = _flag(req_params, "binary_data_output", "request", False)
    allow_nan = _flag(req_params, "allow_nan", "request", False)
    outputs: tuple[RequestedOutput, ...] | None = None
    raw_outputs = obj.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list) or not raw_outputs:
            raise InvalidInputError(
                f"request 'outputs': got {_describe(raw_outputs)}, expected a non-empty list of "
                '{"name"} objects (leave it out for every output)'
            )
        outs = []
        names: set[str] = set()
        for i, o in enumerate(raw_outputs):
            if not isinstance(o, dict) or not isinstance(o.get("name"), str) or not o["name"]:
                raise InvalidInputError(
                    f"outputs[{i}]: got {_describe(o)}, expected an object with a non-empty "
                    "string 'name'"
                )
            name = o["name"]
            if name in names:
                raise InvalidInputError(
                    f"output {name[:60]!r} is asked for more than once; expected each once"
                )
            names.add(name)
            p = _parameters(o.get("parameters"), f"output {name[:60]!r}")
            wants_binary = _flag(p, "binary_data", f"output {name[:60]!r}", binary_output)
            outs.append(RequestedOutput(name=name, binary=wants_binary))
        outputs = tuple(outs)
    rid = obj.get("id")
    if rid is not None and not isinstance(rid, str):
        raise InvalidInputError(f"request 'id': got {_describe(rid)}, expected a string")
    return InferenceRequest(
        inputs=tensors,
        id=rid,
        outputs=outputs,
        binary_output=binary_output,
        parameters=req_params,
        allow_nan=allow_nan,
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
    header: dict[str, Any],
    tensors: Sequence[Tensor],
    binary_names: frozenset[str],
    key: str,
    *,
    allow_nan: bool = False,
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
    try:
        head = json.dumps(header, separators=(",", ":"), allow_nan=allow_nan).encode()
    except ValueError:  # NaN or infinity in a JSON tensor: not standard JSON
        bad = [
            t.name
            for t in tensors
            if t.name not in binary_names
            and t.data.dtype.kind == "f"
            and not np.isfinite(t.data).all()
        ]
        what = "output" if key == "outputs" else "input"
        raise InvalidInputError(
            f"{what}(s) {bad} hold non-finite values (NaN or infinity), which standard JSON "
            f"cannot carry; ask for them as binary tensor data (parameters.binary_data) or set "
            "the request parameter allow_nan to true to get NaN/Infinity literals"
        ) from None
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


def encode_response(response: InferenceResponse) -> tuple[bytes, int | None]:
    """Serialize a response; returns ``(body, header_length)``.

    ``header_length`` is ``None`` for a pure JSON body, else the value for the
    ``Inference-Header-Content-Length`` header (binary outputs follow the JSON).

    Raises:
        InvalidInputError: a JSON output holds NaN or infinity and the response does not
            ``allow_nan`` (standard JSON cannot carry them; the message says how to ask).
    """
    header: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
    }
    if response.id is not None:
        header["id"] = response.id
    return _encode(
        header,
        response.outputs,
        response.binary_outputs,
        "outputs",
        allow_nan=response.allow_nan,
    )


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

    Raises:
        InvalidInputError: a JSON input holds NaN or infinity (the server takes standard JSON
            only; send such inputs binary).
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

    ``NaN``/``Infinity`` literals are accepted here (a server sends them when the request set
    ``allow_nan``).

    Raises:
        InvalidInputError: a malformed body, or the server's ``{"error": ...}``.
    """
    obj, binary = _json_header(body, header_length, "response", allow_nan=True)
    if "error" in obj:
        raise InvalidInputError(f"server returned an error: {obj['error']}")
    raw_outputs = obj.get("outputs")
    if not isinstance(raw_outputs, list):
        raise InvalidInputError("response has no 'outputs' list; expected a v2 inference response")
    rid = obj.get("id")
    return InferenceResponse(
        model_name=str(obj.get("model_name", "")),
        model_version=str(obj.get("model_version", "")),
        outputs=_decode_tensors(raw_outputs, binary, "output", None, allow_nan=True),
        id=None if rid is None else str(rid),
    )
