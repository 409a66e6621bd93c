"""ZeroMQ over real tcp loopback and ipc: order, exactness, gaps, topics, bad frames, shutdown."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from sources.base import Chunk
from sources.zeromq import ZmqPublisher, ZmqPusher, ZmqSource
from tests.sources.conftest import take


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_push_pull_is_bit_exact_and_in_order(transport: str, ipc_endpoint: str) -> None:
    endpoint = "tcp://127.0.0.1:0" if transport == "tcp" else ipc_endpoint
    rng = np.random.default_rng(1)
    sent = [rng.standard_normal((int(rng.integers(1, 40)), 2, 3)).astype(np.float32)
            for _ in range(300)]
    sent.append(rng.standard_normal((20000, 4)).astype(np.float32))  # large: zero-copy path
    with ZmqSource(endpoint, timeout=10) as source:
        with ZmqPusher(source.endpoint) as pusher:
            for x in sent:
                pusher.send(x, boundary=np.zeros(x.shape[:-1], bool))
            got = take(source, len(sent))
    assert [c.seq for c in got] == list(range(len(sent)))
    assert all(c.x.tobytes() == x.tobytes() and c.x.shape == x.shape
               for c, x in zip(got, sent, strict=True))
    assert source.counters.dropped == 0 and source.counters.rejected == 0


def test_pub_sub_counts_sequence_gaps_as_dropped() -> None:
    with ZmqPublisher("tcp://127.0.0.1:0", topic="imu") as publisher:
        with ZmqSource(publisher.endpoint, pattern="sub", topic="imu", timeout=10) as source:
            x = np.ones((2, 3), np.float32)
            for _ in range(50):  # the slow joiner: publish until the subscription is live
                publisher.send_chunk(Chunk(x=x, seq=0))
                if source._socket.poll(100):
                    break
            assert take(source, 1)[0].seq == 0
            while source._socket.poll(50):
                next(source)
            seqs = [1, 2, 5, 6, 10]
            for seq in seqs:
                publisher.send_chunk(Chunk(x=x, seq=seq))
            got = [c.seq for c in take(source, len(seqs))]
    assert got == seqs
    assert source.counters.dropped == 2 + 3


def test_pub_sub_high_water_mark_drops_are_all_accounted_for() -> None:
    with ZmqPublisher("tcp://127.0.0.1:0", hwm=4) as publisher:
        with ZmqSource(publisher.endpoint, pattern="sub", hwm=4, timeout=5) as source:
            time.sleep(0.3)
            x = np.zeros((64, 64), np.float32)
            for _ in range(3000):
                publisher.send(x)
            got = [c.seq for c in take(source, 5)]
            while source._socket.poll(200):
                got.append(next(source).seq)
    received = len(got)
    assert source.counters.dropped > 0  # the PUB/SUB queues overflowed...
    assert received + source.counters.dropped == got[-1] - got[0] + 1  # ...and every loss counted


def test_subscriber_receives_only_its_topic(ipc_endpoint: str) -> None:
    with ZmqPublisher(ipc_endpoint) as audio, ZmqSource(ipc_endpoint, pattern="sub",
                                                        topic="imu", timeout=3) as source:
        audio.topic = b"audio"
        time.sleep(0.3)
        audio.send(np.zeros((1, 1), np.float32))
        audio.topic = b"imu"
        audio.send(np.ones((1, 1), np.float32))
        (chunk,) = take(source, 1)
    assert chunk.x[0, 0] == 1 and chunk.seq == 1


def test_bad_messages_are_rejected_counted_and_the_source_keeps_running(caplog) -> None:
    caplog.set_level("WARNING", logger="sources.wire")
    with ZmqSource("tcp://127.0.0.1:0", timeout=10, max_frame_bytes=1000) as source:
        context = zmq.Context()
        raw = context.socket(zmq.PUSH)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(source.endpoint)
        rng = np.random.default_rng(0)
        for _ in range(10):
            raw.send_multipart([rng.bytes(int(rng.integers(0, 60))) for _ in range(2)])
        x = np.zeros((150, 1), np.float32)  # 600 bytes per frame: 1200 declared > 1000
        raw.send_multipart([bytes(f) for f in _frames(Chunk(x=x, y=x.copy()))])
        raw.send_multipart([bytes(f) for f in _frames(Chunk(x=np.ones((3, 1), np.float32)))])
        (chunk,) = take(source, 1)
        raw.close()
        context.term()
    assert chunk.x.shape == (3, 1)
    assert source.counters.rejected == 11
    assert "rejected a frame" in caplog.text  # logged, but rate-limited: not 11 lines
    assert caplog.text.count("rejected a frame") < 11


def _frames(chunk: Chunk) -> list:
    from sources.wire import encode_frames

    return encode_frames(chunk)


def test_frame_over_the_limit_never_reaches_the_source_and_sender_recovers() -> None:
    with ZmqSource("tcp://127.0.0.1:0", timeout=10, max_frame_bytes=4096) as source:
        with ZmqPusher(source.endpoint) as pusher:
            pusher.send(np.zeros((4096, 1), np.float32))  # libzmq refuses it unallocated
            time.sleep(0.2)
            pusher.send(np.ones((8, 1), np.float32))
            (chunk,) = take(source, 1)
    assert chunk.x.shape == (8, 1) and chunk.seq == 1


def test_close_from_another_thread_ends_a_blocked_consumer(ipc_endpoint: str) -> None:
    source = ZmqSource(ipc_endpoint)
    result: list = []
    consumer = threading.Thread(target=lambda: result.append(list(source)))
    consumer.start()
    time.sleep(0.3)
    source.close()
    consumer.join(timeout=3)
    assert not consumer.is_alive() and result == [[]]
    assert source._context.closed


def test_binding_beyond_loopback_needs_an_explicit_option() -> None:
    with pytest.raises(ValueError, match="allow_remote"):
        ZmqSource("tcp://0.0.0.0:0")
    with pytest.raises(ValueError, match="allow_remote"):
        ZmqPublisher("tcp://*:0")


def test_a_subscriber_redials_when_libzmq_drops_it_for_an_oversize_frame() -> None:
    # libzmq ends a connection that breaks MAXMSGSIZE and, on the dialling side, never
    # redials by itself: without the source's own redial the subscriber would stay deaf.
    with ZmqPublisher("tcp://127.0.0.1:0", topic="imu") as publisher:
        with ZmqSource(publisher.endpoint, pattern="sub", topic="imu", timeout=10,
                       max_frame_bytes=4096) as source:
            first = _publish_until_received(publisher, source, np.zeros((2, 1), np.float32))
            publisher.send(np.zeros((4096, 1), np.float32))  # 16 KiB > 4096: dropped
            after = _publish_until_received(publisher, source, np.ones((8, 1), np.float32))
    assert first.x.shape == (2, 1) and after.x.shape == (8, 1)
    assert source.redials >= 1 and source.counters.rejected == 0


def _publish_until_received(publisher: ZmqPublisher, source: ZmqSource, x: np.ndarray,
                            seconds: float = 8.0) -> Chunk:
    """Publish x every 50 ms from a thread until the source delivers a chunk shaped like it
    (the slow joiner, and a redial, take a moment)."""
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            publisher.send(x)
            stop.wait(0.05)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            chunk = next(source)
            if chunk.x.shape == x.shape:
                return chunk
        raise AssertionError(f"nothing shaped {x.shape} arrived in {seconds} s")
    finally:
        stop.set()
        feeder.join()


@pytest.fixture
def keys(tmp_path):
    """CURVE certificates as zmq.auth writes them: the learner's, an admitted sensor's (its
    public key alone in clients/), and an intruder's that nobody admitted."""
    import zmq.auth

    made = {}
    for name in ("learner", "sensor", "intruder"):
        public, secret = zmq.auth.create_certificates(tmp_path, name)
        made[name], made[f"{name}_public"] = str(secret), str(public)
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "sensor.key").write_bytes(Path(made["sensor_public"]).read_bytes())
    made["clients"] = str(clients)
    return made


