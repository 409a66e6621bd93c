"""Streaming front ends give the same output however the stream is cut into chunks."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sources.base import Chunk
from sources.frontends import (
    DeltaEncoder,
    LogMel,
    Pipeline,
    RateEncoder,
    RunningNorm,
    transformed,
)
from sources.synthetic import SensorSource

AUDIO = np.random.default_rng(0).standard_normal((3000, 1)).astype(np.float32)


def run_chunked(make, chunk: Chunk, cuts: list[int]) -> Chunk:
    """Feed `chunk` to a fresh transform in pieces cut at `cuts`; join the outputs."""
    transform = make()
    edges = [0, *sorted(set(cuts)), chunk.steps]
    outs = []
    for a, b in zip(edges, edges[1:], strict=False):
        piece = Chunk(x=chunk.x[a:b],
                      y=None if chunk.y is None else chunk.y[a:b],
                      boundary=None if chunk.boundary is None else chunk.boundary[a:b])
        outs.append(transform(piece))
    return Chunk(x=np.concatenate([o.x for o in outs]),
                 y=None if outs[0].y is None else np.concatenate([o.y for o in outs]),
                 boundary=None if outs[0].boundary is None else
                 np.concatenate([o.boundary for o in outs]))


def cut_points(steps: int):
    return st.lists(st.integers(1, steps - 1), max_size=8)


FRONT_ENDS = {
    "logmel": lambda: LogMel(rate=8000, n_fft=200, hop=80, n_mels=20),
    "norm": RunningNorm,
    "delta": lambda: DeltaEncoder(0.5),
    "rate": lambda: RateEncoder(gain=0.5, seed=4),
    "pipeline": lambda: Pipeline(LogMel(rate=8000, n_fft=200, hop=80, n_mels=20),
                                 RunningNorm(), DeltaEncoder(0.3)),
}


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(FRONT_ENDS)), cut_points(len(AUDIO)))
def test_chunking_never_changes_the_output(name: str, cuts: list[int]) -> None:
    labels = np.arange(len(AUDIO)) // 700
    boundary = np.zeros(len(AUDIO), bool)
    boundary[[0, 1400]] = True
    stream = Chunk(x=AUDIO, y=labels, boundary=boundary)
    whole = run_chunked(FRONT_ENDS[name], stream, [])
    pieces = run_chunked(FRONT_ENDS[name], stream, cuts)
    assert whole.x.shape == pieces.x.shape and whole.x.shape[0] > 0
    np.testing.assert_allclose(pieces.x, whole.x, rtol=1e-5, atol=1e-5)
    if whole.y is not None:
        assert np.array_equal(pieces.y, whole.y)
        assert np.array_equal(pieces.boundary, whole.boundary)


def test_logmel_matches_a_direct_stft_and_restarts_at_boundaries() -> None:
    mel = LogMel(rate=8000, n_fft=200, hop=80, n_mels=20)
    boundary = np.zeros(len(AUDIO), bool)
    boundary[[0, 1000]] = True
    out = mel(Chunk(x=AUDIO, y=np.arange(len(AUDIO)), boundary=boundary))
    first = (1000 - 200) // 80 + 1
    assert out.x.shape == (first + (2000 - 200) // 80 + 1, 20)
    assert np.flatnonzero(out.boundary).tolist() == [0, first]
    assert out.y[0] == 199 and out.y[first] == 1199  # label of each frame's last step
    audio = torch.from_numpy(AUDIO[:1000, 0].astype(np.float64))
    spec = torch.stft(audio, 200, 80, window=torch.hann_window(200, dtype=torch.float64),
                      center=False, return_complex=True).abs().T ** 2
    expected = torch.log(spec.float() @ mel.filters + mel.eps).numpy()
    np.testing.assert_allclose(out.x[:first], expected, rtol=1e-4, atol=1e-4)


def test_batched_logmel_keeps_streams_apart() -> None:
    batch = np.stack([AUDIO, 0.1 * AUDIO], axis=1)  # [T, 2, 1]
    out = LogMel(rate=8000, n_fft=200, hop=80, n_mels=20)(Chunk(x=batch))
    single = LogMel(rate=8000, n_fft=200, hop=80, n_mels=20)(Chunk(x=AUDIO))
    assert out.x.shape == (single.x.shape[0], 2, 20)
    np.testing.assert_allclose(out.x[:, 0], single.x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.x[:, 1] - out.x[:, 0], np.log(0.01), atol=1e-3)


def test_running_norm_standardises_a_long_stream() -> None:
    x = (5 + 3 * np.random.default_rng(1).standard_normal((20000, 2))).astype(np.float32)
    out = RunningNorm()(Chunk(x=x)).x[10000:]
    assert abs(out.mean()) < 0.05 and abs(out.std() - 1) < 0.05


def test_delta_encoder_spikes_track_the_signal() -> None:
    ramp = np.linspace(0, 1, 101, dtype=np.float32)[:, None]
    signal = np.concatenate([ramp, ramp[::-1]])
    spikes = DeltaEncoder(0.1)(Chunk(x=signal)).x
    assert spikes.shape == (202, 2) and set(np.unique(spikes)) <= {0.0, 1.0}
    assert spikes[:, 0].sum() == 10 and spikes[:, 1].sum() == 10  # up the ramp, then down


def test_rate_encoder_fires_at_the_requested_rate() -> None:
    x = np.full((20000, 3), [0.1, 0.5, 0.9], np.float32)
    rates = RateEncoder(seed=0)(Chunk(x=x)).x.mean(0)
    np.testing.assert_allclose(rates, [0.1, 0.5, 0.9], atol=0.02)


def test_transformed_source_carries_counters_and_closes_the_inner_source() -> None:
    inner = SensorSource(channels=2, chunk_steps=50)
    with transformed(inner, RunningNorm(), DeltaEncoder(0.5)) as source:
        chunk = next(source)
        assert chunk.x.shape == (50, 4) and chunk.y.shape == (50,)
    assert inner.closing and source.counters.chunks == 1
