"""The HTTP adapter: KServe v2 REST routes over a :class:`~nnperf.serve.dataplane.DataPlane`.

A thin Starlette app (Starlette is what FastAPI is built on; its plain routes cost less per
request than FastAPI's validation layer, and the v2 body is parsed by :mod:`.protocol` anyway):

* ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``
* ``GET /v2/models/{name}[/versions/{version}]``, ``…/ready``, ``…/config``
* ``POST /v2/models/{name}[/versions/{version}]/infer`` (JSON or binary tensor data)
* ``POST /v2/repository/index``, ``/v2/repository/models/{name}/load`` and ``…/unload``
* ``GET /metrics`` (Prometheus)

Every response carries ``X-Request-ID`` (the client's, or a new one). Errors are v2
``{"error": "..."}`` bodies with the status each :class:`~nnperf.errors.NnperfError` carries;
``503`` adds ``Retry-After``. With a bearer token set, every route but the two health probes
needs ``Authorization: Bearer TOKEN``. One JSON line per request goes to the
``nnperf.serve.access`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

from nnperf.errors import InvalidInputError, MissingDependencyError, NnperfError, OverloadedError
from nnperf.protocol import HEADER_LENGTH, decode_request, encode_response
from nnperf.serve.dataplane import DataPlane

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError as _exc:  # pragma: no cover - the serve extra brings starlette (via fastapi)
    raise MissingDependencyError("fastapi", "serve", "nnperf serve") from _exc

__all__ = [
    "BodyTooLargeError",
    "DEFAULT_MAX_BODY_BYTES",
    "ServerHandle",
    "UnauthorizedError",
    "create_app",
    "run_server",
]

access_log = logging.getLogger("nnperf.serve.access")
log = logging.getLogger("nnperf.serve")

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest request body accepted, in bytes (64 MiB; ``--max-body-mb``)."""

_OFFLOAD_BYTES = 256 * 1024
"""JSON bodies (or JSON-encoded outputs) above this size are parsed/encoded in a thread."""

REQUEST_ID = "X-Request-ID"


class UnauthorizedError(NnperfError):
    """Missing or wrong bearer token."""

    http_status: ClassVar[int] = 401


class BodyTooLargeError(InvalidInputError):
    """The request body is larger than the server's limit."""

    http_status: ClassVar[int] = 413


Handler = Callable[[Request], Awaitable[Response]]


_MAX_ERROR_CHARS = 800
"""Longest error message sent or logged (messages quote client data; it is cut, not echoed)."""


def _message(exc: BaseException) -> str:
    text = str(exc)
    if len(text) > _MAX_ERROR_CHARS:
        text = text[: _MAX_ERROR_CHARS - 40] + f"... ({len(text)} characters)"
    return text


def _error_response(exc: NnperfError, retry_after_s: int) -> Response:
    headers = {}
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(retry_after_s)
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": _message(exc)}, status_code=exc.http_status, headers=headers)


