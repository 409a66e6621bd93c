"""Microphone: a sounddevice `InputStream` feeding a bounded queue, one chunk per audio block.

The audio callback runs on PortAudio's thread under a deadline, so it only copies the block into
a bounded queue and, if the consumer has fallen behind and the queue is full, drops the block and
counts it (`dropped`); device overruns reported by PortAudio count there too. Blocks carry the
callback's running index as `seq`, so a dropped block shows as a gap. Never blocking the callback
is what keeps the audio device from overrunning.

`dtype="int16"` opens the device as 16-bit integers (exact for 16-bit sources such as ALSA's
`file` plugin); samples are delivered as float32 = int16 / 32768 either way.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import numpy as np

from sources.base import Chunk, Source

POLL = 0.2
SCALE = {"float32": 1.0, "int16": 1.0 / 32768.0}


def _sounddevice():
    """Import sounddevice late, so the rest of the package works without PortAudio."""
    try:
        import sounddevice
    except OSError as error:
        raise OSError(
            f"microphone needs the PortAudio library ({error}); "
            "on Debian: apt-get install libportaudio2"
        ) from error
    return sounddevice


class MicrophoneSource(Source):
    """Audio from an input device as x float32 [blocksize, channels] per chunk.

    device: index or name (substring) as sounddevice takes it; None for the default input.
    queue_blocks: bound of the callback-to-consumer queue; blocks beyond it are dropped.
    timeout: seconds without audio before `next()` raises TimeoutError (None: wait forever).
    """

    def __init__(self, device: str | None = None, rate: int = 16000, blocksize: int = 256,
                 channels: int = 1, dtype: str = "float32", queue_blocks: int = 64,
                 timeout: float | None = None) -> None:
        super().__init__()
        if dtype not in SCALE:
            raise ValueError(f"dtype must be one of {sorted(SCALE)}, got {dtype!r}")
        if queue_blocks < 1 or blocksize < 1:
            raise ValueError(f"queue_blocks and blocksize must be >= 1, got "
                             f"{queue_blocks}, {blocksize}")
        sd = _sounddevice()
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        self.rate, self.dtype, self.timeout = rate, dtype, timeout
        self._queue: queue.Queue[tuple[int, np.ndarray]] = queue.Queue(maxsize=queue_blocks)
        self._blocks = 0
        self._stream = sd.InputStream(device=device, samplerate=rate, blocksize=blocksize,
                                      channels=channels, dtype=dtype, callback=self._callback)

    def _callback(self, indata: np.ndarray, frames: int, time_info: object, status) -> None:
        """On PortAudio's thread: copy, enqueue without waiting, count what is lost."""
        index = self._blocks
        self._blocks += 1
        if status.input_overflow:
            self.counters.dropped += 1
        try:
            self._queue.put_nowait((index, indata.copy()))
        except queue.Full:
            self.counters.dropped += 1

    def _release(self) -> None:
        self._stream.close()

    def _chunks(self) -> Iterator[Chunk]:
        scale = np.float32(SCALE[self.dtype])
        self._stream.start()
        try:
            deadline = None if self.timeout is None else time.monotonic() + self.timeout
            while not self.closing:
                try:
                    index, block = self._queue.get(timeout=POLL)
                except queue.Empty:
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"no audio for {self.timeout} s") from None
                    continue
                if deadline is not None:
                    deadline = time.monotonic() + self.timeout
                boundary = np.zeros(block.shape[0], bool)
                boundary[0] = index == 0
                yield Chunk(x=block.astype(np.float32) * scale, boundary=boundary, seq=index)
        finally:
            self._stream.abort()
