"""``nnperf serve`` under hostile input and load, on loopback: does it isolate failures, bound
memory and time, and answer every client error with a 4xx?

The server runs as a subprocess (``python -m nnperf serve``) serving a Gather model whose int64
indices come from the request, with dynamic batching (``--max-batch-size 8 --max-delay-ms 5``):
an out-of-range index makes onnxruntime fail the whole merged batch, so one bad client could
fail its neighbours. While good clients run, the script sends, all at once:

* **slowloris**: sockets that send a partial request head and then one byte every 0.5 s;
* **oversized bodies**: a declared 60 MiB body against ``--max-body-mb 1``;
* **held bodies**: bodies under the limit, half sent and then held open;
* **mid-body disconnects**: half a body, then the socket closes;
* **mixed traffic**: good requests, requests whose index is out of range (the engine fails
  them), and seeded malformed requests (deep nesting, 5000-digit integers, shapes like
  ``[2**63, 0]``, rank 65, wrong parameter types, BF16, string booleans, null data, ragged
  nesting, ``"outputs": []``, ``Inference-Header-Content-Length: 1_0_0``, bad JSON, junk).

It prints what it sent and what came back per class, the server's resident memory when idle
(after a warm-up: the same attack at a tenth of the counts), at its peak during the attack
and after, and the tracebacks in the server log. Done when: 0 good requests failed, peak RSS
within +10 % of idle, no traceback.

    python benchmarks/attack.py [--quick] [--seed 0]

Every count and wait is bounded (``--quick``: a few hundred requests, under ~20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
ROWS, WIDTH = 10, 4
BAD_INDEX = 99
MIB = 1024 * 1024
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
MAX_INFLIGHT = 256
"""A request holds its model's place from before its body is read (so a refused one costs no
memory) until answered: slow senders hold places for up to the body timeout. The full run has
up to ~140 slow or vanishing senders at once besides the 16 clients; with --max-inflight 64,
10 of 700 good requests got 503."""


def gather_model() -> onnx.ModelProto:
    """``y = table[idx]``, idx int64 [batch]: out-of-range indices fail at run time."""
    table = np.arange(ROWS * WIDTH, dtype=np.float32).reshape(ROWS, WIDTH)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "idx"], ["y"], axis=0)],
        "gather",
        [helper.make_tensor_value_info("idx", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])],
        initializer=[numpy_helper.from_array(table, "table")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


# -- the server ------------------------------------------------------------------------------------
class Server:
    """``nnperf serve`` in a subprocess; its stderr goes to a log file."""

    def __init__(self, model_path: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nnperf", "serve", f"gather={model_path}", "--port", "0",
             "--max-batch-size", "8", "--max-delay-ms", "5", "--max-inflight", str(MAX_INFLIGHT),
             "--max-body-mb", "1", "--body-budget-mb", "8", "--max-connections", "512",
             "--header-timeout-s", str(HEADER_TIMEOUT_S), "--body-timeout-s", str(BODY_TIMEOUT_S),
             "--no-access-log", "--log-level", "info"],
            stdout=subprocess.DEVNULL, stderr=self._log,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )  # fmt: skip
        deadline = time.monotonic() + 120
        self.port = 0
        while not self.port:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start:\n" + log_path.read_text()[-2000:])
            found = re.search(r"nnperf serve: http://127\.0\.0\.1:(\d+)/v2", log_path.read_text())
            if found:
                self.port = int(found.group(1))
            time.sleep(0.05)

    def status(self, key: str) -> int:
        """A ``/proc/PID/status`` field in KiB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (Linux clear_refs 5); False when not allowed."""
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._log.close()


class PeakSampler(threading.Thread):
    """VmRSS every 20 ms (a fallback and a cross-check for VmHWM)."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.peak_kib = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            try:
                self.peak_kib = max(self.peak_kib, self.server.status("VmRSS"))
            except OSError:
                return


# -- a minimal HTTP/1.1 client over asyncio streams (it must be able to send anything) -------------
def _request(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("closed before a response")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length)


class Connection:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None
            try:
                self.writer.write(raw)
                await self.writer.drain()
                return await asyncio.wait_for(_read_response(self.reader), 30)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


# -- what is sent ----------------------------------------------------------------------------------
INFER = "/v2/models/gather/infer"


def good_body(i: int) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1], "data": [i]}]}
    ).encode()


