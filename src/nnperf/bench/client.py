"""The load generator's HTTP/1.1 client for KServe v2 servers (``nnperf bench --url``).

A small keep-alive client on asyncio streams rather than an HTTP library: as in MLPerf LoadGen,
the load generator's own cost per query must stay small next to the system under test (a few tens
of µs here, against hundreds for a general-purpose async client), or it would be measured too.
Works against any v2 server (nnperf, Triton, KServe, MLServer).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from nnperf.errors import InvalidInputError, NotFoundError
from nnperf.protocol import DATATYPES
from nnperf.types import TensorDesc

__all__ = ["Connection", "metadata", "request_bytes", "split_url", "tensor_descs"]


class Connection:
    """One HTTP/1.1 keep-alive connection (reconnects after the server closes it)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20
            )
        return self._reader, self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(self, payload: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send a ready-made request; return (status, lower-cased headers, body)."""
        reader, writer = await self._open()
        try:
            writer.write(payload)
            if len(payload) > 65536:
                await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                parts = []
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    parts.append(await reader.readexactly(size + 2))
                    if size == 0:
                        break
                body = b"".join(p[:-2] for p in parts)
            else:
                body = await reader.read()
                self.close()
            if headers.get("connection", "").lower() == "close":
                self.close()
            return status, headers, body
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise


def split_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise InvalidInputError(
            f"url: got {url!r}, expected http://HOST:PORT (https is not supported by the load "
            "generator)"
        )
    return parts.hostname, parts.port or 80


def request_bytes(
    host: str, port: int, path: str, body: bytes, extra: Mapping[str, str], method: str = "POST"
) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


async def metadata(
    conn: Connection, host: str, port: int, path: str, auth: Mapping[str, str]
) -> dict[str, Any]:
    status, _, body = await conn.request(request_bytes(host, port, path, b"", auth, "GET"))
    if status == 404:
        raise NotFoundError(f"the server has no model at {path}: {body[:300]!r}")
    if status != 200:
        raise InvalidInputError(f"GET {path}: HTTP {status}: {body[:300]!r}")
    data: dict[str, Any] = json.loads(body)
    return data


def tensor_descs(meta: Mapping[str, Any]) -> list[TensorDesc]:
    """The inputs a v2 model's metadata declares; ``-1`` dims are unknown (``None``), so a
    dynamic non-batch dim needs ``--shape``/``--dim`` like in process."""
    out = []
    for t in meta.get("inputs", []):
        dtype = DATATYPES.get(t["datatype"])
        if dtype is None or dtype == "object":
            raise InvalidInputError(
                f"input {t['name']!r} has datatype {t['datatype']}; the load generator makes "
                "numeric inputs only — pass inputs= explicitly"
            )
        shape = tuple(None if d < 0 else int(d) for d in t["shape"])
        out.append(TensorDesc(t["name"], shape, dtype))
    return out
