"""ZeroMQ soak with faults (issue 6): a learner on a PUB/SUB stream keeps learning through them.

A sensor publisher (a separate process: this script with ``--publish``) streams a 64-channel,
4-class `SensorSource` at ``--pace`` steps/s to a `ZmqSource` (SUB) feeding a `StreamLearner`
(64 -> [32] BRF -> 4, HYPR, ``on_invalid="skip"``). For ``--minutes`` (default 30) faults are
injected on a schedule, one kind after another:

    restart         the publisher is killed with SIGKILL and started again (its seq restarts)
    malformed       3 messages: random bytes, a bad magic, a truncated payload
    oversize_frame  one frame over ``max_frame_bytes``: libzmq refuses it unallocated and drops
                    that connection, which reconnects by itself (not seen by the source)
    oversize_total  frames each under the limit whose declared total is over it
    nan             a well-formed chunk with NaN in x (the learner refuses it)
    stall           the learner stops reading for ``--stall`` s (a slow consumer; at most a
                    fifth of the run): the SUB's high-water mark fills and the publisher
                    drops, by design

A fault survives when at least ``SURVIVE_CHUNKS`` good chunks are learned after it and the
weights stay finite; it is counted by the counter named in the table. RSS is sampled every 5 s;
start is taken after warm-up. The default transport is ipc, whose kernel buffer (~200 KB) is
small: at 250 steps/s of 64 channels (64 KB/s) it and the high-water marks (20 messages each
side) hold about 8 s, so a 12 s stall drops about 4 s of chunks; over tcp loopback the kernel
buffers a few MB more before anything drops. Drops in the window of a fault that drops nothing
by itself are reported as `dropped_while_behind` (the learner fell behind a busy CPU).

    python benchmarks/soak_zmq.py --minutes 0.5     # quick check: each fault once (its 6 s
                                                    # stall is too short to drop anything)
    OMP_NUM_THREADS=1 nohup python benchmarks/soak_zmq.py --minutes 30 &
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sources.base import Chunk  # noqa: E402
from sources.synthetic import SensorSource  # noqa: E402
from sources.wire import encode_frames  # noqa: E402

CHANNELS, CLASSES, CHUNK_STEPS, TOPIC = 64, 4, 50, b"imu"
MAX_FRAME_BYTES = 1 << 20
HWM = 20
SURVIVE_CHUNKS = 5
KINDS = ("stall", "restart", "malformed", "oversize_frame", "oversize_total", "nan")
COUNTED_BY = {
    "restart": "seq restarts seen by the learner",
    "malformed": "source.rejected",
    "oversize_frame": "not seen (libzmq MAXMSGSIZE); source.dropped during reconnect",
    "oversize_total": "source.rejected",
    "nan": "learner.rejected",
    "stall": "source.dropped (seq gaps)",
}


# ---------------------------------------------------------------------- publisher process
def publish(endpoint: str, pace: float, seed: int) -> None:
    """The sensor: paced chunks on PUB, plus the faults named on stdin, one per line.

    A raw pyzmq socket, so that it can also send what `ZmqPublisher` never would.
    """
    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, HWM)
    socket.bind(endpoint)
    rng = np.random.default_rng(seed)
    seq = 0

    def send(chunk: Chunk) -> None:
        socket.send_multipart([TOPIC, *encode_frames(chunk)], copy=False)

    print("ready", flush=True)
    try:
        for chunk in SensorSource(CHANNELS, CLASSES, seed=seed, chunk_steps=CHUNK_STEPS,
                                  pace=pace):
            chunk.seq = seq
            send(chunk)
            seq += 1
            if not select.select([sys.stdin], [], [], 0)[0]:
                continue
            command = sys.stdin.readline().strip()
            if command == "malformed":
                good = encode_frames(Chunk(x=np.ones((4, CHANNELS), np.float32), seq=seq))
                socket.send_multipart([TOPIC, rng.bytes(int(rng.integers(1, 200)))])
                socket.send_multipart([TOPIC, b"XXXX" + bytes(good[0])[4:], bytes(good[1])])
                socket.send_multipart([TOPIC, bytes(good[0]), bytes(good[1])[:-8]])
            elif command == "oversize_frame":
                big = np.zeros((MAX_FRAME_BYTES // 4 + 1024, 1), np.float32)
                send(Chunk(x=big, seq=seq))
            elif command == "oversize_total":
                half = np.zeros((MAX_FRAME_BYTES // 8 + 1024, 1), np.float32)
                send(Chunk(x=half, y=half.copy(), seq=seq))
            elif command == "nan":  # a new array: the last one may still be in flight
                send(Chunk(x=np.full_like(chunk.x, np.nan), y=chunk.y, mask=chunk.mask,
                           seq=seq))
                seq += 1
            elif command == "":
                return  # stdin closed: the soak is over
    finally:
        socket.close(linger=0)
        context.term()


class Publisher:
    """The publisher process, started (and waited for) and killed by the soak."""

    def __init__(self, endpoint: str, pace: float, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--publish", endpoint, "--pace", str(pace),
             "--seed", str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        if self.proc.stdout is None or self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("publisher did not start")

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


# ---------------------------------------------------------------------- the soak
def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Fault:
    """One injected fault: what was counted after it and whether the learner came through."""

    kind: str
    at_s: float
    counted: int = 0
    dropped: int = 0
    good_after: int = 0
    survived: bool = False
    before: dict[str, int] = field(default_factory=dict)


def make_learner():
    """The sensors demo's network on 64 channels; it refuses bad chunks and goes on."""
    import torch

    import hypr_stream as hs

    torch.manual_seed(0)
    net = hs.RSNN(CHANNELS, [32], CLASSES, neuron="brf", init_gain=5.0, variant="exact",
                  omega_init=[3.0, 15.0], b_offset_init=[0.01, 0.5])
    return hs.StreamLearner(net, rule="hypr", lam=100, lr=0.01, update_every=1, device="cpu",
                            on_invalid="skip")