def _tensor(**fields: object) -> dict[str, object]:
    t: dict[str, object] = {"name": "idx", "datatype": "INT64", "shape": [1], "data": [1]}
    t.update(fields)
    return t


def malformed(rng: random.Random) -> tuple[str, bytes, dict[str, str]]:
    """One seeded malformed request: (kind, body, extra headers)."""
    kinds: list[tuple[str, bytes, dict[str, str]]] = [
        ("nested 5000 deep", b"[" * 5000 + b"]" * 5000, {}),
        ("integer of 5000 digits", b'{"inputs": [{"name": "idx", "datatype": "INT64", "shape": [1], "data": [' + b"7" * 5000 + b"]}]}", {}),
        ("shape [2**63, 0]", json.dumps({"inputs": [_tensor(shape=[2**63, 0], data=[])]}).encode(), {}),
        ("rank 65", json.dumps({"inputs": [_tensor(shape=[1] * 65)]}).encode(), {}),
        ("parameters a list", json.dumps({"inputs": [_tensor()], "parameters": [1]}).encode(), {}),
        ("input parameters a string", json.dumps({"inputs": [_tensor(parameters="x")]}).encode(), {}),
        ("BF16", json.dumps({"inputs": [_tensor(datatype="BF16")]}).encode(), {}),
        ("FP32 for INT64", json.dumps({"inputs": [_tensor(datatype="FP32", data=[1.0])]}).encode(), {}),
        ("binary_data_output 'false'", json.dumps({"inputs": [_tensor()], "parameters": {"binary_data_output": "false"}}).encode(), {}),
        ("null data", json.dumps({"inputs": [_tensor(data=[None])]}).encode(), {}),
        ("string numbers", json.dumps({"inputs": [_tensor(data=["1"])]}).encode(), {}),
        ("ragged nesting", json.dumps({"inputs": [_tensor(shape=[2, 2], data=[[1, 2], [3]])]}).encode(), {}),
        ("outputs []", json.dumps({"inputs": [_tensor()], "outputs": []}).encode(), {}),
        ("header length 1_0_0", good_body(1), {"Inference-Header-Content-Length": "1_0_0"}),
        ("header length past the body", good_body(1), {"Inference-Header-Content-Length": "100000"}),
        ("bad JSON", b'{"inputs": [', {}),
        ("NaN literal", b'{"inputs": [{"name": "idx", "datatype": "FP32", "shape": [1], "data": [NaN]}]}', {}),
        ("2 rows, 3 values", json.dumps({"inputs": [_tensor(shape=[2], data=[1, 2, 3])]}).encode(), {}),
        ("unknown input", json.dumps({"inputs": [_tensor(name="nope")]}).encode(), {}),
        ("id a number", json.dumps({"id": 5, "inputs": [_tensor()]}).encode(), {}),
        ("junk", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), {}),
    ]  # fmt: skip
    return kinds[rng.randrange(len(kinds))]


def _has_error_body(reply: bytes) -> bool:
    try:
        obj = json.loads(reply)
    except ValueError:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("error"), str)


async def mixed_traffic(
    port: int, *, good: int, bad_index: int, bad_json: int, clients: int, seed: int
) -> dict[str, Counter[str]]:
    """Good, out-of-range and malformed requests interleaved over ``clients`` connections."""
    rng = random.Random(seed)
    # (class, what it is, the good index or None, body, extra headers)
    jobs: list[tuple[str, str, int | None, bytes, dict[str, str]]] = []
    jobs += [("good", f"idx {i % ROWS}", i % ROWS, good_body(i % ROWS), {}) for i in range(good)]
    jobs += [
        ("bad index", f"idx {BAD_INDEX + k}", None, good_body(BAD_INDEX + k), {})
        for k in range(bad_index)
    ]
    for _ in range(bad_json):
        kind, body, headers = malformed(rng)
        jobs.append(("malformed", kind, None, body, headers))
    rng.shuffle(jobs)
    outcome: dict[str, Counter[str]] = {
        "good": Counter(),
        "bad index": Counter(),
        "malformed": Counter(),
    }
    wrong: list[str] = []
    it = iter(jobs)

    async def client() -> None:
        conn = Connection(port)
        for cls, what, idx, body, headers in it:
            try:
                status, reply = await conn.send(_request(INFER, body, headers))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                outcome[cls][f"no answer ({type(exc).__name__})"] += 1
                if cls == "good":
                    wrong.append(f"good {what}: no answer ({type(exc).__name__})")
                continue
            outcome[cls][str(status)] += 1
            if idx is not None:
                expected = [float(v) for v in range(idx * WIDTH, (idx + 1) * WIDTH)]
                if status != 200 or json.loads(reply)["outputs"][0]["data"] != expected:
                    wrong.append(f"good {what}: {status} {reply[:200]!r}")
            elif status >= 400 and not _has_error_body(reply):
                wrong.append(f"{cls} {what}: {status} without a v2 error body")
        await conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    outcome["good"]["wrong answer"] = sum(1 for w in wrong if w.startswith("good"))
    outcome["malformed"]["without a v2 error body"] = sum(
        1 for w in wrong if not w.startswith("good")
    )
    for w in wrong[:5]:
        print(f"    ! {w}")
    return outcome