def _byte_count(text: str, name: str) -> int:
    """A header holding a byte count: ASCII digits only (``int()`` also takes ``1_0``, ``+1``,
    spaces and non-ASCII digits)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        shown = text[:40] + ("..." if len(text) > 40 else "")
        raise InvalidInputError(
            f"{name}: got {shown!r}, expected a byte count (ASCII digits only, e.g. 1024)"
        )
    return int(text)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        size = _byte_count(declared, "Content-Length")
        if size > limit:
            raise BodyTooLargeError(
                f"request body of {size} bytes exceeds the server's limit of {limit} bytes; "
                "send smaller requests or restart the server with a larger --max-body-mb"
            )
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise BodyTooLargeError(
                f"request body exceeds the server's limit of {limit} bytes; send smaller "
                "requests or restart the server with a larger --max-body-mb"
            )
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def create_app(
    plane: DataPlane,
    *,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    retry_after_s: int = 1,
    lifespan: bool = True,
    on_shutdown: Callable[[], None] | None = None,
) -> Starlette:
    """Build the v2 HTTP app over ``plane``.

    Args:
        plane: the data plane (started and closed by the app's lifespan when ``lifespan``).
        token: bearer token required on every route but the health probes; ``None``: open.
        max_body_bytes: largest request body, in bytes (default 64 MiB).
        retry_after_s: ``Retry-After`` sent with 503 answers, in seconds (default 1).
        lifespan: start the data plane (load models) on startup and drain it on shutdown.
        on_shutdown: called once the data plane has drained (e.g. to write a trace); uvicorn
            re-raises SIGTERM after its shutdown, so code after ``run_server`` may never run.

    Raises:
        InvalidInputError: a non-positive body limit or an empty token.
    """
    if max_body_bytes < 1:
        raise InvalidInputError(f"max_body_bytes: got {max_body_bytes}, expected >= 1")
    if token is not None and not token:
        raise InvalidInputError("token: got an empty string; expected a non-empty bearer token")
    expected_auth = f"Bearer {token}".encode() if token else None

    def endpoint(fn: Handler, *, public: bool = False) -> Handler:
        async def wrapped(request: Request) -> Response:
            start = time.perf_counter_ns()
            rid = request.headers.get("x-request-id") or uuid.uuid4().hex
            try:
                if expected_auth is not None and not public:
                    got = request.headers.get("authorization", "").encode()
                    if not hmac.compare_digest(got, expected_auth):
                        raise UnauthorizedError(
                            "missing or wrong bearer token; expected header "
                            "'Authorization: Bearer TOKEN' with the server's --token"
                        )
                response = await fn(request)
            except NnperfError as exc:
                response = _error_response(exc, retry_after_s)
                # One line per refused request, no traceback: the client's mistake (or the
                # engine's failure on its input) is not the server's bug. Overload is routine.
                log.log(
                    logging.INFO if isinstance(exc, OverloadedError) else logging.WARNING,
                    "%s %s -> %d %s: %s",
                    request.method,
                    request.url.path,
                    exc.http_status,
                    type(exc).__name__,
                    _message(exc),
                )
            except Exception as exc:  # a bug: answer 500 with the v2 body, log the traceback
                log.exception("internal error on %s %s", request.method, request.url.path)
                response = JSONResponse(
                    {"error": f"internal server error: {type(exc).__name__}: {exc}"},
                    status_code=500,
                )
            response.headers[REQUEST_ID] = rid
            if access_log.isEnabledFor(logging.INFO):
                client = request.client
                access_log.info(
                    json.dumps(
                        {
                            "ts": round(time.time(), 6),
                            "request_id": rid,
                            "method": request.method,
                            "path": request.url.path,
                            "model": request.path_params.get("name"),
                            "status": response.status_code,
                            "duration_ms": round((time.perf_counter_ns() - start) / 1e6, 3),
                            "bytes_in": int(request.headers.get("content-length") or 0),
                            "bytes_out": len(response.body),
                            "client": f"{client.host}:{client.port}" if client else None,
                        },
                        separators=(",", ":"),
                    )
                )
            return response

        return wrapped

    async def server_metadata(_: Request) -> Response:
        return JSONResponse(plane.server_metadata())

    async def live(_: Request) -> Response:
        return Response(status_code=200 if plane.live() else 503)

    async def ready(_: Request) -> Response:
        if plane.ready():
            return Response(status_code=200)
        raise OverloadedError("server is not ready (loading models or shutting down)")

    def model_of(request: Request) -> Any:
        return plane.get(request.path_params["name"], request.path_params.get("version"))

    async def model_metadata(request: Request) -> Response:
        return JSONResponse(model_of(request).metadata())

    async def model_ready(request: Request) -> Response:
        model = model_of(request)
        if model.ready:
            return Response(status_code=200)
        raise OverloadedError(f"model {model.name!r} is not ready")

    async def model_config(request: Request) -> Response:
        return JSONResponse(model_of(request).model_config())

    async def infer(request: Request) -> Response:
        model = model_of(request)
        body = await _read_body(request, max_body_bytes)
        raw_length = request.headers.get(HEADER_LENGTH.lower())
        header_length = None if raw_length is None else _byte_count(raw_length, HEADER_LENGTH)
        json_bytes = len(body) if header_length is None else header_length
        if json_bytes > _OFFLOAD_BYTES:
            decoded = await asyncio.to_thread(
                decode_request, body, header_length=header_length, datatypes=model.datatypes
            )
        else:
            decoded = decode_request(body, header_length=header_length, datatypes=model.datatypes)
        if plane.draining:
            raise OverloadedError("server is shutting down; retry on another replica")
        result = await model.infer(decoded)
        json_elems = sum(t.data.size for t in result.outputs if t.name not in result.binary_outputs)
        if json_elems * 8 > _OFFLOAD_BYTES:
            payload, out_length = await asyncio.to_thread(encode_response, result)
        else:
            payload, out_length = encode_response(result)
        if out_length is None:
            return Response(payload, media_type="application/json")
        return Response(
            payload,
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(out_length)},
        )

    async def repository_index(_: Request) -> Response:
        return JSONResponse(plane.repository_index())

    async def repository_load(request: Request) -> Response:
        await plane.load_model(request.path_params["name"])
        return Response(status_code=200)

    async def repository_unload(request: Request) -> Response:
        await plane.unload_model(request.path_params["name"])
        return Response(status_code=200)

    async def metrics(_: Request) -> Response:
        body, content_type = plane.metrics.exposition()
        return Response(body, media_type=content_type)

    m = "/v2/models/{name}"
    mv = "/v2/models/{name}/versions/{version}"
    # Starlette tries routes in order: the inference routes (nearly all traffic) go first.
    routes = [Route(prefix + "/infer", endpoint(infer), methods=["POST"]) for prefix in (m, mv)]
    routes += [
        Route("/v2", endpoint(server_metadata), methods=["GET"]),
        Route("/v2/health/live", endpoint(live, public=True), methods=["GET"]),
        Route("/v2/health/ready", endpoint(ready, public=True), methods=["GET"]),
        Route("/v2/repository/index", endpoint(repository_index), methods=["POST", "GET"]),
        Route("/v2/repository/models/{name}/load", endpoint(repository_load), methods=["POST"]),
        Route("/v2/repository/models/{name}/unload", endpoint(repository_unload), methods=["POST"]),
        Route("/metrics", endpoint(metrics), methods=["GET"]),
    ]
    for prefix in (m, mv):
        routes += [
            Route(prefix, endpoint(model_metadata), methods=["GET"]),
            Route(prefix + "/ready", endpoint(model_ready), methods=["GET"]),
            Route(prefix + "/config", endpoint(model_config), methods=["GET"]),
        ]

    @contextlib.asynccontextmanager
    async def run_lifespan(_: Starlette) -> AsyncIterator[None]:
        if lifespan:
            await plane.start()
        try:
            yield
        finally:
            try:
                if lifespan:
                    await plane.close()
            finally:
                if on_shutdown is not None:
                    on_shutdown()

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {"error": f"no route {request.method} {request.url.path}; see GET /v2 for the API"},
            status_code=404,
            headers={REQUEST_ID: request.headers.get("x-request-id") or uuid.uuid4().hex},
        )

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {"error": f"method {request.method} is not allowed on {request.url.path}"},
            status_code=405,
        )

    app = Starlette(
        routes=routes,
        lifespan=run_lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed},
    )
    app.state.plane = plane
    return app


def _uvicorn_config(app: Starlette, host: str, port: int, log_level: str) -> Any:
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the serve extra brings uvicorn
        raise MissingDependencyError("uvicorn", "serve", "nnperf serve") from exc
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,  # ours is structured (nnperf.serve.access)
        lifespan="on",
        timeout_graceful_shutdown=30,
        server_header=False,
    )


def run_server(
    app: Starlette, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (blocking; call from the main thread).

    On SIGTERM the listening socket closes, requests in flight finish (up to 30 s), then the
    data plane drains and unloads its models.
    """
    import uvicorn

    uvicorn.Server(_uvicorn_config(app, host, port, log_level)).run()


class ServerHandle:
    """A uvicorn server on a background thread (tests, benchmarks, notebooks).

    Example::

        with ServerHandle(create_app(plane)) as server:
            httpx.get(server.url + "/v2/health/ready")
    """

    def __init__(
        self,
        app: Starlette,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        start_timeout_s: float = 120.0,
    ) -> None:
        """Start serving ``app`` on ``host:port`` (port 0: a free port) and wait until it listens.

        Raises:
            InvalidInputError: the server did not start within ``start_timeout_s``.
        """
        import uvicorn

        self._server = uvicorn.Server(_uvicorn_config(app, host, port, log_level))
        self._thread = threading.Thread(target=self._server.run, name="nnperf-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise InvalidInputError(
                    f"server on {host}:{port} did not start within {start_timeout_s} s "
                    "(see the log above); is the port taken or a model failing to load?"
                )
            time.sleep(0.01)
        sock = self._server.servers[0].sockets[0]
        self.host = host
        self.port = int(sock.getsockname()[1])
        self.url = f"http://{host}:{self.port}"

    def stop(self, timeout_s: float = 60.0) -> None:
        """Shut down gracefully (finish requests in flight) and join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
