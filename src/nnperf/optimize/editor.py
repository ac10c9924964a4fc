"""``ModelEditor``: ONNX graph edits for cheaper inputs and outputs (Furiosa's ``ModelEditor``).

Every operation edits :attr:`ModelEditor.model` in place, checks it with ``onnx.checker`` and
returns it. Tensor names seen by callers never change: a converted input keeps its name (the float
tensor it fed is renamed inside the graph).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnperf.errors import InvalidInputError, UnsupportedError
from nnperf.model import ModelSource, load_model

__all__ = [
    "FLOAT_OUTPUT_KEY",
    "ModelEditor",
    "QuantParams",
    "as_proto",
    "get_output_names",
    "get_pure_input_names",
    "get_quant_params",
]

_INT_TYPES: dict[str, int] = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}
_NP_INT: dict[int, type[np.integer[Any]]] = {TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}
_QMIN: dict[int, int] = {TensorProto.UINT8: 0, TensorProto.INT8: -128}
_QMAX: dict[int, int] = {TensorProto.UINT8: 255, TensorProto.INT8: 127}

FLOAT_OUTPUT_KEY = "nnperf.float_output"
"""Metadata prefix: the quantization a float output had before
:func:`~nnperf.optimize.quantize.quantize` dropped it (``nnperf.float_output.NAME.scale`` /
``.zero_point`` / ``.dtype``), so :meth:`ModelEditor.convert_output_type` can restore it."""


def as_proto(model: ModelSource) -> onnx.ModelProto:
    """A private copy of ``model`` as an ``onnx.ModelProto`` (path, ``zoo:NAME``, bytes or proto)."""
    if isinstance(model, onnx.ModelProto):
        return copy.deepcopy(model)
    proto = onnx.ModelProto()
    proto.ParseFromString(load_model(model).data)
    return proto


def get_pure_input_names(model: ModelSource | onnx.ModelProto) -> list[str]:
    """Graph inputs that are not initializers (what a caller feeds)."""
    proto = model if isinstance(model, onnx.ModelProto) else as_proto(model)
    inits = {i.name for i in proto.graph.initializer}
    return [vi.name for vi in proto.graph.input if vi.name not in inits]


def get_output_names(model: ModelSource | onnx.ModelProto) -> list[str]:
    """Graph output names, in order."""
    proto = model if isinstance(model, onnx.ModelProto) else as_proto(model)
    return [vi.name for vi in proto.graph.output]


@dataclass(frozen=True)
class QuantParams:
    """How an 8-bit model input or output maps onto floats: ``x = (q - zero_point) * scale``.

    Attributes:
        scale: float step of one integer unit.
        zero_point: the integer that stands for 0.0.
        dtype: ``uint8`` or ``int8``.
    """

    scale: float
    zero_point: int
    dtype: str

    def __post_init__(self) -> None:
        if self.dtype not in _INT_TYPES:
            raise InvalidInputError(
                f"QuantParams.dtype: got {self.dtype!r}, expected one of {list(_INT_TYPES)}"
            )
        if not self.scale > 0:
            raise InvalidInputError(f"QuantParams.scale: got {self.scale}, expected > 0")

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """``x`` (floats) as the model's 8-bit values: round to nearest even, saturate."""
        t = _INT_TYPES[self.dtype]
        q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(self.scale)) + self.zero_point
        out: np.ndarray = np.clip(q, _QMIN[t], _QMAX[t]).astype(_NP_INT[t])
        return out

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """8-bit values back to float32."""
        return ((np.asarray(q, dtype=np.float32) - self.zero_point) * self.scale).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"scale": self.scale, "zero_point": self.zero_point, "dtype": self.dtype}


