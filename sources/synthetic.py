"""Synthetic streams, seeded and deterministic: the cue task, oscillator mixtures, a sensor.

Cue task (spec section 8), one trial of T = evidence + delay + cue steps on 15 channels:
  - evidence (20 steps): the class's 5 of the first 10 channels (0-4: class 0, 5-9: class 1)
    each fire with probability p = 0.6 per step; the other five stay silent;
  - delay (`delay` steps, up to 10k and beyond): silence;
  - cue (20 steps): channels 10-14 fire; targets only here (y = class, mask True; y = -1 before).
Reading the class off the evidence is easy; holding it across the delay is the task, which is
what the paper varies (delays up to 10k steps) and where it reports 100% training accuracy.

Oscillators: C channels, each a fixed mix of K sinusoids whose frequencies and amplitudes change
at unannounced regime changes (geometric, mean `regime_steps`); phase stays continuous. The target
is next-step forecasting: y[t] = the noiseless signal at t + 1 (float32 [T, C]).

Sensor: a multichannel (IMU-like) simulator: activity segments of random length, each class with
its own per-channel frequency, amplitude and offset, plus noise; y is the activity on every step.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from sources.base import Chunk, Pacer, Source, split_steps

CUE_CHANNELS = 15
SIDE = 5
MAX_DELAY = 1_000_000


def cue_trial(rng: np.random.Generator, delay: int, p: float = 0.6, evidence_steps: int = 20,
              cue_steps: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """One cue-task trial: x float32 [T, 15] in {0, 1}, y int64 [T] (-1 off the cue window).

    T = evidence_steps + delay + cue_steps; the mask is y >= 0.
    """
    if not 0 <= delay <= MAX_DELAY:
        raise ValueError(f"delay must be in 0..{MAX_DELAY} steps, got {delay}")
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    if evidence_steps < 1 or cue_steps < 1:
        raise ValueError(f"evidence_steps and cue_steps must be >= 1, got "
                         f"{evidence_steps}, {cue_steps}")
    label = int(rng.integers(2))
    steps = evidence_steps + delay + cue_steps
    x = np.zeros((steps, CUE_CHANNELS), np.float32)
    channels = slice(label * SIDE, (label + 1) * SIDE)
    x[:evidence_steps, channels] = rng.random((evidence_steps, SIDE)) < p
    x[steps - cue_steps :, 2 * SIDE :] = 1.0
    y = np.full(steps, -1, np.int64)
    y[steps - cue_steps :] = label
    return x, y


def cue_batch(n: int, delay: int, seed: int = 0, p: float = 0.6
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n independent trials side by side: x float32 [T, n, 15], y int64 [T, n], mask bool [T, n].

    Equal to the first chunk of `CueSource(delay, batch=n, seed=seed)`.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    xs, ys = zip(*(cue_trial(rng, delay, p) for _ in range(n)), strict=True)
    y = np.stack(ys, axis=1)
    return np.stack(xs, axis=1), y, y >= 0


class CueSource(Source):
    """An endless stream of cue trials (or `trials` of them), boundary True at each start.

    batch: None for x [T, 15]; B for B streams in lockstep, x [T, B, 15], one trial each per
    chunk. chunk_steps cuts long trials (a delay of 10k steps) into smaller chunks.
    """

    def __init__(self, delay: int = 100, batch: int | None = None, seed: int = 0,
                 p: float = 0.6, trials: int | None = None, chunk_steps: int | None = None,
                 pace: float | None = None) -> None:
        super().__init__()
        cue_trial(np.random.default_rng(0), delay, p)  # validates the arguments now
        if batch is not None and batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.delay, self.batch, self.p, self.trials = delay, batch, p, trials
        self.chunk_steps = chunk_steps
        self._rng = np.random.default_rng(seed)
        self._pacer = Pacer(pace)

    def _chunks(self) -> Iterator[Chunk]:
        seq, made = 0, 0
        while self.trials is None or made < self.trials:
            width = 1 if self.batch is None else self.batch
            xs, ys = zip(*(cue_trial(self._rng, self.delay, self.p) for _ in range(width)),
                         strict=True)
            x, y = (xs[0], ys[0]) if self.batch is None else (np.stack(xs, 1), np.stack(ys, 1))
            boundary = np.zeros(y.shape, bool)
            boundary[0] = True
            made += 1
            for piece in split_steps(Chunk(x=x, y=y, mask=y >= 0, boundary=boundary),
                                     self.chunk_steps):
                self._pacer.wait(piece.steps)
                piece.seq, seq = seq, seq + 1
                yield piece


class OscillatorSource(Source):
    """Mixtures of sinusoids with regime changes; y[t] is the clean signal at t + 1.

    x float32 [T, channels], y float32 [T, channels]. Frequencies are drawn in cycles per step
    from [0.002, 0.05]; amplitudes from N(0, 1) per channel and component.
    """

    def __init__(self, channels: int = 4, components: int = 3, regime_steps: int = 2000,
                 noise: float = 0.05, seed: int = 0, chunk_steps: int = 256,
                 pace: float | None = None) -> None:
        super().__init__()
        if channels < 1 or components < 1 or regime_steps < 1 or chunk_steps < 1:
            raise ValueError("channels, components, regime_steps and chunk_steps must be >= 1")
        self.channels, self.components = channels, components
        self.regime_steps, self.noise, self.chunk_steps = regime_steps, noise, chunk_steps
        self._rng = np.random.default_rng(seed)
        self._phase = self._rng.uniform(0, 2 * np.pi, components)
        self._new_regime()
        self._pacer = Pacer(pace)

    def _new_regime(self) -> None:
        self._freq = self._rng.uniform(0.002, 0.05, self.components)
        self._amp = self._rng.normal(0.0, 1.0, (self.components, self.channels))
        self._left = int(self._rng.geometric(1.0 / self.regime_steps))

    def _advance(self, steps: int) -> np.ndarray:
        """The clean signal for the next `steps` steps, [steps, channels] float64."""
        parts = []
        while steps > 0:
            n = min(steps, self._left)
            phase = self._phase + 2 * np.pi * self._freq * np.arange(n)[:, None]
            parts.append(np.sin(phase) @ self._amp)
            self._phase = (self._phase + 2 * np.pi * self._freq * n) % (2 * np.pi)
            self._left -= n
            steps -= n
            if self._left == 0:
                self._new_regime()
        return np.concatenate(parts)

    def _chunks(self) -> Iterator[Chunk]:
        seq = 0
        carry = self._advance(1)
        while True:
            clean = np.concatenate([carry, self._advance(self.chunk_steps)])
            carry = clean[-1:]
            noisy = clean[:-1] + self.noise * self._rng.standard_normal(clean[:-1].shape)
            boundary = np.zeros(self.chunk_steps, bool)
            boundary[0] = seq == 0
            self._pacer.wait(self.chunk_steps)
            yield Chunk(x=noisy.astype(np.float32), y=clean[1:].astype(np.float32),
                        boundary=boundary, seq=seq)
            seq += 1


class SensorSource(Source):
    """A labelled multichannel sensor: activities of random length, y the activity per step.

    x float32 [T, channels], y int64 [T], mask all True. Each class has a per-channel frequency,
    amplitude and offset; segments last on average `segment_steps` steps.
    """

    def __init__(self, channels: int = 6, classes: int = 4, segment_steps: int = 500,
                 noise: float = 0.1, seed: int = 0, chunk_steps: int = 256,
                 pace: float | None = None) -> None:
        super().__init__()
        if channels < 1 or classes < 2 or segment_steps < 1 or chunk_steps < 1:
            raise ValueError("channels, segment_steps, chunk_steps must be >= 1 and classes >= 2")
        self.channels, self.classes, self.segment_steps = channels, classes, segment_steps
        self.noise, self.chunk_steps = noise, chunk_steps
        self._rng = np.random.default_rng(seed)
        self._freq = self._rng.uniform(0.005, 0.1, (classes, channels))
        self._amp = self._rng.uniform(0.2, 1.0, (classes, channels))
        self._offset = self._rng.normal(0.0, 0.5, (classes, channels))
        self._phase = np.zeros(channels)
        self._activity, self._left = 0, 0
        self._pacer = Pacer(pace)

    def _chunks(self) -> Iterator[Chunk]:
        seq = 0
        while True:
            xs, ys, steps = [], [], self.chunk_steps
            while steps > 0:
                if self._left == 0:
                    self._activity = int(self._rng.integers(self.classes))
                    self._left = int(self._rng.geometric(1.0 / self.segment_steps))
                n, a = min(steps, self._left), self._activity
                phase = self._phase + 2 * np.pi * self._freq[a] * np.arange(n)[:, None]
                xs.append(self._amp[a] * np.sin(phase) + self._offset[a])
                ys.append(np.full(n, a, np.int64))
                self._phase = (self._phase + 2 * np.pi * self._freq[a] * n) % (2 * np.pi)
                self._left -= n
                steps -= n
            x = np.concatenate(xs)
            x += self.noise * self._rng.standard_normal(x.shape)
            y = np.concatenate(ys)
            boundary = np.zeros(len(y), bool)
            boundary[0] = seq == 0
            self._pacer.wait(len(y))
            yield Chunk(x=x.astype(np.float32), y=y, mask=np.ones(len(y), bool),
                        boundary=boundary, seq=seq)
            seq += 1
