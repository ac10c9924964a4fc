"""The Ray Serve deployment: 2 replicas on a local Ray instance answer the same v2 requests."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

import nnperf
from nnperf.protocol import HEADER_LENGTH, decode_response, encode_request
from nnperf.serve.settings import ModelSettings
from tests.models import matmul_model


@pytest.mark.slow
def test_ray_two_replicas_serve_the_same_requests(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ray = pytest.importorskip("ray")
    serve = pytest.importorskip("ray.serve")
    import httpx
    import onnx

    from nnperf.serve.raysvc import build_deployment

    path = tmp_path / "mm.onnx"
    onnx.save(matmul_model(), path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = build_deployment(
            [ModelSettings(name="mm", model=str(path), max_batch_size=4)], replicas=2
        )
        serve.run(app, name="nnperf", route_prefix="/")
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while httpx.get(base + "/v2/health/ready", timeout=5).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        xs = np.random.default_rng(0).standard_normal((20, 1, 16)).astype(np.float32)
        with nnperf.create(matmul_model()) as sess:
            for x in xs:
                body, hl = encode_request({"x": x})
                r = httpx.post(base + "/v2/models/mm/infer", content=body,
                               headers={HEADER_LENGTH: str(hl)}, timeout=30)  # fmt: skip
                assert r.status_code == 200, r.text
                out = decode_response(r.content, header_length=int(r.headers[HEADER_LENGTH]))
                np.testing.assert_allclose(out.outputs[0].data, sess.run(x)[0], rtol=1e-5)
        status = serve.status().applications["nnperf"].deployments["nnperf"]
        assert status.replica_states.get("RUNNING") == 2
    finally:
        serve.shutdown()
        ray.shutdown()
