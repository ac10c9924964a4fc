"""``nnperf compare-models`` on real data folders, and ``--eval-data`` on quantize / optimize."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

import nnperf
from nnperf.cli import main
from nnperf.errors import InvalidInputError
from nnperf.optimize.evaldata import load_eval_data, load_labels, query_files, shared_queries
from nnperf.optimize.verify import label_accuracy, output_accuracy


def _queries(folder: Path, n: int, seed: int) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = []
    for i in range(n):
        x = rng.random((1, 28, 28), dtype=np.float32)  # no batch dim: added on load
        np.save(folder / f"q{i:02d}.npy", x)
        arrays.append(x)
    return arrays


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    _queries(root / "calib", 8, seed=0)
    _queries(root / "eval", 12, seed=1)
    q = root / "q.onnx"
    assert main(["quantize", "zoo:mnist", "-o", str(q), "--calibration", str(root / "calib"),
                 "--eval-data", str(root / "eval"), "--activation-type", "uint8",
                 "--iters", "2"]) == 0  # fmt: skip
    return {"calib": root / "calib", "eval": root / "eval", "q": q, "root": root}


def test_eval_data_layout_npy_npz_images(tmp_path: Path) -> None:
    from PIL import Image

    s = nnperf.create("zoo:mnist")
    np.save(tmp_path / "a.npy", np.zeros((1, 1, 28, 28), np.float32))
    np.savez(tmp_path / "b.npz", **{s.inputs[0].name: np.ones((1, 28, 28), np.float32)})
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(tmp_path / "c.png")
    (tmp_path / "notes.txt").write_text("ignored")
    feeds = load_eval_data(tmp_path, s.inputs)
    assert [f[s.inputs[0].name].shape for f in feeds] == [(1, 1, 28, 28)] * 3
    assert float(feeds[2][s.inputs[0].name].max()) == pytest.approx(1.0)  # pixels scaled
    files = query_files(tmp_path)
    (tmp_path / "labels.csv").write_text("c.png,7\na.npy,1\nb.npz,2\n")
    assert load_labels(tmp_path / "labels.csv", files).tolist() == [1, 2, 7]
    (tmp_path / "labels.txt").write_text("1\n2\n")
    with pytest.raises(InvalidInputError, match="got 2 labels for 3 queries"):
        load_labels(tmp_path / "labels.txt", files)
    np.save(tmp_path / "bad.npy", np.zeros((3, 3), np.float32))
    with pytest.raises(InvalidInputError, match=r"bad.npy: input .* got shape \(3, 3\)"):
        load_eval_data(tmp_path, s.inputs)
    s.close()


def test_output_accuracy_and_labels() -> None:
    ref = [[np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])]]
    cand = [[np.array([[0.1, 0.6, 0.3], [0.2, 0.3, 0.5]])]]
    (acc,) = output_accuracy(["y"], ref, cand, atol=0.05, rtol=0.0, top_k=2)
    assert acc.max_abs_err == pytest.approx(0.3)
    assert acc.top1_agreement == 0.5 and acc.topk_agreement == 0.5
    assert acc.violations == 4 and not acc.passed
    assert label_accuracy(cand, np.array([1, 0]), top_k=2) == (0.5, 0.5)


def test_same_model_passes_and_reports_every_metric(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    labels = data["root"] / "labels.txt"
    labels.write_text("\n".join(str(i % 10) for i in range(12)) + "\n")
    rc = main(["compare-models", "zoo:mnist", "zoo:mnist", "--data", str(data["eval"]),
               "--labels", str(labels), "--format", "json"])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["passed"] and doc["queries"] == 12
    (out,) = doc["outputs"]
    assert out["max_abs_err"] == 0 and out["cosine"] == pytest.approx(1.0)
    assert out["top1_agreement"] == 1.0 and out["topk_agreement"] == 1.0
    assert doc["accuracy"]["reference"] == doc["accuracy"]["candidate"]


def test_int8_candidate_fails_a_tight_tolerance_and_passes_a_loose_one(
    data: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["compare-models", "zoo:mnist", str(data["q"]), "--data", str(data["eval"])]
    assert main([*base, "--atol", "1e-6", "--rtol", "0"]) == 1
    text = capsys.readouterr().out
    assert "FAIL" in text and "FAILED:" in text and "top-5 agree" in text
    assert main([*base, "--atol", "1", "--rtol", "0.5", "--min-cosine", "0.9"]) == 0
    assert "all outputs within tolerance" in capsys.readouterr().out
    assert main([*base, "--atol", "1", "--format", "csv"]) == 0
    (row,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert float(row["max_abs_err"]) > 0 and 0.9 < float(row["cosine"]) <= 1.0


def test_quantize_warns_when_evaluation_is_calibration(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shared_queries(data["calib"], data["calib"]) == 8
    assert shared_queries(data["eval"], data["calib"]) == 0
    out = str(tmp_path / "q2.onnx")
    common = ["quantize", "zoo:mnist", "-o", out, "--calibration", str(data["calib"]),
              "--activation-type", "uint8", "--iters", "2"]  # fmt: skip
    assert main([*common, "--eval-data", str(data["calib"])]) == 0
    assert "--eval-data shares 8 quer(y/ies) with --calibration" in capsys.readouterr().err
    assert main(common) == 0
    assert "evaluating on calibration data (no --eval-data)" in capsys.readouterr().err
    assert main([*common, "--eval-data", str(data["eval"])]) == 0
    assert "warning" not in capsys.readouterr().err


def test_optimize_takes_eval_data(data: dict[str, Path], tmp_path: Path) -> None:
    out = str(tmp_path / "o.onnx")
    assert main(["optimize", "zoo:mnist", "-o", out, "--eval-data", str(data["eval"]),
                 "--iters", "2"]) == 0  # fmt: skip
    assert main(["optimize", "zoo:mnist", "-o", out, "--eval-data", str(data["eval"]),
                 "--input-type", "uint8"]) == 2  # fmt: skip


def test_quantize_and_optimize_tables_export(data: dict[str, Path], tmp_path: Path) -> None:
    q_csv, o_md = tmp_path / "q.csv", tmp_path / "o.md"
    assert main(["quantize", "zoo:mnist", "-o", str(tmp_path / "q.onnx"), "--calibration",
                 str(data["calib"]), "--eval-data", str(data["eval"]), "--iters", "2",
                 "--tables", str(q_csv)]) == 0  # fmt: skip
    blocks = q_csv.read_text().split("\n\n")
    assert blocks[0].startswith("# Candidates (1 thread)\nactivation_type,per_channel,latency_ms")
    before_after = next(b for b in blocks if b.startswith("# float32 vs int8"))
    rows = list(csv.DictReader(io.StringIO(before_after.split("\n", 1)[1])))
    assert rows[0] == {**rows[0], "stage": "load (ms)"} and "gain" in rows[0]
    assert any(r["stage"] == "cosine similarity" for r in rows)
    assert main(["optimize", "zoo:mnist", "-o", str(tmp_path / "o.onnx"), "--iters", "2",
                 "--tables", str(o_md)]) == 0  # fmt: skip
    md = o_md.read_text()
    assert md.startswith("**original vs optimised**") and "| stage | original | optimised |" in md
    assert main(["optimize", "zoo:mnist", "-o", str(tmp_path / "o.onnx"), "--tables", "x.xls"]) == 2
