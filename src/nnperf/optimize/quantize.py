"""Int8 QDQ quantization from precomputed ranges (Furiosa's ``quantize``), and the pre-processing
that lets onnxruntime map every quantized op onto an int8 kernel.

Quantization hands the ranges to ``onnxruntime.quantization.quantize_static`` through its
calibration cache (a ``TensorsData`` JSON file), so precomputed ranges need no calibration run.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from nnperf.errors import InvalidInputError, NnperfError
from nnperf.model import ModelSource
from nnperf.optimize.editor import FLOAT_OUTPUT_KEY, ModelEditor, as_proto, get_output_names

__all__ = ["FLOAT_OUTPUT_KEY", "PREPARED_KEY", "is_prepared", "prepare", "quantize"]


PREPARED_KEY = "nnperf.prepared"
"""Metadata key :func:`prepare` stamps on its result, so a prepared model is not prepared twice."""

_CACHE_SIZE = 2
_prepared_cache: OrderedDict[bytes, bytes] = OrderedDict()


def is_prepared(model: onnx.ModelProto) -> bool:
    """Whether ``model`` came out of :func:`prepare` (carries its metadata stamp)."""
    return any(p.key == PREPARED_KEY for p in model.metadata_props)


def prepare(model: ModelSource) -> onnx.ModelProto:
    """Pre-process a float model for quantization (onnxruntime's ``quant_pre_process``).

    Shape inference and onnxruntime's basic graph optimisation (BatchNorm folded into Conv,
    constant folding), so that each quantized op maps onto an int8 kernel: without it a
    BatchNorm after a quantized conv stays in float with a Q/DQ pair around it (a trained
    PP-LCNet measured here at one thread: 0.46x fp32 unprepared, 0.72x prepared, the same as
    plain onnxruntime ``quant_pre_process`` + ``quantize_static``). :class:`Calibrator` and :func:`quantize`
    call it by default; calling it yourself first is harmless: a prepared model (stamped
    ``nnperf.prepared`` in its metadata) is returned as is. The result is deterministic, so the
    model a Calibrator prepared and the one quantize prepares have the same tensor names; the
    last two results are cached in memory by content.

    Raises:
        NnperfError: onnxruntime's pre-processing failed (the message includes its error).
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    proto = as_proto(model)
    if is_prepared(proto):
        return proto
    key = hashlib.sha256(proto.SerializeToString(deterministic=True)).digest()
    cached = _prepared_cache.get(key)
    if cached is None:
        with tempfile.TemporaryDirectory(prefix="nnperf-prep-") as tmp:
            src, dst = os.path.join(tmp, "in.onnx"), os.path.join(tmp, "out.onnx")
            onnx.save(proto, src)
            try:
                quant_pre_process(src, dst, skip_symbolic_shape=True)
            except Exception as exc:
                raise NnperfError(f"quantization pre-processing failed: {exc}") from exc
            out = onnx.load(dst)
        onnx.helper.set_model_props(
            out,
            {
                **{p.key: p.value for p in out.metadata_props},
                PREPARED_KEY: "onnxruntime.quantization.quant_pre_process",
            },
        )
        cached = out.SerializeToString()
        _prepared_cache[key] = cached
        while len(_prepared_cache) > _CACHE_SIZE:
            _prepared_cache.popitem(last=False)
    _prepared_cache.move_to_end(key)
    result = onnx.ModelProto()
    result.ParseFromString(cached)
    return result


_pre_process = prepare  # for functions whose ``prepare`` keyword shadows the name


_QTYPES = ("uint8", "int8")


