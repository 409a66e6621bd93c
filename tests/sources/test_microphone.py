"""The microphone source through real virtual devices, since CI machines have no sound card.

ALSA's `file` plugin feeds a raw file into a capture stream of the `null` device, read as int16,
so a known recording arrives through PortAudio, the audio callback and the bounded queue exactly
as a microphone's blocks would: bit-exact. The JACK dummy backend runs a real-time audio graph;
a player stream's output port is wired to the microphone's input port and the recording must
come back correlated >= 0.99. Needs libportaudio2 and jackd2 (installed by .ci/run); each test
is skipped, with the reason, where its part is absent.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from sources import open_source
from sources.files import read_wav
from tests.jack import jack_server
from tests.sources.conftest import fsdd_files

try:
    import sounddevice
except OSError as error:  # PortAudio missing
    pytest.skip(f"sounddevice unusable: {error}", allow_module_level=True)

ALSA_CONF = "/usr/share/alsa/alsa.conf"


def known_recording(tmp_path: Path) -> np.ndarray:
    """A real spoken digit if shared/data is here, else a generated chirp; int16 [N]."""
    files = fsdd_files()
    if files:
        samples, _ = read_wav(files[0])
        return np.round(samples[:, 0] * 32768).astype(np.int16)
    t = np.arange(8000) / 8000
    return (12000 * np.sin(2 * np.pi * (200 + 800 * t) * t)).astype(np.int16)


@pytest.fixture
def virtual_mic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An ALSA pcm `hyprmic` that captures the bytes of a raw int16 file; yields the samples."""
    if not os.path.exists(ALSA_CONF):
        pytest.skip(f"{ALSA_CONF} absent: no ALSA configuration to extend")
    samples = known_recording(tmp_path)
    raw = tmp_path / "mic.raw"
    samples.astype("<i2").tofile(raw)
    conf = tmp_path / "asound.conf"
    conf.write_text(
        'pcm.hyprnull { type null }\n'
        f'pcm.hyprmic {{ type file slave.pcm "hyprnull" file "/dev/null" '
        f'infile "{raw}" format "raw" }}\n'
    )
    monkeypatch.setenv("ALSA_CONFIG_PATH", f"{ALSA_CONF}:{conf}")
    sounddevice._terminate()  # re-read the ALSA configuration, now with hyprmic
    sounddevice._initialize()
    yield samples
    monkeypatch.delenv("ALSA_CONFIG_PATH")
    sounddevice._terminate()
    sounddevice._initialize()


def test_microphone_delivers_a_known_recording_bit_exact(virtual_mic: np.ndarray) -> None:
    received, steps = [], 0
    with open_source("mic:hyprmic?rate=8000&blocksize=256&dtype=int16&queue_blocks=4096",
                     timeout=5) as source:
        for chunk in source:
            assert chunk.x.dtype == np.float32 and chunk.x.shape == (256, 1)
            received.append(chunk.x[:, 0])
            steps += chunk.steps
            if steps >= len(virtual_mic):
                break
    audio = np.concatenate(received)[: len(virtual_mic)]
    assert source.counters.dropped == 0
    assert np.array_equal(audio * 32768, virtual_mic.astype(np.float32))


def test_a_slow_consumer_loses_blocks_that_are_counted(virtual_mic: np.ndarray) -> None:
    with open_source("mic:hyprmic?rate=8000&blocksize=64&dtype=int16&queue_blocks=2",
                     timeout=5) as source:
        chunks = []
        for chunk in source:
            chunks.append(chunk)
            if len(chunks) == 1:
                time.sleep(0.5)  # the device keeps producing into a 2-block queue
            if len(chunks) == 6:
                break
    seqs = [c.seq for c in chunks]
    assert source.counters.dropped > 0
    assert seqs[-1] + 1 - len(seqs) <= source.counters.dropped  # every gap was counted


@pytest.fixture
def jack_16k():
    """A JACK server on the dummy backend (16 kHz, 256-frame periods)."""
    with jack_server(rate=16000, period=256):
        yield


def test_microphone_on_jack_receives_a_played_recording(jack_16k: None) -> None:
    t = np.arange(16000) / 16000
    recording = (0.5 * np.sin(2 * np.pi * (200 + 800 * t) * t)).astype(np.float32)
    position = 0

    def play(out: np.ndarray, frames: int, time_info: object, status: object) -> None:
        nonlocal position
        n = min(frames, len(recording) - position)
        out[:n, 0] = recording[position:position + n]
        out[n:] = 0
        position += n

    with open_source("mic:?rate=16000&blocksize=256", device="system, JACK",
                     timeout=5) as source:
        player = sounddevice.OutputStream(device="system, JACK", samplerate=16000,
                                          blocksize=256, channels=1, callback=play)
        try:
            first = next(source)  # the input port exists once the stream runs
            wire = subprocess.run(["jack_connect", "PortAudio:out_0", "PortAudio:in_0"],
                                  capture_output=True, text=True, timeout=5)
            assert wire.returncode == 0, wire.stderr
            player.start()
            blocks = [next(source).x[:, 0] for _ in range(90)]
        finally:
            player.close()
    audio = np.concatenate(blocks)
    assert first.x.shape == (256, 1)
    lag = int(np.argmax(np.correlate(audio, recording, "full"))) - len(recording) + 1
    assert 0 <= lag <= len(audio) - len(recording)
    heard = audio[lag:lag + len(recording)]
    assert np.corrcoef(heard, recording)[0, 1] >= 0.99
    assert source.counters.dropped == 0
