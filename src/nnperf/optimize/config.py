"""The one place the optimisers build a :class:`~nnperf.engines.config.RunConfig`.

Every model the optimisers run (calibration, timing, output checks, graph dumps) gets its run
configuration from :func:`run_config`: one stable thread unless the caller says otherwise, and a
graph optimisation level set through the engine's graph-dump capability, never by naming an
engine's options here.
"""

from __future__ import annotations

from nnperf.engines.base import SupportsGraphDump
from nnperf.engines.config import RunConfig
from nnperf.engines.onnxruntime_options import GraphLevel
from nnperf.engines.registry import get_engine
from nnperf.errors import UnsupportedError

__all__ = ["DEFAULT_DEVICE", "graph_dumper", "run_config"]

DEFAULT_DEVICE = "cpu(1)"
"""One instance with one intra-op thread: stable timings, and int8/fp32 compared like for like."""


def graph_dumper(config: RunConfig) -> SupportsGraphDump:
    """``config``'s engine, which must support graph levels and dumps.

    Raises:
        UnsupportedError: it does not (OpenVINO has no graph levels to set).
    """
    engine = get_engine(config.engine)
    if not isinstance(engine, SupportsGraphDump):
        raise UnsupportedError(
            f"engine {config.engine!r} has no graph optimisation levels or graph dumps; expected "
            "an engine with them (onnxruntime)"
        )
    return engine


def run_config(
    config: RunConfig | None = None, *, graph_level: str | GraphLevel | None = None
) -> RunConfig:
    """``config`` (default ``RunConfig(device="cpu(1)")``) at ``graph_level`` if one is given.

    Args:
        config: the caller's configuration, if any.
        graph_level: graph optimisation level to force (default: keep ``config``'s); set through
            the engine's :class:`~nnperf.engines.base.SupportsGraphDump` capability, which also
            clears any dump path, so two sessions built from one configuration never write the
            same file.
    """
    cfg = config if config is not None else RunConfig(device=DEFAULT_DEVICE)
    if graph_level is not None:
        cfg = graph_dumper(cfg).at_graph_level(cfg, str(GraphLevel(graph_level)))
    return cfg