def get_quant_params(model: ModelSource | onnx.ModelProto, name: str) -> QuantParams:
    """The scale and zero point of 8-bit input or output ``name``, as recorded by
    :meth:`ModelEditor.remove_input_quantize` (and ``quantize(..., with_quantize=False)``) or
    :meth:`ModelEditor.convert_output_type`.

    Raises:
        InvalidInputError: ``name`` is not an 8-bit input or output with recorded parameters.
    """
    proto = model if isinstance(model, onnx.ModelProto) else as_proto(model)
    props = {p.key: p.value for p in proto.metadata_props}
    for kind, values in (("input", proto.graph.input), ("output", proto.graph.output)):
        key = f"nnperf.{kind}.{name}"
        vi = next((v for v in values if v.name == name), None)
        if vi is not None and f"{key}.scale" in props:
            dtype = TensorProto.DataType.Name(vi.type.tensor_type.elem_type).lower()
            return QuantParams(
                scale=float(props[f"{key}.scale"]),
                zero_point=int(props[f"{key}.zero_point"]),
                dtype=dtype,
            )
    recorded = sorted(
        k.split(".")[2] for k in props if k.startswith("nnperf.") and k.endswith(".scale")
    )
    raise InvalidInputError(
        f"tensor {name!r} has no recorded quantization parameters; expected one of {recorded} "
        "(quantize(..., with_quantize=False), remove_input_quantize or convert_output_type "
        "record them)"
    )


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 0