def soak(args: argparse.Namespace, endpoint: str) -> dict:
    import torch

    from sources.zeromq import ZmqSource

    learner = make_learner()
    seconds = args.minutes * 60
    warmup = min(30.0, 0.1 * seconds)
    stall = min(args.stall, 0.2 * seconds)
    # Faults evenly over [warmup, 85%] of the run (less the stall, which delays those after
    # it), kinds in turn and as many of each, one at a time: a counter's rise between two
    # injections belongs to the first.
    span = 0.85 * seconds - stall - warmup
    count = max(1, round(span / args.every / len(KINDS))) * len(KINDS)
    times = np.linspace(warmup, warmup + span, count + 1)[1:]
    schedule = [(float(t), KINDS[i % len(KINDS)]) for i, t in enumerate(times)]
    publisher = Publisher(endpoint, args.pace, seed=0)
    faults: list[Fault] = []
    rss: list[tuple[float, float]] = []
    last_seq, restarts_seen = -1, 0
    started = time.monotonic()
    next_rss = 0.0
    source = ZmqSource(endpoint, pattern="sub", topic=TOPIC.decode(), hwm=HWM,
                       max_frame_bytes=MAX_FRAME_BYTES, timeout=30)

    def counters() -> dict[str, int]:
        return {"rejected": source.counters.rejected, "dropped": source.counters.dropped,
                "learner_rejected": learner.counters["rejected"], "restarts": restarts_seen}

    try:
        for chunk in source:
            now = time.monotonic() - started
            if chunk.seq < last_seq:
                restarts_seen += 1
            last_seq = chunk.seq
            out = learner.learn(chunk.x, chunk.y, chunk.mask, chunk.boundary)
            if out is not None and faults:
                fault = faults[-1]
                fault.good_after += 1
                if fault.good_after == SURVIVE_CHUNKS:
                    fault.survived = all(bool(torch.isfinite(p).all())
                                         for p in learner.net.parameters()) and (
                        fault.kind != "restart" or restarts_seen > fault.before["restarts"])
            if now >= next_rss:
                rss.append((now, rss_mb()))
                next_rss = now + 5.0
            if schedule and now >= schedule[0][0]:
                _, kind = schedule.pop(0)
                if faults:
                    _close(faults[-1], counters())
                faults.append(Fault(kind, now, before=counters()))
                print(f"{now:7.1f} s  {learner.counters['steps']:>9,} steps  inject {kind}",
                      flush=True)
                if kind == "restart":
                    publisher.kill()
                    publisher = Publisher(endpoint, args.pace, seed=len(faults))
                elif kind == "stall":
                    time.sleep(stall)
                    schedule = [(t + stall, k) for t, k in schedule]
                else:
                    publisher.command(kind)
            if now >= seconds:
                break
    finally:
        source.close()
        publisher.kill()
    if faults:
        _close(faults[-1], counters())
    non_finite = sum(not bool(torch.isfinite(p).all()) for p in learner.net.parameters())
    elapsed = time.monotonic() - started
    after = [mb for t, mb in rss if t >= warmup] or [mb for _, mb in rss]
    # Faults that drop nothing by themselves: drops in their windows mean the learner fell
    # behind the publisher (the CPU was busy elsewhere), not that the fault cost data.
    behind = sum(f.dropped for f in faults if f.kind in ("malformed", "oversize_total", "nan"))
    return {
        "elapsed_s": elapsed, "steps": learner.counters["steps"],
        "dropped_while_behind": behind, "redials": source.redials,
        "steps_per_second": learner.counters["steps"] / elapsed,
        "learner": dict(learner.counters), "source": source.counters.as_dict(),
        "non_finite_parameters": non_finite, "faults": [vars(f) for f in faults],
        "rss_mb": {"start": after[0], "end": after[-1], "min": min(after), "max": max(after),
                   "growth": (after[-1] - after[0]) / after[0], "samples": rss},
    }


