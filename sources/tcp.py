"""TCP transport: `TcpSource` receives length-prefixed frames (see wire.py), `TcpSender` sends them.

Either end may listen or connect. A listening source takes one sender at a time and accepts the
next when it leaves; a connecting source retries with exponential backoff until the sender is
back. Each frame is read into one buffer sized from its length prefix, after that length has been
checked against `max_frame_bytes`; over-limit frames are read off the socket in small pieces and
discarded, so the stream stays in step and nothing large is allocated. Sockets poll every
`POLL` seconds so `close()` from another thread takes effect promptly.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

from sources.base import Chunk, Sender, Source
from sources.wire import (
    DEFAULT_MAX_FRAME_BYTES,
    LENGTH,
    FrameError,
    GapCounter,
    Rejections,
    check_bind_host,
    decode_stream_frame,
    encode_stream,
)

log = logging.getLogger(__name__)

POLL = 0.2
DISCARD_PIECE = 64 * 1024


class _PeerGone(Exception):
    """The other end closed or reset the connection."""


def _listen(host: str, port: int, allow_remote: bool) -> socket.socket:
    check_bind_host(host, allow_remote)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(1)
    server.settimeout(POLL)
    return server


class TcpSource(Source):
    """Chunks from one TCP peer at a time.

    mode: "listen" (default; bind host:port, port 0 picks a free one, see `address`) or
      "connect" (dial host:port, reconnecting with backoff from `backoff` up to `backoff_max`).
    timeout: seconds without a frame before `next()` raises TimeoutError (None: wait forever).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, mode: str = "listen",
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, timeout: float | None = None,
                 backoff: float = 0.05, backoff_max: float = 2.0,
                 allow_remote: bool = False) -> None:
        super().__init__()
        if mode not in ("listen", "connect"):
            raise ValueError(f"TCP mode must be 'listen' or 'connect', got {mode!r}")
        self.host, self.port, self.mode = host, port, mode
        self.max_frame_bytes = max_frame_bytes
        self.timeout = timeout
        self.backoff, self.backoff_max = backoff, backoff_max
        self._rejections = Rejections(self.counters, f"tcp source {host}:{port}")
        self._gaps = GapCounter()
        self._deadline: float | None = None
        self._server = _listen(host, port, allow_remote) if mode == "listen" else None
        if self._server is not None:
            self.port = self._server.getsockname()[1]

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) this source listens on or dials."""
        return self.host, self.port

    def _release(self) -> None:
        if self._server is not None:
            self._server.close()

    def _chunks(self) -> Iterator[Chunk]:
        self._deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not self.closing:
            conn = self._accept() if self.mode == "listen" else self._dial()
            if conn is None:
                return
            try:
                yield from self._frames(conn)
            except _PeerGone:
                log.info("tcp peer %s:%d went away; waiting for it", self.host, self.port)
            finally:
                conn.close()

    def _check_deadline(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise TimeoutError(f"no frame on tcp {self.host}:{self.port} for {self.timeout} s")

    def _accept(self) -> socket.socket | None:
        while not self.closing:
            self._check_deadline()
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.closing:  # the listening socket was closed under us by close()
                    return None
                raise
            conn.settimeout(POLL)
            return conn
        return None

    def _dial(self) -> socket.socket | None:
        delay = self.backoff
        while not self.closing:
            self._check_deadline()
            try:
                conn = socket.create_connection((self.host, self.port), timeout=POLL)
            except OSError:
                self._closing.wait(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            conn.settimeout(POLL)
            return conn
        return None

    def _read_into(self, conn: socket.socket, view: memoryview) -> bool:
        """Fill `view` from the peer; False if closing. Raises _PeerGone at end of stream."""
        got = 0
        while got < len(view):
            if self.closing:
                return False
            try:
                n = conn.recv_into(view[got:])
            except TimeoutError:
                self._check_deadline()
                continue
            except ConnectionError as error:
                raise _PeerGone from error
            if n == 0:
                raise _PeerGone
            got += n
        return True

    def _frames(self, conn: socket.socket) -> Iterator[Chunk]:
        prefix = bytearray(LENGTH.size)
        while True:
            if not self._read_into(conn, memoryview(prefix)):
                return
            (length,) = LENGTH.unpack(prefix)
            if length > self.max_frame_bytes:
                self._rejections.reject(
                    FrameError(f"frame of {length} bytes over the limit {self.max_frame_bytes}")
                )
                if not self._discard(conn, length):
                    return
                continue
            buffer = bytearray(length)
            try:
                complete = self._read_into(conn, memoryview(buffer))
            except _PeerGone:
                self._rejections.reject(FrameError("frame truncated: peer left mid-frame"))
                raise
            if not complete:
                return
            try:
                chunk = decode_stream_frame(buffer, self.max_frame_bytes)
            except FrameError as error:
                self._rejections.reject(error)
                continue
            self.counters.dropped += self._gaps.lost(chunk.seq)
            if self.timeout is not None:
                self._deadline = time.monotonic() + self.timeout
            chunk.timestamp = time.time()
            yield chunk

    def _discard(self, conn: socket.socket, length: int) -> bool:
        piece = memoryview(bytearray(min(length, DISCARD_PIECE)))
        while length > 0:
            n = min(length, len(piece))
            if not self._read_into(conn, piece[:n]):
                return False
            length -= n
        return True


class TcpSender(Sender):
    """Sends chunks to a TcpSource, numbering them; reconnects with backoff if the link drops.

    mode: "connect" (default; dial a listening source) or "listen" (bind and wait for a
    connecting source). A chunk that fails to send is retried once on a fresh connection.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, mode: str = "connect",
                 connect_timeout: float = 10.0, backoff: float = 0.05, backoff_max: float = 2.0,
                 allow_remote: bool = False) -> None:
        if mode not in ("listen", "connect"):
            raise ValueError(f"TCP mode must be 'listen' or 'connect', got {mode!r}")
        self.host, self.port, self.mode = host, port, mode
        self.connect_timeout = connect_timeout
        self.backoff, self.backoff_max = backoff, backoff_max
        self.seq = 0
        self._conn: socket.socket | None = None
        self._server = _listen(host, port, allow_remote) if mode == "listen" else None
        if self._server is not None:
            self.port = self._server.getsockname()[1]

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + self.connect_timeout
        delay = self.backoff
        while True:
            try:
                if self._server is not None:
                    conn, _ = self._server.accept()
                else:
                    conn = socket.create_connection((self.host, self.port), timeout=POLL)
                conn.settimeout(self.connect_timeout)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return conn
            except OSError as error:
                if time.monotonic() > deadline:
                    raise ConnectionError(
                        f"no tcp peer at {self.host}:{self.port} within {self.connect_timeout} s"
                    ) from error
                if self._server is None:
                    time.sleep(delay)
                    delay = min(delay * 2, self.backoff_max)

    def send_chunk(self, chunk: Chunk) -> None:
        """Send a chunk as it is (its own seq and timestamp)."""
        pieces = encode_stream(chunk)
        for attempt in range(2):
            if self._conn is None:
                self._conn = self._connect()
            try:
                _send_pieces(self._conn, pieces)
                return
            except OSError:
                self._conn.close()
                self._conn = None
                if attempt == 1:
                    raise

    def close(self) -> None:
        """Close the connection (and the listening socket)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._server is not None:
            self._server.close()

    def __enter__(self) -> TcpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _send_pieces(conn: socket.socket, pieces: list) -> None:
    """One sendmsg for the whole frame; finish with sendall if the kernel took only part."""
    sent = conn.sendmsg(pieces)
    for piece in pieces:
        size = len(piece)
        if sent >= size:
            sent -= size
            continue
        conn.sendall(memoryview(piece)[sent:])
        sent = 0
