"""Spoken digits: audio -> log-mel -> spikes -> a spiking network (BRF) that learns online to
name each digit (prequential: every frame is predicted before it is learned from).

    hypr-stream demo digits [--short] [--data ../shared/data/fsdd] [--recordings N]
    hypr-stream demo digits --mic [--device NAME] [--seconds S]

The recordings are FSDD's (8 kHz) when --data holds them; otherwise the words "zero".."nine" are
synthesised offline with espeak-ng in many voices, speeds and pitches (resampled to 8 kHz by the
source), so the demo runs on any machine with espeak-ng. --short streams digits 0-2 only.

--mic feeds the same pipeline from a live microphone (mic:NAME?rate=8000) and continues from the
checkpoint in --out, which a run without --mic writes first. A microphone carries no labels, so
there the network only predicts: each frame's digit goes to OUT/predictions.jsonl, and nothing is
scored, and the weights stay as learned (blocks without targets take no optimizer step).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import _demo
import numpy as np

from sources.files import read_wav

RATE = 8000
FRAMES_PER_RECORDING = 40  # FSDD's, at a 10 ms hop (espeak-ng's, trimmed, about 42)
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# espeak-ng's English accents and voice variants (both ship with espeak-ng-data; the mbrola
# voices are a separate package, so they are not used).
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "croak")


def synthesise(espeak: str, folder: Path, digits: int, per_digit: int, seed: int = 0) -> int:
    """Write ``per_digit`` recordings of each of the first ``digits`` words into ``folder`` as
    ``{digit}_{voice}_{i}.wav`` (espeak-ng's own rate, 22050 Hz), each in a seeded random voice,
    speed (110-220 words/min) and pitch (20-80), so the network cannot learn one voice's
    waveform. Returns the number written."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.wav"):
        old.unlink()
    rng = random.Random(seed)
    commands = []
    for digit in range(digits):
        for i in range(per_digit):
            accent, variant = rng.choice(ACCENTS), rng.choice(VARIANTS)
            wav = folder / f"{digit}_{accent}+{variant}_{i}.wav"
            commands.append([espeak, "-v", f"{accent}+{variant}", "-s", str(rng.randint(110, 220)),
                             "-p", str(rng.randint(20, 80)), "-w", str(wav), WORDS[digit]])

    def say(command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        trim_silence(Path(command[-2]))

    with ThreadPoolExecutor(max_workers=4) as pool:  # each call is a short external process
        list(pool.map(say, commands))
    return len(commands)


def trim_silence(path: Path, level: float = 0.02, keep: float = 0.03) -> None:
    """Cut a wav's leading and trailing silence (below ``level``) down to ``keep`` seconds.

    espeak-ng pads each word with ~0.3 s of silence; every frame of it would carry the digit's
    label though nothing in it names the digit (FSDD's recordings are trimmed like this).
    """
    samples, rate = read_wav(path)
    loud = np.flatnonzero(np.abs(samples).max(1) > level)
    if loud.size == 0:
        return
    pad = int(keep * rate)
    kept = samples[max(0, loud[0] - pad): loud[-1] + pad]
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(samples.shape[1])
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(np.round(kept * 32767).astype("<i2").tobytes())


def recordings(data: Path, out: Path, digits: int, per_digit: int) -> tuple[Path, list[str]]:
    """The folder of labelled wavs to stream and the overrides it needs: FSDD's recordings when
    present, else espeak-ng's words written under ``out``; skips when neither is to be had."""
    fsdd = data / "recordings"
    if fsdd.is_dir():
        return fsdd, []
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        _demo.skip(f"no FSDD recordings in {fsdd} (pass --data) and espeak-ng is not installed "
                   "to synthesise digits instead (Debian: apt-get install espeak-ng)")
    folder = out / "espeak"
    print(f"no FSDD recordings in {fsdd}: synthesising the words with espeak-ng into {folder}",
          file=sys.stderr, flush=True)
    written = synthesise(espeak, folder, digits, per_digit)
    print(f"{written} recordings ({per_digit} per digit, {len(ACCENTS)} accents x "
          f"{len(VARIANTS)} voices, random speed and pitch)", file=sys.stderr, flush=True)
    # espeak-ng writes 22050 Hz; loop so that --recordings may exceed the files written.
    return folder, [f"source.options.rate={RATE}", "source.options.loop=true"]


def listen(out: Path, device: str, seconds: float | None, overrides: list[str]) -> dict:
    """--mic: the microphone through the same front ends into the learner from ``out``'s
    checkpoint, each frame's predicted digit to OUT/predictions.jsonl; until ``seconds`` have
    passed or Ctrl-C. The result counts the frames heard as each digit."""
    if not (out / "checkpoint.pt").is_file():
        print(f"no checkpoint in {out}: run `hypr-stream demo digits --out {out}` first, so "
              "that the network has learned the digits", file=sys.stderr, flush=True)
        sys.exit(2)
    try:
        import sounddevice
    except OSError as err:
        print(f"--mic needs PortAudio ({err}); Debian: apt-get install libportaudio2",
              file=sys.stderr, flush=True)
        sys.exit(2)
    try:
        sounddevice.query_devices(device or None, kind="input")
    except (ValueError, sounddevice.PortAudioError) as err:
        print(f"no input device {device or '(default)'}: {err}; pass --device NAME "
              "(`python -m sounddevice` lists them)", file=sys.stderr, flush=True)
        sys.exit(2)
    predictions = out / "predictions.jsonl"
    predictions.unlink(missing_ok=True)
    result = _demo.run("digits", out, [
        f"source.uri=mic:{device}?rate={RATE}&blocksize=800", "source.options={}",
        "checkpoint.resume=true", f"output.predictions={predictions}",
        f"output.metrics_jsonl={out / 'mic-metrics.jsonl'}", f"output.plots={out / 'mic-plots'}",
        f"max_seconds={'null' if seconds is None else seconds}", *overrides])
    heard: dict[str, int] = {}
    if predictions.is_file():
        for line in predictions.read_text().splitlines():
            for digit in np.ravel(json.loads(line)["pred"]):
                heard[str(digit)] = heard.get(str(digit), 0) + 1
    print(f"frames heard as each digit: {dict(sorted(heard.items()))}", file=sys.stderr,
          flush=True)
    # The accuracy figures in the checkpoint are the file run's: a microphone has no labels.
    for key in ("accuracy", "accuracy_window", "loss", "loss_window"):
        result.pop(key, None)
    result.update(demo="digits", mic=True, predictions=str(predictions), heard=heard)
    _demo.finish(result)
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--short", action="store_true", help="digits 0-2, 300 recordings")
    p.add_argument("--data", default=str(_demo.DATA / "fsdd"),
                   help="FSDD folder (absent: words synthesised with espeak-ng)")
    p.add_argument("--mic", action="store_true", help="predict from the live microphone")
    p.add_argument("--device", default="", help="input device for --mic (name or index)")
    p.add_argument("--seconds", type=float, default=None,
                   help="with --mic: stop after this long (default: at Ctrl-C)")
    p.add_argument("--recordings", type=int, default=None, help="stop after about this many")
    p.add_argument("--out", default="runs/demo-digits", help="checkpoint, metrics, plots")
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.mic:
        return listen(out, args.device, args.seconds, args.set)
    classes = 3 if args.short else 10
    count = args.recordings or (300 if args.short else 3000)
    per_digit = min(100 if args.short else 200, -(-count // classes))  # no more than streamed
    folder, extra = recordings(Path(args.data), out, classes, per_digit)
    overrides = [f"source.uri=wav:{folder}?pattern=[0-{classes - 1}]_*.wav", *extra,
                 f"network.n_out={classes}", f"max_steps={count * FRAMES_PER_RECORDING}",
                 *args.set]
    result = _demo.run("digits", out, overrides)
    result.update(demo="digits", chance=1 / classes, mic=False,
                  recordings="FSDD" if not extra else "espeak-ng")
    _demo.finish(result)
    return result


if __name__ == "__main__":
    main()
