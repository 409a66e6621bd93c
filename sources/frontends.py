"""Front ends: streaming transforms between a source and the learner.

Each transform maps a Chunk to a Chunk and keeps whatever it needs from earlier chunks (audio
not yet framed, running statistics, encoder levels, a random stream), so that cutting a stream
into chunks differently never changes the output: transform(a) + transform(b) == transform(a + b).
None of them looks ahead. Compose them with `Pipeline`, or wrap a source with `transformed`.

    LogMel       audio [T, C] -> log-mel frames [T', C * n_mels] (torch), one frame per `hop`
    RunningNorm  per-channel standardisation by the running mean and variance so far
    DeltaEncoder threshold-crossing (delta modulation) spikes, up and down channels
    RateEncoder  Bernoulli spikes with probability clip(gain * x, 0, 1), seeded
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch

from sources.base import Chunk, Source

Transform = Callable[[Chunk], Chunk]


def mel_filterbank(rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> torch.Tensor:
    """Triangular HTK-mel filters, [n_fft // 2 + 1, n_mels], each peaking at 1."""
    fmax = rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= rate/2, got {fmin}, {fmax}, rate {rate}")

    def mel(f: torch.Tensor) -> torch.Tensor:
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    edges_mel = torch.linspace(mel(torch.tensor(fmin)), mel(torch.tensor(fmax)), n_mels + 2,
                               dtype=torch.float64)
    edges = 700.0 * (10 ** (edges_mel / 2595.0) - 1.0)
    freqs = torch.linspace(0, rate / 2, n_fft // 2 + 1, dtype=torch.float64)[:, None]
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)


class LogMel:
    """Audio to log-mel filterbank frames, streaming and causal.

    Frame i covers input steps [i*hop, i*hop + n_fft) after the last reset and is emitted with
    the chunk that completes it. x [T, C] gives [T', C * n_mels]; x [T, B, C] gives
    [T', B, C * n_mels]. A boundary restarts framing at that step (in a batch it must fall on
    the same step in every stream); a frame takes y and mask from its last step and is a
    boundary if it is the first after a restart.
    """

    def __init__(self, rate: int = 16000, n_fft: int = 400, hop: int = 160, n_mels: int = 40,
                 fmin: float = 0.0, fmax: float | None = None, eps: float = 1e-6) -> None:
        if not 0 < hop <= n_fft:
            raise ValueError(f"need 0 < hop <= n_fft, got hop {hop}, n_fft {n_fft}")
        self.n_fft, self.hop, self.eps = n_fft, hop, eps
        self.filters = mel_filterbank(rate, n_fft, n_mels, fmin, fmax)
        self.window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        self._pending: Chunk | None = None
        self._fresh = True

    def reset(self) -> None:
        """Forget buffered audio; the next step starts a new frame sequence."""
        self._pending, self._fresh = None, True

    def __call__(self, chunk: Chunk) -> Chunk:
        starts = [0]
        if chunk.boundary is not None:
            flags = chunk.boundary if chunk.boundary.ndim == 1 else chunk.boundary.any(axis=1)
            if chunk.boundary.ndim == 2 and not np.array_equal(flags, chunk.boundary.all(axis=1)):
                raise ValueError("LogMel: a batch's boundaries must fall on the same step in "
                                 "every stream")
            starts = sorted({0, *np.flatnonzero(flags).tolist()})
        pieces = []
        for begin, end in zip(starts, starts[1:] + [chunk.steps], strict=True):
            piece = _slice(chunk, slice(begin, end))
            if chunk.boundary is not None and piece.boundary[0].any():
                self.reset()
            pieces.append(self._frames(piece))
        return _concat(pieces, chunk)

    def _frames(self, chunk: Chunk) -> Chunk:
        buffered = chunk if self._pending is None else _concat([self._pending, chunk], chunk)
        count = 0 if buffered.steps < self.n_fft else (buffered.steps - self.n_fft) // self.hop + 1
        self._pending = _slice(buffered, slice(count * self.hop, None))
        lead = buffered.x.shape[1:-1]
        channels = buffered.x.shape[-1]
        if count == 0:
            x = np.zeros((0, *lead, channels * self.filters.shape[1]), np.float32)
            return replace(_slice(buffered, slice(0, 0)), x=x)
        audio = torch.from_numpy(np.ascontiguousarray(buffered.x, dtype=np.float64))
        frames = audio.unfold(0, self.n_fft, self.hop)[:count]  # [F, *lead, C, n_fft]
        power = torch.fft.rfft(frames * self.window).abs() ** 2
        mels = torch.log(power.to(torch.float32) @ self.filters + self.eps)
        x = mels.reshape(count, *lead, channels * self.filters.shape[1]).numpy()
        last = np.arange(count) * self.hop + self.n_fft - 1
        boundary = np.zeros((count, *lead), bool)
        boundary[0] = self._fresh
        self._fresh = False
        return Chunk(x=x, y=None if buffered.y is None else buffered.y[last],
                     mask=None if buffered.mask is None else buffered.mask[last],
                     boundary=boundary if chunk.boundary is not None else None,
                     seq=chunk.seq, timestamp=chunk.timestamp)


class RunningNorm:
    """Standardise each channel by the mean and variance of every step so far, this one included.

    Statistics pool the batch streams; float64 sums keep long streams accurate.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        self.eps = eps
        self._count = 0
        self._sum: np.ndarray | None = None
        self._squares: np.ndarray | None = None

    def __call__(self, chunk: Chunk) -> Chunk:
        x = chunk.x.astype(np.float64)
        per_step = x.reshape(x.shape[0], int(np.prod(x.shape[1:-1])), x.shape[-1])
        if self._sum is None:
            self._sum = np.zeros(x.shape[-1])
            self._squares = np.zeros(x.shape[-1])
        width = per_step.shape[1]
        counts = self._count + width * np.arange(1, x.shape[0] + 1)[:, None]
        sums = self._sum + np.cumsum(per_step.sum(axis=1), axis=0)
        squares = self._squares + np.cumsum((per_step**2).sum(axis=1), axis=0)
        mean = sums / counts
        var = np.maximum(squares / counts - mean**2, 0.0)
        out = (per_step - mean[:, None]) / np.sqrt(var[:, None] + self.eps)
        if x.shape[0]:
            self._count, self._sum, self._squares = int(counts[-1, 0]), sums[-1], squares[-1]
        return replace(chunk, x=out.reshape(x.shape).astype(np.float32))


class DeltaEncoder:
    """Threshold-crossing spikes: an up (down) spike when x rises (falls) `threshold` past the
    level of the last spike, which then moves by `threshold`.

    x [T, ..., C] -> [T, ..., 2C] in {0, 1}: channels [up of each C, then down of each C]. At
    most one spike per channel and step, so a jump of several thresholds spreads over the next
    steps (the level tracks the signal at a bounded slew). The level starts at the first sample.
    """

    def __init__(self, threshold: float = 0.1) -> None:
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold}")
        self.threshold = threshold
        self._level: np.ndarray | None = None

    def __call__(self, chunk: Chunk) -> Chunk:
        x = chunk.x.astype(np.float64)
        if self._level is None and x.shape[0]:
            self._level = x[0].copy()
        up = np.zeros(x.shape, np.float32)
        down = np.zeros(x.shape, np.float32)
        for t in range(x.shape[0]):
            rise = x[t] - self._level >= self.threshold
            fall = self._level - x[t] >= self.threshold
            up[t], down[t] = rise, fall
            self._level += self.threshold * (rise.astype(np.float64) - fall)
        return replace(chunk, x=np.concatenate([up, down], axis=-1))


class RateEncoder:
    """Bernoulli rate coding: spike with probability clip(gain * x, 0, 1) at each step.

    One seeded generator draws in time order, so the spikes do not depend on the chunking.
    """

    def __init__(self, gain: float = 1.0, seed: int = 0) -> None:
        self.gain = gain
        self._rng = np.random.default_rng(seed)

    def __call__(self, chunk: Chunk) -> Chunk:
        p = np.clip(self.gain * chunk.x.astype(np.float64), 0.0, 1.0)
        return replace(chunk, x=(self._rng.random(p.shape) < p).astype(np.float32))


class Pipeline:
    """Transforms applied in order, as one transform."""

    def __init__(self, *transforms: Transform) -> None:
        self.transforms = transforms

    def __call__(self, chunk: Chunk) -> Chunk:
        for transform in self.transforms:
            chunk = transform(chunk)
        return chunk


class Transformed(Source):
    """A source seen through transforms; chunks that come out empty (T = 0) are skipped.

    `dropped` and `rejected` mirror the inner source; closing closes it.
    """

    def __init__(self, source: Source, *transforms: Transform) -> None:
        super().__init__()
        self.source = source
        self.pipeline = Pipeline(*transforms)

    def _chunks(self) -> Iterator[Chunk]:
        for chunk in self.source:
            out = self.pipeline(chunk)
            self.counters.dropped = self.source.counters.dropped
            self.counters.rejected = self.source.counters.rejected
            if out.steps:
                yield out

    def _release(self) -> None:
        self.source.close()


def transformed(source: Source, *transforms: Transform) -> Transformed:
    """Wrap `source` so it yields `Pipeline(*transforms)` of its chunks."""
    return Transformed(source, *transforms)


def _slice(chunk: Chunk, cut: slice) -> Chunk:
    def part(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[cut]

    return replace(chunk, x=chunk.x[cut], y=part(chunk.y), mask=part(chunk.mask),
                   boundary=part(chunk.boundary))


def _concat(chunks: Sequence[Chunk], like: Chunk) -> Chunk:
    def join(name: str) -> np.ndarray | None:
        arrays = [getattr(c, name) for c in chunks]
        if any(a is None for a in arrays):
            return None
        return np.concatenate(arrays)

    return replace(like, x=join("x"), y=join("y"), mask=join("mask"), boundary=join("boundary"))
