"""Issue 12 / 15: sweeps over concurrency, batch size, offered load or device, one row per point,
each point with its own validity verdict, the knee named."""

from __future__ import annotations

import json

import pytest

from nnperf import InvalidInputError
from nnperf.bench.sweep import find_knee, parse_sweep_values
from nnperf.cli import main

QUICK = ["--queries", "10", "--duration", "0", "--warmup-iters", "1"]


def test_parse_sweep_values():
    assert parse_sweep_values("1,2,4", int, "--concurrency") == [1, 2, 4]
    assert parse_sweep_values("100:300:100", float, "--target-qps") == [100.0, 200.0, 300.0]
    assert parse_sweep_values("8", int, "--concurrency") == [8]
    for bad in ("1,,2", "10:1:1", "1:5:0", "x", "0"):
        with pytest.raises(InvalidInputError):
            parse_sweep_values(bad, int, "--concurrency")


def test_knee_is_where_p99_rises_faster_than_throughput():
    points = [(1, 100.0, 1.0), (2, 190.0, 1.1), (4, 200.0, 2.5), (8, 205.0, 5.0)]
    knee = find_knee([(v, tput, p99) for v, tput, p99 in points], axis="concurrency")
    assert knee is not None and knee.value == 2
    assert "concurrency 2 to 4" in knee.reason
    assert find_knee([(1, 100.0, 1.0), (2, 200.0, 1.0)], axis="concurrency") is None


def test_sweep_concurrency_text_csv_json(tmp_path, capsys):
    out = tmp_path / "s.json"
    argv = ["bench", "zoo:identity", "--scenario", "offline", "--concurrency", "1,2", *QUICK]
    assert main([*argv, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "concurrency" in text and "knee" in text
    doc = json.loads(out.read_text())
    assert doc["schema"] == "nnperf.sweep/1" and doc["axis"] == "concurrency"
    assert [p["concurrency"] for p in doc["points"]] == [1, 2]
    assert all(p["schema"] == "nnperf.bench/2" and "validity" in p for p in doc["points"])
    assert "knee" in doc and doc["provenance"]["argv"]
    assert main([*argv, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].split(",")[0] == "concurrency" and len(rows) == 3


def test_sweep_batch_sizes_and_offered_load(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["bench", "zoo:identity", "--batch-size", "1,2", "--json", str(out), *QUICK]) == 0
    doc = json.loads(out.read_text())
    assert doc["axis"] == "batch_size" and [p["batch_size"] for p in doc["points"]] == [1, 2]
    assert main(["bench", "zoo:identity", "--scenario", "server", "--target-qps", "200:400:200",
                 "--json", str(out), *QUICK]) == 0  # fmt: skip
    doc = json.loads(out.read_text())
    assert doc["axis"] == "target_qps"
    assert [p["server"]["target_qps"] for p in doc["points"]] == [200.0, 400.0]
    assert main(["bench", "zoo:identity", "--device", "cpu(1)", "--device", "cpu(1)*2",
                 "--json", str(out), *QUICK]) == 0  # fmt: skip
    doc = json.loads(out.read_text())
    assert doc["axis"] == "device" and [p["device"] for p in doc["points"]] == [
        "cpu(1)",
        "cpu(1)*2",
    ]
    capsys.readouterr()
    assert main(["bench", "zoo:identity", "--batch-size", "1,2", "--concurrency", "1,2"]) == 2
    assert "one axis" in capsys.readouterr().err
