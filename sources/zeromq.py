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

A source that dials (SUB by default) watches its socket's events and redials a dropped
connection with backoff: libzmq gives up on a connection it dropped for a protocol error (a frame
over MAXMSGSIZE), which would otherwise leave a subscriber deaf for good.

CURVE (optional, for sensors on other machines): the source is always the CURVE server, whichever
side binds; it admits only the client public keys it is given (a ZAP handler in a thread of its
own context), and every refused handshake is counted in `denied` and logged. Senders are CURVE
clients with their own key pair and the server's public key. Keys are certificate files as
`zmq.auth.create_certificates` writes them, so no secret goes into a URI or a config.

Each source and sender owns its own context and closes it with linger 0, so closing leaves no
ZeroMQ I/O thread behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

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
WATCH_EVERY = 100  # messages between looks at the socket's events while data flows
LOG_EVERY = 5.0  # seconds between warnings about refused peers
REDIAL_BACKOFF = (0.1, 5.0)  # seconds, doubling from the first to the second
HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
WATCHED = HANDSHAKE_FAILED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED


def _keys(path: str | Path, secret: bool) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a certificate file; ValueError naming what is missing."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no CURVE certificate file {path}")
    public, secret_key = zmq.auth.load_certificate(path)
    if secret and not secret_key:
        raise ValueError(f"{path} holds no secret key (give the .key_secret file)")
    return public, secret_key or b""


def _public_keys(path: str | Path) -> set[bytes]:
    """The Z85 public keys in a certificate file or a folder of them."""
    path = Path(path)
    if path.is_dir():
        keys = set(zmq.auth.load_certificates(path))
    else:
        keys = {_keys(path, secret=False)[0]}
    if not keys:
        raise ValueError(f"no CURVE public keys in {path}")
    return keys


