"""Advice rules: each fires on a share measured in the profile and names the nnperf command.

Rules that do not fire say nothing. Every figure in a message comes from the profile passed in.
Thresholds are shares of engine time (EngineRun) unless said otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nnperf.types import TensorDesc

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Advice", "advise", "nchwc_block"]

#: Share of engine time above which a precision-conversion rule fires (2 %).
CONVERSION_SHARE = 0.02
#: Share of engine time above which the layout rule fires (5 %).
LAYOUT_SHARE = 0.05
#: Engine busy ÷ (wall × instances) below which the workers rule fires.
LOW_UTILISATION = 0.5
#: Mean engine time per query below which the batch rule fires (1 ms), at batch 1.
TINY_ENGINE_NS = 1_000_000


@dataclass(frozen=True)
class Advice:
    """One fired rule.

    Attributes:
        rule: stable rule id (``input-quantize``, ``output-dequantize``, ``layout``,
            ``cpu-fallback``, ``low-utilisation``, ``tiny-model``).
        finding: what was measured, with the figure.
        command: the nnperf command that addresses it.
        value: the measured figure the rule fired on (a share 0..1, or ns for ``tiny-model``).
    """

    rule: str
    finding: str
    command: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return asdict(self)

    def __str__(self) -> str:
        return f"- {self.finding}\n    → {self.command}"


def nchwc_block() -> int:
    """onnxruntime's NCHWc channel block on this CPU: 16 with AVX-512, else 8 (AVX2)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return 8
    return 16 if " avx512f" in flags else 8


def _parse(shape: str) -> tuple[str, tuple[int, ...]]:
    dtype, _, dims = shape.partition("[")
    dims = dims.rstrip("]")
    return dtype, tuple(int(d) for d in dims.split(",") if d)


def _matches(shape: str, descs: Sequence[TensorDesc]) -> TensorDesc | None:
    _, dims = _parse(shape)
    for d in descs:
        if len(d.shape) == len(dims) and all(
            not isinstance(want, int) or want == got for want, got in zip(d.shape, dims)
        ):
            return d
    return None


