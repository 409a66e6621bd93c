"""Synthetic streams: the cue task's structure and determinism; oscillators; sensor labels."""

from __future__ import annotations

import numpy as np
import pytest

from sources import open_source
from sources.synthetic import CueSource, OscillatorSource, SensorSource, cue_batch, cue_trial


def test_cue_trial_follows_the_task_definition() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        x, y = cue_trial(rng, delay=37)
        assert x.shape == (77, 15) and x.dtype == np.float32 and y.dtype == np.int64
        label = int(y[-1])
        own, other = x[:20, 5 * label : 5 * label + 5], x[:20, 5 * (1 - label) : 5 * (2 - label)]
        assert own.any() and not other.any()  # evidence only on the class's five channels
        assert not x[20:57].any()  # silent delay
        assert x[57:, 10:].all() and not x[57:, :10].any()  # cue on channels 10-14
        assert (y[57:] == label).all() and (y[:57] == -1).all()


def test_evidence_channels_fire_with_probability_p() -> None:
    x, y, mask = cue_batch(2000, delay=0, seed=1)
    own = np.where(y[-1][:, None] == 1, x[:20, :, 5:10].transpose(1, 0, 2).reshape(2000, -1),
                   x[:20, :, 0:5].transpose(1, 0, 2).reshape(2000, -1))
    assert 0.58 < own.mean() < 0.62  # p = 0.6 per channel and step
    assert 0.45 < y[-1].mean() < 0.55 and mask.sum(0).tolist() == [20] * 2000


def test_cue_batch_is_deterministic_and_equals_the_source() -> None:
    x, y, mask = cue_batch(8, delay=100, seed=3)
    again = cue_batch(8, delay=100, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((x, y, mask), again, strict=True))
    assert not np.array_equal(x, cue_batch(8, delay=100, seed=4)[0])
    with open_source("synthetic:cue?delay=100&batch=8&seed=3") as source:
        chunk = next(source)
    assert np.array_equal(chunk.x, x) and np.array_equal(chunk.y, y)
    assert np.array_equal(chunk.mask, mask) and chunk.boundary[0].all()


def test_long_delay_trials_stream_in_chunks_with_one_boundary_per_trial() -> None:
    with CueSource(delay=10_000, chunk_steps=1000, trials=2) as source:
        chunks = list(source)
    assert sum(c.steps for c in chunks) == 2 * 10_040
    starts = np.flatnonzero(np.concatenate([c.boundary for c in chunks]))
    assert starts.tolist() == [0, 10_040]
    assert np.concatenate([c.mask for c in chunks]).sum() == 40


def test_cue_rejects_an_impossible_delay() -> None:
    with pytest.raises(ValueError, match="delay"):
        CueSource(delay=-1)


def test_oscillator_target_is_the_next_clean_step_across_chunks() -> None:
    with OscillatorSource(channels=3, regime_steps=50, noise=0.0, chunk_steps=40) as source:
        a, b = next(source), next(source)
    x, y = np.concatenate([a.x, b.x]), np.concatenate([a.y, b.y])
    assert np.allclose(y[:-1], x[1:], atol=1e-6)
    with OscillatorSource(regime_steps=50, seed=1) as one, OscillatorSource(regime_steps=50,
                                                                           seed=1) as two:
        assert np.array_equal(next(one).x, next(two).x)


def test_sensor_labels_follow_activity_segments() -> None:
    with SensorSource(classes=3, segment_steps=100, noise=0.0, seed=2) as source:
        chunks = [next(source) for _ in range(20)]
    y = np.concatenate([c.y for c in chunks])
    x = np.concatenate([c.x for c in chunks])
    assert set(np.unique(y)) == {0, 1, 2} and 10 < (np.diff(y) != 0).sum() < 100
    means = [x[y == k].mean(0) for k in range(3)]  # each class has its own offsets
    assert min(np.abs(means[i] - means[j]).max() for i in range(3) for j in range(i)) > 0.05
