"""Throughput of the socket sources: float32 frames from a sender process into a consumer.

    python benchmarks/bench_sources.py [--seconds 2] [--out benchmarks/results/sources.json]

For each transport and frame size a separate process sends chunks as fast as it can while this
process iterates the source and touches every chunk (sums one element, so the data is read).
Reports payload megabytes per second (x bytes only, 1 MB = 1e6 bytes) and chunks per second,
prints a table and writes JSON. The target is >= 100 MB/s for the ZeroMQ and TCP sources.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sources.tcp import TcpSender, TcpSource  # noqa: E402
from sources.zeromq import ZmqPusher, ZmqSource  # noqa: E402

FRAMES = {"64 KiB": (64, 256), "1 MiB": (1024, 256), "4 MiB": (4096, 256)}


def _send(transport: str, endpoint: str, shape: tuple[int, int], seconds: float) -> None:
    """Sender process: push chunks of `shape` until `seconds` have passed, then one stop chunk."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    stop = np.zeros((1, shape[1]), np.float32)
    if transport == "tcp":
        host, port = endpoint.rsplit(":", 1)
        sender = TcpSender(host, int(port))
    else:
        sender = ZmqPusher(endpoint, hwm=16)
    with sender:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sender.send(x)
        sender.send(stop)
        if transport != "tcp":
            time.sleep(0.5)  # linger 0: let the stop chunk leave before the socket closes


def measure(transport: str, shape: tuple[int, int], seconds: float, folder: str) -> dict:
    """Payload MB/s and chunks/s carried from a sender process into this consumer."""
    if transport == "tcp":
        source = TcpSource(timeout=30, max_frame_bytes=1 << 26)
        endpoint = f"127.0.0.1:{source.port}"
    else:
        where = "tcp://127.0.0.1:0" if transport == "zmq+tcp" else f"ipc://{folder}/bench.sock"
        source = ZmqSource(where, hwm=16, timeout=30, max_frame_bytes=1 << 26)
        endpoint = source.endpoint
    sender = mp.get_context("spawn").Process(target=_send,
                                             args=(transport, endpoint, shape, seconds))
    sender.start()
    with source:
        first = next(source)
        started, nbytes, chunks, check = time.perf_counter(), 0, 0, float(first.x[0, 0])
        for chunk in source:
            if chunk.steps == 1:
                break
            check += float(chunk.x[-1, -1])
            nbytes += chunk.x.nbytes
            chunks += 1
        elapsed = time.perf_counter() - started
    sender.join(timeout=30)
    return {"transport": transport, "frame": f"{shape[0]}x{shape[1]} float32",
            "frame_bytes": int(np.prod(shape)) * 4, "chunks": chunks,
            "seconds": round(elapsed, 3), "MB_per_s": round(nbytes / elapsed / 1e6, 1),
            "chunks_per_s": round(chunks / elapsed, 1), "dropped": source.counters.dropped,
            "rejected": source.counters.rejected, "checksum_finite": bool(np.isfinite(check))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--out", default="benchmarks/results/sources.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for transport in ("zmq+tcp", "zmq+ipc", "tcp"):
            for shape in FRAMES.values():
                rows.append(measure(transport, shape, args.seconds, folder))
    print(f"{'transport':<9} {'frame':<22} {'MB/s':>8} {'chunks/s':>9} {'dropped':>7}")
    for row in rows:
        print(f"{row['transport']:<9} {row['frame']:<22} {row['MB_per_s']:>8.1f} "
              f"{row['chunks_per_s']:>9.1f} {row['dropped']:>7}")
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
              "cpus": mp.cpu_count(), "python": platform.python_version(),
              "seconds_per_run": args.seconds, "target_MB_per_s": 100, "rows": rows,
              "slowest_MB_per_s": min(r["MB_per_s"] for r in rows)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"slowest: {result['slowest_MB_per_s']} MB/s (target 100); wrote {out}")


if __name__ == "__main__":
    main()