def advise(
    df: pd.DataFrame,
    *,
    model: str,
    inputs: Sequence[TensorDesc],
    outputs: Sequence[TensorDesc],
    providers: Sequence[str] = ("CPUExecutionProvider",),
    instances: int = 1,
    wall_ns: int | None = None,
    batch_size: int = 1,
    operators: pd.DataFrame | None = None,
) -> list[Advice]:
    """Evaluate every rule on a profile's dataframe (usually the measured block's rows).

    Args:
        df: :meth:`Profiler.dataframe` rows.
        model: the model as the user named it (goes into the commands).
        inputs / outputs: the model's tensors (to tell input quantization from inner ones).
        providers: the session's providers, preferred first.
        instances: engine instances serving the queries.
        wall_ns: wall time of the measured block (for utilisation); ``None`` skips that rule.
        batch_size: the batch the profile ran at.
        operators: rows of a separate operator-mode pass (``nnperf profile --ops``); the share
            rules read them, the timing rules (utilisation, per-query cost) read ``df``, so no
            figure quoted comes from queries slowed by operator recording. Default: ``df``.
    """
    out: list[Advice] = []
    runs = df.loc[df["name"] == "EngineRun"]
    infs = df.loc[(df["cat"] == "Runtime") & (df["name"] == "Inference")]
    op_df = df if operators is None else operators
    ops = op_df.loc[op_df["cat"] == "Operator"]
    op_runs = op_df.loc[op_df["name"] == "EngineRun"]
    profiled = op_runs.loc[op_runs["span_id"].isin(set(ops["parent_span_id"]))]
    engine_total = int(profiled["dur"].sum())
    float_inputs = [d for d in inputs if d.dtype.startswith("float")]

    if engine_total > 0 and not ops.empty:
        # 1. float input converted on the host side of the graph.
        conv = ops.loc[ops["op_type"].isin(["QuantizeLinear", "Cast"])]
        first_in = conv["input_shapes"].fillna("").str.split(";").str[0]
        is_input = first_in.map(
            lambda s: bool(s) and _parse(s)[0] == "float" and _matches(s, float_inputs) is not None
        )
        share = float(conv.loc[is_input, "dur"].sum()) / engine_total
        if share >= CONVERSION_SHARE:
            kinds = "/".join(sorted(set(conv.loc[is_input, "op_type"])))
            out.append(
                Advice(
                    "input-quantize",
                    f"{kinds} on the float input takes {share:.1%} of engine time",
                    f"nnperf optimize {model} -o OUT.onnx --input-type uint8 "
                    "(feed uint8 and drop the conversion; add --mean/--std to fold normalisation)",
                    share,
                )
            )
        # 2. dequantized outputs.
        dq = ops.loc[ops["op_type"] == "DequantizeLinear"]
        out_shape = dq["output_shapes"].fillna("").str.split(";").str[0]
        at_output = out_shape.map(lambda s: bool(s) and _matches(s, outputs) is not None)
        share = float(dq.loc[at_output, "dur"].sum()) / engine_total
        if share >= CONVERSION_SHARE:
            in_types = dq.loc[at_output, "input_shapes"].fillna("").str.split(";").str[0]
            dtype = _parse(in_types.iloc[0])[0] if len(in_types) else "int8"
            out.append(
                Advice(
                    "output-dequantize",
                    f"DequantizeLinear on the output takes {share:.1%} of engine time",
                    f"nnperf optimize {model} -o OUT.onnx --output-type {dtype} "
                    f"(return {dtype} and dequantize only what you read)",
                    share,
                )
            )
        # 3. layout reshuffles (Lower/Unlower and input transposes).
        layout = ops.loc[ops["op_type"].isin(["ReorderInput", "ReorderOutput", "Transpose"])]
        share = float(layout["dur"].sum()) / engine_total
        if share >= LAYOUT_SHARE:
            has_transpose = bool((layout["op_type"] == "Transpose").any())
            block = nchwc_block()
            hint = (
                f"nnperf optimize {model} -o OUT.onnx --permute-input 0,3,1,2 (feed NCHW, or let "
                "the transpose fold into ReorderInput)"
                if has_transpose
                else f"use channel counts that are multiples of {block} (this CPU's NCHWc block) "
                f"so fewer Reorder nodes are needed; compare `nnperf bench {model} --graph-level "
                "extended` (no NCHWc layout)"
            )
            out.append(
                Advice(
                    "layout",
                    f"layout operators (Lower/Unlower = ReorderInput/ReorderOutput, Transpose) "
                    f"take {share:.1%} of engine time",
                    hint,
                    share,
                )
            )
        # 4. CPU fallback under an accelerator provider.
        preferred = providers[0] if providers else "CPUExecutionProvider"
        if preferred != "CPUExecutionProvider":
            cpu = ops.loc[ops["provider"] == "CPUExecutionProvider"]
            share = float(cpu["dur"].sum()) / engine_total
            if share > 0:
                types = ", ".join(sorted(set(cpu["op_type"]))[:6])
                out.append(
                    Advice(
                        "cpu-fallback",
                        f"{len(set(cpu['name']))} node(s) ({types}) fell back to the CPU "
                        f"provider: {share:.1%} of engine time",
                        f"nnperf inspect {model} (placement per node); keep those ops on "
                        f"{preferred} or change the model",
                        share,
                    )
                )

    # 5. host-side gaps: instances idle between queries.
    if wall_ns and wall_ns > 0 and not runs.empty:
        util = float(runs["dur"].sum()) / (wall_ns * max(instances, 1))
        if util < LOW_UTILISATION:
            out.append(
                Advice(
                    "low-utilisation",
                    f"engine busy {util:.0%} of the wall time over {instances} instance(s)",
                    f"nnperf bench {model} --workers {2 * max(instances, 1)} (more workers keep "
                    "each instance fed while others do host work)",
                    util,
                )
            )
    # 6. tiny model at batch 1: per-query overhead dominates.
    if batch_size == 1 and not runs.empty:
        mean_engine = float(runs["dur"].mean())
        if mean_engine < TINY_ENGINE_NS:
            host = float(infs["dur"].mean()) - mean_engine if not infs.empty else 0.0
            out.append(
                Advice(
                    "tiny-model",
                    f"mean engine time {mean_engine / 1000:.0f} µs per query at batch 1 "
                    f"(+{max(host, 0.0) / 1000:.1f} µs host side per query)",
                    f"nnperf bench {model} --batch-size 32 (amortise per-query cost)",
                    mean_engine,
                )
            )
    return out


def cpu_count() -> int:
    """Usable CPUs (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
