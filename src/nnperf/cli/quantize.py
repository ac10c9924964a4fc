"""``nnperf quantize MODEL -o OUT --calibration DIR|random:N``: calibrated int8 QDQ quantization,
configuration chosen by measurement, with a before/after table."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nnperf.cli.args import (
    engine_list,
    float_range,
    non_negative_int,
    output_file,
    positive_int,
    unit_interval,
)
from nnperf.cli.export import add_tables_argument, records_table, write_tables
from nnperf.cli.output import (
    Output,
    add_output_arguments,
    add_progress_argument,
    check_output_path,
    progress_bar,
    show_progress,
    with_provenance,
)
from nnperf.cli.shapes import add_shape_arguments, dims_and_shapes
from nnperf.engines.config import RunConfig
from nnperf.errors import InvalidInputError

__all__ = ["load_calibration", "register", "run"]

QUANTIZE_SCHEMA = "nnperf.quantize/1"


def register(sub: Any) -> None:
    """Add the ``quantize`` subcommand."""
    from nnperf.optimize.calibrate import CalibrationMethod

    p = sub.add_parser(
        "quantize",
        help="calibrate and quantize a model to int8 (QDQ), measured against float",
        description="Pre-process, calibrate, quantize; with --activation-type auto (default) "
        "every candidate (u8/s8 activations x per-channel/per-tensor weights) is measured and "
        "the fastest one meeting --min-cosine is kept, with the reason printed.",
    )
    p.add_argument("model", help="path to an .onnx file or zoo:NAME")
    p.add_argument(
        "-o", "--output", type=output_file, required=True, help="where to write the quantized model"
    )
    p.add_argument(
        "--calibration",
        default="random:16",
        help="DIR of .npy (single input) / .npz (by input name) samples, or random:N "
        "(default random:16; random data says nothing about accuracy)",
    )
    p.add_argument(
        "--eval-data",
        default=None,
        metavar="DIR",
        help="held-out queries (.npy/.npz/images, see compare-models) for the accuracy checks; "
        "default: the first 8 calibration samples (warned: they overstate accuracy)",
    )
    p.add_argument(
        "--method",
        default="min_max_asym",
        choices=[m.value for m in CalibrationMethod],
        help="calibration method (default min_max_asym)",
    )
    p.add_argument(
        "--percentage",
        type=float_range(0.0, 100.0, low_open=True),
        default=99.99,
        help="percentile for the percentile method, in %% (default 99.99)",
    )
    p.add_argument(
        "--activation-type",
        choices=["auto", "uint8", "int8"],
        default="auto",
        help="activation type; auto measures both (default auto)",
    )
    p.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="per-channel weight scales (default: measured with auto, else on)",
    )
    p.add_argument(
        "--prepare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="onnxruntime quant_pre_process before calibration (default: on)",
    )
    p.add_argument(
        "--min-cosine",
        type=unit_interval,
        default=0.99,
        help="accuracy target vs float, cosine similarity in (0, 1] (default 0.99)",
    )
    p.add_argument(
        "--sensitivity",
        action="store_true",
        help="print the error each quantized Conv/MatMul/Gemm adds alone (default off)",
    )
    p.add_argument(
        "--keep-float",
        type=non_negative_int,
        default=0,
        metavar="K",
        help="keep the K most sensitive layers in float (default 0)",
    )
    p.add_argument(
        "--no-quantize-input",
        dest="with_quantize",
        action="store_false",
        help="inputs take the quantized uint8 tensor (calibrated scale and zero point, printed "
        "and kept in the model's metadata) with no leading QuantizeLinear (Furiosa "
        "with_quantize=False; default: float inputs)",
    )
    p.add_argument(
        "--iters", type=positive_int, default=20, help="timed runs per model (default 20)"
    )
    p.add_argument(
        "--engine",
        default=None,
        help="engine the candidates and the before/after table are measured on: onnxruntime "
        "or openvino; the fastest activation type can differ by engine (default onnxruntime)",
    )
    p.add_argument(
        "--device",
        default="cpu(1)",
        help="device the candidates are measured on (default cpu(1): one stable thread)",
    )
    add_shape_arguments(p)
    add_output_arguments(p, document="nnperf.quantize/1")
    add_progress_argument(p)
    add_tables_argument(p)
    p.set_defaults(func=run)


def load_calibration(
    spec: str,
    model: Any,
    *,
    dims: dict[str, int] | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Calibration samples from ``random:N`` or a directory of ``.npy`` / ``.npz`` files.

    Raises:
        InvalidInputError: a bad spec, or (``random:N``) a symbolic non-batch dim without a size.
    """
    from nnperf.optimize.calibrate import random_dataset
    from nnperf.optimize.editor import get_pure_input_names

    if spec.startswith("random:"):
        try:
            count = int(spec.split(":", 1)[1])
        except ValueError:
            count = 0
        if count < 1:
            raise InvalidInputError(f"--calibration: got {spec!r}, expected random:N with N >= 1")
        return random_dataset(model, count, seed=0, dims=dims, shapes=shapes)
    folder = Path(spec)
    if not folder.is_dir():
        raise InvalidInputError(
            f"--calibration: {spec!r} is not a directory; expected a folder of .npy/.npz files "
            "or random:N"
        )
    names = get_pure_input_names(model)
    samples: list[dict[str, np.ndarray]] = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".npy":
            if len(names) != 1:
                raise InvalidInputError(
                    f"{path.name}: .npy samples need a single-input model; this one has {names}; "
                    "use .npz files keyed by input name"
                )
            arr = np.load(path)
            samples.append({names[0]: arr if arr.ndim > 3 else arr[None]})
        elif path.suffix == ".npz":
            with np.load(path) as z:
                samples.append({k: z[k] for k in z.files})
    if not samples:
        raise InvalidInputError(f"--calibration: no .npy/.npz files in {spec!r}")
    return samples


