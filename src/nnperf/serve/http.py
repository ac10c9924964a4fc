"""The HTTP adapter: KServe v2 REST routes over a :class:`~nnperf.serve.dataplane.DataPlane`.

A thin Starlette app (Starlette is what FastAPI is built on; its plain routes cost less per
request than FastAPI's validation layer, and the v2 body is parsed by :mod:`.protocol` anyway):

* ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``
* ``GET /v2/models/{name}[/versions/{version}]``, ``…/ready``, ``…/config``
* ``POST /v2/models/{name}[/versions/{version}]/infer`` (JSON or binary tensor data)
* ``POST /v2/repository/index``, ``/v2/repository/models/{name}/load`` and ``…/unload``
* ``GET /metrics`` (Prometheus)

Every response carries ``X-Request-ID`` (the client's, or a new one). Errors are v2
``{"error": "..."}`` bodies with the status each :class:`~nnperf.errors.NnperfError` carries
(one warning line each in the ``nnperf.serve`` log, no traceback); ``503`` adds
``Retry-After``. With a bearer token set, every route but the two health probes needs
``Authorization: Bearer TOKEN``. One JSON line per request goes to the ``nnperf.serve.access``
logger.

Limits (:class:`~nnperf.serve.settings.ServerSettings`): an inference request takes its model's
``max_inflight`` place and its share of the body byte budget *before* its body is read, so a
refused request costs no memory; the body is read chunk by chunk against ``max_body_bytes`` and
a ``body_timeout_s`` deadline. Under uvicorn (:func:`run_server`, :class:`ServerHandle`),
:mod:`.connection` adds ``max_connections`` and ``header_timeout_s``. A client that disconnects
is one info line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

from nnperf.errors import InvalidInputError, MissingDependencyError, NnperfError, OverloadedError
from nnperf.protocol import HEADER_LENGTH, decode_request, encode_response
from nnperf.serve.connection import MAX_HEADER_BYTES, BindError, bind_socket, guarded_protocol
from nnperf.serve.dataplane import DataPlane
from nnperf.serve.settings import MIB, ServerSettings

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route
except ImportError as _exc:  # pragma: no cover - the serve extra brings starlette (via fastapi)
    raise MissingDependencyError("fastapi", "serve", "nnperf serve") from _exc

__all__ = [
    "BindError",
    "BodyTooLargeError",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "RequestTimeoutError",
    "ServerHandle",
    "UnauthorizedError",
    "bind_socket",
    "create_app",
    "run_server",
]

access_log = logging.getLogger("nnperf.serve.access")
log = logging.getLogger("nnperf.serve")

DEFAULT_MAX_BODY_BYTES = 64 * MIB
"""Largest request body accepted, in bytes (64 MiB; ``--max-body-mb``)."""

_OFFLOAD_BYTES = 256 * 1024
"""JSON bodies (or JSON-encoded outputs) above this size are parsed/encoded in a thread."""

_MAX_ERROR_CHARS = 800
"""Longest error message sent or logged (messages quote client data; it is cut, not echoed)."""

_MAX_REQUEST_ID = 128
"""Longest client ``X-Request-ID`` echoed back (longer ones are replaced by a new id)."""

REQUEST_ID = "X-Request-ID"

_CLOSE = "nnperf.close"
"""Scope key: the request's body was not read to its end, so its connection must close."""

_BYTES_IN = "nnperf.bytes_in"
"""Scope key: body bytes read (for the access log)."""


class UnauthorizedError(NnperfError):
    """Missing or wrong bearer token."""

    http_status: ClassVar[int] = 401


class BodyTooLargeError(InvalidInputError):
    """The request body is larger than the server's limit."""

    http_status: ClassVar[int] = 413


class RequestTimeoutError(InvalidInputError):
    """The request body did not arrive within the server's body timeout."""

    http_status: ClassVar[int] = 408


class _ClientDisconnected(Exception):
    """The client went away before its request was read; nobody is left to answer."""


Handler = Callable[[Request], Awaitable[Response]]


def _message(exc: object) -> str:
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