class ModelEditor:
    """Edit a model's inputs and outputs.

    Args:
        model: path, ``zoo:NAME``, bytes or ``onnx.ModelProto`` (copied; the original is untouched).

    Example:
        >>> editor = ModelEditor("model.onnx")
        >>> editor.convert_input_type("input", "uint8", mean=[0.485, 0.456, 0.406],
        ...                           std=[0.229, 0.224, 0.225])
        >>> onnx.save(editor.model, "model_u8.onnx")
    """

    def __init__(self, model: ModelSource) -> None:
        self.model: onnx.ModelProto = as_proto(model)
        if _opset(self.model) < 13:
            raise UnsupportedError(
                f"model opset {_opset(self.model)}: ModelEditor needs opset >= 13 (per-axis "
                "DequantizeLinear); convert it with onnx.version_converter.convert_version(model, 13)"
            )
        self._counter = 0

    # -- queries ----------------------------------------------------------------------------------
    def get_pure_input_names(self) -> list[str]:
        """Inputs a caller feeds (initializers excluded)."""
        return get_pure_input_names(self.model)

    def get_output_names(self) -> list[str]:
        """Output names, in order."""
        return get_output_names(self.model)

    # -- helpers ----------------------------------------------------------------------------------
    @property
    def _graph(self) -> onnx.GraphProto:
        return self.model.graph

    def _unique(self, base: str) -> str:
        taken = {t for n in self._graph.node for t in (*n.input, *n.output)}
        taken |= {i.name for i in self._graph.initializer} | {n.name for n in self._graph.node}
        while True:
            self._counter += 1
            name = f"{base}__nnperf{self._counter}"
            if name not in taken:
                return name

    def _init(self, base: str, array: np.ndarray) -> str:
        name = self._unique(base)
        self._graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def _input(self, name: str) -> onnx.ValueInfoProto:
        if name not in self.get_pure_input_names():
            raise InvalidInputError(
                f"input {name!r} not found; expected one of {self.get_pure_input_names()}"
            )
        found: onnx.ValueInfoProto = next(vi for vi in self._graph.input if vi.name == name)
        return found

    def _output(self, name: str) -> onnx.ValueInfoProto:
        for vi in self._graph.output:
            if vi.name == name:
                found: onnx.ValueInfoProto = vi
                return found
        raise InvalidInputError(
            f"output {name!r} not found; expected one of {self.get_output_names()}"
        )

    def _consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [n for n in self._graph.node if tensor in n.input]

    def _producer(self, tensor: str) -> onnx.NodeProto | None:
        return next((n for n in self._graph.node if tensor in n.output), None)

    def _rename_uses(self, old: str, new: str) -> None:
        for node in self._graph.node:
            for i, t in enumerate(node.input):
                if t == old:
                    node.input[i] = new

    def _const(self, name: str) -> np.ndarray | None:
        for init in self._graph.initializer:
            if init.name == name:
                return numpy_helper.to_array(init)
        return None

    def _drop_value_info(self, *names: str) -> None:
        keep = [vi for vi in self._graph.value_info if vi.name not in names]
        del self._graph.value_info[:]
        self._graph.value_info.extend(keep)

    def _prepend(self, nodes: Sequence[onnx.NodeProto]) -> None:
        old = list(self._graph.node)
        del self._graph.node[:]
        self._graph.node.extend([*nodes, *old])

    def _constant_value(self, tensor: str) -> np.ndarray | None:
        """The value of ``tensor`` when it is an initializer or a ``Constant`` node's output."""
        value = self._const(tensor)
        if value is not None:
            return value
        node = self._producer(tensor)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
        return None

    def _free_reshape_batches(self) -> int:
        """Rewrite baked dim-0 entries of Reshape targets to 0 where safe (see set_batch_size)."""
        dim0 = _dim0_values(self.model)
        rewritten = 0
        for node in self._graph.node:
            if node.op_type != "Reshape" or len(node.input) < 2:
                continue
            if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
                continue  # 0 would mean a literal zero-sized dim
            target = self._constant_value(node.input[1])
            batch = dim0.get(node.input[0])
            if target is None or target.ndim != 1 or not len(target) or batch is None:
                continue
            if int(target[0]) != batch or batch in (0, -1):
                continue
            new = target.astype(np.int64).copy()
            new[0] = 0
            node.input[1] = self._init(node.input[1] or "shape", new)  # own copy: may be shared
            rewritten += 1
        return rewritten

    def _finish(self) -> onnx.ModelProto:
        _prune_unused_initializers(self.model)
        onnx.checker.check_model(self.model)
        return self.model

    # -- edits ------------------------------------------------------------------------------------
    def convert_input_type(
        self,
        name: str,
        dtype: str = "uint8",
        *,
        mean: float | Sequence[float] = 0.0,
        std: float | Sequence[float] = 1.0,
        pixel_scale: float = 1.0 / 255.0,
        channel_axis: int = 1,
    ) -> onnx.ModelProto:
        """Make input ``name`` take raw uint8 pixels, with the float conversion folded in.

        The model then computes ``x = (pixel * pixel_scale - mean) / std`` itself, as one
        ``DequantizeLinear`` (per channel when mean/std are per channel) and, when ``mean`` is not
        zero, one ``Add``. In a quantized model whose input feeds a ``QuantizeLinear``, that float
        round trip is skipped where the normalisation is one affine map for every channel with an
        integral zero point: the uint8 pixels *are* the quantized tensor (Furiosa's
        ``with_quantize=False``), and no float op remains before the first int8 kernel.

        Args:
            name: the input to convert.
            dtype: ``"uint8"`` (default; pixels) or ``"int8"`` (signed 8-bit data, e.g. pixels
                already centred as ``pixel - 128``: the model computes
                ``x = (value * pixel_scale - mean) / std`` from the signed value), in any case
                (``"UINT8"`` as the seed's ``TensorType.UINT8`` spells it). The quantized-model
                shortcut (no float op before the first int8 kernel) is taken for uint8 only:
                onnxruntime keeps a conv that reads an int8 graph input in float.
            mean: per-channel (or scalar) mean subtracted after scaling; default 0.
            std: per-channel (or scalar) divisor; default 1.
            pixel_scale: multiplier from pixel to float before normalisation; default 1/255.
            channel_axis: the channel axis of the input for per-channel mean/std (default 1, NCHW).

        Raises:
            InvalidInputError: unknown input, non-float input, a dtype other than uint8/int8,
                or bad mean/std lengths.
        """
        qtype = _int_type(dtype, "convert_input_type")
        vi = self._input(name)
        if vi.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise InvalidInputError(
                f"input {name!r} is {TensorProto.DataType.Name(vi.type.tensor_type.elem_type)}; "
                "expected a float32 input to convert to uint8"
            )
        rank = len(vi.type.tensor_type.shape.dim)
        mean_a = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        std_a = np.atleast_1d(np.asarray(std, dtype=np.float64))
        channels = max(mean_a.size, std_a.size)
        for label, arr in (("mean", mean_a), ("std", std_a)):
            if arr.size not in (1, channels):
                raise InvalidInputError(
                    f"convert_input_type: {label} has {arr.size} values, expected 1 or {channels}"
                )
        if np.any(std_a == 0):
            raise InvalidInputError("convert_input_type: std contains 0; expected non-zero values")
        mean_a = np.broadcast_to(mean_a, (channels,))
        std_a = np.broadcast_to(std_a, (channels,))
        scale = (pixel_scale / std_a).astype(np.float32)  # x = scale * pixel + shift
        shift = (-mean_a / std_a).astype(np.float32)
        if channels > 1 and not -rank <= channel_axis < rank:
            raise InvalidInputError(
                f"convert_input_type: channel_axis {channel_axis} out of range for rank {rank}"
            )
        per_tensor = bool(np.allclose(scale, scale[0]) and np.allclose(shift, shift[0]))

        consumers = self._consumers(name)
        direct = qtype == TensorProto.UINT8 and per_tensor
        if direct and consumers and all(n.op_type == "QuantizeLinear" for n in consumers):
            zp = -float(shift[0]) / float(scale[0])
            if abs(zp - round(zp)) < 1e-3 and 0 <= round(zp) <= 255:
                self._input_direct(name, consumers, float(scale[0]), round(zp))
                vi.type.tensor_type.elem_type = qtype
                return self._finish()

        float_name = self._unique(f"{name}_float")
        self._rename_uses(name, float_name)
        nodes: list[onnx.NodeProto] = []
        attrs: dict[str, Any] = {}
        if per_tensor:
            s_name = self._init(f"{name}_scale", np.array(scale[0], dtype=np.float32))
            shift_arr = np.array(shift[0], dtype=np.float32)
        else:
            s_name = self._init(f"{name}_scale", scale)
            attrs["axis"] = channel_axis
            shape = [1] * rank
            shape[channel_axis] = channels
            shift_arr = shift.reshape(shape)
        z_name = self._init(
            f"{name}_zp", np.zeros(() if per_tensor else (channels,), dtype=_NP_INT[qtype])
        )
        has_shift = bool(np.any(shift_arr != 0))
        scaled = self._unique(f"{name}_scaled") if has_shift else float_name
        nodes.append(
            helper.make_node(
                "DequantizeLinear",
                [name, s_name, z_name],
                [scaled],
                name=self._unique(f"{name}_to_float"),
                **attrs,
            )
        )
        if has_shift:
            b_name = self._init(f"{name}_shift", shift_arr)
            nodes.append(
                helper.make_node(
                    "Add", [scaled, b_name], [float_name], name=self._unique(f"{name}_normalise")
                )
            )
        self._prepend(nodes)
        vi.type.tensor_type.elem_type = qtype
        return self._finish()

    def _input_direct(
        self, name: str, quants: list[onnx.NodeProto], scale: float, zero_point: int
    ) -> None:
        """Remove the leading QuantizeLinear(s): their DequantizeLinear consumers read the pixels."""
        s_name = self._init(f"{name}_scale", np.array(scale, dtype=np.float32))
        z_name = self._init(f"{name}_zp", np.array(zero_point, dtype=np.uint8))
        for q in quants:
            q_out = q.output[0]
            users = self._consumers(q_out)
            if not users or not all(u.op_type == "DequantizeLinear" for u in users):
                # Something reads the int8 tensor directly: requantize pixels to its grid instead.
                deq = self._unique(f"{name}_pixels")
                self._graph.node.insert(
                    0,
                    helper.make_node(
                        "DequantizeLinear",
                        [name, s_name, z_name],
                        [deq],
                        name=self._unique(f"{name}_to_float"),
                    ),
                )
                q.input[0] = deq
                continue
            for u in users:
                u.input[0] = name
                u.input[1] = s_name
                if len(u.input) > 2:
                    u.input[2] = z_name
                else:
                    u.input.append(z_name)
                for a in list(u.attribute):
                    if a.name == "axis":
                        u.attribute.remove(a)
            self._graph.node.remove(q)
            self._drop_value_info(q_out)

    def _float_output_params(self, name: str) -> tuple[str, float, int] | None:
        """(dtype, scale, zero point) :func:`~nnperf.optimize.quantize` recorded for an output
        it left in float, else ``None``."""
        props = {p.key: p.value for p in self.model.metadata_props}
        key = f"{FLOAT_OUTPUT_KEY}.{name}"
        if f"{key}.scale" not in props:
            return None
        return props[f"{key}.dtype"], float(props[f"{key}.scale"]), int(props[f"{key}.zero_point"])

    def _quantize_output(
        self, name: str, producer: onnx.NodeProto | None, qtype: int, scale: float, zp: int
    ) -> None:
        """A QuantizeLinear (``scale``, ``zp``) between output ``name`` and its producer."""
        if producer is None:
            raise InvalidInputError(f"output {name!r} is a graph input; nothing to convert")
        float_name = self._unique(f"{name}_float")
        for i, t in enumerate(producer.output):
            if t == name:
                producer.output[i] = float_name
        self._rename_uses(name, float_name)
        s_name = self._init(f"{name}_scale", np.array(scale, dtype=np.float32))
        z_name = self._init(f"{name}_zp", np.array(zp, dtype=_NP_INT[qtype]))
        self._graph.node.append(
            helper.make_node(
                "QuantizeLinear",
                [float_name, s_name, z_name],
                [name],
                name=self._unique(f"{name}_quantize"),
            )
        )

    def _record(self, kind: str, name: str, scale: float, zero_point: int) -> None:
        helper.set_model_props(
            self.model,
            {
                **{p.key: p.value for p in self.model.metadata_props},
                f"nnperf.{kind}.{name}.scale": repr(float(scale)),
                f"nnperf.{kind}.{name}.zero_point": str(int(zero_point)),
            },
        )

    def remove_input_quantize(
        self, name: str, *, dtype: str = "uint8", range: tuple[float, float] | None = None
    ) -> onnx.ModelProto:
        """Make input ``name`` take the quantized tensor itself (Furiosa's
        ``quantize(..., with_quantize=False)``): its leading ``QuantizeLinear`` is removed, the
        ``DequantizeLinear`` nodes after it read the 8-bit input with the calibrated scale and
        zero point, and the int8 kernels behind them stay int8.

        The caller quantizes on the host with the same parameters, recorded in the model's
        metadata: ``get_quant_params(model, name).quantize(x)``. For raw pixels whose
        normalisation the graph should do, use :meth:`convert_input_type` instead.

        Args:
            name: a float32 input.
            dtype: the input's new type, ``uint8`` (default, as the seed feeds) or ``int8``
                (accepted in any case). An input quantized to the other type keeps its grid:
                the zero point moves by 128. onnxruntime fuses a first conv that reads a uint8
                graph input into ``QLinearConv`` even in an int8-activation model, but leaves
                it in float when that input is int8.
            range: (lo, hi) float range to quantize the input with when no ``QuantizeLinear``
                reads it (e.g. its first consumer was kept in float); asymmetric.

        Raises:
            InvalidInputError: unknown or non-float input, or no QuantizeLinear and no range.
            UnsupportedError: the input is quantized per axis, or twice with different scales.
        """
        target = _int_type(dtype, "remove_input_quantize")
        vi = self._input(name)
        if vi.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise InvalidInputError(
                f"input {name!r} is {TensorProto.DataType.Name(vi.type.tensor_type.elem_type)}; "
                "expected a float32 input whose QuantizeLinear to remove"
            )
        consumers = self._consumers(name)
        quants = [n for n in consumers if n.op_type == "QuantizeLinear"]
        others = [n for n in consumers if n.op_type != "QuantizeLinear"]
        params = {self._q_params(q) for q in quants}
        if len(params) > 1:
            raise UnsupportedError(
                f"input {name!r} feeds {len(quants)} QuantizeLinear nodes with different "
                f"parameters {sorted(params)}; expected one (requantize the model with one range "
                "per tensor)"
            )
        if params:
            scale, zp, qtype = params.pop()
        elif range is not None:
            lo, hi = min(float(range[0]), 0.0), max(float(range[1]), 0.0)
            if not hi > lo:
                raise InvalidInputError(f"range: got {range!r}, expected (lo, hi) with hi > lo")
            scale = (hi - lo) / 255.0
            zp, qtype = int(np.clip(round(-lo / scale), 0, 255)), TensorProto.UINT8
            quants = []
        else:
            raise InvalidInputError(
                f"input {name!r} feeds no QuantizeLinear; quantize the model first, or pass "
                "range=(lo, hi) to quantize the input with"
            )
        shifted, quantized_as = qtype != target, TensorProto.DataType.Name(qtype).lower()
        if shifted:  # the same grid in the other 8-bit type
            zp += 128 if target == TensorProto.UINT8 else -128
            qtype = target
        s_name = self._init(f"{name}_scale", np.array(scale, dtype=np.float32))
        z_name = self._init(f"{name}_zp", np.array(zp, dtype=_NP_INT[qtype]))
        if others:
            float_name = self._unique(f"{name}_float")
            for node in others:
                for i, t in enumerate(node.input):
                    if t == name:
                        node.input[i] = float_name
        for q in quants:
            users = self._consumers(q.output[0])
            if shifted:
                if any(u.op_type != "DequantizeLinear" for u in users):
                    raise UnsupportedError(
                        f"input {name!r}: {q.name!r} feeds "
                        f"{sorted({u.op_type for u in users})}; expected only DequantizeLinear "
                        f"to move it to {dtype}; use dtype={quantized_as!r}"
                    )
                for u in users:
                    u.input[1] = s_name
                    if len(u.input) > 2:
                        u.input[2] = z_name
                    else:
                        u.input.append(z_name)
            self._rename_uses(q.output[0], name)
            self._drop_value_info(q.output[0])
            self._graph.node.remove(q)
        if others:
            self._prepend(
                [
                    helper.make_node(
                        "DequantizeLinear",
                        [name, s_name, z_name],
                        [float_name],
                        name=self._unique(f"{name}_to_float"),
                    )
                ]
            )
        vi.type.tensor_type.elem_type = qtype
        self._record("input", name, scale, zp)
        return self._finish()

    def _q_params(self, q: onnx.NodeProto) -> tuple[float, int, int]:
        """(scale, zero point, 8-bit type) of a per-tensor QuantizeLinear."""
        scale = self._constant_value(q.input[1])
        zp = self._constant_value(q.input[2]) if len(q.input) > 2 and q.input[2] else None
        if scale is None or scale.size != 1 or (zp is not None and zp.size != 1):
            raise UnsupportedError(
                f"QuantizeLinear {q.name!r}: expected a constant per-tensor scale and zero point"
            )
        qtype = TensorProto.UINT8 if zp is None else _tensor_type(zp)
        if qtype not in _QMIN:
            raise UnsupportedError(
                f"QuantizeLinear {q.name!r} quantizes to "
                f"{TensorProto.DataType.Name(qtype).lower()}; expected uint8 or int8"
            )
        return float(scale.ravel()[0]), int(0 if zp is None else zp.ravel()[0]), qtype

    def convert_output_type(
        self,
        name: str,
        dtype: str,
        *,
        range: tuple[float, float] | None = None,
    ) -> onnx.ModelProto:
        """Make output ``name`` an 8-bit tensor instead of float32.

        Without ``range``, the output must come from a ``DequantizeLinear`` (a quantized model):
        it is removed and the quantized tensor is returned as is. With ``range=(lo, hi)``, a
        ``QuantizeLinear`` maps ``[lo, hi]`` onto the full 8-bit range (``(0, 1)`` and ``uint8``:
        Furiosa's ``normalized_pixel_outputs``, pixels 0..255). Scale and zero point go in the
        model's metadata (``nnperf.output.NAME.scale`` / ``.zero_point``) to dequantize on the host.

        Raises:
            InvalidInputError: unknown output, bad dtype or range, or no trailing
                DequantizeLinear and no range.
        """
        qtype = _int_type(dtype, "convert_output_type")
        dtype = TensorProto.DataType.Name(qtype).lower()
        vi = self._output(name)
        producer = self._producer(name)
        recorded = self._float_output_params(name) if range is None else None
        if recorded is not None and (producer is None or producer.op_type != "DequantizeLinear"):
            # quantize() left this output in float and recorded its calibrated quantization
            was, scale_v, zp_v = recorded
            if was != dtype:
                raise InvalidInputError(
                    f"output {name!r} was quantized as {was}, expected {dtype}; ask for {was}, "
                    "or quantize with the matching activation type"
                )
            self._quantize_output(name, producer, qtype, scale_v, zp_v)
        elif range is None:
            if producer is None or producer.op_type != "DequantizeLinear":
                raise InvalidInputError(
                    f"output {name!r} is produced by "
                    f"{producer.op_type if producer else 'no node'}, not DequantizeLinear; pass "
                    "range=(lo, hi) to quantize it, or quantize the model first"
                )
            zp = self._const(producer.input[2]) if len(producer.input) > 2 else None
            have = TensorProto.UINT8 if zp is None else _tensor_type(zp)
            if have != qtype:
                raise InvalidInputError(
                    f"output {name!r} is quantized as {TensorProto.DataType.Name(have).lower()}, "
                    f"expected {dtype}; ask for {TensorProto.DataType.Name(have).lower()}, or "
                    "quantize with the matching activation type"
                )
            scale = self._const(producer.input[1])
            q_tensor = producer.input[0]
            q_producer = self._producer(q_tensor)
            if q_producer is None:
                raise InvalidInputError(f"output {name!r}: the quantized tensor has no producer")
            for i, t in enumerate(q_producer.output):
                if t == q_tensor:
                    q_producer.output[i] = name
            self._rename_uses(q_tensor, name)
            self._graph.node.remove(producer)
            self._drop_value_info(q_tensor, name)
            scale_v = float(np.asarray(scale).ravel()[0]) if scale is not None else 1.0
            zp_v = int(np.asarray(zp).ravel()[0]) if zp is not None else 0
        else:
            lo, hi = float(range[0]), float(range[1])
            if not hi > lo:
                raise InvalidInputError(f"range: got {range!r}, expected (lo, hi) with hi > lo")
            scale_v = (hi - lo) / 255.0
            zp_v = int(np.clip(round(_QMIN[qtype] - lo / scale_v), _QMIN[qtype], _QMAX[qtype]))
            self._quantize_output(name, producer, qtype, scale_v, zp_v)
        vi.type.tensor_type.elem_type = qtype
        self._record("output", name, scale_v, zp_v)
        return self._finish()

    def permute_input(self, name: str, perm: Sequence[int]) -> onnx.ModelProto:
        """Let input ``name`` arrive in another layout, e.g. NHWC images with ``perm=(0, 3, 1, 2)``.

        ``perm`` follows ``torch.permute`` / the compiler's ``permute_input``: the model's
        original input equals ``new_input.transpose(perm)``, so NHWC images (N, H, W, C) into an
        NCHW model take ``(0, 3, 1, 2)``; ``(0, 2, 3, 1)`` would make the input (N, W, C, H). A ``Transpose`` is inserted, which
        onnxruntime at graph level ``all`` folds into its NCHWc ``ReorderInput(channels_last=1)``
        when the first convolution is blocked.

        Raises:
            InvalidInputError: unknown input, or ``perm`` not a permutation of the input's axes.
        """
        vi = self._input(name)
        dims = list(vi.type.tensor_type.shape.dim)
        perm_l = [int(p) for p in perm]
        if sorted(perm_l) != list(range(len(dims))):
            raise InvalidInputError(
                f"permute_input: got perm {perm_l}, expected a permutation of "
                f"{list(range(len(dims)))} for input {name!r} of rank {len(dims)}"
            )
        new_dims: list[onnx.TensorShapeProto.Dimension] = [dims[0]] * len(dims)
        for i, p in enumerate(perm_l):
            new_dims[p] = dims[i]
        copies = [copy.deepcopy(d) for d in new_dims]
        del vi.type.tensor_type.shape.dim[:]
        vi.type.tensor_type.shape.dim.extend(copies)
        inner = self._unique(f"{name}_permuted")
        self._rename_uses(name, inner)
        self._prepend(
            [
                helper.make_node(
                    "Transpose", [name], [inner], perm=perm_l, name=self._unique(f"{name}_permute")
                )
            ]
        )
        return self._finish()

    def set_batch_size(self, batch_size: int | None) -> onnx.ModelProto:
        """Fix the leading dimension of every input and output to ``batch_size``, or free it.

        ``None`` makes it symbolic (``"batch"``). Intermediate shapes are inferred again.

        A static export often bakes the batch into ``Reshape`` targets (``x.view(1, -1)`` becomes
        the constant ``[1, -1]``). Where a constant target's first entry equals its input's
        dim 0, it becomes ``0`` ("copy dim 0 from the input"): the same result at the old batch
        size and batch-agnostic at any other. Reshapes that move the batch to another axis, and
        shapes computed at run time, are left as they are.

        Raises:
            InvalidInputError: ``batch_size`` not a positive int or None.
        """
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise InvalidInputError(
                f"set_batch_size: got {batch_size!r}, expected a positive integer or None"
            )
        self._free_reshape_batches()
        inits = {i.name for i in self._graph.initializer}
        for vi in [*self._graph.input, *self._graph.output]:
            if vi.name in inits:
                continue
            dims = vi.type.tensor_type.shape.dim
            if not dims:
                continue
            d0 = dims[0]
            if batch_size is None:
                d0.Clear()
                d0.dim_param = "batch"
            else:
                d0.Clear()
                d0.dim_value = batch_size
        del self._graph.value_info[:]
        self.model.CopyFrom(onnx.shape_inference.infer_shapes(self.model))
        return self._finish()


