"""Operator mode: onnxruntime node events on our clock, classification, bounds, advice."""

from __future__ import annotations

import glob
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import nnperf
from nnperf.profiler import OpClass, classify, profile
from nnperf.profiler.advice import advise
from nnperf.profiler.tables import descendants, external_operators, operators


def qdq_model(channels: int = 16, size: int = 64, seed: int = 0) -> onnx.ModelProto:
    """float input -> QuantizeLinear -> DQ -> Add (int8 bias via DQ) -> Q -> DQ -> out.

    onnxruntime fuses the middle into QLinearAdd; the input QuantizeLinear and the output
    DequantizeLinear stay, the pattern of a quantize_static model with float I/O, and take a
    clear share of engine time.
    """
    rng = np.random.default_rng(seed)
    w = rng.integers(-100, 100, (1, channels, 1, 1)).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "x_zp"),
        numpy_helper.from_array(w, "w_q"),
        numpy_helper.from_array(np.array(0.01, np.float32), "w_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "w_zp"),
        numpy_helper.from_array(np.array(0.05, np.float32), "y_scale"),
        numpy_helper.from_array(np.array(0, np.int8), "y_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"], name="q_in"),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="dq_in"),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_dq"], name="dq_w"),
        helper.make_node("Add", ["x_dq", "w_dq"], ["y"], name="add"),
        helper.make_node("QuantizeLinear", ["y", "y_scale", "y_zp"], ["y_q"], name="q_out"),
        helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zp"], ["out"], name="dq_out"),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, size, size])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", channels, size, size])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_classify() -> None:
    assert classify("Conv") is OpClass.COMPUTE
    assert classify("QuantizeLinear") is OpClass.EXTERNAL
    assert classify("ReorderInput") is OpClass.EXTERNAL
    assert classify("MemcpyToHost") is OpClass.COPY


def test_operators_land_inside_their_engine_run() -> None:
    x = np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32)
    with profile(operators=True) as prof:
        session = nnperf.create("zoo:mnist")
        with prof.record("trace"):
            for _ in range(10):
                session.run(x)
    assert prof.unattached_operators == 0
    spans = prof.spans()
    by_id = {s.span_id: s for s in spans}
    ops = [s for s in spans if s.cat == "Operator"]
    assert len(ops) >= 10 * 3
    raw = {(e.start_ns, e.name) for e in prof.operator_events()}
    assert len(raw) == len(ops)
    for op in ops:
        run = by_id[op.parent_span_id]
        assert run.name == "EngineRun"
        assert run.start_ns <= op.start_ns <= op.end_ns <= run.end_ns
    # The raw (unclamped) events are within the µs rounding of their runs.
    runs = sorted((s.start_ns, s.end_ns) for s in spans if s.name == "EngineRun")
    for e in prof.operator_events():
        assert any(a - 2_000 <= e.start_ns and e.end_ns <= b + 2_000 for a, b in runs)
    session.close()


def test_bounded_collection_and_files_removed() -> None:
    x = np.zeros((1, 1, 28, 28), np.float32)
    with profile(operators=True, max_operator_runs=3) as prof:
        session = nnperf.create("zoo:mnist")
        for block in ("a", "b"):
            with prof.record(block):
                for _ in range(8):
                    session.run(x)
        tmp = prof._tmpdir
    df = prof.dataframe()
    infs = df[(df["name"] == "Inference")]
    assert len(infs) == 16  # every query timed
    with_ops = df.loc[df["cat"] == "Operator", "parent_span_id"].nunique()
    assert with_ops == 6  # 3 profiled runs per block
    assert tmp is not None and not glob.glob(os.path.join(tmp, "*"))
    session.close()


def test_pause_routes_to_plain_instance() -> None:
    x = np.zeros((1, 1, 28, 28), np.float32)
    with profile(operators=True) as prof:
        session = nnperf.create("zoo:mnist")
        prof.pause()
        with prof.record("warm up"):
            session.run(x)
        prof.resume()
        with prof.record("trace"):
            session.run(x)
    df = prof.dataframe()
    assert len(df[df["name"] == "warm up"]) == 0
    assert len(df[df["name"] == "Inference"]) == 1
    assert (df["cat"] == "Operator").sum() > 0
    session.close()


def test_quantized_model_shows_external_ops_and_advice() -> None:
    model = qdq_model()
    x = np.random.default_rng(1).standard_normal((1, 16, 64, 64)).astype(np.float32)
    with profile(operators=True) as prof:
        session = nnperf.create(model)
        with prof.record("trace"):
            for _ in range(20):
                session.run(x)
    df = descendants(prof.dataframe(), "trace")
    ext = external_operators(df)
    assert {"Quantize", "Dequantize"} <= set(ext["name"])
    table = operators(df)
    assert set(table.loc[table["op_type"] == "QuantizeLinear", "op_class"]) == {"external"}
    advice = advise(df, model="m.onnx", inputs=session.inputs, outputs=session.outputs)
    rules = {a.rule: a for a in advice}
    assert "input-quantize" in rules and "--input-type uint8" in rules["input-quantize"].command
    assert "output-dequantize" in rules
    assert "--output-type" in rules["output-dequantize"].command
    # the figure printed is the measured share
    share = rules["input-quantize"].value
    assert f"{share:.1%}" in rules["input-quantize"].finding
    session.close()


def test_advice_is_silent_without_conversions() -> None:
    x = np.zeros((8, 1, 28, 28), np.float32)
    with profile(operators=True) as prof:
        session = nnperf.create("zoo:mnist", batch_size=8)
        with prof.record("trace"):
            for _ in range(5):
                session.run(x)
    df = descendants(prof.dataframe(), "trace")
    rules = {
        a.rule
        for a in advise(df, model="m", inputs=session.inputs, outputs=session.outputs, batch_size=8)
    }
    assert not rules & {"input-quantize", "output-dequantize", "cpu-fallback", "tiny-model"}
    session.close()
