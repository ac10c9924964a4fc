"""The connection layer under uvicorn: binding the listening socket, and the limits that act
before a request reaches the app (a connection limit, a header deadline, a header size cap).

uvicorn's ``limit_concurrency`` answers 503 only once a request's headers are in, and it has no
deadline for them: a connection that sends a byte every few seconds (slowloris) stays open for
ever, and its protocol buffers whatever headers arrive. :func:`guarded_protocol` adds both
limits to uvicorn's own HTTP protocol class; the body's limits (size, byte budget, deadline)
are the app's (:mod:`nnperf.serve.http`).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
from typing import Any

from nnperf.errors import InvalidInputError, NnperfError
from nnperf.serve.settings import ServerSettings

__all__ = ["BindError", "MAX_HEADER_BYTES", "bind_socket", "guarded_protocol"]

log = logging.getLogger("nnperf.serve")

MAX_HEADER_BYTES = 64 * 1024
"""Most bytes a client may send before its request headers are complete (then 431, closed)."""


class BindError(NnperfError):
    """The server cannot listen on its address (port in use, no permission): an environment
    failure, not bad input (``nnperf serve`` exits 1 on it)."""


def _refusal(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 response written straight to a transport (before any request is read)."""
    body = json.dumps({"error": message}).encode()
    phrase = {408: "Request Timeout", 431: "Request Header Fields Too Large"}.get(
        status, "Service Unavailable"
    )
    return (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
        + ("retry-after: 1\r\n" if status == 503 else "")
        + "\r\n"
    ).encode() + body


def guarded_protocol(settings: ServerSettings) -> type[Any]:
    """uvicorn's HTTP protocol class plus ``max_connections``, ``header_timeout_s`` and a
    :data:`MAX_HEADER_BYTES` cap.

    The header deadline runs from the connection's start and again from the end of each
    response; it stops when the next request's headers are complete (uvicorn then makes a new
    request cycle). A connection past the limit is answered 503 and closed at once.
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    limit = settings.max_connections
    header_timeout_s = settings.header_timeout_s
    too_many = _refusal(
        503,
        f"the server has {limit} connections open (its --max-connections); retry shortly",
    )
    slow = _refusal(
        408, f"request headers not received within {header_timeout_s:g} s; connection closed"
    )
    too_big = _refusal(431, f"request headers exceed {MAX_HEADER_BYTES} bytes; connection closed")

    class GuardedProtocol(AutoHTTPProtocol):  # type: ignore[valid-type,misc]
        _nn_timer: asyncio.TimerHandle | None = None
        _nn_cycle: Any = None
        _nn_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > limit:
                log.info(
                    "refused a connection: %d open, --max-connections %d",
                    len(self.connections) - 1,
                    limit,
                )
                transport.write(too_many)
                transport.close()
                return
            self._nn_arm()

        def _nn_arm(self) -> None:
            if self._nn_timer is not None:
                self._nn_timer.cancel()
            self._nn_cycle = self.cycle
            self._nn_bytes = 0
            self._nn_timer = self.loop.call_later(header_timeout_s, self._nn_expire)

        def _nn_waiting(self) -> bool:
            """No request in progress and no new one's headers complete since the arming."""
            cycle = self.cycle
            return cycle is self._nn_cycle and (cycle is None or cycle.response_complete)

        def _nn_expire(self) -> None:
            self._nn_timer = None
            if not self._nn_waiting() or self.transport.is_closing():
                return
            if self._nn_bytes:  # part of a request head came: say why it is cut
                log.info(
                    "closed a connection from %s: no complete request headers within %g s",
                    _peer(self.client),
                    header_timeout_s,
                )
                self.transport.write(slow)
            # An idle connection closes silently (as uvicorn's keep-alive timeout does): a 408
            # there could pass for the answer to a request the client is sending just now.
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            waiting = self._nn_timer is not None and self._nn_waiting()
            super().data_received(data)
            if not waiting:
                return
            if self.cycle is not self._nn_cycle:  # headers complete: the body is the app's
                if self._nn_timer is not None:
                    self._nn_timer.cancel()
                    self._nn_timer = None
                return
            self._nn_bytes += len(data)
            if self._nn_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                log.info(
                    "closed a connection from %s: request headers over %d bytes",
                    _peer(self.client),
                    MAX_HEADER_BYTES,
                )
                self.transport.write(too_big)
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._nn_arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._nn_timer is not None:
                self._nn_timer.cancel()
                self._nn_timer = None
            super().connection_lost(exc)

    return GuardedProtocol


def _peer(client: Any) -> str:
    return f"{client[0]}:{client[1]}" if client else "?"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    Binding before the server starts makes a taken port one clear error, and gives the real
    port to announce.

    Raises:
        InvalidInputError: ``host`` is not an address of this machine, or the port is out of
            range.
        BindError: the port is in use, or binding it needs privileges.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port: got {port!r}, expected 1 to 65535 (or 0 for any free port)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInputError(
            f"--host {host!r} is not an address of this machine ({exc.strerror}); expected e.g. "
            "127.0.0.1 (loopback) or 0.0.0.0 (every interface)"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise BindError(
                f"port {port} on {host} is in use by another process; stop it, or choose another "
                "--port (--port 0 picks a free one)"
            ) from None
        if exc.errno == errno.EACCES:
            raise BindError(
                f"binding port {port} on {host} needs privileges this process lacks; choose a "
                "port of 1024 or above"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidInputError(
                f"--host {host!r} is not an address of this machine; expected e.g. 127.0.0.1"
            ) from None
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock
