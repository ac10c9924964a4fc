"""Tests of the built-in model zoo: real onnx checker, real onnxruntime CPU sessions."""

from __future__ import annotations

import functools
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from nnperf import zoo
from nnperf.errors import NotFoundError

NAMES = ["bert-tiny", "identity", "mnist", "mobilenetv2", "resnet50"]

EXPECTED_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "identity": {"y": (1000,)},
    "mnist": {"logits": (10,)},
    "mobilenetv2": {"logits": (1000,)},
    "resnet50": {"logits": (1000,)},
    "bert-tiny": {"last_hidden_state": (128, 256), "pooler_output": (256,)},
}


@functools.cache
def _session(name: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    return ort.InferenceSession(zoo.model_bytes(name), options, providers=["CPUExecutionProvider"])


def _feeds(session: ort.InferenceSession, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for arg in session.get_inputs():
        shape = [batch if isinstance(dim, str) else dim for dim in arg.shape]
        if arg.name == "input_ids":
            feeds[arg.name] = rng.integers(0, zoo.BERT_VOCAB_SIZE, shape, dtype=np.int64)
        elif arg.name == "attention_mask":
            mask = np.ones(shape, dtype=np.int64)
            mask[:, 100:] = 0  # padding at the end, as a tokenizer writes it
            feeds[arg.name] = mask
        else:
            assert arg.type == "tensor(float)"
            feeds[arg.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _run(name: str, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    session = _session(name)
    outputs = session.run(None, _feeds(session, batch, seed))
    return {
        arg.name: np.asarray(value)
        for arg, value in zip(session.get_outputs(), outputs, strict=True)
    }


def _op_counts(name: str) -> Counter[str]:
    model = onnx.load_model_from_string(zoo.model_bytes(name))
    return Counter(node.op_type for node in model.graph.node)


def test_list_models() -> None:
    entries = zoo.list_models()
    assert [entry.name for entry in entries] == NAMES
    tasks = {entry.name: entry.task for entry in entries}
    assert tasks == {
        "bert-tiny": "nlp",
        "identity": "identity",
        "mnist": "classification",
        "mobilenetv2": "classification",
        "resnet50": "classification",
    }
    assert all(entry.description for entry in entries)


def test_is_zoo_ref_and_resolve() -> None:
    assert zoo.ZOO_PREFIX == "zoo:"
    assert zoo.is_zoo_ref("zoo:resnet50")
    assert zoo.is_zoo_ref("zoo:nope")  # a reference, even if the name turns out unknown
    assert not zoo.is_zoo_ref("resnet50")
    assert not zoo.is_zoo_ref("model.onnx")
    assert not zoo.is_zoo_ref(b"zoo:resnet50")
    assert not zoo.is_zoo_ref(None)
    assert zoo.resolve("zoo:resnet50") == "resnet50"
    assert zoo.resolve("bert-tiny") == "bert-tiny"


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(NotFoundError) as info:
        zoo.resolve("zoo:resnet5")
    message = str(info.value)
    assert "unknown zoo model 'resnet5'" in message
    assert "bert-tiny, identity, mnist, mobilenetv2, resnet50" in message
    assert "did you mean 'resnet50'?" in message
    with pytest.raises(NotFoundError, match="did you mean 'mobilenetv2'"):
        zoo.build_model("mobilenet")
    with pytest.raises(NotFoundError) as info:
        zoo.model_bytes("zzz")
    assert "did you mean" not in str(info.value)
    assert isinstance(info.value, LookupError)


@pytest.mark.parametrize("name", NAMES)
def test_model_checks_and_has_metadata(name: str) -> None:
    model = onnx.load_model_from_string(zoo.model_bytes(name))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.producer_name == "nnperf.zoo"
    assert model.doc_string
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("name", NAMES)
def test_runs_at_batch_1_and_2(name: str) -> None:
    one = _run(name, 1)
    two = _run(name, 2)
    for out, shape in EXPECTED_SHAPES[name].items():
        assert one[out].shape == (1, *shape)
        assert two[out].shape == (2, *shape)
        assert one[out].dtype == np.float32
        assert np.isfinite(one[out]).all()
        assert np.isfinite(two[out]).all()
        # Same first sample in both feeds (same rng): the batch axis is a real batch axis.
        np.testing.assert_allclose(two[out][0], one[out][0], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", ["mnist", "mobilenetv2", "resnet50"])
def test_logits_have_a_sane_scale(name: str) -> None:
    logits = _run(name, 2)["logits"]
    assert 0.1 < float(logits.std()) < 10.0
    # Different inputs give different predictions: the network did not collapse to a constant.
    assert not np.allclose(logits[0], logits[1], atol=1e-3)


def test_identity_is_identity() -> None:
    session = _session("identity")
    feeds = _feeds(session, 2)
    (out,) = session.run(None, feeds)
    np.testing.assert_array_equal(out, feeds["x"])


def test_bert_outputs_and_mask() -> None:
    session = _session("bert-tiny")
    feeds = _feeds(session, 1)
    hidden, pooled = session.run(None, feeds)
    assert 0.5 < float(hidden.std()) < 2.0  # post-LayerNorm hidden states
    assert np.abs(pooled).max() < 1.0  # Tanh
    assert pooled.std() > 0.1
    # Changing padded tokens must not change the states of the kept tokens.
    changed = dict(feeds)
    changed["input_ids"] = feeds["input_ids"].copy()
    changed["input_ids"][:, 100:] = 7
    hidden2, pooled2 = session.run(None, changed)
    np.testing.assert_allclose(hidden2[:, :100], hidden[:, :100], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pooled2, pooled, rtol=1e-4, atol=1e-4)


def test_structure_resnet50() -> None:
    counts = _op_counts("resnet50")
    assert counts["Conv"] == 53
    assert counts["BatchNormalization"] == 0
    assert counts["Add"] == 16
    assert counts["Relu"] == 49
    assert counts["Gemm"] == 1


def test_structure_mobilenetv2() -> None:
    counts = _op_counts("mobilenetv2")
    assert counts["Conv"] == 52
    assert counts["BatchNormalization"] == 0
    assert counts["Add"] == 10  # residual blocks
    assert counts["Clip"] == 35  # ReLU6
    model = onnx.load_model_from_string(zoo.model_bytes("mobilenetv2"))
    depthwise = [
        n
        for n in model.graph.node
        if n.op_type == "Conv" and onnx.helper.get_node_attr_value(n, "group") > 1
    ]
    assert len(depthwise) == 17


def test_structure_bert() -> None:
    counts = _op_counts("bert-tiny")
    assert counts["Softmax"] == 4
    assert counts["LayerNormalization"] == 9
    assert counts["Erf"] == 4
    model = onnx.load_model_from_string(zoo.model_bytes("bert-tiny"))
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    assert shapes["embeddings.word_embeddings.weight"] == (zoo.BERT_VOCAB_SIZE, 256)
    assert shapes["encoder.layer.3.intermediate.dense.weight"] == (256, 1024)


def test_parameter_counts() -> None:
    def params(name: str) -> int:
        model = onnx.load_model_from_string(zoo.model_bytes(name))
        return sum(
            int(np.prod(init.dims))
            for init in model.graph.initializer
            if init.data_type == onnx.TensorProto.FLOAT
        )

    # torchvision counts minus the folded BatchNorm parameters.
    assert 25_400_000 < params("resnet50") < 25_600_000
    assert 3_400_000 < params("mobilenetv2") < 3_550_000
    assert params("mnist") < 10_000


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name: str) -> None:
    seed0 = zoo.build_model(name, seed=0).SerializeToString()
    assert seed0 == zoo.model_bytes(name, seed=0)
    assert zoo.model_bytes(f"zoo:{name}") is zoo.model_bytes(name)  # cached in-process
    if name == "identity":
        return  # no weights
    seed1 = zoo.build_model(name, seed=1)
    assert seed1.SerializeToString() != seed0
    weights0 = {init.name: init for init in onnx.load_model_from_string(seed0).graph.initializer}
    for init in seed1.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and np.prod(init.dims) > 1:
            before = onnx.numpy_helper.to_array(weights0[init.name])
            after = onnx.numpy_helper.to_array(init)
            assert not np.array_equal(before, after), init.name