class _AllowedKeys:
    """ZAP credentials provider: admits exactly the client public keys it was given."""

    def __init__(self, keys: set[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


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
    curve_secret_key: this source's certificate secret file (`*.key_secret`); with
      curve_clients, only CURVE clients holding one of those public keys get in.
    curve_clients: a client's public certificate file (`*.key`) or a folder of them.
    `denied` counts refused handshakes; `redials` the connections this source re-established.
    """

    def __init__(self, endpoint: str, pattern: str = "pull", topic: str = "",
                 bind: bool | None = None, hwm: int = 1000,
                 max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, timeout: float | None = None,
                 allow_remote: bool = False, curve_secret_key: str | None = None,
                 curve_clients: str | None = None) -> None:
        super().__init__()
        if pattern not in PATTERNS:
            raise ValueError(f"ZeroMQ pattern must be one of {sorted(PATTERNS)}, got {pattern!r}")
        if (curve_secret_key is None) != (curve_clients is None):
            raise ValueError("CURVE needs both curve_secret_key (this source's secret "
                             "certificate) and curve_clients (the senders' public keys)")
        self.pattern = pattern
        self.max_frame_bytes = max_frame_bytes
        self.timeout = timeout
        self.denied = 0
        self.redials = 0
        dial = not (pattern == "pull" if bind is None else bind)
        self._rejections = Rejections(self.counters, f"zmq source {endpoint}")
        self._denial_logged = -LOG_EVERY
        self._gaps = GapCounter()
        self._context = zmq.Context()
        self._socket = self._context.socket(PATTERNS[pattern])
        self._auth: ThreadAuthenticator | None = None
        self._monitor: zmq.Socket | None = None
        self._dialled = endpoint if dial else None
        self._redial_at: float | None = None
        self._backoff = REDIAL_BACKOFF[0]
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.RCVHWM, hwm)
            self._socket.setsockopt(zmq.RCVTIMEO, POLL_MS)
            # Header and each payload frame are checked against the limit by libzmq itself.
            self._socket.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes)
            if pattern == "sub":
                self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
            if curve_secret_key is not None and curve_clients is not None:
                self._serve_curve(curve_secret_key, curve_clients)
            if dial or self._auth is not None:
                self._monitor = self._socket.get_monitor_socket(WATCHED)
            self.endpoint = _attach(self._socket, endpoint, not dial, allow_remote)
        except Exception:
            self._release()
            raise

    def _serve_curve(self, secret_file: str, clients: str) -> None:
        """Make this socket a CURVE server that admits only the given client keys."""
        public, secret = _keys(secret_file, secret=True)
        allowed = _public_keys(clients)
        self._auth = ThreadAuthenticator(self._context)
        self._auth.start()
        self._auth.configure_curve_callback("*", _AllowedKeys(allowed))
        self._socket.curve_secretkey = secret
        self._socket.curve_publickey = public
        self._socket.curve_server = True

    def _release(self) -> None:
        if self._socket.closed:  # released already: close() may run more than once
            return
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
        self._socket.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._context.term()

    def _watch(self) -> None:
        """Read the socket's events: count refused handshakes, and redial a dropped connection
        when this source dialled (with backoff, reset by a successful handshake)."""
        if self._monitor is None:
            return
        now = time.monotonic()
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event & HANDSHAKE_FAILED:
                self.denied += 1
                if now - self._denial_logged >= LOG_EVERY:
                    self._denial_logged = now
                    log.warning("zmq source %s: a peer failed the handshake (%d so far)%s",
                                self.endpoint, self.denied,
                                ": wrong or no CURVE key" if self._auth is not None else "")
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._backoff = REDIAL_BACKOFF[0]
            elif self._dialled is not None and self._redial_at is None:
                self._redial_at = now + self._backoff
                self._backoff = min(2 * self._backoff, REDIAL_BACKOFF[1])
        if self._redial_at is not None and now >= self._redial_at:
            self._redial_at = None
            self.redials += 1
            try:
                self._socket.disconnect(self._dialled)
            except zmq.ZMQError:
                pass  # libzmq already forgot the endpoint
            self._socket.connect(self._dialled)

    def _chunks(self) -> Iterator[Chunk]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        received = 0
        while not self.closing:
            try:
                frames = self._socket.recv_multipart(copy=False)
            except zmq.Again:
                self._watch()
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no message on {self.endpoint} for {self.timeout} s"
                    ) from None
                continue
            except zmq.ContextTerminated:
                return
            received += 1
            if received % WATCH_EVERY == 0:
                self._watch()
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
    """Common sending side: numbering, zero-copy multipart send, context ownership.

    curve_secret_key: this sender's certificate secret file; curve_server_key: the source's
    public certificate file. Both or neither: with them, the sender is a CURVE client.
    """

    socket_type: int = zmq.PUSH
    default_bind = False

    def __init__(self, endpoint: str, bind: bool | None = None, hwm: int = 1000,
                 allow_remote: bool = False, curve_secret_key: str | None = None,
                 curve_server_key: str | None = None) -> None:
        if (curve_secret_key is None) != (curve_server_key is None):
            raise ValueError("CURVE needs both curve_secret_key (this sender's secret "
                             "certificate) and curve_server_key (the source's public one)")
        self.seq = 0
        self._context = zmq.Context()
        self._socket = self._context.socket(self.socket_type)
        try:
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.SNDHWM, hwm)
            if curve_secret_key is not None and curve_server_key is not None:
                public, secret = _keys(curve_secret_key, secret=True)
                self._socket.curve_secretkey = secret
                self._socket.curve_publickey = public
                self._socket.curve_serverkey = _keys(curve_server_key, secret=False)[0]
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
                 hwm: int = 1000, allow_remote: bool = False,
                 curve_secret_key: str | None = None,
                 curve_server_key: str | None = None) -> None:
        self.topic = topic.encode()
        super().__init__(endpoint, bind, hwm, allow_remote, curve_secret_key, curve_server_key)

    def _prefix(self) -> list[bytes]:
        return [self.topic]


class ZmqPusher(_ZmqSender):
    """PUSH side for `ZmqSource(pattern="pull")`; connects by default. Blocks when full."""
