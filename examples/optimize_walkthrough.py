"""The seed's performance-guide walkthroughs, redone with nnperf and measured in the profiler.

Furiosa's guide: a quantized model fed float32 spends time in its leading QuantizeLinear and its
trailing DequantizeLinear; ``convert_input_type(UINT8)`` and ``convert_output_type`` remove them,
and ``permute_input`` lets NHWC images in without a host transpose. Here each step is an ONNX edit
checked against the previous model, and the profiler's external-operator table shows the effect.

Run:  python examples/optimize_walkthrough.py [--model zoo:mnist] [--queries 30]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import onnx

from nnperf.optimize import (
    Calibrator,
    ModelEditor,
    compare_models,
    get_output_names,
    optimized_op_counts,
    prepare,
    quantize,
)
from nnperf.profiler import profile
from nnperf.runtime import create


def external_ns(model: onnx.ModelProto, feed: Any, queries: int) -> dict[str, int]:
    """Total time per external op type (QuantizeLinear, DequantizeLinear, Reorder...) over
    ``queries`` profiled runs, from the profiler's external-operator table."""
    with profile(operators=True) as prof:
        sess = create(model, device="cpu(1)")
        sess.run(feed)
        for _ in range(queries):
            sess.run(feed)
        sess.close()
    from nnperf.profiler import tables

    ext = tables.external_operators(prof.dataframe())
    if ext.empty:
        return {}
    return {str(k): int(v) for k, v in ext.groupby("op_type")["dur"].sum().items()}


def show(step: str, model: onnx.ModelProto, feed: Any, queries: int) -> None:
    ext = external_ns(model, feed, queries)
    ops = optimized_op_counts(model)
    layout = {k: v for k, v in ops.items() if "Quantize" in k or "Reorder" in k or "Transpose" in k}
    print(f"\n== {step}")
    print(f"   engine graph: {layout or 'no Q/DQ/layout nodes'}")
    if ext:
        for op, ns in sorted(ext.items(), key=lambda kv: -kv[1]):
            print(f"   {op:<18} {ns / queries / 1e3:8.2f} us per query")
    else:
        print("   no external operators")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="zoo:mnist", help="float model (default zoo:mnist)")
    ap.add_argument("--queries", type=int, default=30, help="profiled queries (default 30)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    model = prepare(args.model)
    name = model.graph.input[0].name
    dims = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    pixels = rng.integers(0, 256, dims, dtype=np.uint8)
    as_float = (pixels / np.float32(255.0)).astype(np.float32)
    calib = [{name: (rng.integers(0, 256, dims) / 255.0).astype(np.float32)} for _ in range(8)]
    with Calibrator(model, "min_max_asym") as cal:
        cal.collect_data(calib)
        ranges = cal.compute_range()
    ranges[name] = (0.0, 1.0)  # inputs are pixels / 255

    q = quantize(model, ranges)
    show("1. int8 model, float32 input and output", q, as_float, args.queries)

    u8 = ModelEditor(q).convert_input_type(name, "uint8")  # pixels in, no QuantizeLinear
    ag = compare_models(q, u8, [{name: as_float}], candidate_feeds=[{name: pixels}])
    show(f"2. convert_input_type(uint8)  [vs step 1: {ag}]", u8, pixels, args.queries)

    out = get_output_names(u8)[0]
    u8o = ModelEditor(u8).convert_output_type(out, "uint8")  # int8 kernels' output, no DQ
    show("3. convert_output_type(uint8)", u8o, pixels, args.queries)

    nhwc = ModelEditor(u8o).permute_input(name, [0, 3, 1, 2])
    show(
        "4. permute_input([0, 3, 1, 2]) - NHWC pixels",
        nhwc,
        np.ascontiguousarray(pixels.transpose(0, 2, 3, 1)),
        args.queries,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
