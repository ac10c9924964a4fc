"""The server's limits against hostile or broken clients (issue 13, findings 2, 3, 5 and 7):
admission and a byte budget before a body is read, header and body deadlines, a connection
limit, disconnects logged as such, the port checked and bound first, a bad repository model
skipped. In process (the ASGI app driven directly) and over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from starlette.testclient import TestClient

from nnperf.cli import main
from nnperf.errors import InvalidInputError, ModelLoadError
from nnperf.protocol import encode_request
from nnperf.serve import DataPlane, ModelSettings
from nnperf.serve.http import ServerHandle, create_app
from nnperf.serve.settings import ServerSettings
from tests.models import identity_model

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


# -- the ASGI app in process -----------------------------------------------------------------------
def _scope(path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


class _Client:
    """One request to the ASGI app: what it sent back, and how often it asked for the body."""

    def __init__(
        self, app: Any, headers: dict[str, str], chunks: list[bytes | None], *, stall: bool = False
    ) -> None:
        # chunks: body pieces in order; None: the client disconnects there. ``stall``: after the
        # last piece the client sends nothing more (the body stays incomplete).
        self.app = app
        self.headers = headers
        self.chunks = list(chunks)
        self.stall = stall
        self.receives = 0
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.body = b""

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        if not self.chunks:
            await asyncio.sleep(3600)
        chunk = self.chunks.pop(0)
        if chunk is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks) or self.stall}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.response_headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    async def run(self) -> None:
        await self.app(_scope("/v2/models/m/infer", self.headers), self.receive, self.send)


def _plane(max_inflight: int = 128) -> DataPlane:
    return DataPlane([ModelSettings(name="m", model=identity_model(4), max_inflight=max_inflight)])


def _request(rows: int = 1) -> tuple[bytes, dict[str, str]]:
    body, hl = encode_request({"x": np.ones((rows, 4), np.float32)}, binary_output=False)
    return body, {"content-length": str(len(body)), "inference-header-content-length": str(hl)}


def test_admission_happens_before_the_body_is_read() -> None:
    """Finding 2: with max_inflight 1, a request whose body is still arriving holds the place;
    the next is refused with 503 without its body ever being asked for."""

    async def main() -> None:
        plane = _plane(max_inflight=1)
        await plane.start()
        app = create_app(plane, lifespan=False)
        body, headers = _request()
        slow = _Client(app, headers, [body[:10]], stall=True)
        task = asyncio.create_task(slow.run())
        await asyncio.sleep(0.05)
        refused = _Client(app, headers, [body])
        await refused.run()
        assert refused.status == 503 and refused.receives == 0
        assert refused.response_headers.get("connection") == "close"
        assert "max_inflight" in json.loads(refused.body)["error"]
        task.cancel()
        await plane.close(timeout_s=0)

    asyncio.run(main())


def test_body_budget_is_reserved_before_reading() -> None:
    """Finding 2: the declared Content-Length is reserved from the byte budget first; a body
    that does not fit is refused unread, and the budget comes back when a request ends."""

    async def main() -> None:
        plane = _plane()
        await plane.start()
        settings = ServerSettings(max_body_bytes=1 * MIB, body_budget_bytes=1 * MIB)
        app = create_app(plane, settings, lifespan=False)
        body, headers = _request()
        big = {**headers, "content-length": str(MIB - 10)}
        holder = _Client(app, big, [b"x"], stall=True)  # reserves ~1 MiB
        task = asyncio.create_task(holder.run())
        await asyncio.sleep(0.05)
        refused = _Client(app, headers, [body])
        await refused.run()
        assert refused.status == 503 and refused.receives == 0
        assert "budget" in json.loads(refused.body)["error"]
        task.cancel()
        await asyncio.sleep(0)
        ok = _Client(app, headers, [body])
        await ok.run()
        assert ok.status == 200, ok.body
        await plane.close(timeout_s=0)

    asyncio.run(main())


def test_declared_oversized_body_is_413_unread() -> None:
    async def main() -> None:
        plane = _plane()
        await plane.start()
        app = create_app(plane, ServerSettings(max_body_bytes=MIB), lifespan=False)
        client = _Client(app, {"content-length": str(60 * MIB)}, [b"x" * 100])
        await client.run()
        assert client.status == 413 and client.receives == 0
        assert client.response_headers.get("connection") == "close"
        await plane.close(timeout_s=0)

    asyncio.run(main())


def test_slow_body_is_cut_with_408() -> None:
    """Finding 3: a body that does not arrive within body_timeout_s is answered 408."""

    async def main() -> None:
        plane = _plane()
        await plane.start()
        app = create_app(plane, ServerSettings(body_timeout_s=0.2), lifespan=False)
        body, headers = _request()
        client = _Client(app, headers, [body[:5]], stall=True)
        start = time.monotonic()
        await client.run()
        assert client.status == 408 and time.monotonic() - start < 2
        assert "--body-timeout-s" in json.loads(client.body)["error"]
        # The server's own task was not left cancelled: the next request on the loop runs.
        ok = _Client(app, headers, [body])
        await ok.run()
        assert ok.status == 200
        await plane.close(timeout_s=0)

    asyncio.run(main())


def test_client_disconnect_is_one_info_line(caplog: pytest.LogCaptureFixture) -> None:
    """Finding 5: a client that leaves mid-body is logged as that, once, without a traceback."""

    async def main() -> None:
        plane = _plane()
        await plane.start()
        app = create_app(plane, lifespan=False)
        body, headers = _request()
        client = _Client(app, headers, [body[:7], None])
        await client.run()
        await plane.close(timeout_s=0)

    with caplog.at_level(logging.INFO, logger="nnperf"):
        asyncio.run(main())
    serve = [r for r in caplog.records if r.name == "nnperf.serve" and "disconnected" in r.message]
    assert len(serve) == 1 and serve[0].levelno == logging.INFO
    assert all(r.exc_info is None for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- over loopback sockets -------------------------------------------------------------------------
@pytest.fixture
def server() -> Iterator[ServerHandle]:
    settings = ServerSettings(
        port=0,
        header_timeout_s=0.5,
        body_timeout_s=0.5,
        max_connections=32,
        max_body_bytes=4 * MIB,
        body_budget_bytes=8 * MIB,
    )
    with ServerHandle(create_app(_plane(max_inflight=2), settings)) as handle:
        yield handle


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``seconds``; what it sent before."""
    sock.settimeout(0.1)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, got
        if not data:
            return True, got
        got += data
    return False, got


