"""TCP over real loopback sockets: order, exactness, restarts, bad frames, shutdown."""

from __future__ import annotations

import socket
import struct
import threading
import time
import tracemalloc

import numpy as np
import pytest

from sources.base import Chunk
from sources.tcp import TcpSender, TcpSource
from sources.wire import encode_stream
from tests.sources.conftest import take


def random_chunks(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((int(rng.integers(1, 50)), 3, 4)).astype(np.float32),
             rng.integers(-1, 5, size=(1, 3)).astype(np.int64)) for _ in range(n)]


def test_chunks_arrive_bit_exact_and_in_order() -> None:
    sent = random_chunks(300)
    with TcpSource(timeout=10) as source:
        with TcpSender(port=source.port) as sender:
            for x, y in sent:
                sender.send(x, y=np.repeat(y, x.shape[0], axis=0))
            got = take(source, len(sent))
    assert [c.seq for c in got] == list(range(len(sent)))
    for (x, y), chunk in zip(sent, got, strict=True):
        assert chunk.x.tobytes() == x.tobytes() and chunk.x.shape == x.shape
        assert np.array_equal(chunk.y, np.repeat(y, x.shape[0], axis=0))
    assert source.counters.as_dict() == {"chunks": 300, "steps": sum(x.shape[0] for x, _ in sent),
                                         "dropped": 0, "rejected": 0}


def test_listening_source_takes_the_next_sender_after_one_leaves() -> None:
    with TcpSource(timeout=10) as source:
        for round_ in range(3):
            with TcpSender(port=source.port) as sender:
                sender.send(np.full((2, 1), round_, np.float32))
            (chunk,) = take(source, 1)
            assert chunk.x[0, 0] == round_ and chunk.seq == 0
        assert source.counters.dropped == 0


def test_connecting_source_reconnects_after_its_peer_restarts() -> None:
    def serve(sender: TcpSender, value: float) -> None:
        sender.send(np.full((3, 2), value, np.float32))  # waits for the source to dial in

    first = TcpSender(mode="listen")
    port = first.port
    with TcpSource(port=port, mode="connect", timeout=10, backoff=0.01) as source:
        thread = threading.Thread(target=serve, args=(first, 1.0))
        thread.start()
        assert take(source, 1)[0].x.sum() == 6
        thread.join(timeout=5)
        first.close()  # the peer goes away; the source now backs off and redials
        with TcpSender(port=port, mode="listen") as second:
            thread = threading.Thread(target=serve, args=(second, 2.0))
            thread.start()
            (chunk,) = take(source, 1)
            thread.join(timeout=5)
    assert chunk.x.sum() == 12 and chunk.seq == 0


def test_oversized_frame_is_skipped_without_allocation_and_stream_continues() -> None:
    limit = 4096
    with TcpSource(timeout=10, max_frame_bytes=limit) as source:
        big = b"".join(bytes(p) for p in encode_stream(Chunk(x=np.ones((200_000, 1), np.float32))))
        ok = b"".join(bytes(p) for p in encode_stream(Chunk(x=np.ones((5, 1), np.float32),
                                                            seq=1)))
        with socket.create_connection(source.address) as raw:
            raw.sendall(big + ok)
            tracemalloc.start()
            try:
                (chunk,) = take(source, 1)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert chunk.steps == 5 and source.counters.rejected == 1
    assert peak < 100_000 < len(big)


def test_garbage_is_rejected_counted_and_the_source_keeps_running() -> None:
    rng = np.random.default_rng(3)
    with TcpSource(timeout=10, max_frame_bytes=1 << 16) as source:
        with socket.create_connection(source.address) as raw:
            for _ in range(20):  # well-framed garbage: each is read whole and rejected
                junk = rng.bytes(int(rng.integers(1, 200)))
                raw.sendall(struct.pack("<I", len(junk)) + junk)
            raw.sendall(rng.bytes(3))  # then a torn length prefix, and hang up
        with TcpSender(port=source.port) as sender:
            sender.send(np.zeros((4, 2), np.float32))
            (chunk,) = take(source, 1)
    assert chunk.x.shape == (4, 2)
    assert source.counters.rejected == 20


def test_idle_source_times_out_instead_of_hanging() -> None:
    with TcpSource(timeout=0.5) as source:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="no frame"):
            next(source)
    assert time.monotonic() - started < 3


def test_close_from_another_thread_ends_a_blocked_consumer() -> None:
    source = TcpSource()
    result: list = []
    consumer = threading.Thread(target=lambda: result.append(list(source)))
    consumer.start()
    time.sleep(0.3)
    source.close()
    consumer.join(timeout=3)
    assert not consumer.is_alive() and result == [[]]
    with pytest.raises(OSError):  # the listening socket was released
        socket.create_connection(source.address, timeout=1)


def test_binding_beyond_loopback_needs_an_explicit_option(caplog) -> None:
    caplog.set_level("WARNING", logger="sources.wire")
    with pytest.raises(ValueError, match="allow_remote"):
        TcpSource(host="0.0.0.0")
    # 127.0.0.2 is still this machine, but not the default: it needs the opt-in and is logged.
    with pytest.raises(ValueError, match="allow_remote"):
        TcpSource(host="127.0.0.2")
    with TcpSource(host="127.0.0.2", allow_remote=True) as source:
        assert source.port > 0
    assert "binding 127.0.0.2" in caplog.text