class _ByteBudget:
    """Bytes of request bodies read or held at once (one event loop: a plain counter)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


def _over_budget(budget: _ByteBudget, wanted: int) -> OverloadedError:
    return OverloadedError(
        f"the server holds {budget.used} bytes of request bodies and this one needs {wanted} "
        f"more, past its budget of {budget.limit} bytes; retry shortly, send smaller requests, "
        "or raise --body-budget-mb"
    )


@contextlib.asynccontextmanager
async def _body(
    request: Request, settings: ServerSettings, budget: _ByteBudget
) -> AsyncIterator[bytes]:
    """Read the request body against the size limit, the byte budget and the body deadline.

    The declared ``Content-Length`` is checked and reserved from the budget before a byte is
    read (a chunked body reserves chunk by chunk); the reservation is held until the ``with``
    ends, since decoded tensors are views of the body.

    Raises:
        BodyTooLargeError: over ``max_body_bytes`` (413).
        OverloadedError: the byte budget is spent (503).
        RequestTimeoutError: the body took longer than ``body_timeout_s`` (408).
        _ClientDisconnected: the client went away.
    """
    limit = settings.max_body_bytes
    scope = request.scope
    reserved = 0
    declared_text = request.headers.get("content-length")
    declared = None if declared_text is None else _byte_count(declared_text, "Content-Length")
    try:
        if declared is not None:
            if declared > limit:
                raise BodyTooLargeError(
                    f"request body of {declared} bytes exceeds the server's limit of {limit} "
                    "bytes; send smaller requests or restart the server with a larger "
                    "--max-body-mb"
                )
            if not budget.take(declared):
                raise _over_budget(budget, declared)
            reserved = declared
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            if task is not None:
                task.cancel()

        # One timer for the whole body (a 1 byte/s body is cut too); asyncio.wait_for per chunk
        # would cost ~16 µs a request against ~2 µs for this.
        deadline = loop.call_later(settings.body_timeout_s, expire)
        chunks: list[bytes] = []
        total = 0
        receive = request.receive
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientDisconnected(f"after {total} body bytes")
                chunk: bytes = message.get("body", b"")
                total += len(chunk)
                if total > limit:
                    raise BodyTooLargeError(
                        f"request body exceeds the server's limit of {limit} bytes; send smaller "
                        "requests or restart the server with a larger --max-body-mb"
                    )
                if total > reserved:
                    if not budget.take(total - reserved):
                        raise _over_budget(budget, total - reserved)
                    reserved = total
                if chunk:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if not expired:
                raise
            uncancel = getattr(task, "uncancel", None)
            if uncancel is not None:  # Python >= 3.11: the cancel was ours, not the server's
                uncancel()
            raise RequestTimeoutError(
                f"request body not received within {settings.body_timeout_s:g} s ({total} bytes "
                "arrived); send the body at once, or raise --body-timeout-s"
            ) from None
        finally:
            deadline.cancel()
        scope[_CLOSE] = False
        scope[_BYTES_IN] = total
        yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        budget.give(reserved)


def create_app(
    plane: DataPlane,
    settings: ServerSettings | None = None,
    *,
    token: str | None = None,
    max_body_bytes: int | None = None,
    retry_after_s: int | None = None,
    lifespan: bool = True,
    on_shutdown: Callable[[], None] | None = None,
) -> Starlette:
    """Build the v2 HTTP app over ``plane``.

    Args:
        plane: the data plane (started and closed by the app's lifespan when ``lifespan``).
        settings: the server's limits and address (default :class:`ServerSettings`'s defaults).
            :func:`run_server` and :class:`ServerHandle` read them from ``app.state.settings``.
        token: bearer token required on every route but the health probes; overrides
            ``settings.token`` when given.
        max_body_bytes: largest request body, in bytes; overrides ``settings.max_body_bytes``
            (the body budget grows to it if smaller).
        retry_after_s: ``Retry-After`` sent with 503 answers, in seconds; overrides
            ``settings.retry_after_s``.
        lifespan: start the data plane (load models) on startup and drain it on shutdown.
        on_shutdown: called once the data plane has drained (e.g. to write a trace); uvicorn
            re-raises SIGTERM after its shutdown, so code after ``run_server`` may never run.

    Raises:
        InvalidInputError: bad settings (a non-positive limit, an empty token...).
    """
    s = settings or ServerSettings()
    changes: dict[str, Any] = {}
    if token is not None:
        changes["token"] = token
    if retry_after_s is not None:
        changes["retry_after_s"] = retry_after_s
    if max_body_bytes is not None:
        changes["max_body_bytes"] = max_body_bytes
        if isinstance(max_body_bytes, int) and max_body_bytes > s.body_budget_bytes:
            changes["body_budget_bytes"] = max_body_bytes
    if token == "":
        raise InvalidInputError("token: got an empty string; expected a non-empty bearer token")
    s = s.replace(**changes) if changes else s
    expected_auth = f"Bearer {s.token}".encode() if s.token else None
    budget = _ByteBudget(s.body_budget_bytes)

    def endpoint(fn: Handler, *, public: bool = False) -> Handler:
        async def wrapped(request: Request) -> Response:
            start = time.perf_counter_ns()
            rid = request.headers.get("x-request-id")
            if not rid or len(rid) > _MAX_REQUEST_ID:
                rid = uuid.uuid4().hex
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
                response = _error_response(exc, s.retry_after_s)
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
            except _ClientDisconnected as exc:
                client = request.client
                log.info(
                    "client %s disconnected before its request %s %s was read (%s); not answered",
                    f"{client.host}:{client.port}" if client else "?",
                    request.method,
                    request.url.path,
                    exc,
                )
                response = Response(status_code=499)  # nginx's "client closed request": logs only
            except Exception as exc:  # a bug: answer 500 with the v2 body, log the traceback
                log.exception("internal error on %s %s", request.method, request.url.path)
                response = JSONResponse(
                    {"error": _message(f"internal server error: {type(exc).__name__}: {exc}")},
                    status_code=500,
                )
            response.headers[REQUEST_ID] = rid
            if request.scope.get(_CLOSE):
                # The body was refused unread (or partly read): do not read the rest into a
                # keep-alive connection.
                response.headers["Connection"] = "close"
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
                            "bytes_in": request.scope.get(_BYTES_IN, 0),
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
        request.scope[_CLOSE] = True  # until the body is read to its end
        model = model_of(request)
        if plane.draining:
            raise OverloadedError("server is shutting down; retry on another replica")
        # Admitted before its body is read: a refused request costs no memory.
        with model.admission():
            async with _body(request, s, budget) as body:
                raw_length = request.headers.get(HEADER_LENGTH.lower())
                header_length = (
                    None if raw_length is None else _byte_count(raw_length, HEADER_LENGTH)
                )
                json_bytes = len(body) if header_length is None else header_length
                if json_bytes > _OFFLOAD_BYTES:
                    decoded = await asyncio.to_thread(
                        decode_request, body, header_length=header_length, datatypes=model.datatypes
                    )
                else:
                    decoded = decode_request(
                        body, header_length=header_length, datatypes=model.datatypes
                    )
                result = await model.infer(decoded, admitted=True)
                json_elems = sum(
                    t.data.size for t in result.outputs if t.name not in result.binary_outputs
                )
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
            {
                "error": f"no route {request.method} {request.url.path[:200]}; see GET /v2 for the API"
            },
            status_code=404,
            headers={REQUEST_ID: uuid.uuid4().hex},
        )

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {"error": f"method {request.method} is not allowed on {request.url.path[:200]}"},
            status_code=405,
        )

    app = Starlette(
        routes=routes,
        lifespan=run_lifespan,
        exception_handlers={404: not_found, 405: method_not_allowed},
    )
    app.state.plane = plane
    app.state.settings = s
    return app


def _uvicorn_config(app: Starlette, log_level: str) -> Any:
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the serve extra brings uvicorn
        raise MissingDependencyError("uvicorn", "serve", "nnperf serve") from exc
    s: ServerSettings = app.state.settings
    return uvicorn.Config(
        app,
        host=s.host,
        port=s.port,
        log_level=log_level,
        access_log=False,  # ours is structured (nnperf.serve.access)
        lifespan="on",
        timeout_graceful_shutdown=30,
        server_header=False,
        http=guarded_protocol(s),
        timeout_keep_alive=s.keep_alive_s,  # type: ignore[arg-type]  # call_later takes floats
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )


def run_server(
    app: Starlette,
    *,
    sock: socket.socket | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM (blocking; call from the main thread).

    The address and limits are the app's settings (``create_app(settings=...)``). On SIGTERM
    the listening socket closes, requests in flight finish (up to 30 s), then the data plane
    drains and unloads its models.

    Args:
        app: from :func:`create_app`.
        sock: a socket from :func:`bind_socket` (default: bind the settings' host and port now).
        log_level: uvicorn's log level.

    Raises:
        BindError, InvalidInputError: as :func:`bind_socket`.
    """
    import uvicorn

    s: ServerSettings = app.state.settings
    if sock is None:
        sock = bind_socket(s.host, s.port)
    uvicorn.Server(_uvicorn_config(app, log_level)).run(sockets=[sock])


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
            BindError, InvalidInputError: the address cannot be bound.
            InvalidInputError: the server did not start within ``start_timeout_s``.
        """
        import uvicorn

        self._sock = bind_socket(host, port)
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(_uvicorn_config(app, log_level))
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="nnperf-serve",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise InvalidInputError(
                    f"server on {host}:{self.port} did not start within {start_timeout_s} s "
                    "(see the log above); is a model failing to load?"
                )
            time.sleep(0.01)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Shut down gracefully (finish requests in flight) and join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._sock.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
