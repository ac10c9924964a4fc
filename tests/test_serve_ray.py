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


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (Linux /proc)."""
    import os

    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    import os

    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and os.path.exists(f"/proc/{pid}")


@pytest.mark.slow
def test_sigterm_stops_the_ray_processes_it_started(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Finding 8: after SIGTERM, no Ray process the server started (GCS, raylet, dashboard and
    runtime-env agents, replicas) is left running."""
    pytest.importorskip("ray.serve")
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    env.pop("RAY_ADDRESS", None)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nnperf", "serve", "zoo:identity", "--ray", "--replicas", "1",
             "--port", str(port)],
            stdout=out, stderr=out, env=env, start_new_session=True,
        )  # fmt: skip
    ray_pids: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            announced = "note: Ray Serve adds a proxy hop" in log.read_text()
            try:
                url = f"http://127.0.0.1:{port}/v2/health/ready"
                if announced and httpx.get(url, timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        ray_pids = _descendants(proc.pid)
        assert ray_pids, "no Ray processes found under the server"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log.read_text()[-3000:]
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in ray_pids) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = sorted(p for p in ray_pids if _alive(p))
        names = {p: open(f"/proc/{p}/cmdline").read().replace("\0", " ")[:100] for p in left}
        assert not left, f"still running after SIGTERM: {names}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in ray_pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
