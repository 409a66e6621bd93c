"""Throughput of DistributedStreamLearner with 1 and 2 processes, and a cost model for 8 GPUs.

    python benchmarks/bench_distributed.py [--short] [--out benchmarks/results/distributed.json]

Network: RSNN(140, [256], 20, neuron="brf"), float32, rule hypr, λ = 50, update_every = 1 (one
all-reduce per 50 steps), B streams per process, chunks of λ steps of random input. Every
configuration runs in fresh processes (this script with ``--child``), launched with torchrun's
environment variables and gloo on 127.0.0.1:

- ``plain``: one StreamLearner process (no torch.distributed), ``--threads`` torch threads;
- ``dist×1``: DistributedStreamLearner in a group of 1 (the collective's own overhead);
- ``dist×2``: two processes, each B streams (2B in all), 1 torch thread each.

Throughput is stream-steps per second: steps × streams of all ranks / the slowest rank's wall time
over the timed chunks (after warm-up chunks). Per update the table gives the bytes all-reduced
(every parameter's gradient plus 4 flags, in the parameters' dtype), the time in collectives and
the compute (the rest). This machine has 2 cores, so the two processes of ``dist×2`` share them
with each other and with anything else running: compare it with ``plain`` at 2 threads.

The 8-GPU estimate is on paper: a ring all-reduce of S bytes over n GPUs moves 2(n−1)/n · S per GPU
and takes 2(n−1) latency-bound steps, t = 2(n−1)/n · S / BW + 2(n−1) · α, for NVLink
(BW = 300 GB/s bus bandwidth, α = 8 µs per step: NCCL's measured figures on 8×H100 are of this
order for mid-size messages) and for 25 GB/s links (PCIe / InfiniBand, α = 15 µs). Scaling
efficiency is compute / (compute + t) per update (no overlap; B streams per GPU, so throughput is
n × efficiency × one GPU's). The compute per update on a GPU is not measured here; the JSON gives
the break-even compute per update at which the all-reduce costs 10% of it.

"comm ms" is the time inside collectives, so with 2 processes it includes waiting for the slower
rank, not only the transfer. Each row records the 1-minute load average before and after it: the
machine may be shared, and a load above the core count makes every figure slower.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_IN, HIDDEN, N_OUT, LAM = 140, 256, 20, 50


def child(args: argparse.Namespace) -> None:
    import torch

    import hypr_stream as hs
    from hypr_stream import distributed as hd

    torch.set_num_threads(args.threads)
    rank, world = 0, 1
    if args.mode != "plain":
        rank, world, _ = hd.init_from_env(timeout_s=120.0, backend="gloo")
    torch.manual_seed(0)
    net = hs.RSNN(N_IN, [HIDDEN], N_OUT, neuron="brf")
    options = dict(rule="hypr", lam=LAM, lr=1e-3, update_every=1, device="cpu")
    if args.mode == "plain":
        learner = hs.StreamLearner(net, **options)
    else:
        learner = hd.DistributedStreamLearner(net, **options, check_every=0,
                                              failure_checkpoint=None)
    g = torch.Generator().manual_seed(1 + rank)
    chunks = [((torch.rand(LAM, args.batch, N_IN, generator=g) < 0.05).float(),
               torch.randint(0, N_OUT, (LAM, args.batch), generator=g))
              for _ in range(args.warmup + args.chunks)]
    for x, y in chunks[:args.warmup]:
        learner.learn(x, y)
    comm0 = dict(getattr(learner, "comm", {"seconds": 0.0, "rounds": 0, "bytes": 0}))
    if world > 1:
        torch.distributed.barrier()
    started = time.perf_counter()
    for x, y in chunks[args.warmup:]:
        learner.learn(x, y)
    wall = time.perf_counter() - started
    comm = getattr(learner, "comm", comm0)
    rounds = comm["rounds"] - comm0["rounds"]
    n_params = sum(p.numel() for p in net.parameters())
    result = {
        "rank": rank, "world": world, "wall_s": wall, "steps": args.chunks * LAM,
        "updates": args.chunks, "comm_s": comm["seconds"] - comm0["seconds"],
        "rounds": rounds, "bytes_per_round": ((comm["bytes"] - comm0["bytes"]) / rounds
                                              if rounds else (n_params + 4) * 4),
        "parameters": n_params,
    }
    Path(args.result).with_name(f"{Path(args.result).stem}.rank{rank}.json").write_text(
        json.dumps(result))
    if world > 1:
        torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(mode: str, world: int, threads: int, args: argparse.Namespace) -> dict:
    """Launch ``world`` children, wait for them, and summarise the slowest rank."""
    port = free_port()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        procs = []
        for rank in range(world):
            env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                       OMP_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES="")
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--child", "--mode", mode, "--threads", str(threads),
                 "--batch", str(args.batch), "--chunks", str(args.chunks),
                 "--warmup", str(args.warmup), "--result", str(result)], env=env))
        for proc in procs:
            if proc.wait(timeout=600) != 0:
                raise RuntimeError(f"{mode} child failed with exit code {proc.returncode}")
        ranks = [json.loads(result.with_name(f"result.rank{r}.json").read_text())
                 for r in range(world)]
    wall = max(r["wall_s"] for r in ranks)
    slow = max(ranks, key=lambda r: r["wall_s"])
    streams = args.batch * world
    return {
        "config": mode, "processes": world, "threads_per_process": threads,
        "streams": streams, "steps": slow["steps"], "updates": slow["updates"],
        "wall_s": wall,
        "stream_steps_per_s": slow["steps"] * streams / wall,
        "ms_per_update": 1e3 * wall / slow["updates"],
        "comm_ms_per_update": 1e3 * slow["comm_s"] / slow["updates"],
        "compute_ms_per_update": 1e3 * (wall - slow["comm_s"]) / slow["updates"],
        "bytes_allreduced_per_update": slow["bytes_per_round"] if mode != "plain" else 0,
        "parameters": slow["parameters"],
        "loadavg_1m_before_after": [load_before, os.getloadavg()[0]],
    }


def ring_allreduce_s(size_bytes: float, n: int, bandwidth: float, alpha: float) -> float:
    """Ring all-reduce time: 2(n-1)/n · S / BW + 2(n-1) · α."""
    return 2 * (n - 1) / n * size_bytes / bandwidth + 2 * (n - 1) * alpha


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="plain", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", default="", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help="streams per process")
    parser.add_argument("--chunks", type=int, default=20, help="timed chunks (= updates)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--short", action="store_true", help="5 timed chunks, 1 warm-up")
    parser.add_argument("--out", default="benchmarks/results/distributed.json")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.short:
        args.chunks, args.warmup = 5, 1
    rows = [run("plain", 1, 1, args), run("plain", 1, 2, args), run("dist", 1, 1, args),
            run("dist", 2, 1, args)]
    print(f"RSNN({N_IN}, [{HIDDEN}], {N_OUT}) BRF float32, hypr λ={LAM}, update every block, "
          f"{args.batch} streams per process, {args.chunks} timed updates")
    header = (f"{'config':<8}{'procs':>6}{'thr':>5}{'streams':>8}{'stream-steps/s':>16}"
              f"{'ms/update':>11}{'comm ms':>9}{'compute ms':>12}{'bytes/update':>14}")
    print(header)
    for r in rows:
        print(f"{r['config']:<8}{r['processes']:>6}{r['threads_per_process']:>5}"
              f"{r['streams']:>8}{r['stream_steps_per_s']:>16.0f}{r['ms_per_update']:>11.1f}"
              f"{r['comm_ms_per_update']:>9.2f}{r['compute_ms_per_update']:>12.1f}"
              f"{r['bytes_allreduced_per_update']:>14.0f}")
    size = rows[-1]["bytes_allreduced_per_update"]
    links = {"nvlink": (300e9, 8e-6), "pcie_or_ib_25GBps": (25e9, 15e-6)}
    estimate = {}
    print(f"\n8-GPU ring all-reduce of {size / 1e3:.0f} kB per update (on paper):")
    for name, (bw, alpha) in links.items():
        t = ring_allreduce_s(size, 8, bw, alpha)
        estimate[name] = {"bandwidth_Bps": bw, "alpha_s": alpha, "allreduce_s": t,
                          "compute_per_update_for_90pct_efficiency_s": 10 * t}
        print(f"  {name:<20} {t * 1e6:7.1f} µs per update: the all-reduce costs ≤ 10% when "
              f"compute per update ≥ {10 * t * 1e3:.2f} ms")
    cpu = rows[0]["compute_ms_per_update"] / 1e3
    for name in estimate:
        t = estimate[name]["allreduce_s"]
        estimate[name]["efficiency_at_this_cpu_compute"] = cpu / (cpu + t)
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
                   f"{platform.platform()}",
        "command": "python " + " ".join(sys.argv),
        "network": f"RSNN({N_IN}, [{HIDDEN}], {N_OUT}, neuron='brf') float32",
        "rule": "hypr", "lam": LAM, "update_every": 1, "streams_per_process": args.batch,
        "rows": rows, "eight_gpu_estimate": estimate,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
