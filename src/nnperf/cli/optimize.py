"""``nnperf optimize MODEL -o OUT``: graph edits, fp16, offline graph dumps, with a before/after
table (load, warm-up, latency, throughput, output agreement)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from nnperf.cli.output import Output, add_output_arguments, check_output_path, with_provenance
from nnperf.errors import InvalidInputError

__all__ = ["register", "run"]

OPTIMIZE_SCHEMA = "nnperf.optimize/1"


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"got {text!r}, expected comma-separated numbers such as 0.485,0.456,0.406"
        ) from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"got {text!r}, expected comma-separated integers such as 0,3,1,2"
        ) from None


def _batch(text: str) -> int | None:
    if text.lower() in ("none", "dynamic", "free"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"got {text!r}, expected a positive integer or 'none'"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}, expected a positive integer or 'none'")
    return value


def register(sub: Any) -> None:
    """Add the ``optimize`` subcommand."""
    p = sub.add_parser(
        "optimize",
        help="edit a model (uint8 input, 8-bit output, NHWC input, batch, fp16, graph dump)",
        description="Apply graph edits in this order: --batch-size, --fp16, --input-type, "
        "--permute-input, --output-type, then --dump. Finishes with a before/after table "
        "measured at one thread.",
    )
    p.add_argument("model", help="path to an .onnx file or zoo:NAME")
    p.add_argument("-o", "--output", required=True, help="where to write the optimised model")
    p.add_argument("--input", default=None, help="input to edit (default: the first input)")
    p.add_argument(
        "--input-type",
        choices=["uint8"],
        default=None,
        help="take raw uint8 pixels, normalisation folded in (default: unchanged)",
    )
    p.add_argument(
        "--mean",
        type=_floats,
        default=[0.0],
        help="per-channel mean after scaling to [0,1], e.g. 0.485,0.456,0.406 (default 0)",
    )
    p.add_argument(
        "--std",
        type=_floats,
        default=[1.0],
        help="per-channel std, e.g. 0.229,0.224,0.225 (default 1)",
    )
    p.add_argument(
        "--pixel-scale",
        type=float,
        default=1.0 / 255.0,
        help="pixel -> float multiplier before mean/std (default 1/255)",
    )
    p.add_argument(
        "--output-type",
        choices=["uint8", "int8"],
        default=None,
        help="return the first output as 8-bit (drops a trailing DequantizeLinear; "
        "default: unchanged)",
    )
    p.add_argument(
        "--output-range",
        type=_floats,
        default=None,
        help="lo,hi float range mapped onto the 8-bit output, e.g. 0,1 (default: "
        "keep the model's quantization)",
    )
    p.add_argument(
        "--permute-input",
        type=_ints,
        default=None,
        help="accept the input permuted, e.g. 0,2,3,1 for NHWC images (torch.permute "
        "order from new to original; default: unchanged)",
    )
    p.add_argument(
        "--batch-size",
        type=_batch,
        default=argparse.SUPPRESS,
        help="fix the batch dimension to N, or 'none' to free it (default: unchanged)",
    )
    p.add_argument("--fp16", action="store_true", help="convert to float16 (default: off)")
    p.add_argument("--bf16", action="store_true", help="convert to bfloat16 (unsupported on CPU)")
    p.add_argument(
        "--matmul-only",
        action="store_true",
        help="with --fp16: only MatMul/Gemm/Conv in fp16 (Neuron --fp32-cast matmult)",
    )
    p.add_argument(
        "--keep-io-types",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --fp16: keep float32 inputs/outputs (default: on)",
    )
    p.add_argument(
        "--graph-level",
        choices=["disabled", "basic", "extended", "all"],
        default="all",
        help="graph level for --dump (default: all)",
    )
    p.add_argument(
        "--dump",
        action="store_true",
        help="write the engine-optimised graph (fusions, NCHWc) instead of the plain "
        "edited model; specific to this CPU (default: off)",
    )
    p.add_argument("--iters", type=int, default=20, help="timed runs per model (default 20)")
    add_output_arguments(p, document="nnperf.optimize/1")
    p.set_defaults(func=run)


def _permute_feed(x: np.ndarray, perm: list[int]) -> np.ndarray:
    """The permuted-layout array whose ``transpose(perm)`` is ``x``."""
    return np.ascontiguousarray(x.transpose(np.argsort(perm)))


def run(args: argparse.Namespace) -> int:
    """Apply the edits, write the model, print the before/after table."""
    out = Output(args.json)
    check_output_path(args.output, "-o/--output", stdout=False)
    with out.prints_to_report():
        result = _optimize(args)
    out.document(with_provenance({"schema": OPTIMIZE_SCHEMA, **result}, args))
    return 0


def _optimize(args: argparse.Namespace) -> dict[str, Any]:
    import onnx

    from nnperf.model import load_proto
    from nnperf.optimize.editor import ModelEditor, get_pure_input_names
    from nnperf.optimize.graph import compare_dump_load, dump_optimized
    from nnperf.optimize.measure import compare_before_after, format_table
    from nnperf.optimize.precision import convert_precision
    from nnperf.optimize.quantize import random_dataset

    # Tensors kept as external data are read in: the edits work on the model in memory.
    original = load_proto(args.model)
    inputs = get_pure_input_names(original)
    name = args.input or inputs[0]
    if name not in inputs:
        raise InvalidInputError(f"--input: got {name!r}, expected one of {inputs}")
    model = original
    if args.fp16 or args.bf16:
        model = convert_precision(
            model,
            "bf16" if args.bf16 else "fp16",
            matmul_only=args.matmul_only,
            keep_io_types=args.keep_io_types,
        )
    editor = ModelEditor(model)
    if hasattr(args, "batch_size"):
        editor.set_batch_size(args.batch_size)
    if args.input_type:
        editor.convert_input_type(
            name, args.input_type, mean=args.mean, std=args.std, pixel_scale=args.pixel_scale
        )
    if args.permute_input:
        editor.permute_input(name, args.permute_input)
    dequant: dict[str, tuple[float, int]] = {}
    if args.output_type:
        out_name = editor.get_output_names()[0]
        rng = None
        if args.output_range:
            if len(args.output_range) != 2:
                raise InvalidInputError(f"--output-range: got {args.output_range}, expected lo,hi")
            rng = (args.output_range[0], args.output_range[1])
        editor.convert_output_type(out_name, args.output_type, range=rng)
        props = {p.key: p.value for p in editor.model.metadata_props}
        dequant[out_name] = (
            float(props[f"nnperf.output.{out_name}.scale"]),
            int(props[f"nnperf.output.{out_name}.zero_point"]),
        )
    edited = editor.model
    out_path = Path(args.output)

    batch = getattr(args, "batch_size", None) or 1
    feeds = random_dataset(original, 4, seed=0, batch=batch)
    cand = [dict(f) for f in feeds]
    if args.input_type:
        rng_np = np.random.default_rng(1)
        for f, c in zip(feeds, cand):
            pix = rng_np.integers(0, 256, size=f[name].shape, dtype=np.uint8)
            shape = [1] * pix.ndim
            mean = np.asarray(args.mean, dtype=np.float64)
            std = np.asarray(args.std, dtype=np.float64)
            if mean.size > 1 or std.size > 1:
                shape[1] = max(mean.size, std.size)
            f[name] = ((pix * args.pixel_scale - mean.reshape(shape)) / std.reshape(shape)).astype(
                np.float32
            )
            c[name] = pix
    if args.permute_input:
        for c in cand:
            c[name] = _permute_feed(c[name], args.permute_input)

    result: dict[str, Any] = {}
    if args.dump:
        onnx.save(edited, str(out_path))
        dump = dump_optimized(str(out_path), out_path, level=args.graph_level)
        print(f"Optimised graph ({args.graph_level}) written to {out_path}")
        print("  ops: " + ", ".join(f"{k} x{v}" for k, v in dump.op_counts.items()))
        print(f"  fusions ({len(dump.fusions)}): " + (", ".join(dump.fusions) or "none"))
        print(
            f"  layout nodes ({len(dump.layout_nodes)}): "
            + (", ".join(dump.layout_nodes) or "none")
        )
        print(f"  WARNING: {dump.warning}")
        result["dump"] = dump.to_dict()
        if edited is original or (
            not (args.fp16 or args.input_type or args.permute_input or args.output_type)
        ):
            comp = compare_dump_load(
                original, out_path, feeds, level=args.graph_level, iters=args.iters
            )
            labels = ("online", "dump")
        else:
            comp = compare_before_after(
                original, out_path, feeds, after_feeds=cand, iters=args.iters, dequantize=dequant
            )
            labels = ("original", "dump")
    else:
        onnx.save(edited, str(out_path))
        print(f"Optimised model written to {out_path}")
        comp = compare_before_after(
            original, edited, feeds, after_feeds=cand, iters=args.iters, dequantize=dequant
        )
        labels = ("original", "optimised")
    print()
    print(format_table(comp, before_label=labels[0], after_label=labels[1]))
    if (args.fp16 or args.bf16) and comp.speedup < 1.0:
        print(
            f"note: fp16 is {1 / comp.speedup:.2f}x SLOWER than fp32 here: onnxruntime's x86 CPU "
            "provider has no fp16 Conv/MatMul kernels and casts back to fp32 around them"
        )
    result["comparison"] = comp.to_dict()
    return result
