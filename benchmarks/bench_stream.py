"""Soak and throughput of StreamLearner (issue 3): constant memory on an unbounded stream.

Streams ``--steps`` steps (default 10⁶) of B = 8 streams through a 1×256 BRF network in chunks
of random length, printing the process's RSS and the learner's tensor bytes every
``--every`` steps; memory must be flat after warm-up (growth < 1%). Then, side by side in the
same process, steps per second and chunk latency (chunk in → outputs out) at λ ∈ {1, 32, 256}.

    python benchmarks/bench_stream.py                 # full soak, writes results/stream.json
    python benchmarks/bench_stream.py --steps 200000  # shorter soak
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import hypr_stream as hs

N_IN, HIDDEN, N_OUT = 140, 256, 20


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def make_learner(lam: int, batch: int) -> hs.StreamLearner:
    torch.manual_seed(0)
    net = hs.RSNN(N_IN, [HIDDEN], N_OUT, neuron="brf", init_gain=20.0)
    return hs.StreamLearner(net, rule="hypr", lam=lam, lr=1e-3, device="cpu")


def chunk(rng: np.random.Generator, steps: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    x = (rng.random((steps, batch, N_IN)) < 0.05).astype(np.float32)
    y = rng.integers(-1, N_OUT, (steps, batch))
    return x, y


def soak(steps: int, every: int, batch: int, lam: int, max_chunk: int) -> list[dict]:
    rng = np.random.default_rng(0)
    learner = make_learner(lam, batch)
    rows, done, next_report, started = [], 0, every, time.perf_counter()
    while done < steps:
        size = int(rng.integers(1, max_chunk + 1))
        learner.learn(*chunk(rng, size, batch))
        done += size
        if done >= next_report:
            row = {"steps": done, "rss_mb": rss_bytes() / 2**20,
                   "tensor_mb": learner.tensor_bytes() / 2**20,
                   "steps_per_second": done / (time.perf_counter() - started)}
            rows.append(row)
            print(f"{row['steps']:>10,} steps | RSS {row['rss_mb']:8.1f} MB | tensors "
                  f"{row['tensor_mb']:7.2f} MB | {row['steps_per_second']:7.0f} steps/s",
                  flush=True)
            next_report += every
    return rows


def throughput(lams: list[int], steps: int, batch: int, chunk_steps: int) -> list[dict]:
    rng = np.random.default_rng(1)
    x, y = chunk(rng, steps, batch)
    rows = []
    for lam in lams:
        learner = make_learner(lam, batch)
        learner.learn(x[:lam], y[:lam])  # warm-up: first subsequence, allocation
        latencies, started = [], time.perf_counter()
        for a in range(0, steps, chunk_steps):
            t0 = time.perf_counter()
            learner.learn(x[a:a + chunk_steps], y[a:a + chunk_steps])
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        row = {"lam": lam, "steps": steps, "chunk_steps": chunk_steps,
               "steps_per_second": steps / elapsed,
               "latency_ms_median": 1e3 * float(np.median(latencies)),
               "latency_ms_p99": 1e3 * float(np.percentile(latencies, 99))}
        rows.append(row)
        print(f"λ = {lam:4d} | {row['steps_per_second']:7.0f} steps/s | chunk of {chunk_steps} "
              f"steps: latency median {row['latency_ms_median']:.1f} ms, "
              f"p99 {row['latency_ms_p99']:.1f} ms", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lam", type=int, default=32, help="λ of the soak")
    parser.add_argument("--max-chunk", type=int, default=200)
    parser.add_argument("--throughput-steps", type=int, default=2048)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "stream.json"))
    args = parser.parse_args()

    print(f"soak: {args.steps:,} steps, B = {args.batch}, 1×{HIDDEN} BRF, λ = {args.lam}, "
          f"random chunks of 1..{args.max_chunk} steps")
    rows = soak(args.steps, args.every, args.batch, args.lam, args.max_chunk)
    after_warmup = rows[1:] if len(rows) > 2 else rows
    growth = {key: (after_warmup[-1][key] - after_warmup[0][key]) / after_warmup[0][key]
              for key in ("rss_mb", "tensor_mb")}
    # Tensor bytes move up and down with the buffer's fill (0..λ steps): only growth counts.
    print(f"growth after warm-up: RSS {growth['rss_mb']:+.2%}, tensors {growth['tensor_mb']:+.2%}"
          f" ({'flat' if max(growth.values()) < 0.01 else 'NOT flat'}: growth under 1%)")
    print(f"throughput, B = {args.batch}, chunks of 64 steps:")
    speed = throughput([1, 32, 256], args.throughput_steps, args.batch, 64)
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
        "config": vars(args), "soak": rows, "growth_after_warmup": growth,
        "throughput": speed,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
