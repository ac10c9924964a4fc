"""Fuzzing the v2 decoder (issue 13): whatever the bytes, ``decode_request`` returns a request or
raises :class:`~nnperf.errors.InvalidInputError`, never anything else; what the encoder writes, the
decoder reads back exactly. Seeded and bounded (``derandomize=True``): the same examples on
every run, a few seconds in all."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnperf.errors import InvalidInputError
from nnperf.protocol import (
    DATATYPES,
    InferenceRequest,
    decode_request,
    decode_response,
    encode_request,
)

FUZZ = settings(
    derandomize=True,
    database=None,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# JSON values of every kind, nested a little, with the awkward ones over-represented.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 2**63, 2**64, 1e308, -0.0, "", "1", "FP32", "NaN"]),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
datatypes = st.sampled_from([*DATATYPES, "BF16", "FLOAT", "", "fp32"])
shapes = st.one_of(
    st.lists(st.integers(min_value=0, max_value=4), max_size=3),
    st.lists(st.integers(min_value=-2, max_value=2**64), max_size=3),
    json_values,
)


def _tensor() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(st.sampled_from(["x", "y", ""]), json_values),
            "datatype": st.one_of(datatypes, json_values),
            "shape": shapes,
            "data": json_values,
            "parameters": st.one_of(
                st.fixed_dictionaries(
                    {}, optional={"binary_data_size": st.one_of(st.integers(-5, 64), json_values)}
                ),
                json_values,
            ),
        },
    )


requests = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "inputs": st.one_of(st.lists(_tensor(), max_size=3), json_values),
        "outputs": st.one_of(
            st.lists(
                st.fixed_dictionaries({"name": json_values}, optional={"parameters": json_values}),
                max_size=3,
            ),
            json_values,
        ),
        "parameters": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "binary_data_output": json_values,
                    "allow_nan": json_values,
                },
            ),
            json_values,
        ),
    },
)


def _decodes_or_refuses(body: bytes, header_length: int | None = None, **kw: Any) -> None:
    try:
        req = decode_request(body, header_length=header_length, **kw)
    except InvalidInputError as exc:
        assert str(exc)
        assert len(str(exc)) < 2000  # client data is quoted, never echoed whole
        return
    assert isinstance(req, InferenceRequest) and req.inputs
    for t in req.inputs:
        assert isinstance(t.data, np.ndarray)
        if t.data.dtype.kind == "f":
            assert np.isfinite(t.data).all() or header_length is not None


@FUZZ
@given(requests)
def test_structured_requests_decode_or_refuse(obj: dict[str, Any]) -> None:
    body = json.dumps(obj).encode()
    _decodes_or_refuses(body)
    _decodes_or_refuses(body, datatypes={"x": "FP32", "y": "INT64"})


@FUZZ
@given(st.binary(max_size=200), st.one_of(st.none(), st.integers(-3, 250)))
def test_arbitrary_bytes_decode_or_refuse(body: bytes, header_length: int | None) -> None:
    _decodes_or_refuses(body, header_length)


@FUZZ
@given(
    st.sampled_from(["[", "{", '{"inputs": [', '{"inputs": [{"data": ']),
    st.integers(min_value=1, max_value=20000),
)
def test_deep_nesting_is_refused(prefix: str, depth: int) -> None:
    body = (prefix + "[" * depth + "]" * depth).encode()
    _decodes_or_refuses(body)


arrays = st.sampled_from(
    ["float32", "float16", "float64", "int8", "uint8", "int32", "int64", "bool"]
).flatmap(
    lambda dt: st.lists(st.integers(0, 3), min_size=1, max_size=3).map(
        lambda shape: (
            np.random.default_rng(sum(shape)).standard_normal(shape).astype(dt)
            if dt.startswith("float")
            else (np.random.default_rng(len(shape)).integers(0, 100, shape)).astype(dt)
        )
    )
)


@FUZZ
@given(arrays, st.booleans())
def test_what_the_encoder_writes_decodes_back(arr: np.ndarray, binary: bool) -> None:
    body, hl = encode_request({"x": arr}, binary=binary)
    back = decode_request(body, header_length=hl).feeds()["x"]
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


@FUZZ
@given(arrays, st.integers(min_value=0, max_value=12), st.binary(min_size=1, max_size=4))
def test_mutated_binary_requests_decode_or_refuse(arr: np.ndarray, cut: int, junk: bytes) -> None:
    body, hl = encode_request({"x": arr})
    assert hl is not None
    _decodes_or_refuses(body[: max(0, len(body) - cut)], hl)
    _decodes_or_refuses(body + junk, hl)
    _decodes_or_refuses(body[:hl] + junk + body[hl:], hl)


@FUZZ
@given(st.binary(max_size=120))
def test_responses_decode_or_refuse(body: bytes) -> None:
    try:
        decode_response(body)
    except InvalidInputError:
        pass
