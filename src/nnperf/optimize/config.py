"""The one place the optimisers build a :class:`~nnperf.types.RunConfig`.

Every model the optimisers run (calibration, timing, output checks, graph dumps) gets its run
configuration from :func:`run_config`: one stable thread unless the caller says otherwise, and
the engine's graph settings set here only. When engine-specific settings move into an engine
options type, this is the function to rewire.
"""

from __future__ import annotations

from nnperf.types import GraphLevel, RunConfig

__all__ = ["DEFAULT_DEVICE", "run_config"]

DEFAULT_DEVICE = "cpu(1)"
"""One instance with one intra-op thread: stable timings, and int8/fp32 compared like for like."""


def run_config(
    config: RunConfig | None = None,
    *,
    graph_level: str | GraphLevel | None = None,
    dump_path: str | None = None,
) -> RunConfig:
    """``config`` (default ``RunConfig(device="cpu(1)")``) with the optimiser's engine settings.

    Args:
        config: the caller's configuration, if any.
        graph_level: graph optimisation level to force (default: keep ``config``'s).
        dump_path: where the engine writes its optimised graph; ``None`` (default): nowhere, so
            two sessions built from one configuration never write the same file.
    """
    cfg = config if config is not None else RunConfig(device=DEFAULT_DEVICE)
    if graph_level is not None:
        cfg = cfg.replace(graph_level=GraphLevel(graph_level))
    if cfg.optimized_model_path != dump_path:
        cfg = cfg.replace(optimized_model_path=dump_path)
    return cfg
