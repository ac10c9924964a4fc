from __future__ import annotations

import json
import re

import pytest

from nnperf import (
    GraphLevel,
    InvalidInputError,
    OpenVINOOptions,
    OrtOptions,
    RunConfig,
    TensorDesc,
)
from nnperf.device import parse_device
from nnperf.types import Progress


def test_runconfig_json_round_trip(tmp_path):
    cfg = RunConfig(
        device="cpu(1)*2",
        workers=3,
        batch_size=8,
        dims={"seq": 128},
        options=OrtOptions(
            graph_level="extended",
            prepack=False,
            providers=("CPUExecutionProvider",),
            provider_options={"CPUExecutionProvider": {"x": 1}},
        ),
    )
    opts = cfg.engine_options
    assert cfg.engine == "onnxruntime" and isinstance(opts, OrtOptions)
    assert opts.graph_level is GraphLevel.EXTENDED
    assert opts.provider_options == {"CPUExecutionProvider": {"x": "1"}}
    assert cfg.to_dict()["schema"] == "nnperf.runconfig/2"
    again = RunConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    path = tmp_path / "c.json"
    cfg.save(path)
    assert RunConfig.load(path) == cfg
    # A file whose "config" key holds the config (what `nnperf tune` writes) loads too.
    path.write_text(json.dumps({"schema": "other", "config": cfg.to_dict()}))
    assert RunConfig.load(path) == cfg


def test_openvino_config_round_trips_and_names_its_engine():
    cfg = RunConfig(device="cpu(1)*2", precision="BF16", options=OpenVINOOptions(hint="throughput"))
    assert cfg.engine == "openvino" and cfg.precision == "bf16"
    assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert cfg.describe() == "openvino cpu(1)*2 bf16 hint=throughput"
    # a mapping of option fields becomes the engine's options type
    assert RunConfig(engine="openvino", options={"hint": "latency"}).engine_options == (
        OpenVINOOptions(hint="latency")
    )
    # changing the engine resets the options to the new engine's defaults
    back = cfg.replace(engine="onnxruntime")
    assert back.engine_options == OrtOptions() and back.precision == "bf16"
    assert cfg.with_options(hint=None).engine_options == OpenVINOOptions()


def test_schema_1_files_still_load(tmp_path):
    # What nnperf wrote before engines were a seam: onnxruntime options at the top level.
    old = {
        "schema": "nnperf.runconfig/1",
        "device": "cpu(1)*2",
        "workers": 4,
        "batch_size": None,
        "graph_level": "basic",
        "prepack": False,
        "mem_pattern": True,
        "execution_mode": "sequential",
        "inter_op_threads": None,
        "spinning": True,
        "deterministic": False,
        "providers": ["CPUExecutionProvider"],
        "provider_options": {},
        "optimized_model_path": None,
        "cuda_graph": False,
        "max_inflight": None,
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"schema": "nnperf.tune/1", "config": old}))
    cfg = RunConfig.load(path)
    assert cfg.engine == "onnxruntime" and cfg.device == "cpu(1)*2" and cfg.workers == 4
    assert cfg.engine_options == OrtOptions(
        graph_level="basic", prepack=False, providers=("CPUExecutionProvider",)
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"options": {"graph_level": "max"}}, "graph_level: got 'max'"),
        ({"workers": 0}, "workers: got 0"),
        ({"batch_size": -1}, "batch_size: got -1"),
        ({"batch_size": True}, "batch_size: got True"),
        ({"options": {"prepack": "yes"}}, "prepack: got 'yes'"),
        ({"device": "npu0"}, "cannot parse 'npu0'"),
        ({"options": {"execution_mode": "async"}}, "execution_mode"),
        ({"options": {"providers": 5}}, "providers: got 5"),
        ({"options": {"providers": ["cuda", "CUDAExecutionProvider"]}}, "names one twice"),
        ({"device": "tensorrt:0"}, "TensorRT is an onnxruntime execution provider, not a device"),
        ({"options": {"colour": "red"}}, "unknown field(s) ['colour']"),
        ({"engine": "tvm"}, "engine: got 'tvm'"),
        ({"precision": "int4"}, "precision: got 'int4'"),
        ({"dims": {"seq": 0}}, "dims['seq']: got 0"),
        ({"shapes": {"x": "1x3"}}, "shapes['x']"),
        ({"engine": "onnxruntime", "options": OpenVINOOptions()}, "expected OrtOptions"),
        ({"engine": "openvino", "options": {"hint": "fastest"}}, "hint: got 'fastest'"),
    ],
)
def test_runconfig_rejects_bad_values(kwargs, fragment):
    with pytest.raises(InvalidInputError, match=re.escape(fragment)):
        RunConfig(**kwargs)


def test_replace_points_engine_options_to_with_options():
    with pytest.raises(InvalidInputError, match=r"onnxruntime options: use config.with_options"):
        RunConfig().replace(graph_level="basic")
    assert RunConfig().with_options(graph_level="basic").engine_options.graph_level == "basic"


