"""The v2 HTTP server: in process (Starlette TestClient) and over a real loopback socket with
``tritonclient.http``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from starlette.testclient import TestClient

from nnperf.errors import InvalidInputError, NotFoundError, OverloadedError
from nnperf.protocol import HEADER_LENGTH, decode_response, encode_request
from nnperf.serve import DataPlane, ModelRepository, ModelSettings, ServedModel
from nnperf.serve.http import ServerHandle, create_app
from tests.models import identity_model, matmul_model, two_input_model

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _plane() -> DataPlane:
    return DataPlane(
        [
            ModelSettings(name="mm", model=matmul_model(), max_batch_size=8, max_delay_ms=0.5),
            ModelSettings(name="two", model=two_input_model()),
        ]
    )


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(_plane(), token=TOKEN, max_body_bytes=64 * 1024)
    with TestClient(app) as c:
        yield c


def _infer(client: TestClient, name: str, feeds: dict[str, np.ndarray], **kw: object):  # type: ignore[no-untyped-def]
    body, hl = encode_request(feeds, **kw)  # type: ignore[arg-type]
    headers = dict(AUTH)
    if hl is not None:
        headers[HEADER_LENGTH] = str(hl)
    return client.post(f"/v2/models/{name}/infer", content=body, headers=headers)


def test_health_metadata_and_request_id(client: TestClient) -> None:
    assert client.get("/v2/health/live").status_code == 200  # public without a token
    assert client.get("/v2/health/ready").status_code == 200
    r = client.get("/v2", headers={**AUTH, "X-Request-ID": "abc-1"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "abc-1"
    assert "binary_tensor_data" in r.json()["extensions"]
    assert client.get("/v2", headers=AUTH).headers["x-request-id"]  # generated
    meta = client.get("/v2/models/mm", headers=AUTH).json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 16]}]
    assert client.get("/v2/models/mm/versions/1/ready", headers=AUTH).status_code == 200
    cfg = client.get("/v2/models/mm/config", headers=AUTH).json()
    assert cfg["dynamic_batching"]["max_batch_size"] == 8


@pytest.mark.parametrize("binary", [True, False])
def test_infer_matches_in_process(client: TestClient, binary: bool) -> None:
    rng = np.random.default_rng(1)
    feeds = {
        "a": rng.standard_normal((2, 3)).astype(np.float32),
        "b": rng.standard_normal((2, 3)).astype(np.float32),
        "k": np.array([[2], [3]], dtype=np.int64),
    }
    r = _infer(client, "two", feeds, binary=binary, binary_output=binary, request_id="q7")
    assert r.status_code == 200, r.text
    hl = r.headers.get(HEADER_LENGTH.lower())
    resp = decode_response(r.content, header_length=int(hl) if hl else None)
    assert resp.id == "q7" and resp.model_name == "two"
    out = resp.as_dict()
    np.testing.assert_allclose(out["sum"], feeds["a"] + feeds["b"], rtol=1e-6)
    np.testing.assert_allclose(out["scaled"], feeds["b"] * feeds["k"], rtol=1e-6)


def test_requested_outputs_only(client: TestClient) -> None:
    feeds = {
        "a": np.ones((1, 3), np.float32),
        "b": np.ones((1, 3), np.float32),
        "k": np.ones((1, 1), np.int64),
    }
    r = _infer(client, "two", feeds, outputs=["scaled"], binary_output=False)
    assert [o["name"] for o in r.json()["outputs"]] == ["scaled"]
    r = _infer(client, "two", feeds, outputs=["nope"])
    assert r.status_code == 400 and "no output(s) ['nope']" in r.json()["error"]


@pytest.mark.parametrize(
    ("case", "status", "match"),
    [
        ("unknown model", 404, "not served here"),
        ("unknown version", 404, "no version"),
        ("wrong datatype", 400, "datatype mismatch: got FP64, expected FP32"),
        ("wrong shape", 400, "expected float32"),
        ("truncated binary", 400, "truncated"),
        ("bad json", 400, "not valid JSON"),
        ("oversized body", 413, "exceeds the server's limit"),
        ("bad token", 401, "bearer token"),
        ("no token", 401, "bearer token"),
        ("bad header length", 400, "expected a byte count"),
    ],
)
def test_error_bodies(client: TestClient, case: str, status: int, match: str) -> None:
    x = np.zeros((1, 16), np.float32)
    body, hl = encode_request({"x": x})
    headers = {**AUTH, HEADER_LENGTH: str(hl)}
    url = "/v2/models/mm/infer"
    if case == "unknown model":
        url = "/v2/models/nope/infer"
    elif case == "unknown version":
        url = "/v2/models/mm/versions/9/infer"
    elif case == "wrong datatype":
        body, hl = encode_request({"x": x.astype(np.float64)})
        headers[HEADER_LENGTH] = str(hl)
    elif case == "wrong shape":
        body, hl = encode_request({"x": np.zeros((1, 15), np.float32)})
        headers[HEADER_LENGTH] = str(hl)
    elif case == "truncated binary":
        body = body[:-4]
    elif case == "bad json":
        body, headers = b"{oops", dict(AUTH)
    elif case == "oversized body":
        body, hl = encode_request({"x": np.zeros((2048, 16), np.float32)})
        headers[HEADER_LENGTH] = str(hl)
    elif case == "bad token":
        headers["Authorization"] = "Bearer wrong"
    elif case == "no token":
        del headers["Authorization"]
    elif case == "bad header length":
        headers[HEADER_LENGTH] = "ten"
    r = client.post(url, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert match in r.json()["error"]
    assert r.headers["x-request-id"]
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"


def test_oversized_chunked_body_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    r = client.post("/v2/models/mm/infer", content=chunks(), headers=AUTH)
    assert r.status_code == 413


def test_unknown_route_and_metrics(client: TestClient) -> None:
    r = client.get("/v2/nothing", headers=AUTH)
    assert r.status_code == 404 and "error" in r.json()
    _infer(client, "mm", {"x": np.ones((1, 16), np.float32)})
    text = client.get("/metrics", headers=AUTH).text
    assert 'nnperf_requests_total{model="mm",outcome="ok"}' in text
    assert 'nnperf_batch_size_bucket{le="1.0",model="mm"}' in text
    assert "nnperf_compute_duration_seconds_count" in text
    assert "nnperf_inflight_requests" in text
    assert client.get("/metrics").status_code == 401


def test_repository_refuses_escapes(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "ok" / "3").mkdir(parents=True)
    onnx.save(identity_model(), repo / "ok" / "3" / "model.onnx")
    onnx.save(identity_model(), repo / "flat.onnx")
    onnx.save(identity_model(), tmp_path / "secret.onnx")
    (repo / "link").mkdir()
    (repo / "link" / "model.onnx").symlink_to(tmp_path / "secret.onnx")
    (repo / "cfg").mkdir()
    (repo / "cfg" / "config.json").write_text(json.dumps({"model": "../../secret.onnx"}))
    r = ModelRepository(repo)
    assert r.names() == ["flat", "ok"]
    for bad in ["..", "../secret", "a/b", ".hidden", ""]:
        with pytest.raises(InvalidInputError):
            r.locate(bad)
    for outside in ["link", "cfg", "secret"]:
        with pytest.raises(NotFoundError):
            r.locate(outside)

    plane = DataPlane(repository=repo, defaults=ModelSettings(name="d", model="", max_inflight=5))
    app = create_app(plane)
    with TestClient(app) as c:
        index = c.post("/v2/repository/index").json()
        assert [e["name"] for e in index] == ["flat", "ok"]
        assert plane.get("ok").settings.max_inflight == 5
        assert c.post("/v2/repository/models/link/load").status_code == 404
        assert c.post("/v2/repository/models/..%2Fsecret/load").status_code in (400, 404)
        assert c.post("/v2/repository/models/flat/unload").status_code == 200
        assert c.get("/v2/models/flat").status_code == 404
        assert c.post("/v2/repository/models/flat/load").status_code == 200
        assert c.get("/v2/models/flat/ready").status_code == 200


def test_served_model_predict_from_python() -> None:
    async def main() -> None:
        settings = ModelSettings(name="mm", model=matmul_model(), max_batch_size=4, max_inflight=64)
        async with ServedModel(settings) as model:
            rng = np.random.default_rng(0)
            xs = [rng.standard_normal((1, 16)).astype(np.float32) for _ in range(32)]
            outs = await asyncio.gather(*(model.predict(x) for x in xs))
            import nnperf

            with nnperf.create(matmul_model()) as s:
                for x, (y,) in zip(xs, outs):
                    np.testing.assert_allclose(y, s.run(x)[0], rtol=1e-5, atol=1e-6)
            assert model.inflight == 0
        with pytest.raises(OverloadedError):
            await model.predict(xs[0])  # unloaded

    asyncio.run(main())


def test_tritonclient_over_loopback() -> None:
    import tritonclient.http as th
    from tritonclient.utils import InferenceServerException

    plane = _plane()
    with ServerHandle(create_app(plane, token=TOKEN, max_body_bytes=1 << 20)) as server:
        c = th.InferenceServerClient(f"127.0.0.1:{server.port}")
        assert c.is_server_live()
        # tritonclient adds its own headers to the dict it is given: pass a fresh one each call.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert c.is_server_ready(headers=dict(auth))
        assert c.is_model_ready("mm", headers=dict(auth))
        assert c.get_model_metadata("mm", headers=dict(auth))["outputs"][0]["name"] == "y"
        x = np.random.default_rng(3).standard_normal((3, 16)).astype(np.float32)
        import nnperf

        with nnperf.create(matmul_model()) as s:
            expected = s.run(x)[0]
        for binary in (True, False):
            inp = th.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            out = th.InferRequestedOutput("y", binary_data=binary)
            res = c.infer("mm", [inp], outputs=[out], request_id="t1", headers=dict(auth))
            np.testing.assert_allclose(res.as_numpy("y"), expected, rtol=1e-5, atol=1e-6)
            assert res.get_response()["id"] == "t1"
        # Error bodies reach tritonclient as its exception, with the status and our message.
        bad = th.InferInput("x", [1, 16], "FP64")
        bad.set_data_from_numpy(np.zeros((1, 16)), binary_data=True)
        with pytest.raises(InferenceServerException, match="datatype mismatch"):
            c.infer("mm", [bad], headers=dict(auth))
        with pytest.raises(InferenceServerException, match="not served here"):
            c.infer("nope", [inp], headers=dict(auth))
        with pytest.raises(InferenceServerException, match="bearer token"):
            c.infer("mm", [inp])
        big = th.InferInput("x", [20000, 16], "FP32")
        big.set_data_from_numpy(np.zeros((20000, 16), np.float32), binary_data=True)
        with pytest.raises(InferenceServerException, match="exceeds"):
            c.infer("mm", [big], headers=dict(auth))
        c.close()