def _evaluation(args: argparse.Namespace, model: Any, data: list[dict[str, np.ndarray]]) -> Any:
    """The accuracy-check queries: --eval-data, else the first calibration samples (warned)."""

    from nnperf.optimize.evaldata import load_eval_data, shared_queries
    from nnperf.runtime import Session, resolve_config

    if args.eval_data is None:
        if not args.calibration.startswith("random:"):
            print(
                "nnperf: warning: evaluating on calibration data (no --eval-data): accuracy on "
                "the samples the ranges came from overstates accuracy on new inputs",
                file=sys.stderr,
            )
        return data[: min(len(data), 8)]
    shared = shared_queries(args.eval_data, args.calibration)
    if shared:
        print(
            f"nnperf: warning: --eval-data shares {shared} quer(y/ies) with --calibration; "
            "accuracy on calibration samples overstates accuracy on new inputs (hold them out)",
            file=sys.stderr,
        )
    with Session(model, config=resolve_config(None)) as s:
        return load_eval_data(args.eval_data, s.inputs)


def run(args: argparse.Namespace) -> int:
    """Calibrate, quantize, print the choice and the before/after table."""
    out = Output(args.json)
    check_output_path(args.output, "-o/--output", stdout=False)
    dims, shapes = dims_and_shapes(args)
    with out.prints_to_report():
        result = _quantize(args, dims, shapes)
    out.document(with_provenance({"schema": QUANTIZE_SCHEMA, **result}, args))
    return 0


