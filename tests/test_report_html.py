"""``nnperf report``: one self-contained HTML page, checked as text and in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_report_compare import bench2, lognormal

from nnperf.cli import main

pytest.importorskip("plotly")
pytest.importorskip("scipy")

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--virtual-time-budget=20000",
)  # fmt: skip


def sweep_doc() -> dict[str, Any]:
    points = []
    for i, conc in enumerate((1, 2, 4, 8)):
        doc = bench2(lognormal(i, 0.05 * (1 + 0.4 * i**1.5), n=400))
        doc["concurrency"] = conc
        doc["throughput_samples_per_s"] = conc * 1000 / float(np.mean(lognormal(i))) * (1 - 0.1 * i)
        points.append(doc)
    return {
        "schema": "nnperf.sweep/1",
        "axis": "concurrency",
        "points": points,
        "knee": {"value": 4, "reason": "p99 doubles past concurrency 4"},
    }


def tune_doc() -> dict[str, Any]:
    def cand(label: str, status: str, value: float) -> dict[str, Any]:
        m = {"value": value, "prepare_ms": 3.0, "warmup_ms": 0.4, "p50_ms": 0.05, "p99_ms": 0.09,
             "samples_per_s": value, "duration_s": 0.3, "wall_s": 0.4, "phase": "round 1"}  # fmt: skip
        return {"label": label, "variant": "base", "config": {}, "status": status, "error": None,
                "median": value, "noise": 0.03, "runs": 2, "measurements": [m, m]}  # fmt: skip

    return {
        "schema": "nnperf.tune/1",
        "model": {"name": "m"},
        "objective": {"kind": "throughput", "percentile": 50, "latency_budget_ms": None},
        "winner": "cpu(2) b8",
        "runner_up": "cpu(2)",
        "reason": "fastest",
        "candidates": [
            cand("cpu(2) b8", "winner", 9000.0),
            cand("cpu(2)", "runner-up", 5000.0),
            cand("cpu(1)*2", "pruned", 3000.0),
        ],
    }


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A real bench run (nnperf.bench/2, with raw samples) and the same run as an older
    nnperf.bench/1 document (no samples), a real profile with operators, and hand-written sweep,
    side-by-side and tune documents."""
    d = tmp_path_factory.mktemp("docs")
    bench, prof = d / "bench.json", d / "profile.json"
    assert (
        main(["bench", "zoo:mnist", "--queries", "50", "--no-progress", "--json", str(bench)]) == 0
    )
    assert main(["profile", "zoo:mnist", "--ops", "--queries", "50", "--warmup-iters", "2",
                 "--json", str(prof), "--format", "json"]) == 0  # fmt: skip
    old = json.loads(bench.read_text())
    old.pop("samples", None)
    old["schema"] = "nnperf.bench/1"
    old["model"] = {**old["model"], "name": "mnist-v1"}
    bench1 = d / "bench1.json"
    bench1.write_text(json.dumps(old))
    sweep = d / "sweep.json"
    sweep.write_text(json.dumps(sweep_doc()))
    sbs = d / "sbs.json"
    rows = [
        {"label": label, "throughput_samples_per_s": 1000 / scale, "p50_ms": scale,
         "p99_ms": 2 * scale, "max_abs_err": err, "cosine": cos, "prepare_ms": 3.0,
         "samples": {"latency_ns": (lognormal(i, scale) * 1e6).astype(int).tolist()},
         "rounds": []}
        for i, (label, scale, err, cos) in enumerate((("onnxruntime", 0.5, 0.0, 1.0),
                                                      ("openvino", 0.4, 1e-5, 0.99999)))
    ]  # fmt: skip
    sbs.write_text(json.dumps({"schema": "nnperf.sidebyside/1", "model": {"name": "mnist"},
                               "scenario": "single-stream", "rows": rows}))  # fmt: skip
    tune = d / "tune.json"
    tune.write_text(json.dumps(tune_doc()))
    return [str(p) for p in (bench, bench1, sweep, prof, sbs, tune)]


def test_report_is_self_contained_with_every_section(
    documents: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", *documents, "-o", str(out)]) == 0
    assert "self-contained" in capsys.readouterr().out
    page = out.read_text()
    # No network: no external scripts, styles or images; plotly's JS is inlined.
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert "plotly.js v" in page or "Plotly" in page
    titles = re.findall(r'class="nnperf-plot" data-title="([^"]+)"', page)
    for needle in ("Latency CDF", "Stages", "Throughput vs p99 latency",
                   "Latency histogram (span mode)", "Operators by type (operator pass)",
                   "Side by side", "Candidates"):  # fmt: skip
        assert any(needle in t for t in titles), (needle, titles)
    for needle in ("knee: concurrency=4", "Advice", "Machine and versions",
                   "no raw samples (nnperf.bench/1)", "sbs: openvino vs sbs: onnxruntime",
                   "latency of record: span mode"):  # fmt: skip
        assert needle in page, needle


def test_bench_and_profile_report_flags(tmp_path: Path) -> None:
    b, p = tmp_path / "b.html", tmp_path / "p.html"
    assert main(["bench", "zoo:mnist", "--queries", "20", "--no-progress", "--report", str(b)]) == 0
    assert main(["profile", "zoo:identity", "--queries", "5", "--report", str(p)]) == 0
    assert 'class="nnperf-plot"' in b.read_text() and "profile: identity" in p.read_text()


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_report_renders_in_headless_chromium(documents: list[str], tmp_path: Path) -> None:
    """Every plot drawn, no console errors, and pixels in every plot's box (a screenshot)."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    from PIL import Image

    page = tmp_path / "report.html"
    assert main(["report", *documents, "-o", str(page)]) == 0
    url = page.resolve().as_uri()

    def browse(*flags: str) -> subprocess.CompletedProcess[str]:
        profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
        return subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr",
             "--v=0", *flags, url],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip

    dom = browse("--window-size=1280,1000", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500]
    attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', body.group(0)))
    plots = re.findall(r'class="nnperf-plot" data-title="([^"]+)" data-drawn="([01])" data-bbox="([^"]+)"',
                       dom.stdout)  # fmt: skip
    assert int(attrs["plots"]) == len(plots) >= 10
    assert attrs["drawn"] == attrs["plots"], [t for t, ok, _ in plots if ok != "1"]
    assert attrs["errors"] == "0"
    # --enable-logging=stderr prints every console message (errors, warnings, logs) as CONSOLE.
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []

    height = int(attrs["height"])
    shot = tmp_path / "shot.png"
    res = browse(f"--window-size=1280,{height}", f"--screenshot={shot}")
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    for title, _, bbox in plots:
        x, y, w, h = (int(v) for v in bbox.split(","))
        region = image[y : y + h, x : x + w]
        # Trace pixels are coloured; axes, grid and text are grey.
        coloured = int(((region.max(axis=2) - region.min(axis=2)) > 60).sum())
        assert coloured > 300, (title, coloured)
