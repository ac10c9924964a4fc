"""Issue 15, CLI: output paths checked first, ``-`` is stdout, Ctrl-C keeps the measurement,
quiet closed pipes, exit codes 0 / 1 / 2 / 3 / 130, JSON documents that match their schemas."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time

import pytest
from models import failing_model, identity_model, matmul_model

from nnperf.cli import build_parser, main

QUICK = ["--queries", "10", "--duration", "0", "--warmup-iters", "1"]


def _save(tmp_path, model, name="m.onnx"):
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return str(path)


def _exit_status(argv: list[str]) -> int:
    """main's exit status, whether it returns it or argparse raises it (a flag's own check)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_bad_json_directory_fails_before_the_run(tmp_path, capsys):
    """A bad --json directory gave a traceback after the whole run."""
    bad = tmp_path / "missing" / "out.json"
    for argv in (
        ["bench", "zoo:identity", "--json", str(bad)],
        ["bench", "zoo:identity", "--trace-output", str(bad)],
        ["inspect", "zoo:identity", "--json", str(bad)],
        ["tune", "zoo:identity", "--json", str(bad)],
        ["profile", "zoo:identity", "--trace-output", str(bad)],
        ["bench", "zoo:identity", "--json", str(tmp_path)],
    ):
        assert _exit_status(argv) == 2, argv
        io = capsys.readouterr()
        assert io.out == "", argv
        assert "missing" in io.err or "directory" in io.err, io.err
        assert io.err.startswith("nnperf: error:") and io.err.count("\n") == 1


