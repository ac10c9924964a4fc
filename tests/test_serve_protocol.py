"""KServe v2 wire format: JSON and binary tensor data, both directions, and every refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnperf.errors import InvalidInputError, UnsupportedError
from nnperf.protocol import (
    InferenceResponse,
    Tensor,
    datatype_of,
    decode_request,
    decode_response,
    dtype_of,
    encode_request,
    encode_response,
)


def test_datatype_mapping_round_trips() -> None:
    for dt in ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64"]:
        assert dtype_of(datatype_of(dt)) == np.dtype(dt)
    assert datatype_of("float32") == "FP32"
    with pytest.raises(UnsupportedError):
        dtype_of("BF16")
    with pytest.raises(InvalidInputError, match="not a v2 datatype"):
        dtype_of("FLOAT")


@pytest.mark.parametrize("binary", [True, False])
def test_request_round_trip(binary: bool) -> None:
    rng = np.random.default_rng(0)
    feeds = {
        "a": rng.standard_normal((2, 3)).astype(np.float32),
        "k": np.arange(4, dtype=np.int64).reshape(2, 2),
        "m": np.array([[True, False]]),
    }
    body, hl = encode_request(feeds, binary=binary, request_id="r1")
    assert (hl is not None) == binary
    req = decode_request(body, header_length=hl)
    assert req.id == "r1"
    got = req.feeds()
    for k, v in feeds.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)


def test_bytes_tensor_binary_and_json() -> None:
    arr = np.array([b"ab", b"", b"xyz"], dtype=object)
    for binary in (True, False):
        body, hl = encode_request({"s": arr}, binary=binary)
        out = decode_request(body, header_length=hl).feeds()["s"]
        assert list(out) == [b"ab", b"", b"xyz"]


def test_nested_json_data_is_row_major() -> None:
    body = json.dumps(
        {"inputs": [{"name": "x", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}]}
    ).encode()
    x = decode_request(body).feeds()["x"]
    assert x.tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "expected an object"),
        (b'{"inputs": []}', "'inputs' is missing or empty"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2]}]}', "no 'data'"),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [3], "data": [1, 2]}]}',
            "has 2 elements",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}',
            "non-negative integers",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": ["a"]}]}',
            "expected INT8 values",
        ),
    ],
)
def test_bad_json_requests(body: bytes, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        decode_request(body)


def test_truncated_and_surplus_binary() -> None:
    body, hl = encode_request({"x": np.ones((4, 4), np.float32)})
    with pytest.raises(InvalidInputError, match="truncated"):
        decode_request(body[:-8], header_length=hl)
    with pytest.raises(InvalidInputError, match="binary part has"):
        decode_request(body + b"\0\0\0\0", header_length=hl)
    with pytest.raises(InvalidInputError, match="Inference-Header-Content-Length"):
        decode_request(body, header_length=len(body) + 1)
    head = json.loads(body[:hl])
    head["inputs"][0]["shape"] = [4, 3]
    h2 = json.dumps(head).encode()
    with pytest.raises(InvalidInputError, match="does not match"):
        decode_request(h2 + body[hl:], header_length=len(h2))


def test_response_round_trip_mixed_binary_and_json() -> None:
    y = np.arange(6, dtype=np.float32).reshape(2, 3)
    z = np.array([1, 2], dtype=np.int64)
    resp = InferenceResponse(
        "m", "1", (Tensor("y", y), Tensor("z", z)), id="q", binary_outputs=frozenset({"y"})
    )
    body, hl = encode_response(resp)
    assert hl is not None
    head = json.loads(body[:hl])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == y.nbytes
    assert head["outputs"][1]["data"] == [1, 2]
    back = decode_response(body, header_length=hl)
    assert back.id == "q" and back.model_name == "m"
    assert np.array_equal(back.as_dict()["y"], y) and np.array_equal(back.as_dict()["z"], z)
