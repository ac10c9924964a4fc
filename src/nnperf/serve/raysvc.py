"""Scale-out with Ray Serve: the same data plane and v2 routes in N replicas (``nnperf[ray]``).

``nnperf serve MODEL --ray --replicas N`` starts a local Ray instance (or joins ``$RAY_ADDRESS``;
:func:`run_ray` says what SIGTERM stops) and deploys :class:`NnperfDeployment`: each replica
builds its own :class:`DataPlane` and the same Starlette app as the single-process server, and
Ray's HTTP proxy spreads requests over the replicas. With ``--max-replicas M`` Ray autoscales between N and M replicas on requests in flight
(``target_ongoing_requests`` = the models' ``max_inflight`` / 2).

Each replica keeps its own ``/metrics`` (the proxy answers from one replica per request).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import MutableMapping
from typing import Any

from nnperf.errors import MissingDependencyError
from nnperf.serve.dataplane import DataPlane
from nnperf.serve.settings import ModelSettings

__all__ = ["RAY_COST_NOTE", "NnperfDeployment", "build_deployment", "run_ray"]


def _require_ray() -> Any:
    try:
        from ray import serve
    except ImportError as exc:
        raise MissingDependencyError("ray[serve]", "ray", "nnperf serve --ray") from exc
    return serve


class NnperfDeployment:
    """One Ray Serve replica: a DataPlane behind the v2 Starlette app, called per request."""

    def __init__(
        self,
        models: list[dict[str, Any]],
        repository: str | None,
        defaults: dict[str, Any],
        token: str | None,
        max_body_bytes: int,
    ) -> None:
        from nnperf.serve.http import create_app

        base = ModelSettings(name="default", model="")
        self.plane = DataPlane(
            [ModelSettings.from_dict(m, base=base) for m in models],
            repository=repository,
            defaults=ModelSettings.from_dict(defaults, base=base),
        )
        self.app = create_app(
            self.plane, token=token, max_body_bytes=max_body_bytes, lifespan=False
        )
        self._started = False

    async def __call__(self, request: Any) -> Any:
        """Run the request through the app (Ray Serve passes a Starlette Request)."""
        from starlette.responses import Response

        if not self._started:
            await self.plane.start()
            self._started = True
        messages: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            messages.append(message)

        await self.app(request.scope, request.receive, send)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        headers = {k.decode(): v.decode() for k, v in start.get("headers", [])}
        headers.pop("content-length", None)
        return Response(body, status_code=start["status"], headers=headers)


def _settings_dict(s: ModelSettings) -> dict[str, Any]:
    d = s.to_dict()
    if not isinstance(s.model, str):
        raise MissingDependencyError("a model path", "ray", "Ray replicas (models must be paths)")
    return d


def build_deployment(
    models: list[ModelSettings],
    *,
    repository: str | None = None,
    defaults: ModelSettings | None = None,
    replicas: int = 1,
    max_replicas: int | None = None,
    token: str | None = None,
    max_body_bytes: int = 64 * 1024 * 1024,
) -> Any:
    """The bound Ray Serve application (``serve.run(app)`` deploys it).

    Raises:
        MissingDependencyError: ray[serve] is not installed.
    """
    serve = _require_ray()
    defaults = defaults or ModelSettings(name="default", model="")
    options: dict[str, Any] = {"name": "nnperf", "max_ongoing_requests": 1024}
    if max_replicas is not None and max_replicas > replicas:
        inflight = min([m.max_inflight for m in models] or [defaults.max_inflight])
        options["autoscaling_config"] = {
            "min_replicas": replicas,
            "max_replicas": max_replicas,
            "target_ongoing_requests": max(1, inflight // 2),
        }
    else:
        options["num_replicas"] = replicas
    deployment = serve.deployment(**options)(NnperfDeployment)
    return deployment.bind(
        [_settings_dict(m) for m in models],
        repository,
        {k: v for k, v in defaults.to_dict().items() if k not in ("name", "model")},
        token,
        max_body_bytes,
    )


RAY_COST_NOTE = (
    "Ray Serve adds a proxy hop and a replica call to every request: on one node it serves far "
    "fewer requests/s than the plain server (zoo:mnist, 8 clients, 2 cores: about 1/16; "
    "benchmarks/serve.py --ray measures it here). Use it for replicas on several nodes; on one "
    "machine, run the plain server."
)


def run_ray(
    models: list[ModelSettings],
    *,
    repository: str | None = None,
    defaults: ModelSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    max_replicas: int | None = None,
    token: str | None = None,
    max_body_bytes: int = 64 * 1024 * 1024,
) -> int:
    """Deploy on Ray Serve and block until SIGINT/SIGTERM; returns 0.

    Without ``$RAY_ADDRESS`` this starts a local Ray instance, and shuts Ray Serve and that
    instance down on SIGINT/SIGTERM (its GCS, raylet and agent processes end with it). With
    ``$RAY_ADDRESS`` it joins that cluster, deletes only its own application at exit and says
    how to stop the cluster, which keeps running.

    Raises:
        MissingDependencyError: ray[serve] is not installed.
        BindError: ``port`` is taken.
    """
    serve = _require_ray()
    import ray

    from nnperf.serve.connection import bind_socket

    # Port 0 means any free port; a taken one fails here, with our message, not Ray's.
    probe = bind_socket(host, port)
    port = int(probe.getsockname()[1])
    probe.close()
    address = os.environ.get("RAY_ADDRESS") or None
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # unwinds into the finally below, from any point

    signal.signal(signal.SIGTERM, stop)
    try:
        if address is None:
            ray.init(address="local", include_dashboard=False)  # a new instance, ours to stop
        else:
            ray.init(address=address, ignore_reinit_error=True)
        # ray.init installs its own SIGTERM handler (it logs and dies): ours again.
        signal.signal(signal.SIGTERM, stop)
        serve.start(http_options={"host": host, "port": port})
        app = build_deployment(
            models,
            repository=repository,
            defaults=defaults,
            replicas=replicas,
            max_replicas=max_replicas,
            token=token,
            max_body_bytes=max_body_bytes,
        )
        serve.run(app, name="nnperf", route_prefix="/")
        print(f"nnperf serve (ray, {replicas} replica(s)): http://{host}:{port}/v2", flush=True)
        print(f"nnperf serve: note: {RAY_COST_NOTE}", file=sys.stderr, flush=True)
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup
        try:
            if address is None:
                serve.shutdown()
            else:
                with contextlib.suppress(Exception):
                    serve.delete("nnperf")
        finally:
            ray.shutdown()
            signal.signal(signal.SIGTERM, previous)
        if address is not None:
            print(
                f"nnperf serve: left the Ray cluster at {address} running (only the 'nnperf' "
                "application was deleted); stop it with 'ray stop' on each of its nodes",
                file=sys.stderr,
                flush=True,
            )
    return 0
