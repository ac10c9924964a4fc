"""The strict v2 decoder (issue 13, findings 4 and 6): every malformed request is a 4xx with a v2
``{"error": ...}`` body and one warning line in the log, never a 500 with a traceback; loosely
typed fields are refused instead of giving a wrong 200."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import numpy as np
import pytest
from starlette.testclient import TestClient

from nnperf.errors import InvalidInputError
from nnperf.protocol import (
    HEADER_LENGTH,
    InferenceResponse,
    Tensor,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from nnperf.serve import DataPlane, ModelSettings
from nnperf.serve.http import create_app
from tests.models import identity_model


def _req(**tensor: object) -> bytes:
    base: dict[str, object] = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0.0] * 4}
    base.update(tensor)
    return json.dumps({"inputs": [base]}).encode()


def _with(**request: object) -> bytes:
    body: dict[str, object] = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [0.0] * 4}]
    }
    body.update(request)
    return json.dumps(body).encode()


DEEP = 5000
# (case, body, extra headers, HTTP status, text the error must contain)
MALFORMED: list[tuple[str, bytes, dict[str, str | bytes], int, str]] = [
    # finding 4: 500s for client input
    ("nested 5000 deep", b"[" * DEEP + b"]" * DEEP, {}, 400, "nested too deep"),
    (
        "nested 5000 deep in data",
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": '
        + b"[" * DEEP
        + b"]" * DEEP
        + b"}]}",
        {},
        400,
        "nested too deep",
    ),
    ("integer of 5000 digits", _req(shape=[1, 4]).replace(b"0.0,", b"9" * 5000 + b",", 1), {}, 400, "integer"),
    ("shape [2**63, 0]", _req(shape=[2**63, 0], data=[]), {}, 400, "'shape'"),
    ("shape [2**64]", _req(shape=[2**64], data=[]), {}, 400, "'shape'"),
    ("rank 65", _req(shape=[1] * 65, data=[0.0]), {}, 400, "rank"),
    ("shape of floats", _req(shape=[1.0, 4]), {}, 400, "'shape'"),
    ("shape of bools", _req(shape=[True, 4]), {}, 400, "'shape'"),
    ("request parameters a list", _with(parameters=[1]), {}, 400, "'parameters'"),
    ("request parameters a string", _with(parameters="x"), {}, 400, "'parameters'"),
    ("input parameters a number", _req(parameters=5), {}, 400, "'parameters'"),
    ("parameter value an object", _with(parameters={"a": {"b": 1}}), {}, 400, "'parameters'"),
    ("output parameters a list", _with(outputs=[{"name": "y", "parameters": []}]), {}, 400, "'parameters'"),
    ("BF16", _req(datatype="BF16"), {}, 400, "datatype mismatch"),
    ("FP64 for an FP32 input", _req(datatype="FP64"), {}, 400, "datatype mismatch"),
    ("unknown datatype", _req(datatype="FLOAT"), {}, 400, "not a v2 datatype"),
    # finding 6: loosely typed fields
    ("binary_data_output a string", _with(parameters={"binary_data_output": "false"}), {}, 400, "binary_data_output"),
    ("binary_data a number", _with(outputs=[{"name": "y", "parameters": {"binary_data": 1}}]), {}, 400, "binary_data"),
    ("null data", _req(data=[0.0, None, 0.0, 0.0]), {}, 400, "null"),
    ("string numbers", _req(data=["1.0", "2", "3", "4"]), {}, 400, "string"),
    ("booleans for FP32", _req(data=[True, False, True, False]), {}, 400, "boolean"),
    ("ragged nesting", _req(shape=[2, 2], data=[[1.0, 2.0], [3.0]]), {}, 400, "shape"),
    ("nesting not as the shape", _req(shape=[1, 4], data=[[1.0, 2.0], [3.0, 4.0]]), {}, 400, "shape"),
    ("data not a list", _req(shape=[], data=1.0), {}, 400, "expected a list"),
    ("outputs empty", _with(outputs=[]), {}, 400, "'outputs'"),
    ("outputs repeated", _with(outputs=[{"name": "y"}, {"name": "y"}]), {}, 400, "more than once"),
    ("id a number", _with(id=7), {}, 400, "'id'"),
    ("NaN literal", _req(data=[0.0, 0.0, 0.0, 0.0]).replace(b"0.0]", b"NaN]"), {}, 400, "NaN"),
    ("FP32 overflow", _req(data=[1e39, 0.0, 0.0, 0.0]), {}, 400, "FP32"),
    ("INT8 overflow", _req(datatype="INT8", data=[300, 0, 0, 0]), {}, 400, "INT8"),
    ("data and binary_data_size", _req(parameters={"binary_data_size": 0}), {}, 400, "both"),
    ("input name empty", _req(name=""), {}, 400, "'name'"),
    ("same input twice", json.dumps({"inputs": [json.loads(_req())["inputs"][0]] * 2}).encode(), {}, 400, "more than once"),
    ("header length with underscores", _req(), {HEADER_LENGTH: "1_0_0"}, 400, HEADER_LENGTH),
    ("header length with a sign", _req(), {HEADER_LENGTH: "+10"}, 400, HEADER_LENGTH),
    ("header length with spaces", _req(), {HEADER_LENGTH: " 10"}, 400, HEADER_LENGTH),
    ("header length not ASCII digits", _req(), {HEADER_LENGTH: "\u0661\u0660".encode()}, 400, HEADER_LENGTH),
    ("body not UTF-8", b'{"inputs": "\xff"}', {}, 400, "not valid JSON"),
]  # fmt: skip


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    plane = DataPlane([ModelSettings(name="m", model=identity_model(4))])
    with TestClient(create_app(plane)) as c:
        yield c


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "match"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_request_is_a_4xx_with_one_warning(
    client: TestClient,
    caplog: pytest.LogCaptureFixture,
    case: str,
    body: bytes,
    headers: dict[str, str | bytes],
    status: int,
    match: str,
) -> None:
    with caplog.at_level(logging.INFO, logger="nnperf"):
        r = client.post("/v2/models/m/infer", content=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert match in error, error
    assert len(error) < 1000  # client data is quoted, never echoed whole
    serve_records = [rec for rec in caplog.records if rec.name == "nnperf.serve"]
    assert [rec.levelno for rec in serve_records] == [logging.WARNING]
    assert all(rec.exc_info is None for rec in caplog.records)


DECODER_CASES = [m for m in MALFORMED if not m[2]]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "match"), DECODER_CASES, ids=[m[0] for m in DECODER_CASES]
)
def test_decoder_refuses_with_invalid_input(
    case: str, body: bytes, headers: dict[str, str | bytes], status: int, match: str
) -> None:
    if "mismatch" in match:
        with pytest.raises(InvalidInputError, match=match):
            decode_request(body, datatypes={"x": "FP32"})
        return
    with pytest.raises(InvalidInputError, match=match):
        decode_request(body)


def test_bf16_without_a_model_is_still_a_400() -> None:
    with pytest.raises(InvalidInputError, match="BF16"):
        decode_request(_req(datatype="BF16"))


def test_strict_types_still_take_what_tritonclient_sends() -> None:
    ok = decode_request(_req(data=[1, 2.5, -3, 0]))  # ints are numbers for FP32
    assert ok.feeds()["x"].tolist() == [[1.0, 2.5, -3.0, 0.0]]
    nested = decode_request(_req(shape=[2, 2], data=[[1, 2], [3, 4]], datatype="INT64"))
    assert nested.feeds()["x"].tolist() == [[1, 2], [3, 4]]
    flags = decode_request(_req(datatype="BOOL", shape=[2], data=[True, False]))
    assert flags.feeds()["x"].dtype == np.bool_
    req = decode_request(
        _with(
            id="r1",
            parameters={"binary_data_output": True, "sequence_id": 3},
            outputs=[{"name": "y", "parameters": {"binary_data": False}}],
        )
    )
    assert req.id == "r1" and req.binary_output and req.outputs is not None
    assert not req.outputs[0].binary
    empty = decode_request(_req(shape=[0, 4], data=[]))
    assert empty.feeds()["x"].shape == (0, 4)


def test_nan_outputs_are_refused_as_json_unless_asked_for(client: TestClient) -> None:
    x = np.array([[np.nan, np.inf, 1.0, 2.0]], np.float32)
    body, hl = encode_request({"x": x}, binary_output=False)
    r = client.post("/v2/models/m/infer", content=body, headers={HEADER_LENGTH: str(hl)})
    assert r.status_code == 400
    assert "non-finite" in r.json()["error"] and "binary_data" in r.json()["error"]
    # Binary outputs carry NaN as it is.
    body, hl = encode_request({"x": x}, binary_output=True)
    r = client.post("/v2/models/m/infer", content=body, headers={HEADER_LENGTH: str(hl)})
    assert r.status_code == 200
    out = decode_response(r.content, header_length=int(r.headers[HEADER_LENGTH]))
    np.testing.assert_array_equal(out.outputs[0].data, x)
    # The client asks for NaN literals: it gets them.
    body, hl = encode_request({"x": x}, binary_output=False)
    assert hl is not None
    head = json.loads(body[:hl])
    head["parameters"] = {"allow_nan": True}
    h2 = json.dumps(head).encode()
    raw = body[hl:]
    r = client.post("/v2/models/m/infer", content=h2 + raw, headers={HEADER_LENGTH: str(len(h2))})
    assert r.status_code == 200 and b"NaN" in r.content and b"Infinity" in r.content
    np.testing.assert_array_equal(decode_response(r.content).outputs[0].data, x)


def test_encoded_json_is_standard() -> None:
    resp = InferenceResponse("m", "1", (Tensor("y", np.array([np.nan], np.float32)),))
    with pytest.raises(InvalidInputError, match="non-finite"):
        encode_response(resp)
    body, _ = encode_response(
        InferenceResponse("m", "1", (Tensor("y", np.array([1.5], np.float32)),))
    )
    json.loads(body, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))
