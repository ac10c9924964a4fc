from __future__ import annotations

import json

import pytest

from nnperf import GraphLevel, InvalidInputError, RunConfig, TensorDesc
from nnperf.device import parse_device


def test_runconfig_json_round_trip(tmp_path):
    cfg = RunConfig(
        device="cpu(1)*2",
        workers=3,
        batch_size=8,
        graph_level="extended",
        prepack=False,
        providers=("CPUExecutionProvider",),
        provider_options={"CPUExecutionProvider": {"x": 1}},
    )
    assert cfg.graph_level is GraphLevel.EXTENDED
    assert cfg.provider_options == {"CPUExecutionProvider": {"x": "1"}}
    again = RunConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    path = tmp_path / "c.json"
    cfg.save(path)
    assert RunConfig.load(path) == cfg
    # A file whose "config" key holds the config (what `nnperf tune` writes) loads too.
    path.write_text(json.dumps({"schema": "other", "config": cfg.to_dict()}))
    assert RunConfig.load(path) == cfg


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"graph_level": "max"}, "graph_level: got 'max'"),
        ({"workers": 0}, "workers: got 0"),
        ({"batch_size": -1}, "batch_size: got -1"),
        ({"batch_size": True}, "batch_size: got True"),
        ({"prepack": "yes"}, "prepack: got 'yes'"),
        ({"device": "npu0"}, "cannot parse 'npu0'"),
        ({"execution_mode": "async"}, "execution_mode"),
        ({"providers": "CPUExecutionProvider"}, "providers"),
    ],
)
def test_runconfig_rejects_bad_values(kwargs, fragment):
    with pytest.raises(InvalidInputError, match=fragment.replace("(", r"\(")):
        RunConfig(**kwargs)


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
    assert parse_device("tensorrt", cores=(0,)).instances[0].device_id == 0


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
