"""``ModelEditor``: ONNX graph edits for cheaper inputs and outputs (Furiosa's ``ModelEditor``).

Every operation edits :attr:`ModelEditor.model` in place, checks it with ``onnx.checker`` and
returns it. Tensor names seen by callers never change: a converted input keeps its name (the float
tensor it fed is renamed inside the graph).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnperf.errors import InvalidInputError, UnsupportedError
from nnperf.model import ModelSource, load_model

__all__ = ["ModelEditor", "as_proto", "get_output_names", "get_pure_input_names"]

_INT_TYPES = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}
_NP_INT = {TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}
_QMIN = {TensorProto.UINT8: 0, TensorProto.INT8: -128}
_QMAX = {TensorProto.UINT8: 255, TensorProto.INT8: 127}


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
            dtype: only ``"uint8"`` (pixels).
            mean: per-channel (or scalar) mean subtracted after scaling; default 0.
            std: per-channel (or scalar) divisor; default 1.
            pixel_scale: multiplier from pixel to float before normalisation; default 1/255.
            channel_axis: the channel axis of the input for per-channel mean/std (default 1, NCHW).

        Raises:
            InvalidInputError: unknown input, non-float input, bad dtype or mean/std lengths.
        """
        if dtype != "uint8":
            raise InvalidInputError(
                f"convert_input_type: got dtype {dtype!r}, expected 'uint8' (pixel inputs)"
            )
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
        if consumers and per_tensor and all(n.op_type == "QuantizeLinear" for n in consumers):
            zp = -float(shift[0]) / float(scale[0])
            if abs(zp - round(zp)) < 1e-3 and 0 <= round(zp) <= 255:
                self._input_direct(name, consumers, float(scale[0]), round(zp))
                vi.type.tensor_type.elem_type = TensorProto.UINT8
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
            f"{name}_zp", np.zeros(() if per_tensor else (channels,), dtype=np.uint8)
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
        vi.type.tensor_type.elem_type = TensorProto.UINT8
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
        if dtype not in _INT_TYPES:
            raise InvalidInputError(
                f"convert_output_type: got dtype {dtype!r}, expected 'uint8' or 'int8'"
            )
        vi = self._output(name)
        qtype = _INT_TYPES[dtype]
        producer = self._producer(name)
        if range is None:
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
            float_name = self._unique(f"{name}_float")
            if producer is None:
                raise InvalidInputError(f"output {name!r} is a graph input; nothing to convert")
            for i, t in enumerate(producer.output):
                if t == name:
                    producer.output[i] = float_name
            self._rename_uses(name, float_name)
            s_name = self._init(f"{name}_scale", np.array(scale_v, dtype=np.float32))
            z_name = self._init(f"{name}_zp", np.array(zp_v, dtype=_NP_INT[qtype]))
            self._graph.node.append(
                helper.make_node(
                    "QuantizeLinear",
                    [float_name, s_name, z_name],
                    [name],
                    name=self._unique(f"{name}_quantize"),
                )
            )
        vi.type.tensor_type.elem_type = qtype
        helper.set_model_props(
            self.model,
            {
                **{p.key: p.value for p in self.model.metadata_props},
                f"nnperf.output.{name}.scale": repr(scale_v),
                f"nnperf.output.{name}.zero_point": str(zp_v),
            },
        )
        return self._finish()

    def permute_input(self, name: str, perm: Sequence[int]) -> onnx.ModelProto:
        """Let input ``name`` arrive in another layout, e.g. NHWC images with ``perm=(0, 3, 1, 2)``.

        ``perm`` follows ``torch.permute`` / the compiler's ``permute_input``: the model's
        original input equals ``new_input.transpose(perm)``. A ``Transpose`` is inserted, which
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
