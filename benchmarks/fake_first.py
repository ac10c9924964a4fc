"""Is a "fake first" run cheaper than a real one on these engines?

MegEngine's ``--fake-first`` makes the first execution do allocation and queue setup without the
compute, so the first warm-up costs little (its docs: 551.6 -> 30.1 ms). onnxruntime and OpenVINO
have no allocation-only run; ``nnperf bench --fake-first`` runs once on zeros. This script
measures, on fresh sessions (one instance, one thread), interleaved:

* the first run on zeros vs the first run on random data (does a zero input skip work?),
* the first run vs the steady state (what a first run costs at all),
* the run after a zero first run vs the steady state (does the zero run warm everything?).

    python benchmarks/fake_first.py [--quick] [--models mobilenetv2,bert-tiny]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import header, median

from nnperf.engines.config import RunConfig
from nnperf.engines.registry import engine_names
from nnperf.model import load_model
from nnperf.runtime import Session
from nnperf.types import concrete_shape


def feeds(sess: Session, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    real: dict[str, np.ndarray] = {}
    for d in sess.inputs:
        shape = concrete_shape(d, dims={"seq": 128}, default=1)
        dtype = np.dtype(d.dtype)
        if np.issubdtype(dtype, np.floating):
            real[d.name] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in d.name:
            real[d.name] = np.ones(shape, dtype)
        else:
            real[d.name] = rng.integers(1, 100, shape).astype(dtype)
    return {k: np.zeros_like(v) for k, v in real.items()}, real


def timed(run, feed) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter_ns()
    run(feed)
    return (time.perf_counter_ns() - t0) / 1e6


def one(blob, engine: str, first_zeros: bool, steady_n: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(first run, the run after it, steady-state median) on a fresh session, in ms."""
    with Session(blob, config=RunConfig(engine=engine, device="cpu(1)")) as sess:
        zeros, real = feeds(sess, 0)
        run = sess.instances[0].run
        first = timed(run, zeros if first_zeros else real)
        second = timed(run, real)
        for _ in range(3):
            run(real)
        steady = median([timed(run, real) for _ in range(steady_n)])
    return first, second, steady


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--models", default="mobilenetv2,bert-tiny", help="zoo models, comma-separated")
    args = ap.parse_args()
    repeats, steady_n = (2, 5) if args.quick else (7, 20)
    engines = [e for e in ("onnxruntime", "openvino") if e in engine_names()]
    print(header("fake first: a zero-input first run vs a real one, fresh sessions, cpu(1)"))
    for name in args.models.split(","):
        blob = load_model(f"zoo:{name}")
        for engine in engines:
            try:
                Session(blob, config=RunConfig(engine=engine, device="cpu(1)")).close()
            except Exception as exc:  # an engine that is not installed or refuses the model
                print(f"{name} on {engine}: skipped ({type(exc).__name__}: {exc})")
                continue
            zf, zn, rf, rn, steady = [], [], [], [], []
            for _ in range(repeats):  # interleaved: zeros-first and random-first sessions
                a, b, s1 = one(blob, engine, True, steady_n)
                c, d, s2 = one(blob, engine, False, steady_n)
                zf.append(a)
                zn.append(b)
                rf.append(c)
                rn.append(d)
                steady += [s1, s2]
            st = median(steady)
            print(
                f"{name} on {engine}: first run zeros {median(zf):.2f} ms vs random "
                f"{median(rf):.2f} ms (ratio {median(zf) / median(rf):.3f}); steady "
                f"{st:.2f} ms; first/steady {median(rf) / st:.2f}x; run after a zero first "
                f"run / steady {median(zn) / st:.2f}x (after a random one {median(rn) / st:.2f}x)"
            )


if __name__ == "__main__":
    main()
