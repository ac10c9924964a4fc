"""``nnperf serve``: a KServe v2 (Open Inference Protocol) HTTP server for ONNX models.

Examples::

    nnperf serve zoo:mobilenetv2 --max-batch-size 8 --max-delay-ms 2
    nnperf serve resnet=models/resnet50.onnx mnist=zoo:mnist --port 9000 --token s3cret
    nnperf serve --model-repository ./models --config serve.json
    nnperf serve zoo:mnist --ray --replicas 2
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from contextlib import ExitStack
from typing import Any

from nnperf.cli.args import (
    add_engine_arguments,
    input_file,
    non_negative_float,
    output_file,
    parse_engine_options,
    port,
    positive_float,
    positive_int,
)
from nnperf.errors import InvalidInputError

__all__ = ["TOKEN_ENV", "build_server_settings", "build_settings", "register", "run"]

TOKEN_ENV = "NNPERF_SERVE_TOKEN"
MIB = 1024 * 1024
DEFAULT_MAX_INFLIGHT = 128  # ModelSettings' default (nnperf.serve is imported lazily)


class _Defaults:
    """ServerSettings' defaults, for the help texts (the serve package loads only in run())."""

    max_body_bytes = 64 * MIB
    body_budget_bytes = 256 * MIB
    max_connections = 512
    header_timeout_s = 10.0
    body_timeout_s = 30.0
    keep_alive_s = 5.0


_DEFAULTS = _Defaults


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="serve models over KServe v2 HTTP (tritonclient-compatible)",
        description=(
            "Serve ONNX models with the KServe v2 / Open Inference Protocol over HTTP, with "
            "dynamic batching, Prometheus /metrics, a bearer token, and limits against hostile "
            "clients (body size and byte budget, connections, header and body timeouts, "
            "requests in flight). SIGTERM finishes requests in flight, then exits."
        ),
    )
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="model to serve: PATH.onnx, zoo:NAME, or NAME=SOURCE to choose the served name "
        "(default name: file stem or zoo name)",
    )
    p.add_argument(
        "--model-repository",
        default=None,
        metavar="DIR",
        help="folder of models (NAME/model.onnx, NAME/<version>/model.onnx or NAME.onnx, "
        "optional NAME/config.json); all are loaded at start, and one that fails is reported "
        "and skipped (default: none)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="a repository model that fails to load stops the server from starting (default: "
        "off, it is skipped and listed with its reason)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=port,
        default=8000,
        help="TCP port, 1-65535, or 0 for any free port (the bound port is printed; default 8000)",
    )
    p.add_argument(
        "--config",
        type=input_file,
        default=None,
        metavar="FILE",
        help="a RunConfig JSON (from 'nnperf tune') for every model, or a serve config "
        '{"schema": "nnperf.serve/1", "defaults": {...}, "models": [...]} (default: none)',
    )
    p.add_argument("--device", default=None, help="device string, e.g. cpu(1)*2 (default: cpu)")
    add_engine_arguments(p)
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="worker threads per model (default: 1 per instance)",
    )
    p.add_argument(
        "--max-batch-size",
        type=positive_int,
        default=None,
        help="dynamic batching: merge concurrent requests up to this many rows (default 1: off)",
    )
    p.add_argument(
        "--max-delay-ms",
        type=non_negative_float,
        default=None,
        help="dynamic batching: longest wait for a batch to fill, in ms (default 1.0)",
    )
    p.add_argument(
        "--max-inflight",
        type=positive_int,
        default=None,
        help="requests admitted per model at once, counted before their bodies are read; the "
        f"next gets 503 (default {DEFAULT_MAX_INFLIGHT})",
    )
    p.add_argument(
        "--token",
        default=None,
        help=f"bearer token required on every route but health (default: ${TOKEN_ENV}, else none)",
    )
    p.add_argument(
        "--trace-output",
        type=output_file,
        default=None,
        metavar="FILE",
        help="write a Chrome trace of every served query at shutdown (default: none; "
        "NNPERF_PROFILER_OUTPUT_PATH does the same)",
    )
    p.add_argument(
        "--max-body-mb",
        type=positive_float,
        default=_DEFAULTS.max_body_bytes / MIB,
        help="largest request body, in MiB; a larger declared body is refused (413) unread "
        f"(default {_DEFAULTS.max_body_bytes / MIB:g})",
    )
    p.add_argument(
        "--body-budget-mb",
        type=positive_float,
        default=None,
        help="MiB of request bodies read or held at once, all requests together; past it, 503 "
        f"before the body is read (default {_DEFAULTS.body_budget_bytes / MIB:g}, at least "
        "--max-body-mb)",
    )
    p.add_argument(
        "--max-connections",
        type=positive_int,
        default=_DEFAULTS.max_connections,
        help="open connections at once; the next is answered 503 and closed "
        f"(default {_DEFAULTS.max_connections})",
    )
    p.add_argument(
        "--header-timeout-s",
        type=positive_float,
        default=_DEFAULTS.header_timeout_s,
        help="close a connection whose request headers are not complete this long after it "
        f"opened or after its previous response, in s (default {_DEFAULTS.header_timeout_s:g})",
    )
    p.add_argument(
        "--body-timeout-s",
        type=positive_float,
        default=_DEFAULTS.body_timeout_s,
        help="answer 408 and close when a request body takes longer than this to arrive, in s "
        f"(default {_DEFAULTS.body_timeout_s:g})",
    )
    p.add_argument(
        "--keep-alive-s",
        type=positive_float,
        default=_DEFAULTS.keep_alive_s,
        help=f"close idle keep-alive connections after this long, in s (default "
        f"{_DEFAULTS.keep_alive_s:g})",
    )
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one JSON line per request on stderr (default: on)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default info)",
    )
    p.add_argument(
        "--ray",
        action="store_true",
        help="deploy with Ray Serve instead of a single process (needs nnperf[ray]; worth it "
        "for replicas on several nodes: on one node its proxy costs throughput; default off)",
    )
    p.add_argument(
        "--replicas",
        type=positive_int,
        default=1,
        help="with --ray: replicas of the deployment (default 1)",
    )
    p.add_argument(
        "--max-replicas",
        type=positive_int,
        default=None,
        help="with --ray: autoscale between --replicas and this many replicas on requests in "
        "flight (default: fixed --replicas)",
    )
    p.set_defaults(func=run)


