"""File sources: arrays (.npy/.npz), audio (.wav), tables (.csv) and folders of labelled wavs.

Any of them can be played once, looped (`loop=True`), and paced to `pace` steps per second of
wall time, so a recorded stream can stand in for a live one. `chunk_steps` cuts the stream into
chunks of at most that many steps. Arrays are memory-mapped, so large files start at once.

Audio is read with the standard library's `wave` (PCM, 8/16/32-bit) and scaled to [-1, 1). A
file at another rate is resampled on request (`rate=`) with a polyphase windowed-sinc filter
(Kaiser, beta 5, 10 zero crossings per side: the design of `scipy.signal.resample_poly`), written
here in numpy so the package needs no scipy.
"""

from __future__ import annotations

import csv
import math
import random
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sources.base import Chunk, Pacer, Source, split_steps

SAMPLE_SCALE = {1: 128.0, 2: 32768.0, 4: 2147483648.0}
RESAMPLE_BLOCK = 65536


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Samples float32 [N, channels] in [-1, 1), and the sample rate, of a PCM wav file."""
    with wave.open(str(path), "rb") as reader:
        width, channels, rate = reader.getsampwidth(), reader.getnchannels(), reader.getframerate()
        raw = reader.readframes(reader.getnframes())
    if width not in SAMPLE_SCALE:
        raise ValueError(f"{path}: {8 * width}-bit samples; only 8, 16 and 32-bit PCM are read")
    if width == 1:  # 8-bit wav is unsigned
        ints = np.frombuffer(raw, np.uint8).astype(np.int16) - 128
    else:
        ints = np.frombuffer(raw, f"<i{width}")
    return (ints.astype(np.float32) / np.float32(SAMPLE_SCALE[width])).reshape(-1, channels), rate


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample x [N, C] from rate_in to rate_out Hz; returns float32 [ceil(N*out/in), C].

    Polyphase: output n is the dot product of one phase of the low-pass filter with the input
    samples behind it, so the zero-stuffed signal is never built. Computed in blocks of outputs
    to bound memory for long files.
    """
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    if up == down:
        return x.astype(np.float32, copy=False)
    wide = max(up, down)
    half = 10 * wide
    t = np.arange(-half, half + 1)
    h = np.sinc(t / wide) * np.kaiser(2 * half + 1, 5.0)
    h *= up / h.sum()
    taps = -(-len(h) // up)
    phases = np.zeros((up, taps))
    for p in range(up):
        row = h[p::up]
        phases[p, : len(row)] = row
    n_in = x.shape[0]
    n_out = -(-n_in * up // down)
    padded = np.concatenate([np.zeros((taps, x.shape[1]), x.dtype), x,
                             np.zeros((taps, x.shape[1]), x.dtype)])
    out = np.empty((n_out, x.shape[1]), np.float32)
    lags = np.arange(taps)
    for start in range(0, n_out, RESAMPLE_BLOCK):
        k = np.arange(start, min(start + RESAMPLE_BLOCK, n_out)) * down + half
        base, phase = k // up, k % up
        window = padded[base[:, None] - lags[None, :] + taps]
        out[start : start + len(k)] = np.einsum("nlc,nl->nc", window, phases[phase])
    return out


class ArraySource(Source):
    """Chunks of in-memory or memory-mapped arrays, time along axis 0.

    x: [T, C] or [T, B, C] (1-D is taken as one channel); y, mask, boundary: per-step arrays
    aligned with x. Without `boundary`, step 0 of each pass is marked as a new sample.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None,
                 mask: np.ndarray | None = None, boundary: np.ndarray | None = None,
                 chunk_steps: int = 256, loop: bool = False, pace: float | None = None) -> None:
        super().__init__()
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim not in (2, 3):
            raise ValueError(f"x must be [T, C] or [T, B, C], got shape {x.shape}")
        for name, array in (("y", y), ("mask", mask), ("boundary", boundary)):
            if array is not None and array.shape[: x.ndim - 1] != x.shape[:-1]:
                raise ValueError(f"{name} has shape {array.shape}; x {x.shape} needs "
                                 f"{x.shape[:-1]} leading")
        if chunk_steps < 1:
            raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps}")
        self.x, self.y, self.mask, self.boundary = x, y, mask, boundary
        self.chunk_steps, self.loop = chunk_steps, loop
        self._pacer = Pacer(pace)

    def _chunks(self) -> Iterator[Chunk]:
        seq = 0
        steps = self.x.shape[0]
        if steps == 0:
            return
        while True:
            for start in range(0, steps, self.chunk_steps):
                cut = slice(start, start + self.chunk_steps)
                x = np.asarray(self.x[cut], dtype=np.float32)
                boundary = self.boundary
                if boundary is None:
                    boundary = np.zeros(x.shape[:-1], bool)
                    boundary[0] = start == 0
                else:
                    boundary = np.asarray(boundary[cut], dtype=bool)
                y = None if self.y is None else np.asarray(self.y[cut])
                if y is not None and y.dtype.kind in "iub":
                    y = y.astype(np.int64)
                elif y is not None:
                    y = y.astype(np.float32)
                mask = None if self.mask is None else np.asarray(self.mask[cut], dtype=bool)
                if mask is None and y is not None and y.dtype == np.int64:
                    mask = y >= 0
                self._pacer.wait(x.shape[0])
                yield Chunk(x=x, y=y, mask=mask, boundary=boundary, seq=seq)
                seq += 1
            if not self.loop or self.closing:
                return


def open_npy(path: str | Path, **options) -> ArraySource:
    """A .npy file as x, memory-mapped."""
    return ArraySource(np.load(path, mmap_mode="r"), **options)


def open_npz(path: str | Path, **options) -> ArraySource:
    """A .npz file with key x and optionally y, mask, boundary."""
    with np.load(path) as archive:
        unknown = set(archive.files) - {"x", "y", "mask", "boundary"}
        if "x" not in archive.files:
            raise ValueError(f"{path} has keys {archive.files}; it needs 'x'")
        if unknown:
            raise ValueError(f"{path} has unknown keys {sorted(unknown)}; "
                             "expected x, y, mask, boundary")
        arrays = {name: archive[name] for name in archive.files}
    return ArraySource(**arrays, **options)


def open_wav(path: str | Path, rate: int | None = None, **options) -> ArraySource:
    """One wav file as x [N, channels] float32, resampled to `rate` Hz if given."""
    samples, file_rate = read_wav(path)
    if rate is not None:
        samples = resample(samples, file_rate, rate)
    return ArraySource(samples, **options)


class CsvSource(Source):
    """Rows of a numeric CSV file as steps, read lazily (the file may be larger than memory).

    A first row that does not parse as numbers is taken as the header. `target` names (or, as a
    number, indexes) an integer class column that becomes y; the other columns are x.
    """

    def __init__(self, path: str | Path, target: str | None = None, delimiter: str = ",",
                 chunk_steps: int = 256, loop: bool = False, pace: float | None = None) -> None:
        super().__init__()
        if chunk_steps < 1:
            raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps}")
        self.path, self.target, self.delimiter = Path(path), target, delimiter
        self.chunk_steps, self.loop = chunk_steps, loop
        self._pacer = Pacer(pace)

    def _target_index(self, header: list[str] | None, width: int) -> int | None:
        if self.target is None:
            return None
        if header is not None and self.target in header:
            return header.index(self.target)
        if self.target.lstrip("-").isdigit() and -width <= int(self.target) < width:
            return int(self.target) % width
        raise ValueError(f"{self.path}: no target column {self.target!r} in {header or width}")

    def _chunks(self) -> Iterator[Chunk]:
        seq = 0
        while True:
            with self.path.open(newline="") as handle:
                rows = csv.reader(handle, delimiter=self.delimiter)
                first = next(rows, None)
                if first is None:
                    return
                try:
                    pending = [[float(v) for v in first]]
                    header = None
                except ValueError:
                    pending, header = [], [name.strip() for name in first]
                width = len(header) if header else len(pending[0])
                column = self._target_index(header, width)
                start = True
                for line_no, row in enumerate(rows, start=2):
                    if len(row) != width:
                        raise ValueError(f"{self.path}:{line_no} has {len(row)} fields, "
                                         f"expected {width}")
                    pending.append([float(v) for v in row])
                    if len(pending) == self.chunk_steps:
                        yield self._chunk(pending, column, start, seq)
                        pending, start, seq = [], False, seq + 1
                if pending:
                    yield self._chunk(pending, column, start, seq)
                    seq += 1
            if not self.loop or self.closing:
                return

    def _chunk(self, rows: list[list[float]], column: int | None, start: bool, seq: int) -> Chunk:
        table = np.asarray(rows)
        boundary = np.zeros(len(rows), bool)
        boundary[0] = start
        self._pacer.wait(len(rows))
        if column is None:
            return Chunk(x=table.astype(np.float32), boundary=boundary, seq=seq)
        y = table[:, column].astype(np.int64)
        x = np.delete(table, column, axis=1).astype(np.float32)
        return Chunk(x=x, y=y, mask=y >= 0, boundary=boundary, seq=seq)


class WavFolderSource(Source):
    """A folder of labelled recordings, `{label}_{anything}.wav`, as a stream of samples.

    Each recording is one sample: x [N, channels] float32, boundary True at its first step, and
    y its class on every step (`target="all"`) or only on the last (`target="last"`, -1 before).
    Integer labels are used as they are; otherwise the sorted label names are numbered (see
    `labels`). Recordings are played in a seeded shuffled order (unsorted, so classes mix), one
    chunk each unless `chunk_steps` cuts them; `loop` reshuffles for every pass.
    """

    def __init__(self, folder: str | Path, rate: int | None = None, target: str = "all",
                 pattern: str = "*.wav", shuffle: bool = True, seed: int = 0,
                 chunk_steps: int | None = None, loop: bool = False,
                 pace: float | None = None) -> None:
        super().__init__()
        if target not in ("all", "last"):
            raise ValueError(f"target must be 'all' or 'last', got {target!r}")
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"no folder {self.folder}")
        self.files = sorted(self.folder.glob(pattern))
        if not self.files:
            raise FileNotFoundError(f"no files matching {pattern!r} in {self.folder}")
        names = [f.name.split("_", 1)[0] for f in self.files]
        if all(n.isdigit() for n in names):
            self.labels = sorted(set(names), key=int)
            self._label = {n: int(n) for n in self.labels}
        else:
            self.labels = sorted(set(names))
            self._label = {n: i for i, n in enumerate(self.labels)}
        self.rate, self.target = rate, target
        self.shuffle, self.chunk_steps, self.loop = shuffle, chunk_steps, loop
        self._random = random.Random(seed)
        self._pacer = Pacer(pace)

    def label_of(self, path: Path) -> int:
        """The class index of one recording, from its name."""
        return self._label[path.name.split("_", 1)[0]]

    def sample(self, path: Path) -> Chunk:
        """One recording as a whole-sample chunk (seq 0)."""
        samples, file_rate = read_wav(path)
        if self.rate is not None:
            samples = resample(samples, file_rate, self.rate)
        steps = samples.shape[0]
        y = np.full(steps, self.label_of(path), np.int64)
        if self.target == "last":
            y[:-1] = -1
        boundary = np.zeros(steps, bool)
        boundary[:1] = True
        return Chunk(x=samples, y=y, mask=y >= 0, boundary=boundary)

    def _chunks(self) -> Iterator[Chunk]:
        seq = 0
        while True:
            order = list(self.files)
            if self.shuffle:
                self._random.shuffle(order)
            for path in order:
                for piece in split_steps(self.sample(path), self.chunk_steps):
                    self._pacer.wait(piece.steps)
                    piece.seq, seq = seq, seq + 1
                    yield piece
            if not self.loop or self.closing:
                return


def open_path(path: str | Path, **options) -> Source:
    """Open a file or folder by its suffix: .npy, .npz, .csv, .wav, or a folder of wavs."""
    path = Path(path)
    if path.is_dir():
        return WavFolderSource(path, **options)
    openers = {".npy": open_npy, ".npz": open_npz, ".wav": open_wav, ".csv": CsvSource}
    opener = openers.get(path.suffix.lower())
    if opener is None:
        raise ValueError(f"cannot open {path}: suffix {path.suffix!r} is not one of "
                         f"{sorted(openers)} and it is not a folder")
    if not path.exists():
        raise FileNotFoundError(f"no file {path}")
    return opener(path, **options)