def test_json_dash_is_stdout_and_nothing_else(tmp_path, capsys, monkeypatch):
    """--json - wrote a file named '-'."""
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "zoo:identity", "--json", "-", *QUICK]) == 0
    io = capsys.readouterr()
    data = json.loads(io.out)  # only JSON on stdout
    assert data["schema"] == "nnperf.bench/2" and not (tmp_path / "-").exists()
    assert "nnperf bench: identity" in io.err
    assert main(["inspect", "zoo:identity", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["schema"] == "nnperf.inspect/2"


def test_format_json_and_csv(capsys):
    assert main(["bench", "zoo:identity", "--format", "json", *QUICK]) == 0
    assert json.loads(capsys.readouterr().out)["schema"] == "nnperf.bench/2"
    assert main(["bench", "zoo:identity", "--format", "csv", *QUICK]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("scenario,") and len(lines) == 2


def test_ctrl_c_keeps_the_partial_measurement(tmp_path):
    """Ctrl-C threw the measurement away."""
    out = tmp_path / "o.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nnperf", "bench", "zoo:identity", "--duration", "120",
         "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()  # the measuring line, printed once the measured phase starts
    assert "measuring" in line, line
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "partial" in stdout
    data = json.loads(out.read_text())
    assert data["partial"] is True and data["queries"] > 0
    assert "interrupted" in " ".join(data["validity"]["reasons"])


def test_closed_pipe_is_quiet():
    """'profile | head' ended in a BrokenPipeError traceback."""
    for argv in (
        ["profile", "zoo:identity", "--queries", "5", "--warmup-iters", "1"],
        ["bench", "zoo:identity", *QUICK],
    ):
        proc = subprocess.Popen(
            [sys.executable, "-m", "nnperf", *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        proc.stdout.close()  # the reader went away before anything was written
        _, err = proc.communicate(timeout=120)
        assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
        assert proc.returncode == 0


def test_tune_device_candidates_do_not_swallow_the_model():
    """'tune --device-candidates cpu model.onnx' took the model path as a device."""
    args = build_parser().parse_args(["tune", "--device-candidates", "cpu", "model.onnx"])
    assert args.model == "model.onnx" and args.device_candidates == ["cpu"]
    args = build_parser().parse_args(
        ["tune", "m.onnx", "--device-candidates", "cpu(2)", "--device-candidates", "cpu(1)*2"]
    )
    assert args.device_candidates == ["cpu(2)", "cpu(1)*2"]


def test_exit_codes(tmp_path, capsys):
    """Every failure exited 2, and in-process bench exited 0 when queries failed."""
    # 2: usage (bad flag values, inputs, configs)
    assert main(["bench", "zoo:identity", "--input", "nope:zeros"]) == 2
    # 1: the model cannot be loaded (a runtime / environment failure)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    assert main(["bench", str(bad)]) == 1
    # 1: queries failed at run time (a Reshape to a shape that does not fit): every one here,
    # so there is no latency to report, only the engine's error
    path = _save(tmp_path, failing_model(), "f.onnx")
    npy = tmp_path / "shape.npy"
    import numpy as np

    np.save(npy, np.array([3, 5], np.int64))
    assert main(["bench", path, "--input", f"shape:{npy}", *QUICK]) == 1
    err = capsys.readouterr().err
    assert ("every measured query failed" in err and "Reshape" in err) or "reshape" in err
    # 3: an invalid measurement with --require-valid (too short to trust)
    assert main(["bench", "zoo:identity", "--require-valid", *QUICK]) == 3
    assert "INVALID" in capsys.readouterr().out
    assert main(["bench", "zoo:identity", *QUICK]) == 0


def test_some_failed_queries_exit_1_after_the_report():
    """In-process bench exited 0 when queries failed."""
    from nnperf.bench import run_benchmark
    from nnperf.cli.bench import _exit_code

    r = run_benchmark(identity_model(), queries=5, duration_s=0.0)
    assert _exit_code([r], require_valid=False) == 0
    failed = dataclasses.replace(r, errors=2)
    assert _exit_code([failed], require_valid=False) == 1
    assert _exit_code([r], require_valid=True) == 3  # too short to be VALID
    assert _exit_code([dataclasses.replace(r, partial=True)], require_valid=True) == 130


def test_bench_documents_match_their_schemas(tmp_path):
    import jsonschema

    from nnperf.bench import run_benchmark
    from nnperf.schemas import load_schema

    bench = load_schema("bench-2")
    for kwargs in (
        {"scenario": "single-stream"},
        {"scenario": "offline", "device": "cpu(1)*2", "api": "async"},
        {"scenario": "server", "target_qps": 500.0, "latency_bound_ms": 50.0},
        {"scenario": "offline", "max_batch_size": 4, "concurrency": 8},
        {"scenario": "offline", "pipeline_stages": 2},
    ):
        r = run_benchmark(matmul_model(), queries=20, duration_s=0.0, warmup_iters=1, **kwargs)
        jsonschema.validate(r.to_dict(), bench)
    out = tmp_path / "s.json"
    assert main(["bench", "zoo:identity", "--scenario", "offline", "--concurrency", "1,2",
                 "--json", str(out), *QUICK]) == 0  # fmt: skip
    jsonschema.validate(json.loads(out.read_text()), load_schema("sweep-1"))
    assert main(["inspect", "zoo:mnist", "--json", str(out)]) == 0
    jsonschema.validate(json.loads(out.read_text()), load_schema("inspect-2"))


def test_every_json_document_names_its_schema(tmp_path):
    """One output convention: every --json document carries a schema and provenance."""
    model = _save(tmp_path, identity_model())
    docs = {}
    for name, argv in {
        "bench": ["bench", model, *QUICK],
        "inspect": ["inspect", model],
        "profile": ["profile", model, "--queries", "5", "--warmup-iters", "1"],
    }.items():
        out = tmp_path / f"{name}.json"
        assert main([*argv, "--json", str(out)]) == 0
        docs[name] = json.loads(out.read_text())
    for name, doc in docs.items():
        assert doc["schema"].startswith(f"nnperf.{name}/"), name
        prov = doc["provenance"]
        assert prov["argv"] and prov["timestamp"] and prov["host"], name
    assert docs["bench"]["provenance"]["warmup_iters"] == 1
    assert "." not in "".join(docs["bench"]["latency_ms"])  # p99_9, not p99.9


def test_output_path_checks(tmp_path):
    from nnperf.cli.output import check_output_path
    from nnperf.errors import InvalidInputError

    new = str(tmp_path / "new.json")
    assert check_output_path(new, "--json") == new
    assert check_output_path("-", "--json") == "-"
    with pytest.raises(InvalidInputError, match="does not exist"):
        check_output_path(str(tmp_path / "no" / "x.json"), "--json")
    with pytest.raises(InvalidInputError, match="is a directory"):
        check_output_path(str(tmp_path), "--json")
    with pytest.raises(InvalidInputError, match="stdout"):
        check_output_path("-", "--trace-output", stdout=False)


def test_schema_files_stand_alone_and_agree():
    from nnperf.schemas import SCHEMAS, load_schema

    for name in SCHEMAS:
        text = json.dumps(load_schema(name))
        assert '"$ref": "bench-2.json' not in text  # no reference outside the file
    bench, sweep = load_schema("bench-2"), load_schema("sweep-1")
    copy = dict(sweep["$defs"]["bench"])
    copy.pop("$comment")
    assert copy == {k: v for k, v in bench.items() if k not in ("$schema", "$id", "$defs")}
    assert sweep["$defs"]["provenance"] == bench["$defs"]["provenance"]


def test_progress_bar_disabled_yields_none():
    from nnperf.cli.output import progress_bar

    with progress_bar(False, "x") as bar:
        assert bar is None


def test_progress_bar_draws_on_stderr_only(capsys):
    from nnperf.cli.output import progress_bar
    from nnperf.types import Progress

    with progress_bar(True, "calibrating", unit="samples") as bar:
        assert bar is not None
        for i in range(3):
            bar(Progress(i + 1, 3, what="step"))
    captured = capsys.readouterr()
    assert captured.out == ""


def test_progress_bar_plain_line_without_rich(monkeypatch, capsys):
    import builtins

    from nnperf.cli.output import progress_bar
    from nnperf.types import Progress

    real_import = builtins.__import__

    def no_rich(name, *args, **kwargs):
        if name.startswith("rich"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rich)
    with progress_bar(True, "tune", unit="runs") as bar:
        assert bar is not None
        bar(Progress(2, 0, 1.0, 5.0, what="offline: cpu(1)"))
    err = capsys.readouterr().err
    assert "tune: 2 runs offline: cpu(1)" in err and err.endswith("\n")