def _split_model(arg: str) -> tuple[str | None, str]:
    """``NAME=SOURCE`` -> (NAME, SOURCE); ``SOURCE`` -> (None, SOURCE)."""
    if "=" in arg and not arg.startswith("zoo:"):
        name, _, source = arg.partition("=")
        return name, source
    return None, arg


def _default_name(source: str) -> str:
    if source.startswith("zoo:"):
        return source[4:]
    base = os.path.basename(source.rstrip("/"))
    return base[:-5] if base.endswith(".onnx") else base


def build_settings(args: argparse.Namespace) -> tuple[list[Any], Any]:
    """The per-model settings and the defaults for repository models, from the flags.

    Returns:
        ``(models, defaults)``: a list of :class:`~nnperf.serve.settings.ModelSettings` and the
        settings template for repository models.

    Raises:
        InvalidInputError: no models and no repository, bad flag values, or a bad config file.
    """
    from nnperf.engines.config import RunConfig
    from nnperf.serve.settings import ModelSettings, load_serve_config

    base = ModelSettings(name="default", model="")
    from_file: list[ModelSettings] = []
    if args.config:
        loaded = load_serve_config(args.config, base=base)
        if isinstance(loaded, RunConfig):
            base = base.replace(config=loaded)
        else:
            from_file = loaded
    flags: dict[str, Any] = {}
    if args.max_batch_size is not None:
        flags["max_batch_size"] = args.max_batch_size
    if args.max_delay_ms is not None:
        flags["max_delay_ms"] = args.max_delay_ms
    if args.max_inflight is not None:
        flags["max_inflight"] = args.max_inflight
    cfg_changes: dict[str, Any] = {}
    if args.device is not None:
        cfg_changes["device"] = args.device
    if args.workers is not None:
        cfg_changes["workers"] = args.workers
    if args.engine is not None:
        cfg_changes["engine"] = args.engine
    if args.precision is not None:
        cfg_changes["precision"] = args.precision
    options = parse_engine_options(args.engine_option)

    def apply(s: ModelSettings) -> ModelSettings:
        s = s.replace(**flags) if flags else s
        cfg = s.config.replace(**cfg_changes) if cfg_changes else s.config
        cfg = cfg.with_options(**options) if options else cfg
        return s.replace(config=cfg) if cfg != s.config else s

    defaults = apply(base)
    models = [apply(s) for s in from_file]
    for arg in args.models:
        name, source = _split_model(arg)
        models.append(defaults.replace(name=name or _default_name(source), model=source))
    if not models and not args.model_repository:
        raise InvalidInputError(
            "no models to serve; expected MODEL arguments (PATH.onnx, zoo:NAME, NAME=SOURCE), "
            "--model-repository DIR, or models in --config"
        )
    return models, defaults


