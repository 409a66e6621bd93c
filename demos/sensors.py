"""Sensors over ZeroMQ: one process publishes a simulated multichannel sensor (activities with
regime changes); the learner subscribes, learns online to classify the activity at every step,
and publishes its predictions; the publisher is killed and restarted midway, and the learner
carries on (SUB reconnects by itself; the restarted sender's sequence starts afresh).

    hypr-stream demo sensors [--short] [--steps N]
    python demos/sensors.py --publish --endpoint tcp://127.0.0.1:5556   # the sensor alone
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import _demo

TOPIC = "imu"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publish(endpoint: str, pace: float, seed: int) -> None:
    """The sensor process: SensorSource chunks to a PUB socket, paced, until killed."""
    from sources.synthetic import SensorSource
    from sources.zeromq import ZmqPublisher

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ZmqPublisher(endpoint, topic=TOPIC) as pub, \
            SensorSource(channels=6, classes=4, segment_steps=400, seed=seed,
                         chunk_steps=100, pace=pace) as sensor:
        for chunk in sensor:
            if stop.is_set():
                break
            pub.send_chunk(chunk)


def start_publisher(endpoint: str, pace: float, seed: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--publish",
                             "--endpoint", endpoint, "--pace", str(pace), "--seed", str(seed)])


def count_predictions(endpoint: str, counts: dict, stop: threading.Event) -> None:
    """A downstream consumer: subscribes to the learner's predictions and counts them."""
    from sources import open_source

    with open_source(f"zmq+{endpoint}?pattern=sub&topic=pred") as preds:
        counts["source"] = preds
        for chunk in preds:
            counts["chunks"] += 1
            counts["steps"] += chunk.steps
            if stop.is_set():
                break


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--short", action="store_true", help="a short run (for the tests)")
    p.add_argument("--steps", type=int, default=None, help="steps to learn (default 60000)")
    p.add_argument("--pace", type=float, default=2000.0, help="sensor steps per second")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo-sensors", help="checkpoint, metrics, plots")
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    p.add_argument("--publish", action="store_true", help="be the sensor publisher only")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5556")
    args = p.parse_args(argv)
    if args.publish:
        publish(args.endpoint, args.pace, args.seed)
        return {}
    steps = args.steps or (8000 if args.short else 60000)
    sensor_ep = f"tcp://127.0.0.1:{free_port()}"
    pred_ep = f"tcp://127.0.0.1:{free_port()}"
    counts = {"chunks": 0, "steps": 0, "restarts": 0}
    stop = threading.Event()
    publisher = start_publisher(sensor_ep, args.pace, args.seed)

    def restart() -> None:
        # Kill the sensor once a third of the stream has been published, restart it 1 s later.
        nonlocal publisher
        if stop.wait(steps / 3 / args.pace):
            return
        publisher.kill()
        publisher.wait()
        if stop.wait(1.0):
            return
        publisher = start_publisher(sensor_ep, args.pace, args.seed)
        counts["restarts"] += 1

    consumer = threading.Thread(target=count_predictions, args=(pred_ep, counts, stop),
                                daemon=True)
    restarter = threading.Thread(target=restart, daemon=True)
    consumer.start()
    restarter.start()
    try:
        result = _demo.run("sensors", args.out, [
            f"source.uri=zmq+{sensor_ep}?pattern=sub&topic={TOPIC}",
            f"output.predictions=zmq+{pred_ep}?topic=pred", f"max_steps={steps}", *args.set])
    finally:
        stop.set()
        restarter.join()
        publisher.terminate()
        try:
            publisher.wait(5)
        except subprocess.TimeoutExpired:
            publisher.kill()
        if "source" in counts:
            counts["source"].close()
        consumer.join(5)
    result.update(demo="sensors", chance=0.25, publisher_restarts=counts["restarts"],
                  predictions_received={"chunks": counts["chunks"], "steps": counts["steps"]},
                  pid=os.getpid())
    _demo.finish(result)
    return result


if __name__ == "__main__":
    main()
