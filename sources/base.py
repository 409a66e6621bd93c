"""The one interface every source shares: an iterator of `Chunk`s with `close()` and counters.

A source is consumed like `river.stream.iter_csv`: iterate it, and close it (or use it as a
context manager) when done. Each source writes its chunks in a generator, `_chunks()`, whose
`finally` releases what it opened, so closing the source or abandoning the loop cleans up.
Everything the generator opens before the first chunk (a bound socket) is released by `_release()`.

Time-major layout, as in `torch.nn.RNN`: `x` is `[T, B, C]` for B parallel streams or `[T, C]`
for one stream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace

import numpy as np


@dataclass
class Chunk:
    """T consecutive steps of one stream (or B streams in lockstep).

    x: float32 [T, B, C] or [T, C].
    y: targets or None: int64 class indices [T, B] / [T] (-1 where there is no target), or
       float32 regression targets [T, B, K] / [T, K].
    mask: bool [T, B] / [T] or None; True where a step has a target.
    boundary: bool [T, B] / [T] or None; True at the step where a new sample begins in that
       stream (the learner resets state there).
    seq: the sender's sequence number; consecutive chunks of one sender differ by 1.
    timestamp: `time.time()` when the chunk was made or received.
    """

    x: np.ndarray
    y: np.ndarray | None = None
    mask: np.ndarray | None = None
    boundary: np.ndarray | None = None
    seq: int = 0
    timestamp: float = field(default_factory=time.time)

    @property
    def steps(self) -> int:
        """T, the number of time steps in this chunk."""
        return int(self.x.shape[0])


@dataclass
class Counters:
    """What a source has seen, for monitoring a stream that never ends.

    chunks/steps: delivered to the consumer. dropped: chunks lost before reaching this source
    (sequence gaps, a full queue, a device overflow). rejected: frames that failed validation
    (malformed, truncated or over the size limit) and were discarded.
    """

    chunks: int = 0
    steps: int = 0
    dropped: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        """A plain copy for logging or JSON."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Source:
    """Base of every source: subclasses write `_chunks()` and, if needed, `_release()`.

    `close()` may be called from another thread while a consumer is blocked in `next()`:
    long-blocking sources poll `self.closing` at least every few hundred milliseconds and stop.
    """

    def __init__(self) -> None:
        self.counters = Counters()
        self._closing = threading.Event()
        self._iterator: Iterator[Chunk] | None = None

    @property
    def closing(self) -> bool:
        """True once `close()` has been called."""
        return self._closing.is_set()

    def _chunks(self) -> Iterator[Chunk]:
        raise NotImplementedError(f"{type(self).__name__} must implement _chunks()")

    def _release(self) -> None:
        """Free what the constructor opened (idempotent); the generator frees its own."""

    def __iter__(self) -> Source:
        return self

    def __next__(self) -> Chunk:
        if self.closing:
            raise StopIteration
        if self._iterator is None:
            self._iterator = self._chunks()
        try:
            chunk = next(self._iterator)
        except StopIteration:
            if self.closing:  # closed from another thread mid-wait: release here, in its thread
                self._release()
            raise
        self.counters.chunks += 1
        self.counters.steps += chunk.steps
        return chunk

    def close(self) -> None:
        """Stop the stream and free its resources; safe to call twice or from another thread."""
        self._closing.set()
        if self._iterator is not None:
            try:
                self._iterator.close()
            except ValueError:
                # Running in another thread, which sees `closing`, stops and releases there,
                # since sockets must not be closed under a thread that is using them.
                return
        self._release()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_steps(chunk: Chunk, steps: int | None) -> Iterator[Chunk]:
    """Cut a chunk into pieces of at most `steps` steps along T (all of it when None).

    Every per-step array is sliced alike; `seq` and `timestamp` are copied, so callers renumber.
    """
    if steps is None or chunk.steps <= steps:
        yield chunk
        return
    if steps < 1:
        raise ValueError(f"chunk_steps must be >= 1, got {steps}")
    for start in range(0, chunk.steps, steps):
        cut = slice(start, start + steps)
        yield replace(
            chunk,
            x=chunk.x[cut],
            y=None if chunk.y is None else chunk.y[cut],
            mask=None if chunk.mask is None else chunk.mask[cut],
            boundary=None if chunk.boundary is None else chunk.boundary[cut],
        )


class Sender:
    """The sending side of a transport: numbers chunks; subclasses define ``send_chunk``."""

    seq: int = 0

    def send(self, x: np.ndarray, y: np.ndarray | None = None, mask: np.ndarray | None = None,
             boundary: np.ndarray | None = None) -> int:
        """Send arrays as the next chunk; return its sequence number."""
        seq = self.seq
        self.send_chunk(Chunk(x=x, y=y, mask=mask, boundary=boundary, seq=seq))
        self.seq += 1
        return seq

    def send_chunk(self, chunk: Chunk) -> None:
        raise NotImplementedError


class Pacer:
    """Holds a stream to `rate` steps per second of wall time (None: as fast as it is read).

    Sleeps until each chunk's scheduled start, so pacing error does not accumulate.
    """

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0 steps per second, got {rate}")
        self.rate = rate
        self._start: float | None = None
        self._steps = 0

    def wait(self, steps: int) -> None:
        """Block until `steps` more steps may be released."""
        if self.rate is None:
            return
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._steps / self.rate
        if due > now:
            time.sleep(due - now)
        self._steps += steps
