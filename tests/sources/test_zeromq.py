"""ZeroMQ over real tcp loopback and ipc: order, exactness, gaps, topics, bad frames, shutdown."""

from __future__ import annotations

import threading
import time

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