def test_slowloris_connections_are_closed(server: ServerHandle) -> None:
    """Finding 3: 40 sockets dribbling header bytes are closed after header_timeout_s."""
    socks = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    # Only the first 32 fit (max_connections); the others are refused at once with 503.
    time.sleep(0.3)
    for s in socks:
        try:
            s.sendall(b"X")  # a byte every 0.3 s keeps no connection alive
        except OSError:
            pass  # already closed by the server
    start = time.monotonic()
    results = [_closed_within(s, 3.0) for s in socks]
    for s in socks:
        s.close()
    assert all(closed for closed, _ in results)
    assert time.monotonic() - start < 3.0
    statuses = [got.split(b" ", 2)[1] for _, got in results if got]
    assert set(statuses) <= {b"408", b"503"} and statuses.count(b"408") >= 30
    # The server still answers.
    import httpx

    assert httpx.get(server.url + "/v2/health/ready").status_code == 200


def test_idle_connections_close_silently(server: ServerHandle) -> None:
    """A connection that sent nothing (or finished its requests) is closed without a 408 that
    could pass for the answer to a request the client is just sending."""
    s = socket.create_connection(("127.0.0.1", server.port))
    closed, got = _closed_within(s, 3.0)
    s.close()
    assert closed and got == b""
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    # generous: the idle deadline is 0.5 s, but a loaded 2-core machine can hold the loop up
    closed, got = _closed_within(s, 8.0)
    s.close()
    assert closed and got.startswith(b"HTTP/1.1 200") and b"408" not in got


def test_oversized_headers_are_431(server: ServerHandle) -> None:
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000)
    closed, got = _closed_within(s, 3.0)
    s.close()
    assert closed and (got.startswith(b"HTTP/1.1 431") or got.startswith(b"HTTP/1.1 400"))


def test_held_bodies_are_refused_unread_over_loopback(server: ServerHandle) -> None:
    """Finding 2 over sockets: 12 clients declare 3 MiB bodies and send a few bytes: 2 are
    admitted (max_inflight 2) and cut at the body deadline, the rest get 503 at once."""
    body, headers = _request()
    head = (
        "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: "
        f"{3 * MIB}\r\nInference-Header-Content-Length: {headers['inference-header-content-length']}"
        "\r\n\r\n"
    ).encode()
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(12)]
    for s in socks:
        s.sendall(head + body[:20])
    results = [_closed_within(s, 3.0) for s in socks]
    for s in socks:
        s.close()
    statuses = [got.split(b" ", 2)[1] for _, got in results]
    assert statuses.count(b"503") >= 10 and set(statuses) <= {b"503", b"408"}
    assert all(closed for closed, _ in results)


