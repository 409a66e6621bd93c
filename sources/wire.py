"""Framing shared by the TCP and ZeroMQ transports: a small binary header, then raw array bytes.

Never pickle: a header declares every array's role, dtype and shape, and the decoder checks the
declared sizes against a limit and against the bytes present *before* it makes any array. The
arrays are then views on the received buffers (`np.frombuffer`), with no copy.

Header, little-endian (`HEADER` then one `PART` per array, each followed by its dims):

    offset  size  field
    0       4     magic b"HYS1"
    4       1     version (1)
    5       1     number of parts P (1..4)
    6       2     reserved, 0
    8       8     seq        int64
    16      8     timestamp  float64 (sender's time.time())
    24      4*P+  per part: role u8 (0 x, 1 y, 2 mask, 3 boundary), dtype u8 (see DTYPES),
                  ndim u8 (1..4), reserved u8, then ndim dims as uint32

The payload is the parts' C-order bytes in header order. TCP sends
`uint32 length | header | payload` (length counts header and payload); ZeroMQ sends a multipart
message `[header, x, (y), (mask), (boundary)]`, one frame per part.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sources.base import Chunk, Counters

log = logging.getLogger(__name__)

MAGIC = b"HYS1"
VERSION = 1
HEADER = struct.Struct("<4sBBHqd")
PART = struct.Struct("<BBBB")
LENGTH = struct.Struct("<I")
ROLES = ("x", "y", "mask", "boundary")
DTYPES: tuple[np.dtype, ...] = tuple(
    np.dtype(name).newbyteorder("<")
    for name in ("float32", "float64", "int64", "int32", "int16", "uint8", "bool", "float16")
)
MAX_NDIM = 4
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024


class FrameError(ValueError):
    """A frame that cannot be decoded: malformed, truncated, or over the size limit."""


@dataclass(frozen=True)
class PartSpec:
    """One declared array: its role name, dtype and shape, as read from a header."""

    role: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def chunk_arrays(chunk: Chunk) -> list[tuple[str, np.ndarray]]:
    """The arrays of a chunk that travel, in wire order, made C-contiguous little-endian."""
    out = []
    for role in ROLES:
        array = getattr(chunk, role)
        if array is None:
            continue
        array = np.asarray(array)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in DTYPES:
            raise TypeError(f"{role} has dtype {array.dtype}, which the wire format does not carry")
        if not 1 <= array.ndim <= MAX_NDIM:
            raise ValueError(f"{role} has {array.ndim} dims; the wire carries 1..{MAX_NDIM}")
        out.append((role, np.ascontiguousarray(array, dtype=dtype)))
    if not out or out[0][0] != "x":
        raise ValueError("a chunk needs x to be sent")
    return out


def encode_header(chunk: Chunk, arrays: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """The header bytes for `arrays` (from `chunk_arrays`)."""
    head = [HEADER.pack(MAGIC, VERSION, len(arrays), 0, chunk.seq, chunk.timestamp)]
    for role, array in arrays:
        head.append(
            PART.pack(ROLES.index(role), DTYPES.index(array.dtype), array.ndim, 0)
            + struct.pack(f"<{array.ndim}I", *array.shape)
        )
    return b"".join(head)


def encode_frames(chunk: Chunk) -> list[bytes | memoryview]:
    """A chunk as ZeroMQ frames: `[header, x, (y), (mask), (boundary)]`, arrays not copied."""
    arrays = chunk_arrays(chunk)
    return [encode_header(chunk, arrays)] + [
        memoryview(a.reshape(-1).view(np.uint8)) for _, a in arrays
    ]


def encode_stream(chunk: Chunk) -> list[bytes | memoryview]:
    """A chunk as TCP pieces: `[uint32 length, header, payload...]`, to send with sendmsg."""
    frames = encode_frames(chunk)
    length = sum(len(f) for f in frames)
    if length > 0xFFFFFFFF:
        raise ValueError(f"frame of {length} bytes does not fit the 4-byte length prefix")
    return [LENGTH.pack(length), *frames]


def decode_header(header: bytes | memoryview, max_bytes: int) -> tuple[int, float, list[PartSpec]]:
    """Read and check a header; return (seq, timestamp, parts) or raise FrameError.

    Checks happen before any array exists: magic and version, known roles and dtypes, x present
    and first, no role twice, and the declared payload within `max_bytes`.
    """
    header = memoryview(header)
    if len(header) < HEADER.size:
        raise FrameError(f"header is {len(header)} bytes, shorter than the {HEADER.size} fixed")
    magic, version, nparts, _, seq, timestamp = HEADER.unpack_from(header)
    if magic != MAGIC:
        raise FrameError(f"bad magic {bytes(magic)!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise FrameError(f"wire version {version}, this reader speaks {VERSION}")
    if not 1 <= nparts <= len(ROLES):
        raise FrameError(f"{nparts} parts declared, expected 1..{len(ROLES)}")
    offset, parts, total = HEADER.size, [], 0
    for _ in range(nparts):
        if len(header) < offset + PART.size:
            raise FrameError("header truncated inside a part description")
        role, dtype, ndim, _ = PART.unpack_from(header, offset)
        offset += PART.size
        if role >= len(ROLES) or dtype >= len(DTYPES) or not 1 <= ndim <= MAX_NDIM:
            raise FrameError(f"bad part description: role {role}, dtype {dtype}, ndim {ndim}")
        if len(header) < offset + 4 * ndim:
            raise FrameError("header truncated inside a shape")
        shape = struct.unpack_from(f"<{ndim}I", header, offset)
        offset += 4 * ndim
        spec = PartSpec(ROLES[role], DTYPES[dtype], tuple(shape))
        if any(p.role == spec.role for p in parts):
            raise FrameError(f"part {spec.role} declared twice")
        total += spec.nbytes
        if total > max_bytes:
            raise FrameError(f"frame declares over {total} payload bytes, limit is {max_bytes}")
        parts.append(spec)
    if offset != len(header):
        raise FrameError(f"header has {len(header) - offset} trailing bytes")
    if parts[0].role != "x":
        raise FrameError(f"first part is {parts[0].role}, expected x")
    return int(seq), float(timestamp), parts


def header_size(buffer: bytes | memoryview) -> int:
    """The length of the header at the start of `buffer`, read from its part count and ndims."""
    view = memoryview(buffer)
    if len(view) < HEADER.size:
        raise FrameError(f"frame of {len(view)} bytes is shorter than a header")
    nparts = view[5]
    offset = HEADER.size
    for _ in range(min(nparts, len(ROLES))):
        if len(view) < offset + PART.size:
            raise FrameError("frame truncated inside the header")
        offset += PART.size + 4 * view[offset + 2]
    return offset


def build_chunk(seq: int, timestamp: float, parts: Sequence[PartSpec],
                buffers: Sequence[bytes | memoryview]) -> Chunk:
    """Views of `buffers` as the declared arrays, after checking each has exactly its bytes."""
    if len(buffers) != len(parts):
        raise FrameError(f"{len(buffers)} payload frames for {len(parts)} declared parts")
    arrays = {}
    for spec, buffer in zip(parts, buffers, strict=True):
        if len(buffer) != spec.nbytes:
            raise FrameError(
                f"{spec.role} declares {spec.shape} {spec.dtype} = {spec.nbytes} bytes, "
                f"got {len(buffer)}"
            )
        arrays[spec.role] = np.frombuffer(buffer, dtype=spec.dtype).reshape(spec.shape)
    chunk = Chunk(seq=seq, timestamp=timestamp, **arrays)
    check_chunk(chunk)
    return chunk


def decode_frames(frames: Sequence[bytes | memoryview], max_bytes: int) -> Chunk:
    """Decode ZeroMQ frames `[header, x, ...]` into a Chunk of views; raise FrameError."""
    if not frames:
        raise FrameError("empty message")
    seq, timestamp, parts = decode_header(frames[0], max_bytes)
    return build_chunk(seq, timestamp, parts, frames[1:])


def decode_stream_frame(frame: bytes | memoryview, max_bytes: int) -> Chunk:
    """Decode one TCP frame (the bytes after the length prefix); raise FrameError."""
    view = memoryview(frame)
    split = header_size(view)
    seq, timestamp, parts = decode_header(view[:split], max_bytes)
    buffers, offset = [], split
    for spec in parts:
        buffers.append(view[offset:offset + spec.nbytes])
        offset += spec.nbytes
    if offset != len(view):
        raise FrameError(f"frame is {len(view)} bytes, header and parts account for {offset}")
    return build_chunk(seq, timestamp, parts, buffers)


def check_chunk(chunk: Chunk) -> None:
    """Raise FrameError unless x is float32 [T, C] / [T, B, C] and the rest line up with it."""
    x = chunk.x
    if x.dtype != np.float32 or x.ndim not in (2, 3):
        raise FrameError(f"x must be float32 [T, C] or [T, B, C], got {x.dtype} {x.shape}")
    lead = x.shape[:-1]
    for role in ("mask", "boundary"):
        array = getattr(chunk, role)
        if array is not None and (array.dtype != np.bool_ or array.shape != lead):
            raise FrameError(f"{role} must be bool {lead}, got {array.dtype} {array.shape}")
    y = chunk.y
    if y is None:
        return
    if y.dtype == np.int64 and y.shape == lead:
        return
    if y.dtype == np.float32 and y.ndim == x.ndim and y.shape[:-1] == lead:
        return
    raise FrameError(
        f"y must be int64 {lead} or float32 {lead + ('K',)}, got {y.dtype} {y.shape}"
    )


class Rejections:
    """Counts and logs rejected frames without flooding the log on a hostile stream."""

    def __init__(self, counters: Counters, name: str, every: float = 5.0) -> None:
        self.counters = counters
        self.name = name
        self.every = every
        self._last = 0.0

    def reject(self, error: Exception) -> None:
        """Count one rejected frame; log it unless one was logged in the last `every` seconds."""
        self.counters.rejected += 1
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            log.warning("%s rejected a frame (%d so far): %s", self.name,
                        self.counters.rejected, error)


class GapCounter:
    """Counts chunks lost between a sender and this source from jumps in sequence numbers.

    A sequence that goes back (the sender restarted) starts counting afresh, so it is never
    counted as loss. One counter per sender (per topic on PUB/SUB).
    """

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def lost(self, seq: int, key: bytes = b"") -> int:
        """How many chunks were skipped before `seq` from sender `key`."""
        last = self._last.get(key)
        self._last[key] = seq
        if last is None or seq <= last:
            return 0
        return seq - last - 1


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_bind_host(host: str, allow_remote: bool) -> None:
    """Refuse to listen beyond this machine unless asked to, and log when asked to.

    A learner's socket takes frames from anyone who can reach it, so it stays on loopback by
    default; `allow_remote=True` is the explicit opt-in.
    """
    if host in LOOPBACK:
        return
    if not allow_remote:
        raise ValueError(
            f"refusing to bind {host!r}: sockets bind to 127.0.0.1 unless allow_remote=True"
        )
    log.warning("binding %s: reachable from other machines (allow_remote=True)", host)
