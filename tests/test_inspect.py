"""Issue 15, inspect: parameters held in Constant nodes count, FLOPs only for known shapes."""

from __future__ import annotations

import json

from models import exported_conv_model, spatial_model

from nnperf.analyze import analyze_model
from nnperf.cli import main


def test_parameters_in_constant_nodes_are_counted():
    """Weights stored as Constant nodes (Paddle2ONNX) gave 'Parameters: 0 (0.0 MiB)'."""
    report = analyze_model(exported_conv_model())
    assert report.parameters == 8 * 3 * 3 * 3 + 8
    assert report.parameter_bytes == 4 * report.parameters
    assert "Parameters: 224 (0.0 MiB)" in report.render()


def test_flops_of_unknown_dims_are_na_never_negative():
    """Symbolic dims stored as -1 were multiplied in: 'FLOPs at batch 1: -0.000 G'."""
    report = analyze_model(exported_conv_model())
    assert report.flops is None and report.unknown_dims == ("x axis 2", "x axis 3")
    text = report.render()
    assert "FLOPs: n/a (unknown dims: x axis 2, x axis 3; set them with --shape or --dim)" in text
    assert "-0.000" not in text
    d = report.to_dict()
    assert d["flops"] is None and d["unknown_dims"] == ["x axis 2", "x axis 3"]


def test_flops_at_given_shapes():
    report = analyze_model(exported_conv_model(), shapes={"x": (1, 3, 64, 64)})
    assert report.flops == 2 * (8 * 64 * 64) * (3 * 3 * 3)
    assert "FLOPs at x 1x3x64x64:" in report.render()
    named = analyze_model(spatial_model(), dims={"h": 32, "w": 16})
    assert named.flops == 2 * (4 * 32 * 16) * (3 * 3 * 3)
    assert "FLOPs at h=32 w=16:" in named.render()


def test_cli_inspect_shape_and_dim(tmp_path, capsys):
    path = tmp_path / "e.onnx"
    path.write_bytes(exported_conv_model().SerializeToString())
    out = tmp_path / "i.json"
    assert main(["inspect", str(path), "--shape", "x:1x3x32x32", "--json", str(out)]) == 0
    assert "FLOPs at x 1x3x32x32: 0.000 G" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["flops"] == 2 * (8 * 32 * 32) * 27 and data["schema"] == "nnperf.inspect/2"
    assert data["parameters"] == 224 and data["shapes"] == {"x": [1, 3, 32, 32]}


def test_pipeline_cost_shapes_are_never_negative():
    import onnx

    from nnperf.flops import shape_map

    graph = onnx.shape_inference.infer_shapes(exported_conv_model()).graph
    assert all(d >= 0 for dims in shape_map(graph).values() for d in dims)