def quantize(
    model: ModelSource,
    ranges: Mapping[str, tuple[float, float]],
    *,
    per_channel: bool = True,
    activation_type: str = "uint8",
    weight_type: str = "int8",
    with_quantize: bool = True,
    normalized_pixel_outputs: Sequence[int] | None = None,
    nodes_to_exclude: Sequence[str] = (),
    nodes_to_quantize: Sequence[str] | None = None,
    prepare: bool = True,
    float_outputs: bool = True,
) -> onnx.ModelProto:
    """Quantize ``model`` to a QDQ model with the given activation ranges.

    Args:
        model: the float model the ranges were computed on (prepared or not: see ``prepare``).
        ranges: tensor name -> (min, max), e.g. from :meth:`Calibrator.compute_range`.
        per_channel: per-output-channel weight scales (default on; markedly more accurate).
        activation_type: ``uint8`` (default; the fast u8s8 kernels on x86) or ``int8``.
        weight_type: ``int8`` (default) or ``uint8``.
        with_quantize: ``False`` drops the leading QuantizeLinear of every float input
            (Furiosa's ``with_quantize=False``): the input becomes the quantized tensor itself
            (``activation_type``), with the scale and zero point calibrated for it, and the
            caller quantizes on the host: ``get_quant_params(q, name).quantize(x)``. Calibrated
            on pixels in [0, 255], that is scale 1, zero point 0: raw pixels go straight in.
            For raw pixels into a model calibrated on normalised floats, use
            ``ModelEditor.convert_input_type`` with ``mean``/``std`` on the result instead.
        normalized_pixel_outputs: output indices whose values lie in [0, 1]; they become uint8
            0..255 instead of dequantized float32.
        nodes_to_exclude: node names kept in float (e.g. the worst of :func:`layer_sensitivity`).
        nodes_to_quantize: quantize only these nodes (default: every supported node).
        prepare: run :func:`prepare` on ``model`` first (default on, as ``nnperf quantize``
            does; a no-op on a prepared model). :class:`Calibrator` prepares by default too, so
            ``Calibrator(m)`` + ``quantize(m, ranges)`` calibrate and quantize the same graph;
            pass ``prepare=False`` to both, or to neither.
        float_outputs: drop the QuantizeLinear/DequantizeLinear pair the quantizer puts on each
            model output, so the last layer writes its float result (default on). Quantized to
            256 levels, near-tied logits round together and top-1 flips: on a trained
            EfficientNet-Lite0, top-1 agreement with fp32 rose from 0.80 to 0.93 this way at the
            same speed (benchmarks/optimize.py). Outputs in ``normalized_pixel_outputs`` keep
            their quantization.

    Raises:
        InvalidInputError: bad types or output indices, no ranges, or ranges that miss a tensor
            a quantized Conv/MatMul/Gemm reads (calibrated on another graph).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod as OrtMethod,
    )
    from onnxruntime.quantization.calibrate import (
        TensorsData,
        save_tensors_data,
    )

    for label, value in (("activation_type", activation_type), ("weight_type", weight_type)):
        if value not in _QTYPES:
            raise InvalidInputError(f"{label}: got {value!r}, expected one of {_QTYPES}")
    if not ranges:
        raise InvalidInputError("quantize: got no ranges; run a Calibrator first")
    proto = _pre_process(model) if prepare else as_proto(model)
    _check_coverage(proto, ranges, nodes_to_exclude, nodes_to_quantize)
    ranges = _clamp_activation_ranges(proto, ranges)
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    data = {
        str(k): (np.array(float(lo), dtype=np.float32), np.array(float(hi), dtype=np.float32))
        for k, (lo, hi) in ranges.items()
    }
    with tempfile.TemporaryDirectory(prefix="nnperf-quant-") as tmp:
        src, dst = os.path.join(tmp, "in.onnx"), os.path.join(tmp, "out.onnx")
        cache = os.path.join(tmp, "ranges.json")
        onnx.save(proto, src)
        save_tensors_data(TensorsData(OrtMethod.MinMax, data), cache)
        quantize_static(
            src,
            dst,
            None,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=qtype[activation_type],
            weight_type=qtype[weight_type],
            nodes_to_exclude=list(nodes_to_exclude) or None,
            nodes_to_quantize=list(nodes_to_quantize) if nodes_to_quantize else None,
            calibrate_method=OrtMethod.MinMax,
            calibration_cache_path=cache,
        )
        out = onnx.load(dst)
    if float_outputs:
        keep = set(normalized_pixel_outputs or ())
        names = get_output_names(out)
        out = _float_outputs(out, [n for i, n in enumerate(names) if i not in keep])
    if not with_quantize or normalized_pixel_outputs:
        editor = ModelEditor(out)
        if not with_quantize:
            for name in editor.get_pure_input_names():
                vi = next(v for v in editor.model.graph.input if v.name == name)
                if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT:
                    editor.remove_input_quantize(name, range=ranges.get(name))
        names = get_output_names(out)
        for index in normalized_pixel_outputs or ():
            if not 0 <= index < len(names):
                raise InvalidInputError(
                    f"normalized_pixel_outputs: index {index} out of range; the model has "
                    f"{len(names)} outputs"
                )
            editor.convert_output_type(names[index], "uint8", range=(0.0, 1.0))
        out = editor.model
    return out


def _float_outputs(model: onnx.ModelProto, outputs: Sequence[str]) -> onnx.ModelProto:
    """``model`` with the trailing QuantizeLinear -> DequantizeLinear pair of each named graph
    output removed: the tensor the pair quantized becomes the output again."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    drop: list[onnx.NodeProto] = []
    renames: dict[str, str] = {}
    params: dict[str, tuple[str, str]] = {}
    for name in outputs:
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or readers.get(q.output[0], 0) != 1:
            continue
        source = q.input[0]
        src_node = producer.get(source)
        if src_node is None or readers.get(source, 0) != 1:
            continue  # a graph input, or read elsewhere too: leave it
        drop += [q, dq]
        renames[source] = name
        params[name] = (q.input[1], q.input[2] if len(q.input) > 2 else "")
    if not drop:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    # What the output was quantized with, so convert_output_type can still make it 8-bit with
    # the calibrated scale (Furiosa's recipe: quantize, then 8-bit outputs).
    inits = {i.name: i for i in model.graph.initializer}
    props = {p.key: p.value for p in model.metadata_props}
    for name, (scale_name, zp_name) in params.items():
        scale = float(onnx.numpy_helper.to_array(inits[scale_name]).ravel()[0])
        zp_init = inits.get(zp_name)
        zp = onnx.numpy_helper.to_array(zp_init) if zp_init is not None else np.uint8(0)
        props[f"{FLOAT_OUTPUT_KEY}.{name}.scale"] = repr(scale)
        props[f"{FLOAT_OUTPUT_KEY}.{name}.zero_point"] = str(int(np.asarray(zp).ravel()[0]))
        props[f"{FLOAT_OUTPUT_KEY}.{name}.dtype"] = str(np.asarray(zp).dtype)
    onnx.helper.set_model_props(out, props)
    dropped = {id(n) for n in drop}
    kept = [n for n in model.graph.node if id(n) not in dropped]
    del out.graph.node[:]
    for n in kept:
        copy = out.graph.node.add()
        copy.CopyFrom(n)
        for i, o in enumerate(copy.output):
            if o in renames:
                copy.output[i] = renames[o]
    return out