def test_runconfig_file_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        RunConfig.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        RunConfig.load(bad)
    bad.write_text(json.dumps({"device": "cpu", "threads": 4}))
    with pytest.raises(InvalidInputError, match=r"unknown field\(s\) \['threads'\]"):
        RunConfig.load(bad)
    bad.write_text(json.dumps({"schema": "nnperf.runconfig/9"}))
    with pytest.raises(InvalidInputError, match="schema"):
        RunConfig.load(bad)
    with pytest.raises(InvalidInputError, match="no field"):
        RunConfig().replace(colour="red")


def test_tensor_desc():
    d = TensorDesc("input", ("batch", 3, 224, 224), "float32")
    assert d.layout == "NCHW"
    assert not d.is_static and d.numel is None
    assert str(d) == "input: float32 (batch, 3, 224, 224) NCHW"
    assert TensorDesc("x", (1, 224, 224, 3), "uint8").layout == "NHWC"
    s = TensorDesc("x", (2, 4), "float32")
    assert s.size_bytes == 32 and s.to_dict()["shape"] == [2, 4]


@pytest.mark.parametrize(
    ("text", "instances", "threads", "cores"),
    [
        ("cpu(1)*2", 2, [1, 1], [None, None]),
        ("cpu(2)", 1, [2], [None]),
        ("cpu*2", 2, [1, 1], [None, None]),
        ("cpu:0-1", 1, [2], [(0, 1)]),
        ("cpu:0,cpu:1", 2, [1, 1], [(0,), (1,)]),
        ("CPU(1) * 2", 2, [1, 1], [None, None]),
    ],
)
def test_device_grammar(text, instances, threads, cores):
    spec = parse_device(text, cores=(0, 1))
    assert len(spec.instances) == instances
    assert [i.threads for i in spec.instances] == threads
    assert [i.cores for i in spec.instances] == cores


def test_device_cpu_uses_every_core_and_gpu_specs():
    spec = parse_device("cpu", cores=(0, 1, 2, 3))
    assert [i.threads for i in spec.instances] == [4]
    gpu = parse_device("cuda:1*2", cores=(0,))
    assert gpu.kind == "cuda" and [i.device_id for i in gpu.instances] == [1, 1]


def test_tensorrt_is_a_provider_on_a_cuda_device_not_a_device_kind():
    # TensorRT was a device kind ('tensorrt:0'); it is an onnxruntime execution provider, so it
    # is an engine option on the CUDA device it runs on, and the old spelling says how.
    with pytest.raises(InvalidInputError, match=re.escape("--device cuda:1*2 --engine-option")):
        parse_device("tensorrt:1*2", cores=(0,))
    cfg = RunConfig(device="cuda:0", options={"providers": "tensorrt,cuda,cpu"})
    assert cfg.engine_options.providers == (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    )
    assert cfg.engine_options.changes() == ["providers=tensorrt,cuda,cpu"]
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    # onnxruntime's own names pass through.
    assert RunConfig(options={"providers": ["CPUExecutionProvider"]}).engine_options.providers == (
        "CPUExecutionProvider",
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("cpu:5", "not available"),
        ("cpu:0,cpu:0", "pinned to two instances"),
        ("cpu:1-0", "reversed"),
        ("cpu(0)", "threads must be >= 1"),
        ("cpu(64)*64", "threads for 2 core"),
        ("cpu,cuda", "mixes"),
        ("cpu(1),cpu(1)", "must each name cores"),
        ("", "empty"),
        ("npu:0:1", "cannot parse"),
    ],
)
def test_device_errors(text, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        parse_device(text, cores=(0, 1))


def test_device_env_default_never_overrides_explicit(monkeypatch):
    monkeypatch.setenv("NNPERF_DEVICES", "cpu(1)*2")
    assert len(parse_device().instances) == 2
    assert len(parse_device("cpu(1)").instances) == 1


@pytest.mark.parametrize(
    ("progress", "fraction"),
    [
        (Progress(), 0.0),  # no bound: nothing to measure against
        (Progress(done=5, total=10), 0.5),
        (Progress(elapsed_s=3.0, duration_s=4.0), 0.75),
        # both bounds must be met: the lesser fraction counts
        (Progress(done=90, total=100, elapsed_s=1.0, duration_s=10.0), 0.1),
        (Progress(done=500, total=100, elapsed_s=20.0, duration_s=10.0), 1.0),
    ],
)
def test_progress_fraction(progress, fraction):
    assert progress.fraction == pytest.approx(fraction)


def test_calibration_reports_samples_of_a_sized_dataset():
    from models import matmul_model

    from nnperf.optimize.calibrate import Calibrator, random_dataset

    seen: list[Progress] = []
    with Calibrator(matmul_model(), "minmax") as cal:
        data = random_dataset(cal.model, 3, seed=0)
        cal.collect_data(data, progress=seen.append)
    assert [(p.done, p.total) for p in seen] == [(1, 3), (2, 3), (3, 3)]
    assert seen[-1].fraction == 1.0
