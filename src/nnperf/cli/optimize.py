"""``nnperf optimize MODEL -o OUT``: graph edits, fp16, offline graph dumps, with a before/after
table (load, warm-up, latency, throughput, output agreement)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nnperf.cli.args import output_file, positive_float, positive_int
from nnperf.cli.export import add_tables_argument, write_tables
from nnperf.cli.output import Output, add_output_arguments, check_output_path, with_provenance
from nnperf.cli.shapes import add_shape_arguments, dims_and_shapes
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
    p.add_argument(
        "-o", "--output", type=output_file, required=True, help="where to write the optimised model"
    )
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
        type=positive_float,
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
        help="accept the input permuted: the original input is new_input.transpose(PERM) "
        "(torch.permute / Furiosa permute_input), e.g. 0,3,1,2 for NHWC images into an NCHW "
        "model (default: unchanged)",
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
    p.add_argument(
        "--eval-data",
        default=None,
        metavar="DIR",
        help="real queries (.npy/.npz/images, see compare-models) for the agreement check; "
        "default: 4 random queries",
    )
    p.add_argument(
        "--iters", type=positive_int, default=20, help="timed runs per model (default 20)"
    )
    add_shape_arguments(p)
    add_output_arguments(p, document="nnperf.optimize/1")
    add_tables_argument(p)
    p.set_defaults(func=run)


def _eval_feeds(args: argparse.Namespace, model: Any, batch: int) -> list[dict[str, np.ndarray]]:
    """--eval-data's queries for the original model (empty without the flag)."""
    if args.eval_data is None:
        return []
    if args.dim or args.shape:
        raise InvalidInputError(
            "--eval-data with --dim/--shape: the data's arrays fix the shapes the models run at; "
            "drop --dim/--shape (or --eval-data)"
        )
    if args.input_type:
        raise InvalidInputError(
            "--eval-data with --input-type: the edited model takes raw pixels, so the agreement "
            "check needs pixels and floats of the same images; drop one of the two flags"
        )
    from nnperf.optimize.evaldata import load_eval_data
    from nnperf.runtime import Session, resolve_config

    with Session(model, config=resolve_config(None)) as s:
        return load_eval_data(args.eval_data, s.inputs)


def _permute_feed(x: np.ndarray, perm: list[int]) -> np.ndarray:
    """The permuted-layout array whose ``transpose(perm)`` is ``x``."""
    return np.ascontiguousarray(x.transpose(np.argsort(perm)))


def _host_pipeline(name: str, args: argparse.Namespace) -> Callable[[Mapping[str, Any]], Any]:
    """What the host does for the original model with the edited model's raw feed: undo the
    permutation (``x.transpose(perm)``), then ``(pixel * pixel_scale - mean) / std`` in float32."""
    perm = list(args.permute_input) if args.permute_input else None
    mean = np.asarray(args.mean, dtype=np.float32)
    std = np.asarray(args.std, dtype=np.float32)
    scale = np.float32(args.pixel_scale)

    def host(feed: Mapping[str, Any]) -> dict[str, Any]:
        x = np.asarray(feed[name])
        if perm is not None:
            x = x.transpose(perm)
        if args.input_type:
            shape = [1] * x.ndim
            if mean.size > 1 or std.size > 1:
                shape[1] = max(mean.size, std.size)
            x = (x.astype(np.float32) * scale - mean.reshape(shape)) / std.reshape(shape)
        return {**feed, name: np.ascontiguousarray(x)}

    return host


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
    from nnperf.optimize.calibrate import random_dataset
    from nnperf.optimize.editor import ModelEditor, get_pure_input_names
    from nnperf.optimize.graph import compare_dump_load, dump_optimized
    from nnperf.optimize.measure import compare_before_after, comparison_table
    from nnperf.optimize.precision import convert_precision

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
    dims, shapes = dims_and_shapes(args)
    feeds = _eval_feeds(args, original, batch) or random_dataset(
        original, 4, seed=0, batch=batch, dims=dims, shapes=shapes
    )
    cand = [dict(f) for f in feeds]
    if args.input_type:
        rng_np = np.random.default_rng(1)
        for c in cand:
            c[name] = rng_np.integers(0, 256, size=c[name].shape, dtype=np.uint8)
    if args.permute_input:
        for c in cand:
            c[name] = _permute_feed(c[name], args.permute_input)
    # The "before" pipeline starts from the same raw feed as the edited model and does on the
    # host what the edits moved into the graph (layout transpose, uint8 -> normalised float),
    # timed with its engine call.
    host = _host_pipeline(name, args) if (args.input_type or args.permute_input) else None
    before_feeds = cand if host is not None else feeds
    if host is not None:
        steps = [
            s for s, on in (("transpose", args.permute_input), ("normalise", args.input_type)) if on
        ]
        print(
            f"before: raw {cand[0][name].dtype} feed -> {' + '.join(steps)} on the host (numpy) "
            "-> original model; after: the same feed -> optimised model (interleaved rounds)"
        )

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
                original,
                out_path,
                before_feeds,
                after_feeds=cand,
                before_host=host,
                iters=args.iters,
                dequantize=dequant,
            )
            labels = ("original", "dump")
    else:
        onnx.save(edited, str(out_path))
        print(f"Optimised model written to {out_path}")
        comp = compare_before_after(
            original,
            edited,
            before_feeds,
            after_feeds=cand,
            before_host=host,
            iters=args.iters,
            dequantize=dequant,
        )
        labels = ("original", "optimised")
    print()
    table = comparison_table(comp, before_label=labels[0], after_label=labels[1])
    print(table.to_text())
    if (args.fp16 or args.bf16) and comp.speedup < 1.0:
        print(
            f"note: fp16 is {1 / comp.speedup:.2f}x SLOWER than fp32 here: onnxruntime's x86 CPU "
            "provider has no fp16 Conv/MatMul kernels and casts back to fp32 around them"
        )
    result["comparison"] = comp.to_dict()
    write_tables(args.tables, [replace(table, title=f"{labels[0]} vs {labels[1]}")])
    return result
