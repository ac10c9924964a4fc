"""Model optimisation on ONNX graphs, each change verified for numerics and measured for speed.

- :class:`ModelEditor`: uint8 pixel inputs, 8-bit outputs, permuted (NHWC) inputs, batch size.
- :class:`Calibrator` (``calibrate``) and :func:`quantize` (``quantize``): calibrated int8 QDQ
  models, pre-processed by :func:`prepare` by default; :func:`get_quant_params` for 8-bit inputs
  and outputs; :func:`choose_quantization` (``quant_search``) measures candidates and keeps the
  fastest accurate one; :func:`layer_sensitivity`.
- :mod:`nnperf.optimize.measure`: the one timing loop (interleaved rounds, host work included).
- :func:`convert_precision`: fp16 (all ops or matmul-only).
- :func:`dump_optimized`: the engine-optimised graph (fusions, NCHWc layouts), offline.
- :mod:`nnperf.optimize.tiling`: large images as overlapping patches.
- :func:`assert_equivalent` / :func:`compare_models`: output agreement.
"""

from __future__ import annotations

from nnperf.optimize.calibrate import CalibrationMethod, Calibrator, random_dataset
from nnperf.optimize.editor import (
    ModelEditor,
    QuantParams,
    get_output_names,
    get_pure_input_names,
    get_quant_params,
)
from nnperf.optimize.graph import GraphDump, compare_dump_load, dump_optimized, optimized_op_counts
from nnperf.optimize.measure import Comparison, StageTimes, compare_before_after, measure_model
from nnperf.optimize.precision import convert_precision
from nnperf.optimize.quant_search import (
    LayerSensitivity,
    QuantizeChoice,
    choose_quantization,
    layer_sensitivity,
)
from nnperf.optimize.quantize import prepare, quantize
from nnperf.optimize.verify import (
    Agreement,
    EquivalenceError,
    assert_equivalent,
    compare_models,
    compare_outputs,
)

__all__ = [
    "Agreement",
    "CalibrationMethod",
    "Calibrator",
    "Comparison",
    "EquivalenceError",
    "GraphDump",
    "LayerSensitivity",
    "ModelEditor",
    "QuantParams",
    "QuantizeChoice",
    "StageTimes",
    "assert_equivalent",
    "choose_quantization",
    "compare_before_after",
    "compare_dump_load",
    "compare_models",
    "compare_outputs",
    "convert_precision",
    "dump_optimized",
    "get_output_names",
    "get_pure_input_names",
    "get_quant_params",
    "layer_sensitivity",
    "measure_model",
    "optimized_op_counts",
    "prepare",
    "quantize",
    "random_dataset",
]
