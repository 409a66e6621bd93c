"""ZeroMQ transport: `ZmqSource` (SUB or PULL), `ZmqPublisher` (PUB) and `ZmqPusher` (PUSH).

Messages are multipart `[header, x, (y), (mask), (boundary)]` (wire.py); on PUB/SUB a topic frame
comes first, so subscriptions filter by prefix. Frames are received with `copy=False` and the
arrays are `np.frombuffer` views on them (read-only; copy one to write to it).

Policies, as ZeroMQ sets them: PUSH/PULL blocks the sender when the high-water mark fills, so
nothing is lost; PUB/SUB drops when it fills, and the sequence numbers let this source count the
gap as `dropped`. `max_frame_bytes` is also set as the socket's MAXMSGSIZE, so libzmq refuses any
single frame over the limit before allocating it (and drops that peer's connection, which
senders re-establish by themselves); frames under it whose declared total is over it are
rejected and counted here.

Each source and sender owns its own context and closes it with linger 0, so closing leaves no
ZeroMQ I/O thread behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import zmq

from sources.base import Chunk, Sender, Source
from sources.wire import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameError,
    GapCounter,
    Rejections,
    check_bind_host,
    decode_frames,
    encode_frames,
)

log = logging.getLogger(__name__)

POLL_MS = 200
PATTERNS = {"sub": zmq.SUB, "pull": zmq.PULL}


def _attach(socket: zmq.Socket, endpoint: str, bind: bool, allow_remote: bool) -> str:
    """Bind or connect; check the host before binding. Returns the endpoint actually used."""
    if not endpoint.startswith(("tcp://", "ipc://")):
        raise ValueError(f"ZeroMQ endpoint must start with tcp:// or ipc://, got {endpoint!r}")
    if not bind:
        socket.connect(endpoint)
        return endpoint
    if endpoint.startswith("tcp://"):
        check_bind_host(urlsplit(endpoint).hostname or endpoint[6:].rsplit(":", 1)[0],
                        allow_remote)
        if endpoint.endswith(":0"):
            port = socket.bind_to_random_port(endpoint[:-2])
            return f"{endpoint[:-2]}:{port}"
    socket.bind(endpoint)
    return endpoint


class ZmqSource(Source):
    """Chunks from a ZeroMQ SUB or PULL socket.

    endpoint: "tcp://host:port" (port 0 with bind picks a free one; see `endpoint`) or
      "ipc://path". pattern: "pull" (default) or "sub". topic: subscription prefix for SUB.
    bind: bind instead of connect (default: PULL binds, SUB connects to its publisher).
    hwm: receive high-water mark in messages. timeout: seconds without a message before
      `next()` raises TimeoutError (None: wait forever).
    """

    def __init__(self, endpoint: str, pattern: str = "pull", topic: str = "",
                 bind: bool | None = None, hwm: int = 1000,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, timeout: float | None = None,
                 allow_remote: bool = False) -> None:
        super().__init__()
        if pattern not in PATTERNS:
            raise ValueError(f"ZeroMQ pattern must be one of {sorted(PATTERNS)}, got {pattern!r}")
        self.pattern = pattern
        self.max_frame_bytes = max_frame_bytes
        self.timeout = timeout
        self._rejections = Rejections(self.counters, f"zmq source {endpoint}")
        self._gaps = GapCounter()
        self._context = zmq.Context()
        self._socket = self._context.socket(PATTERNS[pattern])
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.RCVHWM, hwm)
            self._socket.setsockopt(zmq.RCVTIMEO, POLL_MS)
            # Header and each payload frame are checked against the limit by libzmq itself.
            self._socket.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
            if pattern == "sub":
                self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
            self.endpoint = _attach(self._socket, endpoint,
                                    pattern == "pull" if bind is None else bind, allow_remote)
        except Exception:
            self._release()
            raise

    def _release(self) -> None:
        self._socket.close(linger=0)
        self._context.term()

    def _chunks(self) -> Iterator[Chunk]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not self.closing:
            try:
                frames = self._socket.recv_multipart(copy=False)
            except zmq.Again:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no message on {self.endpoint} for {self.timeout} s"
                    ) from None
                continue
            except zmq.ContextTerminated:
                return
            key = b""
            if self.pattern == "sub":
                key, frames = frames[0].bytes, frames[1:]
            try:
                chunk = decode_frames([f.buffer for f in frames], self.max_frame_bytes)
            except FrameError as error:
                self._rejections.reject(error)
                continue
            self.counters.dropped += self._gaps.lost(chunk.seq, key)
            if deadline is not None:
                deadline = time.monotonic() + self.timeout
            chunk.timestamp = time.time()
            yield chunk


class _ZmqSender(Sender):
    """Common sending side: numbering, zero-copy multipart send, context ownership."""

    socket_type: int = zmq.PUSH
    default_bind = False

    def __init__(self, endpoint: str, bind: bool | None = None, hwm: int = 1000,
                 allow_remote: bool = False) -> None:
        self.seq = 0
        self._context = zmq.Context()
        self._socket = self._context.socket(self.socket_type)
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.SNDHWM, hwm)
            self.endpoint = _attach(self._socket, endpoint,
                                    self.default_bind if bind is None else bind, allow_remote)
        except Exception:
            self.close()
            raise

    def _prefix(self) -> list[bytes]:
        return []

    def send_chunk(self, chunk: Chunk) -> None:
        """Send a chunk as it is; large arrays go without a copy."""
        self._socket.send_multipart(self._prefix() + encode_frames(chunk), copy=False)

    def close(self) -> None:
        """Close the socket (unsent messages are discarded) and the context."""
        self._socket.close(linger=0)
        self._context.term()

    def __enter__(self) -> _ZmqSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ZmqPublisher(_ZmqSender):
    """PUB side for `ZmqSource(pattern="sub")`; binds by default. Drops when subscribers lag."""

    socket_type = zmq.PUB
    default_bind = True

    def __init__(self, endpoint: str, topic: str = "", bind: bool | None = None,
                 hwm: int = 1000, allow_remote: bool = False) -> None:
        self.topic = topic.encode()
        super().__init__(endpoint, bind, hwm, allow_remote)

    def _prefix(self) -> list[bytes]:
        return [self.topic]


class ZmqPusher(_ZmqSender):
    """PUSH side for `ZmqSource(pattern="pull")`; connects by default. Blocks when full."""