def build_server_settings(args: argparse.Namespace) -> Any:
    """The :class:`~nnperf.serve.settings.ServerSettings` of the flags.

    Raises:
        InvalidInputError: inconsistent limits (a body budget below the largest body).
    """
    from nnperf.serve.settings import ServerSettings

    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    max_body = int(args.max_body_mb * MIB)
    if args.body_budget_mb is None:
        budget = max(_DEFAULTS.body_budget_bytes, max_body)
    else:
        budget = int(args.body_budget_mb * MIB)
    return ServerSettings(
        host=args.host,
        port=args.port,
        token=token,
        max_body_bytes=max(1, max_body),
        body_budget_bytes=max(1, budget),
        max_connections=args.max_connections,
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        keep_alive_s=args.keep_alive_s,
    )


def run(args: argparse.Namespace) -> int:
    """Run the server until SIGINT/SIGTERM; returns 0 after a clean shutdown, 1 when it cannot
    listen on its address (port in use: an environment failure)."""
    server = build_server_settings(args)
    models, defaults = build_settings(args)
    level = getattr(logging, args.log_level.upper())
    logging.basicConfig(level=level, stream=sys.stderr, format="%(message)s")
    logging.getLogger("nnperf.serve.access").setLevel(
        logging.INFO if args.access_log else logging.WARNING
    )
    from nnperf.serve.http import BindError

    if args.ray:
        from nnperf.serve.raysvc import run_ray

        try:
            return run_ray(
                models,
                repository=args.model_repository,
                defaults=defaults,
                host=args.host,
                port=args.port,
                replicas=args.replicas,
                max_replicas=args.max_replicas,
                token=server.token,
                max_body_bytes=server.max_body_bytes,
            )
        except BindError as exc:
            print(f"nnperf: error: {exc}", file=sys.stderr)
            return 1
    from nnperf.serve.dataplane import DataPlane
    from nnperf.serve.http import bind_socket, create_app, run_server

    # Bind first: a taken port is one line at once, not after the models have loaded.
    try:
        sock = bind_socket(server.host, server.port)
    except BindError as exc:
        print(f"nnperf: error: {exc}", file=sys.stderr)
        return 1
    bound = int(sock.getsockname()[1])
    plane = DataPlane(
        models, repository=args.model_repository, defaults=defaults, strict=args.strict
    )
    # Load before serving, so a bad model is one 'nnperf: error' line, not a server traceback.
    # (The plane's asyncio objects bind to a loop lazily; the server's loop takes over.)
    try:
        asyncio.run(plane.start())
    except BaseException:
        sock.close()
        asyncio.run(plane.close(timeout_s=0))
        raise
    # The trace is written when the app shuts down: uvicorn re-raises SIGTERM once it has
    # stopped, so nothing after run_server() would run.
    tracing = ExitStack()
    if args.trace_output:
        from nnperf.profiler import profile

        tracing.enter_context(profile(file=args.trace_output))
    app = create_app(plane, server.replace(port=bound), on_shutdown=tracing.close)
    skipped = (
        f", {len(plane.failed)} failed to load: {sorted(plane.failed)}" if plane.failed else ""
    )
    print(
        f"nnperf serve: http://{args.host}:{bound}/v2 "
        f"({len(plane.models)} model(s)"
        + (f" with repository {args.model_repository}" if args.model_repository else "")
        + skipped
        + (", bearer token required" if server.token else "")
        + ")",
        file=sys.stderr,
        flush=True,
    )
    with tracing:
        run_server(app, sock=sock, log_level=args.log_level)
    return 0