def _close(fault: Fault, now: dict[str, int]) -> None:
    """What the fault's own counter, and the drop count, rose by from its injection to the
    next one."""
    key = {"restart": "restarts", "malformed": "rejected", "oversize_frame": "dropped",
           "oversize_total": "rejected", "nan": "learner_rejected", "stall": "dropped"}
    fault.counted = now[key[fault.kind]] - fault.before[key[fault.kind]]
    fault.dropped = now["dropped"] - fault.before["dropped"]


def table(result: dict) -> list[dict]:
    rows = []
    for kind in KINDS:
        mine = [f for f in result["faults"] if f["kind"] == kind]
        rows.append({"fault": kind, "injected": len(mine),
                     "survived": sum(f["survived"] for f in mine),
                     "counted": sum(f["counted"] for f in mine), "by": COUNTED_BY[kind]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=20.0, help="seconds between faults")
    parser.add_argument("--pace", type=float, default=250.0, help="publisher steps/s")
    parser.add_argument("--stall", type=float, default=12.0, help="slow consumer pause, s")
    parser.add_argument("--transport", choices=("ipc", "tcp"), default="ipc")
    parser.add_argument("--note", default="", help="written into the JSON")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak_zmq.json"))
    parser.add_argument("--publish", metavar="ENDPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:  # the publisher process: no torch, so it starts in a fraction of a second
        publish(args.publish, args.pace, args.seed)
        return
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with tempfile.TemporaryDirectory() as tmp:
        endpoint = (f"ipc://{tmp}/soak.sock" if args.transport == "ipc"
                    else f"tcp://127.0.0.1:{_free_port()}")
        print(f"soak: {args.minutes} min over zmq {args.transport}, {CHANNELS} channels at "
              f"{args.pace:.0f} steps/s, a fault every {args.every:.0f} s", flush=True)
        load_before = os.getloadavg()
        result = soak(args, endpoint)
        result["load_average"] = {"start": load_before, "end": os.getloadavg()}
    rows = table(result)
    print(f"\n{'fault':<15} {'injected':>8} {'survived':>8} {'counted':>8}  by")
    for r in rows:
        print(f"{r['fault']:<15} {r['injected']:>8} {r['survived']:>8} {r['counted']:>8}  "
              f"{r['by']}")
    rss = result["rss_mb"]
    print(f"\nsteps {result['steps']:,} in {result['elapsed_s']:.0f} s "
          f"({result['steps_per_second']:.0f} steps/s); source {result['source']}; "
          f"learner rejected {result['learner']['rejected']}, non-finite parameters "
          f"{result['non_finite_parameters']}, redials {result['redials']}, dropped while "
          f"behind (busy CPU) {result['dropped_while_behind']}")
    print(f"RSS after warm-up {rss['start']:.1f} -> {rss['end']:.1f} MiB "
          f"({rss['growth']:+.2%}; min {rss['min']:.1f}, max {rss['max']:.1f})")
    output = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                 capture_output=True, text=True).stdout.strip(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": torch.get_num_threads(), "pyzmq": zmq.pyzmq_version(),
                    "libzmq": zmq.zmq_version()},
        "note": args.note,
        "config": {k: v for k, v in vars(args).items() if k not in ("publish", "seed")},
        "table": rows, **result,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(output, indent=2))
    print(f"wrote {args.out}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