def test_client_disconnect_over_loopback_is_not_an_error(
    server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    body, headers = _request()
    with caplog.at_level(logging.INFO, logger="nnperf"):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(
            f"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"Inference-Header-Content-Length: {headers['inference-header-content-length']}"
            "\r\n\r\n".encode()
            + body[:10]
        )
        time.sleep(0.1)
        s.close()
        time.sleep(0.3)
    assert any("disconnected" in r.message for r in caplog.records if r.name == "nnperf.serve")
    assert all(r.exc_info is None for r in caplog.records)


# -- start-up: port, repository ------------------------------------------------------------------
def test_port_in_use_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 7: a taken port is an environment failure: exit 1, one line naming the port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "zoo:identity", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnperf: error:")
    assert f"port {port}" in err[0] and "--port" in err[0]


def test_bad_host_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "zoo:identity", "--host", "no-such-host.invalid", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--host" in err[0]


def test_port_zero_announces_the_port_it_bound(tmp_path: Path) -> None:
    """Finding 7: the announced port is the bound one (was: --port 99999 bound 34463)."""
    import httpx

    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nnperf", "serve", "zoo:identity", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            assert proc.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()
            for line in Path(log.name).read_text().splitlines():
                if line.startswith("nnperf serve: http://127.0.0.1:"):
                    port = int(line.split(":")[3].split("/")[0])
            time.sleep(0.1)
        assert port > 0
        assert httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)


def _repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "good").mkdir(parents=True)
    onnx.save(identity_model(4), repo / "good" / "model.onnx")
    (repo / "corrupt.onnx").write_bytes(b"not an onnx file")
    (repo / "badcfg").mkdir()
    onnx.save(identity_model(4), repo / "badcfg" / "model.onnx")
    (repo / "badcfg" / "config.json").write_text("{not json")
    return repo


def test_bad_repository_model_is_skipped_and_reported(tmp_path: Path) -> None:
    """Finding 7: one bad model no longer stops the server; it is listed with the reason."""
    plane = DataPlane(repository=_repository(tmp_path))
    with TestClient(create_app(plane)) as c:
        assert c.get("/v2/health/ready").status_code == 200
        assert c.get("/v2/models/good/ready").status_code == 200
        index = {e["name"]: e for e in c.post("/v2/repository/index").json()}
        assert index["good"]["state"] == "READY"
        for bad in ("corrupt", "badcfg"):
            assert index[bad]["state"] == "UNAVAILABLE" and index[bad]["reason"]
            r = c.get(f"/v2/models/{bad}/ready")
            assert r.status_code == 404 and "failed to load" in r.json()["error"]
        x = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        assert c.post("/v2/models/good/infer", json=x).status_code == 200


def test_strict_repository_stops_on_a_bad_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plane = DataPlane(repository=_repository(tmp_path), strict=True)
    with pytest.raises(ModelLoadError):
        asyncio.run(plane.start())
    asyncio.run(plane.close(timeout_s=0))
    repo = str(_repository(tmp_path / "again"))
    # a model that does not load is a runtime failure: exit 1 (usage errors are 2)
    assert main(["serve", "--model-repository", repo, "--port", "0", "--strict"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnperf: error:")


def test_server_settings_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="65535"):
        ServerSettings(port=99999)
    with pytest.raises(InvalidInputError, match="body_budget_bytes"):
        ServerSettings(max_body_bytes=10 * MIB, body_budget_bytes=MIB)
    with pytest.raises(InvalidInputError, match="header_timeout_s"):
        ServerSettings(header_timeout_s=float("nan"))


def test_cli_help_defaults_match_server_settings() -> None:
    from nnperf.cli.serve import _DEFAULTS, DEFAULT_MAX_INFLIGHT
    from nnperf.serve.settings import DEFAULT_MAX_INFLIGHT as MODEL_DEFAULT

    s = ServerSettings()
    assert DEFAULT_MAX_INFLIGHT == MODEL_DEFAULT
    for name in (
        "max_body_bytes",
        "body_budget_bytes",
        "max_connections",
        "header_timeout_s",
        "body_timeout_s",
        "keep_alive_s",
    ):
        assert getattr(_DEFAULTS, name) == getattr(s, name), name


def test_concurrent_starts_wait_for_the_same_load() -> None:
    """A Ray replica starts its data plane on its first requests, which arrive together: the
    second must wait for the models, not find none (was: 404 'expected one of []')."""

    async def main() -> None:
        plane = _plane()
        first = asyncio.create_task(plane.start())
        await asyncio.sleep(0)
        assert not plane.ready()
        await asyncio.gather(plane.start(), first)
        assert plane.ready() and list(plane.models) == ["m"]
        await plane.close(timeout_s=0)

    asyncio.run(main())