def _int_type(dtype: str, where: str) -> int:
    """The ONNX 8-bit type for ``dtype`` (``uint8``/``int8``, any case)."""
    key = str(dtype).lower()
    if key not in _INT_TYPES:
        raise InvalidInputError(f"{where}: got dtype {dtype!r}, expected 'uint8' or 'int8'")
    return _INT_TYPES[key]


def _dim0_values(model: onnx.ModelProto) -> dict[str, int]:
    """Inferred fixed dim 0 of every tensor that has one (inputs, value_info, outputs)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    out: dict[str, int] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            out[vi.name] = dims[0].dim_value
    return out


def _tensor_type(array: np.ndarray) -> int:
    if array.dtype == np.int8:
        return TensorProto.INT8
    if array.dtype == np.uint8:
        return TensorProto.UINT8
    return int(helper.np_dtype_to_tensor_dtype(array.dtype))


def _prune_unused_initializers(model: onnx.ModelProto) -> None:
    used = {t for n in model.graph.node for t in n.input}
    used |= {o.name for o in model.graph.output}
    removed = {i.name for i in model.graph.initializer if i.name not in used}
    if not removed:
        return
    keep = [i for i in model.graph.initializer if i.name not in removed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    inputs = [vi for vi in model.graph.input if vi.name not in removed]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
