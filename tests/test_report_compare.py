"""``nnperf compare``: noise-aware verdicts on hand-written documents and on real runs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nnperf.cli import main
from nnperf.report.compare import Verdict, compare_runs, pair_runs
from nnperf.report.documents import runs_of

pytest.importorskip("scipy")


def bench2(latency_ms: np.ndarray, *, name: str = "m", workers: int = 1) -> dict[str, Any]:
    """A small nnperf.bench/2 document (the bench engineer's conventions) around raw samples."""
    ns = (latency_ms * 1e6).astype(np.int64)
    p = np.percentile(latency_ms, [50, 90, 95, 99, 99.9])
    return {
        "schema": "nnperf.bench/2",
        "model": {"name": name, "path": None, "sha256": "0" * 64},
        "scenario": "single-stream",
        "workers": workers,
        "batch_size": 1,
        "latency_ms": {
            "min": float(latency_ms.min()),
            "mean": float(latency_ms.mean()),
            "p50": p[0],
            "p90": p[1],
            "p95": p[2],
            "p99": p[3],
            "p99_9": None,
            "max": float(latency_ms.max()),
            "stddev": float(latency_ms.std()),
            "n": len(ns),
        },
        "samples": {"latency_ns": ns.tolist()},
        "throughput_qps": 1000.0 / float(latency_ms.mean()),
        "throughput_samples_per_s": 1000.0 / float(latency_ms.mean()),
        "validity": {"valid": True, "reasons": []},
        "stages": {"load_ms": 1.0, "prepare_ms": 5.0, "fake_first_ms": None, "warmup_ms": [0.5]},
    }


def lognormal(seed: int, median_ms: float = 0.5, n: int = 2000) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(median_ms), 0.15, n)