_RANGE_NEEDED = ("Conv", "MatMul", "Gemm", "ConvTranspose")


def _check_coverage(
    model: onnx.ModelProto,
    ranges: Mapping[str, tuple[float, float]],
    exclude: Sequence[str],
    only: Sequence[str] | None,
) -> None:
    """Every activation a quantized Conv/MatMul/Gemm reads needs a range: one without is left in
    float by onnxruntime without a word, which is how ranges from another graph (calibrated
    unprepared, quantized prepared) would go wrong."""
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    skip, keep = set(exclude), set(only) if only else None
    needed = {
        t
        for n in model.graph.node
        if n.op_type in _RANGE_NEEDED and n.name not in skip and (keep is None or n.name in keep)
        for t in n.input[:2]
        if t and t not in consts
    }
    missing = sorted(needed - set(ranges))
    if missing:
        raise InvalidInputError(
            f"quantize: the ranges cover {len(needed) - len(missing)} of the {len(needed)} "
            f"tensors the quantized Conv/MatMul/Gemm nodes read; missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}. Calibrate the graph you quantize: "
            "Calibrator(model) and quantize(model, ranges) both prepare it by default; pass "
            "prepare=False to both or to neither"
        )


def _clamp_activation_ranges(
    model: onnx.ModelProto, ranges: Mapping[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """Clip the ranges of Relu/Clip outputs to what those ops can produce.

    onnxruntime's QDQ quantizer removes Relu and Clip and lets the following QuantizeLinear do
    the clamping, which is only right when the output range starts at the clamp value. A
    symmetric range such as (-a, a) on a Relu output would silently drop the Relu (measured
    here: cosine 0.42 against float on a two-conv model), so the range is clamped first.
    """
    out = dict(ranges)
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if not node.output or node.output[0] not in out:
            continue
        lo, hi = out[node.output[0]]
        if node.op_type == "Relu":
            lo = max(lo, 0.0)
        elif node.op_type == "Clip":
            if len(node.input) > 1 and node.input[1] in consts:
                lo = max(lo, float(consts[node.input[1]]))
            if len(node.input) > 2 and node.input[2] in consts:
                hi = min(hi, float(consts[node.input[2]]))
        else:
            continue
        out[node.output[0]] = (lo, max(hi, lo + 1e-6))
    return out
