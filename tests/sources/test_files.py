"""File sources: arrays, CSV, wav (read and resampled), labelled folders, loop and pacing."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly

from sources import open_source
from sources.files import read_wav, resample
from tests.sources.conftest import fsdd_files


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.astype("<i2").tobytes())


def test_npz_plays_all_steps_with_targets_in_chunks(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((1000, 3, 2)).astype(np.float32)
    y = np.arange(3000).reshape(1000, 3) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with open_source(f"file:{tmp_path}/d.npz?chunk_steps=300") as source:
        chunks = list(source)
    assert [c.steps for c in chunks] == [300, 300, 300, 100]
    assert np.array_equal(np.concatenate([c.x for c in chunks]), x)
    assert np.array_equal(np.concatenate([c.y for c in chunks]), y)
    assert chunks[0].y.dtype == np.int64 and chunks[0].mask.all()
    assert chunks[0].boundary[0].all() and not chunks[1].boundary.any()
    assert source.counters.steps == 1000 and source.counters.chunks == 4


def test_npy_loops_and_marks_each_pass_as_a_new_sample(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(10, dtype=np.float32))
    with open_source(f"file:{tmp_path}/a.npy", loop=True, chunk_steps=4) as source:
        chunks = [next(source) for _ in range(6)]
    assert np.array_equal(np.concatenate([c.x[:, 0] for c in chunks]),
                          np.tile(np.arange(10), 2))
    assert [bool(c.boundary[0]) for c in chunks] == [True, False, False, True, False, False]


def test_pace_holds_the_stream_to_the_requested_rate(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((50, 1), np.float32))
    started = time.monotonic()
    with open_source(f"file:{tmp_path}/a.npy?pace=100&chunk_steps=10") as source:
        assert sum(c.steps for c in source) == 50
    assert 0.35 < time.monotonic() - started < 1.5  # 40 steps after the first chunk at 100/s


def test_npz_with_a_misspelt_key_names_it(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1)), labels=np.zeros(2))
    with pytest.raises(ValueError, match="labels"):
        open_source(f"file:{tmp_path}/d.npz")


def test_csv_streams_rows_with_a_named_target_column(tmp_path: Path) -> None:
    rows = ["a,b,label"] + [f"{i},{-i},{i % 3}" for i in range(25)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    with open_source(f"file:{tmp_path}/t.csv?target=label&chunk_steps=10") as source:
        chunks = list(source)
    assert [c.steps for c in chunks] == [10, 10, 5]
    x = np.concatenate([c.x for c in chunks])
    assert x.shape == (25, 2) and x[24].tolist() == [24, -24]
    assert np.concatenate([c.y for c in chunks]).tolist() == [i % 3 for i in range(25)]


def test_wav_reads_the_same_samples_as_scipy(tmp_path: Path) -> None:
    ints = np.random.default_rng(2).integers(-32768, 32767, (800, 2))
    write_wav(tmp_path / "s.wav", ints, 8000)
    samples, rate = read_wav(tmp_path / "s.wav")
    assert rate == 8000
    assert np.array_equal(samples * 32768, wavfile.read(tmp_path / "s.wav")[1])


@pytest.mark.parametrize("rates", [(8000, 16000), (44100, 16000), (16000, 8000)])
def test_resample_matches_scipy_resample_poly(rates: tuple[int, int]) -> None:
    rate_in, rate_out = rates
    t = np.arange(rate_in // 4) / rate_in
    x = (np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1500 * t))[:, None]
    ours = resample(x.astype(np.float32), rate_in, rate_out)
    g = np.gcd(rate_in, rate_out)
    reference = resample_poly(x, rate_out // g, rate_in // g, axis=0)
    assert ours.shape == reference.shape
    assert np.max(np.abs(ours - reference)) < 1e-4


def test_wav_uri_resamples_on_request(tmp_path: Path) -> None:
    write_wav(tmp_path / "s.wav", np.zeros(800), 8000)
    with open_source(f"file:{tmp_path}/s.wav?rate=16000&chunk_steps=100000") as source:
        (chunk,) = list(source)
    assert chunk.x.shape == (1600, 1)


def test_labelled_folder_streams_samples_with_boundaries_and_labels(tmp_path: Path) -> None:
    for label in ("3", "7"):
        for i in range(3):
            write_wav(tmp_path / f"{label}_alice_{i}.wav", np.full(100 + i, int(label)), 8000)
    with open_source(f"wav:{tmp_path}?target=last") as source:
        chunks = list(source)
    assert len(chunks) == 6 and [c.seq for c in chunks] == list(range(6))
    for chunk in chunks:
        label = round(float(chunk.x[0, 0]) * 32768)
        assert chunk.boundary[0] and not chunk.boundary[1:].any()
        assert chunk.y[-1] == label and (chunk.y[:-1] == -1).all()
        assert chunk.mask.sum() == 1
    assert sorted(round(float(c.x[0, 0]) * 32768) for c in chunks) == [3, 3, 3, 7, 7, 7]


@pytest.mark.skipif(not fsdd_files(), reason="shared/data/fsdd is absent on this machine")
def test_spoken_digit_folder_resampled_to_16k() -> None:
    folder = fsdd_files()[0].parent
    with open_source(f"wav:{folder}", rate=16000) as source:
        chunks = [next(source) for _ in range(20)]
    assert len({int(c.y[0]) for c in chunks}) > 3  # shuffled: the digits mix
    for chunk in chunks:
        assert chunk.x.dtype == np.float32 and chunk.x.shape[1] == 1
        assert 0 <= chunk.y[0] <= 9 and chunk.boundary[0]
        assert 0.001 < np.abs(chunk.x).max() <= 1.0  # real, non-silent audio