def write(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def test_same_distribution_is_within_noise() -> None:
    a = runs_of(bench2(lognormal(1)), label="a")[0]
    b = runs_of(bench2(lognormal(2)), label="b")[0]
    c = compare_runs(a, b)
    assert c.verdict is Verdict.WITHIN_NOISE
    assert {m.metric: m.verdict for m in c.metrics}["p50"] is Verdict.WITHIN_NOISE
    assert c.p_value is not None and c.p_value > 0.01
    assert "within noise" in c.headline()


def test_ten_percent_slower_is_slower_with_its_ratio() -> None:
    a = runs_of(bench2(lognormal(1)), label="a")[0]
    b = runs_of(bench2(lognormal(2) * 1.10), label="b")[0]
    c = compare_runs(a, b)
    assert c.verdict is Verdict.SLOWER
    p50 = c.metrics[0]
    assert p50.ci_low is not None and p50.ci_low > 1.0
    assert p50.delta_pct == pytest.approx(10, abs=3)
    assert "1.1" in c.headline() and "slower" in c.headline()
    # ...and the other way round: faster, with the ratio.
    back = compare_runs(b, a)
    assert back.verdict is Verdict.FASTER
    assert f"{back.speedup:.2f}x faster" in back.headline()
    # throughput follows 1 / mean latency (closed loop): slower too.
    assert {m.metric: m.verdict for m in c.metrics}["throughput"] is Verdict.SLOWER


def test_tiny_significant_change_is_within_noise_below_min_effect() -> None:
    a = runs_of(bench2(lognormal(1, n=20000)), label="a")[0]
    b = runs_of(bench2(lognormal(2, n=20000) * 1.01), label="b")[0]
    c = compare_runs(a, b)
    assert c.p_value is not None and c.p_value < 0.01  # "significant" with 20k samples...
    assert c.verdict is Verdict.WITHIN_NOISE  # ...but 1 % is below session-to-session noise
    assert compare_runs(a, b, min_effect=0.0).verdict is Verdict.SLOWER


def test_bench1_without_samples_cannot_judge_noise(tmp_path: Path) -> None:
    old = bench2(lognormal(1))
    old["schema"] = "nnperf.bench/1"
    del old["samples"]
    old["latency_ms"]["p99.9"] = old["latency_ms"].pop("p99_9")
    a = runs_of(old, label="old")[0]
    b = runs_of(bench2(lognormal(2) * 2), label="new")[0]
    c = compare_runs(a, b)
    assert c.verdict is Verdict.NO_SAMPLES
    assert all(m.verdict is Verdict.NO_SAMPLES for m in c.metrics if m.metric != "throughput")
    assert "no raw samples: cannot judge noise" in c.table().render("text")
    assert c.metrics[0].ratio == pytest.approx(2, rel=0.1)


def test_sweeps_pair_by_axis_value_and_sidebyside_rows_are_runs() -> None:
    def sweep(scale: float) -> dict[str, Any]:
        pts = []
        for i, conc in enumerate((1, 2, 4)):
            doc = bench2(lognormal(i) * scale * (1 + i))
            doc["concurrency"] = conc
            pts.append(doc)
        return {"schema": "nnperf.sweep/1", "axis": "concurrency", "points": pts, "knee": None}

    pairs = pair_runs([runs_of(sweep(1.0), label="a"), runs_of(sweep(1.2), label="b")])
    assert [(x.label, y.label) for x, y in pairs] == [
        (f"a: concurrency={c}", f"b: concurrency={c}") for c in (1, 2, 4)
    ]
    assert all(compare_runs(x, y).verdict is Verdict.SLOWER for x, y in pairs)
    sbs = {
        "schema": "nnperf.sidebyside/1",
        "model": {"name": "m"},
        "scenario": "single-stream",
        "rows": [
            {"label": "fp32", "throughput_samples_per_s": 2000.0, "p50_ms": 0.5, "p99_ms": 0.9,
             "samples": {"latency_ns": (lognormal(1) * 1e6).astype(int).tolist()}, "rounds": []},
            {"label": "int8", "throughput_samples_per_s": 3000.0, "p50_ms": 0.33, "p99_ms": 0.6,
             "samples": {"latency_ns": (lognormal(2) * 0.66e6).astype(int).tolist()}, "rounds": []},
        ],
    }  # fmt: skip
    (a, b), = pair_runs([runs_of(sbs, label="sbs")])  # fmt: skip
    assert (a.label, b.label) == ("sbs: fp32", "sbs: int8")
    c = compare_runs(a, b)
    assert c.verdict is Verdict.FASTER and c.speedup == pytest.approx(1.5, rel=0.05)


def test_cli_formats_and_fail_if_slower(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.json", bench2(lognormal(1)))
    b = write(tmp_path / "b.json", bench2(lognormal(2) * 1.25))
    assert main(["compare", a, b]) == 0
    text = capsys.readouterr().out
    assert "b vs a: 1.25x slower" in text and "A and B come from separate runs" in text
    assert main(["compare", a, b, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["metric"] == "p50" and rows[0]["verdict"] == "slower"
    assert float(rows[0]["delta_pct"]) == pytest.approx(25, abs=4)
    assert main(["compare", a, b, "--format", "markdown"]) == 0
    assert "| metric | unit | A | B | Δ (%) |" in capsys.readouterr().out
    assert main(["compare", a, b, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "nnperf.compare/1" and data["comparisons"][0]["verdict"] == "slower"
    assert main(["compare", a, b, "--fail-if-slower"]) == 1
    assert main(["compare", b, a, "--fail-if-slower"]) == 0
    capsys.readouterr()
    assert main(["compare", a]) == 2
    assert "expected two or more" in capsys.readouterr().err
    assert main(["bench", "zoo:mnist", "zoo:mnist", "--url", "http://127.0.0.1:9"]) == 2
    assert "apply to one model at a time" in capsys.readouterr().err
    bad = write(tmp_path / "bad.json", {"schema": "other/1"})
    assert main(["compare", a, bad]) == 2
    assert "expected one of nnperf.bench/1" in capsys.readouterr().err


def test_real_runs_same_vs_same_and_fp32_vs_int8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real side-by-side runs (interleaved in one process): the same model twice is within
    noise; a model against its int8 version differs, with the ratio, in the right direction."""
    q = tmp_path / "q.onnx"
    assert main(["quantize", "zoo:mnist", "-o", str(q), "--calibration", "random:8",
                 "--activation-type", "uint8", "--iters", "3"]) == 0  # fmt: skip
    same, mixed = tmp_path / "same.json", tmp_path / "mixed.json"
    common = ["--queries", "400", "--rounds", "3", "--warmup-iters", "5", "--no-progress"]
    assert main(["bench", "zoo:mnist", "zoo:mnist", *common, "--json", str(same)]) == 0
    assert main(["bench", "zoo:mnist", str(q), *common, "--json", str(mixed)]) == 0
    capsys.readouterr()

    assert main(["compare", str(same), "--format", "json"]) == 0
    (c,) = json.loads(capsys.readouterr().out)["comparisons"]
    assert c["verdict"] == "within noise", c["headline"]

    assert main(["compare", str(mixed), "--format", "json"]) == 0
    (c,) = json.loads(capsys.readouterr().out)["comparisons"]
    p50 = c["metrics"][0]
    assert c["verdict"] in ("faster", "slower"), c["headline"]
    # The direction is the measured one (on this CPU onnxruntime's QDQ mnist is slower) and the
    # headline carries the ratio.
    assert c["verdict"] == ("faster" if p50["ratio"] < 1 else "slower")
    ratio = c["speedup"] if c["verdict"] == "faster" else 1 / c["speedup"]
    assert f"{ratio:.2f}x {c['verdict']}" in c["headline"]
    rows = json.loads(mixed.read_text())["rows"]
    assert all(len(r["samples"]["latency_ns"]) >= 1200 for r in rows)
    assert 0.9 < rows[1]["cosine"] <= 1.0  # the int8 model agrees with float32