def test_curve_admits_only_listed_keys_and_counts_the_peers_it_refuses(keys) -> None:
    from sources import open_source

    uri = (f"zmq+tcp://127.0.0.1:0?curve_secret_key={keys['learner']}"
           f"&curve_clients={keys['clients']}")
    with open_source(uri, timeout=1.5) as source:
        intruder = ZmqPusher(source.endpoint, curve_secret_key=keys["intruder"],
                             curve_server_key=keys["learner_public"])
        plain = ZmqPusher(source.endpoint)
        sensor = ZmqPusher(source.endpoint, curve_secret_key=keys["sensor"],
                           curve_server_key=keys["learner_public"])
        try:
            for _ in range(20):
                intruder.send(np.full((2, 1), -1.0, np.float32))
                plain.send(np.full((2, 1), -2.0, np.float32))
            sensor.send(np.full((2, 1), 7.0, np.float32))
            (chunk,) = take(source, 1)
            with pytest.raises(TimeoutError):  # nothing else ever arrives
                next(source)
        finally:
            for sender in (intruder, plain, sensor):
                sender.close()
    assert chunk.x[0, 0] == 7.0
    assert source.denied >= 2 and source.counters.chunks == 1


def test_curve_subscriber_refuses_a_wrong_key_publisher_and_takes_the_right_one(keys) -> None:
    options = {"pattern": "sub", "topic": "imu", "curve_secret_key": keys["learner"],
               "curve_clients": keys["clients"]}
    server_key = keys["learner_public"]
    with ZmqPublisher("tcp://127.0.0.1:0", topic="imu", curve_secret_key=keys["intruder"],
                      curve_server_key=server_key) as intruder:
        with ZmqSource(intruder.endpoint, timeout=1.0, **options) as refusing:
            with pytest.raises(TimeoutError):
                _publish_until_received(intruder, refusing, np.zeros((2, 1), np.float32))
    with ZmqPublisher("tcp://127.0.0.1:0", topic="imu", curve_secret_key=keys["sensor"],
                      curve_server_key=server_key) as sensor:
        with ZmqSource(sensor.endpoint, timeout=10, **options) as admitting:
            chunk = _publish_until_received(sensor, admitting, np.ones((3, 1), np.float32))
    assert refusing.denied >= 1 and refusing.counters.chunks == 0
    assert chunk.x.shape == (3, 1) and admitting.denied == 0


def test_curve_options_come_in_pairs_and_name_a_missing_secret(keys) -> None:
    with pytest.raises(ValueError, match="curve_clients"):
        ZmqSource("tcp://127.0.0.1:0", curve_secret_key=keys["learner"])
    with pytest.raises(ValueError, match="curve_server_key"):
        ZmqPusher("tcp://127.0.0.1:1", curve_secret_key=keys["sensor"])
    with pytest.raises(ValueError, match="no secret key"):
        ZmqSource("tcp://127.0.0.1:0", curve_secret_key=keys["learner_public"],
                  curve_clients=keys["clients"])