async def slowloris(port: int, count: int, duration_s: float) -> Counter[str]:
    """Sockets that send a partial head and then a byte every 0.5 s; how each one ended."""
    result: Counter[str] = Counter()

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            result["connect failed"] += 1
            return
        try:
            writer.write(b"POST /v2/models/gather/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            deadline = time.monotonic() + duration_s
            while time.monotonic() < deadline:
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(4096), 0.5)
                except asyncio.TimeoutError:
                    writer.write(b"X")
                    continue
                if not data:
                    result["closed by server, no answer"] += 1
                    return
                result[f"closed by server with {data.split(b' ', 2)[1].decode()}"] += 1
                return
            result["still open at the end"] += 1
        except (ConnectionError, OSError):
            result["reset by server"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return result


async def oversized(port: int, count: int) -> Counter[str]:
    """Declare a 60 MiB body, send up to 1 MiB of it; what came back."""
    result: Counter[str] = Counter()
    head = (
        f"POST {INFER} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {60 * MIB}\r\n\r\n"
    ).encode()

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head + b"[" * 65536)
            await writer.drain()
            # The server answers from the headers alone, and closes rather than read the rest.
            status, _ = await asyncio.wait_for(_read_response(reader), 10)
            result[str(status)] += 1
            try:
                rest = await asyncio.wait_for(reader.read(), 5)
                result["then closed" if not rest else "then sent more"] += 1
            except (ConnectionError, OSError):
                result["then closed"] += 1
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            result["closed without an answer"] += 1
        except asyncio.TimeoutError:
            result["no answer in 10 s"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return result


async def held_bodies(port: int, count: int) -> Counter[str]:
    """Declare 900 KiB (under the limit), send half, hold the connection: 503 or 408."""
    result: Counter[str] = Counter()
    size = 900 * 1024
    head = f"POST {INFER} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n".encode()

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(head + b" " * (size // 2))
            await writer.drain()
            status, _ = await asyncio.wait_for(_read_response(reader), BODY_TIMEOUT_S + 8)
            result[str(status)] += 1
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            result["closed without an answer"] += 1
        except asyncio.TimeoutError:
            result["no answer in time"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(count)))
    return result


async def disconnects(port: int, count: int) -> Counter[str]:
    """Half a body, then close."""
    body = good_body(1)
    raw = _request(INFER, body)
    result: Counter[str] = Counter()

    async def one() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw[: len(raw) - len(body) // 2])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        result["sent half, closed"] += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return result


async def attack(port: int, n: dict[str, int], seed: int) -> dict[str, Counter[str]]:
    loris = asyncio.create_task(slowloris(port, n["slowloris"], HEADER_TIMEOUT_S + 3))
    await asyncio.sleep(0.2)  # the flood is open before the traffic starts
    parts = await asyncio.gather(
        mixed_traffic(port, good=n["good"], bad_index=n["bad index"], bad_json=n["malformed"],
                      clients=n["clients"], seed=seed),
        oversized(port, n["oversized"]),
        held_bodies(port, n["held"]),
        disconnects(port, n["disconnects"]),
    )  # fmt: skip
    out = dict(parts[0])
    out["oversized 60 MiB"] = parts[1]
    out["held bodies"] = parts[2]
    out["mid-body disconnects"] = parts[3]
    out["slowloris"] = await loris
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (under ~20 s)")
    ap.add_argument(
        "--seed", type=int, default=0, help="seed of the malformed requests (default 0)"
    )
    args = ap.parse_args()
    n = (
        {"good": 300, "bad index": 40, "malformed": 300, "clients": 8, "slowloris": 100,
         "oversized": 8, "held": 12, "disconnects": 30}
        if args.quick
        else {"good": 700, "bad index": 100, "malformed": 2050, "clients": 16, "slowloris": 400,
              "oversized": 24, "held": 24, "disconnects": 100}
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "gather.onnx"
        onnx.save(gather_model(), model)
        log = Path(tmp) / "server.log"
        t0 = time.monotonic()
        server = Server(model, log)
        try:
            # Warm up: the same attack at a tenth of the counts (allocator arenas, batcher,
            # JSON paths, connection objects), so idle is a served server's, then measure it.
            small = {k: max(2, v // 10) for k, v in n.items()}
            small["clients"] = n["clients"]
            asyncio.run(attack(server.port, small, args.seed + 1))
            time.sleep(0.5)
            idle = server.status("VmRSS")
            hwm_ok = server.reset_peak()
            sampler = PeakSampler(server)
            sampler.start()
            ta = time.monotonic()
            outcome = asyncio.run(attack(server.port, n, args.seed))
            attack_s = time.monotonic() - ta
            sampler.done.set()
            sampler.join()
            peak = max(sampler.peak_kib, server.status("VmHWM") if hwm_ok else 0)
            time.sleep(1.0)
            after = server.status("VmRSS")
            # The server still serves.
            check = asyncio.run(mixed_traffic(server.port, good=20, bad_index=0, bad_json=0,
                                              clients=2, seed=0))  # fmt: skip
        finally:
            code = server.stop()
        text = log.read_text()
    tracebacks = text.count("Traceback (most recent call last)")
    print(f"nnperf serve under attack on loopback ({'quick' if args.quick else 'full'}, seed "
          f"{args.seed}; Gather model, --max-batch-size 8 --max-delay-ms 5, --max-inflight "
          f"{MAX_INFLIGHT}, --max-body-mb 1, "
          f"--body-budget-mb 8, --header-timeout-s {HEADER_TIMEOUT_S:g}, --body-timeout-s "
          f"{BODY_TIMEOUT_S:g}); attack {attack_s:.1f} s, run {time.monotonic() - t0:.1f} s")  # fmt: skip
    sent = {"good": n["good"], "bad index": n["bad index"], "malformed": n["malformed"],
            "oversized 60 MiB": n["oversized"], "held bodies": n["held"],
            "mid-body disconnects": n["disconnects"], "slowloris": n["slowloris"]}  # fmt: skip
    for cls, count in sent.items():
        got = ", ".join(f"{k}: {v}" for k, v in sorted(outcome[cls].items()) if v)
        print(f"  {cls:<21} sent {count:>5}  ->  {got}")
    good_failed = n["good"] - outcome["good"]["200"] + outcome["good"]["wrong answer"]
    ok_after = check["good"]["200"] == 20
    rss_ratio = peak / idle
    print(f"  server RSS: idle {idle / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, after "
          f"{after / 1024:.1f} MiB (peak/idle ratio {rss_ratio:.3f}; peak from "
          f"{'VmHWM and ' if hwm_ok else ''}20 ms samples)")  # fmt: skip
    disconnected = text.count("disconnected before its request")
    warnings = len(re.findall(r"-> 4\d\d \w+Error", text))
    drained = "drained:" in text
    print(f"  server log: {tracebacks} traceback(s), {warnings} refusal warning line(s), "
          f"{disconnected} disconnect info line(s); SIGTERM: "
          f"{'drained, then ' if drained else ''}exit status {code}"
          f"{' (uvicorn re-raises SIGTERM)' if code == -signal.SIGTERM else ''}")  # fmt: skip
    print(f"  good requests after the attack: {check['good']['200']}/20 answered 200")
    done = good_failed == 0 and rss_ratio <= 1.10 and tracebacks == 0 and ok_after
    print(f"done when 0 good failed ({good_failed}), peak RSS <= +10 % of idle "
          f"({100 * (rss_ratio - 1):+.1f} %), 0 tracebacks ({tracebacks}): "
          f"{'yes' if done else 'NO'}")  # fmt: skip
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
