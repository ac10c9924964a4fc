"""Fuzzing the HTTP app in process (issue 13): any body, headers and path give a v2 answer, a 4xx
with an ``{"error": ...}`` body unless the request was good, never a 500 and never a traceback
in the log. Seeded and bounded (``derandomize=True``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from nnperf.protocol import HEADER_LENGTH, encode_request
from nnperf.serve import DataPlane, ModelSettings
from nnperf.serve.http import create_app
from nnperf.serve.settings import ServerSettings
from tests.models import identity_model, two_input_model
from tests.test_fuzz_protocol import json_values, requests

FUZZ = settings(
    derandomize=True,
    database=None,
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    plane = DataPlane(
        [
            ModelSettings(name="id", model=identity_model(4), max_batch_size=4, max_delay_ms=0.2),
            ModelSettings(name="two", model=two_input_model()),
        ]
    )
    app = create_app(plane, ServerSettings(max_body_bytes=64 * 1024, body_timeout_s=5.0))
    with TestClient(app) as c:
        yield c


class _Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None or record.levelno >= logging.ERROR:
            self.records.append(record)


@pytest.fixture(scope="module")
def tracebacks() -> Iterator[_Tracebacks]:
    handler = _Tracebacks()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def _check(r: Any, tracebacks: _Tracebacks) -> None:
    assert r.status_code < 500, r.text
    assert not tracebacks.records, [rec.getMessage() for rec in tracebacks.records]
    if r.status_code >= 400:
        body = r.json()
        assert isinstance(body.get("error"), str) and body["error"]


header_values = st.one_of(
    st.sampled_from(["", "0", "-1", "1_0", "+5", " 5", "99999999999999999999", "abc", "5"]),
    st.integers(0, 300).map(str),
)


@FUZZ
@given(
    obj=requests,
    model=st.sampled_from(["id", "two", "nope", "id/versions/1", "id/versions/9"]),
    header_length=st.one_of(st.none(), header_values),
)
def test_structured_bodies(
    client: TestClient,
    tracebacks: _Tracebacks,
    obj: dict[str, Any],
    model: str,
    header_length: str | None,
) -> None:
    headers = {} if header_length is None else {HEADER_LENGTH: header_length}
    r = client.post(f"/v2/models/{model}/infer", content=json.dumps(obj), headers=headers)
    _check(r, tracebacks)


@FUZZ
@given(body=st.binary(max_size=300), header_length=st.one_of(st.none(), header_values))
def test_arbitrary_bodies(
    client: TestClient, tracebacks: _Tracebacks, body: bytes, header_length: str | None
) -> None:
    headers = {} if header_length is None else {HEADER_LENGTH: header_length}
    _check(client.post("/v2/models/id/infer", content=body, headers=headers), tracebacks)


@FUZZ
@given(
    rows=st.integers(0, 6),
    width=st.integers(0, 6),
    dtype=st.sampled_from(["float32", "float64", "int64", "uint8", "bool"]),
    binary=st.booleans(),
    binary_output=st.booleans(),
    outputs=st.one_of(st.none(), st.lists(st.sampled_from(["y", "z", ""]), max_size=2)),
)
def test_wellformed_requests_of_any_shape_and_type(
    client: TestClient,
    tracebacks: _Tracebacks,
    rows: int,
    width: int,
    dtype: str,
    binary: bool,
    binary_output: bool,
    outputs: list[str] | None,
) -> None:
    x = np.ones((rows, width), dtype)
    body, hl = encode_request({"x": x}, binary=binary, binary_output=binary_output, outputs=outputs)
    headers = {} if hl is None else {HEADER_LENGTH: str(hl)}
    r = client.post("/v2/models/id/infer", content=body, headers=headers)
    _check(r, tracebacks)
    # Batching caps a request at max_batch_size (4) rows.
    good = dtype == "float32" and width == 4 and 1 <= rows <= 4 and outputs in (None, ["y"])
    assert (r.status_code == 200) == good, (r.status_code, r.text)


@FUZZ
@given(
    path=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="?#%"),
        max_size=40,
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
def test_any_path_and_method(
    client: TestClient, tracebacks: _Tracebacks, path: str, method: str
) -> None:
    r = client.request(method, "/" + path)
    assert r.status_code < 500, r.text
    assert not tracebacks.records


@FUZZ
@given(params=json_values)
def test_repository_routes(client: TestClient, tracebacks: _Tracebacks, params: Any) -> None:
    r = client.post("/v2/repository/index", content=json.dumps(params))
    _check(r, tracebacks)