def _quantize(
    args: argparse.Namespace, dims: dict[str, int], shapes: dict[str, tuple[int, ...]]
) -> dict[str, Any]:
    import onnx

    from nnperf.model import load_proto
    from nnperf.optimize.calibrate import Calibrator
    from nnperf.optimize.editor import get_pure_input_names, get_quant_params
    from nnperf.optimize.measure import compare_before_after, comparison_table
    from nnperf.optimize.quant_search import choose_quantization, layer_sensitivity
    from nnperf.optimize.quantize import prepare, quantize

    engines = engine_list(args.engine) or ["onnxruntime"]
    if len(engines) > 1:
        raise InvalidInputError(
            f"--engine: got {args.engine!r}, expected one engine to measure the candidates on"
        )
    measure_on = RunConfig(engine=engines[0], device=args.device)
    # Tensors kept as external data are read in: the quantizer works on the model in memory.
    float_model = load_proto(args.model)
    model = prepare(float_model) if args.prepare else float_model
    data = load_calibration(args.calibration, model, dims=dims, shapes=shapes)
    with (
        # prepared above (or not, with --no-prepare): the API's own prepare step stays off
        Calibrator(model, args.method, percentage=args.percentage, prepare=False) as cal,
        progress_bar(show_progress(args), f"calibrating ({args.method})", unit="samples") as tick,
    ):
        cal.collect_data(data, progress=tick)
        ranges = cal.compute_range()
    evaluation = _evaluation(args, model, data)
    result: dict[str, Any] = {"method": args.method, "tensors": len(ranges)}

    exclude: list[str] = []
    if args.sensitivity or args.keep_float:
        act = "int8" if args.activation_type == "int8" else "uint8"
        with progress_bar(show_progress(args), "layer sensitivity", unit="nodes") as tick:
            sens = layer_sensitivity(
                model,
                ranges,
                evaluation,
                activation_type=act,
                per_channel=args.per_channel is not False,
                progress=tick,
                prepare=False,
            )
        print("Per-layer sensitivity (only this node quantized), worst first:")
        for s in sens[:15]:
            print(
                f"  {s.node:<40} {s.op_type:<8} cosine {s.cosine:.6f} max abs err "
                f"{s.max_abs_err:.4g}"
            )
        exclude = [s.node for s in sens[: args.keep_float]]
        if exclude:
            print(f"Keeping in float: {', '.join(exclude)}")
        result["sensitivity"] = [s.to_dict() for s in sens]

    if args.activation_type == "auto":
        candidates = [
            (act, pc)
            for pc in ((True, False) if args.per_channel is None else (args.per_channel,))
            for act in ("uint8", "int8")
        ]
        choice = choose_quantization(
            model,
            ranges,
            evaluation,
            min_cosine=args.min_cosine,
            iters=args.iters,
            candidates=candidates,
            nodes_to_exclude=exclude,
            prepare=False,
            config=measure_on,
        )
        print(f"Candidates ({measure_on.engine}, {measure_on.device}):")
        for c in choice.candidates:
            print(
                f"  {c.label:<26} {c.latency_ms:8.3f} ms  cosine {c.agreement.cosine:.6f}"
                f"{'' if c.meets_target else '  (below target)'}"
            )
        print(choice.explanation)
        chosen = (choice.chosen.activation_type, choice.chosen.per_channel)
        result["choice"] = choice.to_dict()
    else:
        chosen = (args.activation_type, args.per_channel is not False)
    quantized = quantize(
        model,
        ranges,
        activation_type=chosen[0],
        per_channel=chosen[1],
        nodes_to_exclude=exclude,
        with_quantize=args.with_quantize,
        prepare=False,
    )
    onnx.save(quantized, args.output)
    print(f"Quantized model written to {args.output}")
    feeds_after = evaluation
    if not args.with_quantize:
        # the inputs are now the quantized tensors: quantize the evaluation floats on the host
        # with the calibrated parameters the model records
        params = {}
        for name in get_pure_input_names(quantized):
            try:
                params[name] = get_quant_params(quantized, name)
            except InvalidInputError:
                continue  # not a float input: fed as is
            p = params[name]
            print(
                f"input {name!r} takes {p.dtype}: round(x / {p.scale:.6g}) + {p.zero_point} "
                "(nnperf.optimize.get_quant_params)"
            )
            result.setdefault("input_quantization", {})[name] = p.to_dict()
        feeds_after = [
            {k: params[k].quantize(v) if k in params else v for k, v in f.items()}
            for f in evaluation
        ]
    comp = compare_before_after(
        float_model,
        quantized,
        evaluation,
        after_feeds=feeds_after,
        iters=args.iters,
        config=measure_on,
    )
    print()
    table = comparison_table(comp, before_label="float32", after_label="int8")
    print(table.to_text())
    if comp.speedup < 1.0:
        print(
            "note: int8 is slower than float32 here; look for QuantizeLinear/DequantizeLinear "
            "time in 'nnperf profile' (external operators) and ops without int8 kernels"
        )
    result["comparison"] = comp.to_dict()
    write_tables(args.tables, [*_tables(result), replace(table, title="float32 vs int8")])
    return result


def _tables(result: dict[str, Any]) -> list[Any]:
    """The candidates and sensitivity tables, from the result document."""
    from nnperf.table import Column

    out = []
    cols: tuple[Column, ...]
    if "choice" in result:
        cols = (Column("activation_type", "activations"), Column("per_channel", "per channel"),
                Column("latency_ms", "latency", "ms", 3), Column("agreement.cosine", "cosine", digits=6),
                Column("agreement.max_abs_err", "max abs err"), Column("meets_target", "meets target"))  # fmt: skip
        out.append(records_table("Candidates (1 thread)", cols, result["choice"]["candidates"]))
    if "sensitivity" in result:
        cols = (Column("node"), Column("op_type", "op type"), Column("cosine", digits=6),
                Column("max_abs_err", "max abs err"))  # fmt: skip
        out.append(records_table("Per-layer sensitivity, worst first", cols, result["sensitivity"]))
    return out
