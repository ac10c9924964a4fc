"""Serving overhead, side by side in one run: served vs in-process.

1. Throughput: ``zoo:mobilenetv2`` through ``nnperf serve`` (dynamic batching, binary tensors,
   loopback, client = nnperf's remote load generator in this process) ÷ the same runtime in
   process (an AsyncRunner with the same DynamicBatcher settings), at each ``--concurrency``
   (same client count on both sides) and as capacity (each side's best). Target ≥ 0.9. Also the
   server process's CPU per request ÷ in-process CPU per request, which leaves out the load
   generator sharing the 2 cores.
2. Per-request overhead: ``zoo:identity`` single-stream p50 served − in-process ``Session.run``
   p50, in µs.
3. ``--soak-s N``: Poisson load at 80 % of the measured capacity for N s; reports the server's
   resident memory growth (target ≤ 5 % over 10 minutes).
4. ``--ray``: the same v2 server deployed on Ray Serve (``nnperf serve --ray``, one local node)
   beside the plain server: ``zoo:mnist`` throughput at ``--ray-concurrency`` clients and the
   single-stream p50 overhead per request of Ray's proxy hop. Skipped, with a line saying so,
   when ``ray[serve]`` is not installed.

The server runs in a subprocess (``python -m nnperf serve``) so its CPU and memory are its own.
Repeats alternate served and in-process runs and report medians.

    python benchmarks/serve.py [--quick] [--repeats 3] [--soak-s 600] [--ray]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort

import nnperf
from nnperf.bench.remote import run_remote_benchmark
from nnperf.bench.report import render_report
from nnperf.runtime.aio import AsyncRunner

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; python {platform.python_version()}, "
        f"onnxruntime {ort.__version__}, numpy {np.__version__}, nnperf {nnperf.__version__}"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, args: list[str], *, start_timeout_s: float = 180.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nnperf", "serve", *args, "--port", str(self.port),
             "--no-access-log", "--log-level", "warning"],
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)

    def cpu_s(self) -> float:
        """CPU seconds the server process has used (user + system, all threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def inprocess_throughput(
    model: str, x: np.ndarray, *, device: str, mbs: int, delay_ms: float, conc: int, n: int
) -> tuple[float, float]:
    """Queries/s of ``conc`` coroutines on one AsyncRunner, and CPU ms per query (timed part)."""

    async def main() -> tuple[float, float]:
        async with AsyncRunner(
            model, device=device, max_batch_size=mbs, max_delay_ms=delay_ms
        ) as runner:
            for _ in range(conc):
                await runner.run(x)
            it = iter(range(n))

            async def worker() -> None:
                for _ in it:
                    await runner.run(x)

            c0 = _self_cpu_s()
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            return n / (time.perf_counter() - t0), (_self_cpu_s() - c0) / n * 1e3

    return asyncio.run(main())


def inprocess_p50_us(model: str, x: np.ndarray, n: int) -> float:
    with nnperf.create(model, device="cpu(1)") as s:
        for _ in range(50):
            s.run(x)
        times = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            s.run(x)
            times.append(time.perf_counter_ns() - t0)
    return float(np.percentile(times, 50)) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--repeats", type=int, default=3, help="alternating repeats (default 3)")
    ap.add_argument("--soak-s", type=float, default=0.0, help="soak duration in s (default 0: off)")
    ap.add_argument("--device", default="cpu(1)*2", help="device (default cpu(1)*2)")
    ap.add_argument("--max-batch-size", type=int, default=4, help="dynamic batching (default 4)")
    ap.add_argument("--max-delay-ms", type=float, default=2.0, help="batching delay (default 2)")
    ap.add_argument(
        "--concurrency", default="8,16", help="comma-separated client counts (default 8,16)"
    )
    ap.add_argument(
        "--ray", action="store_true", help="also measure nnperf serve --ray (default off)"
    )
    ap.add_argument(
        "--ray-concurrency", type=int, default=8, help="--ray: client count (default 8)"
    )
    ap.add_argument("--ray-replicas", type=int, default=2, help="--ray: replicas (default 2)")
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    model = "zoo:mnist" if args.quick else "zoo:mobilenetv2"
    n = 200 if args.quick else 600
    print(f"machine: {machine()}")
    rng = np.random.default_rng(0)
    shape = (1, 1, 28, 28) if args.quick else (1, 3, 224, 224)
    x = rng.standard_normal(shape).astype(np.float32)

    # 1. throughput ratio
    server = Server([f"m={model}", "--device", args.device, "--max-batch-size",
                     str(args.max_batch_size), "--max-delay-ms", str(args.max_delay_ms)])  # fmt: skip
    concs = [int(c) for c in args.concurrency.split(",")]
    served: dict[int, list[float]] = {c: [] for c in concs}
    local: dict[int, list[float]] = {c: [] for c in concs}
    served_cpu_ms: list[float] = []  # CPU per request: the server process / this process
    local_cpu_ms: list[float] = []
    try:
        for _ in range(repeats):
            for conc in concs:
                qps, cpu_ms = inprocess_throughput(
                    model, x, device=args.device, mbs=args.max_batch_size,
                    delay_ms=args.max_delay_ms, conc=conc, n=n,
                )  # fmt: skip
                local[conc].append(qps)
                local_cpu_ms.append(cpu_ms)
                c0 = server.cpu_s()
                r = run_remote_benchmark(server.url, "m", scenario="offline", queries=n,
                                         concurrency=conc, inputs={"input": x})  # fmt: skip
                served_cpu_ms.append((server.cpu_s() - c0) / n * 1e3)
                assert r.errors == 0, r.error_samples
                served[conc].append(r.throughput_qps)
        print(
            f"{model} throughput (device {args.device}, max_batch_size {args.max_batch_size}, "
            f"max_delay_ms {args.max_delay_ms}, {repeats} repeats, medians):"
        )
        for conc in concs:
            lq, sq = statistics.median(local[conc]), statistics.median(served[conc])
            print(
                f"  concurrency {conc:>3}: in-process {lq:7.1f} QPS, served (HTTP, binary) "
                f"{sq:7.1f} QPS, ratio {sq / lq:.3f}"
            )
        capacity = max(statistics.median(v) for v in served.values())
        local_capacity = max(statistics.median(v) for v in local.values())
        print(
            f"  capacity (best concurrency each): served {capacity:.1f} ÷ in-process "
            f"{local_capacity:.1f} = {capacity / local_capacity:.3f}  (target >= 0.9)"
        )
        # The load generator shares the machine's cores; the server's own cost is its CPU.
        lc, sc = statistics.median(local_cpu_ms), statistics.median(served_cpu_ms)
        print(
            f"  CPU per request: in-process {lc:.2f} ms, server process {sc:.2f} ms "
            f"-> server efficiency {lc / sc:.3f} (the load generator is not counted)"
        )
        if args.soak_s > 0:
            qps = 0.8 * capacity
            run_remote_benchmark(server.url, "m", scenario="server", target_qps=qps,
                                 duration_s=min(10.0, args.soak_s), inputs={"input": x})  # fmt: skip
            rss0 = server.rss_kib()
            r = run_remote_benchmark(server.url, "m", scenario="server", target_qps=qps,
                                     duration_s=args.soak_s, inputs={"input": x})  # fmt: skip
            rss1 = server.rss_kib()
            print(f"soak {args.soak_s:g} s at {qps:.0f} QPS (80 % of capacity):")
            print("  " + render_report(r).replace("\n", "\n  "))
            print(
                f"  server RSS {rss0 / 1024:.1f} MiB -> {rss1 / 1024:.1f} MiB "
                f"({100 * (rss1 - rss0) / rss0:+.2f} %, target <= +5 %)"
            )
    finally:
        server.stop()

    # 2. per-request overhead on identity
    xi = rng.standard_normal((1, 1000)).astype(np.float32)
    server = Server(["identity=zoo:identity", "--device", "cpu(1)"])
    try:
        local_p50, served_p50 = [], []
        for _ in range(repeats):
            local_p50.append(inprocess_p50_us("zoo:identity", xi, 2000 if not args.quick else 300))
            r = run_remote_benchmark(server.url, "identity", queries=2000 if not args.quick else 300,
                                     inputs={"x": xi})  # fmt: skip
            assert r.latency is not None
            served_p50.append(r.latency.p50_ms * 1e3)
    finally:
        server.stop()
    lp, sp = statistics.median(local_p50), statistics.median(served_p50)
    print("zoo:identity single-stream p50 (batch 1, binary tensors, loopback):")
    print(f"  in-process Session.run {lp:8.1f} µs")
    print(f"  served                 {sp:8.1f} µs")
    print(f"  overhead per request   {sp - lp:8.1f} µs")

    if args.ray:
        ray_section(args, repeats, rng)


def _served(
    server: Server, model: str, x: dict[str, np.ndarray], *, conc: int, n: int
) -> tuple[float, float]:
    """Throughput (offline, ``conc`` clients) and single-stream p50 in µs against ``server``."""
    r = run_remote_benchmark(server.url, model, scenario="offline", queries=n,
                             concurrency=conc, inputs=x)  # fmt: skip
    assert r.errors == 0, r.error_samples
    s = run_remote_benchmark(server.url, model, queries=max(50, n // 4), inputs=x)
    assert s.latency is not None and s.errors == 0
    return r.throughput_qps, s.latency.p50_ms * 1e3


def ray_section(args: argparse.Namespace, repeats: int, rng: np.random.Generator) -> None:
    """4. The plain server and the Ray Serve deployment side by side (zoo:mnist)."""
    try:
        import ray.serve  # noqa: F401
    except ImportError:
        print("ray: skipped (ray[serve] is not installed; pip install 'nnperf[ray]')")
        return
    x = {"input": rng.standard_normal((1, 1, 28, 28)).astype(np.float32)}
    n = 300 if args.quick else 3000
    conc, replicas = args.ray_concurrency, args.ray_replicas
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "ray": []}
    for _ in range(repeats):
        for kind in ("plain", "ray"):
            flags = ["m=zoo:mnist", "--device", "cpu(1)"]
            if kind == "ray":
                flags += ["--ray", "--replicas", str(replicas)]
            server = Server(flags, start_timeout_s=300)
            try:
                _served(server, "m", x, conc=conc, n=min(n, 100))  # warm-up
                results[kind].append(_served(server, "m", x, conc=conc, n=n))
            finally:
                server.stop()
    pq = statistics.median(q for q, _ in results["plain"])
    rq = statistics.median(q for q, _ in results["ray"])
    pp = statistics.median(p for _, p in results["plain"])
    rp = statistics.median(p for _, p in results["ray"])
    print(
        f"zoo:mnist plain server vs Ray Serve ({replicas} replicas of cpu(1), one node, "
        f"{os.cpu_count()} cores, {repeats} repeats, medians):"
    )
    print(
        f"  throughput at {conc} clients: plain {pq:8.1f} QPS, ray {rq:8.1f} QPS, ratio {rq / pq:.3f}"
    )
    print(
        f"  single-stream p50:          plain {pp:8.1f} µs,  ray {rp:8.1f} µs, overhead {rp - pp:8.1f} µs per request"
    )


if __name__ == "__main__":
    main()
