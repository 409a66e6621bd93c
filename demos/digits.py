"""Spoken digits: FSDD recordings, audio -> log-mel -> spikes -> a spiking network (ALIF) that
learns online to name each digit (prequential: every frame is predicted before it is learned).

    hypr-stream demo digits [--short] [--data ../shared/data/fsdd] [--mic]

--short streams digits 0-2 only; --mic feeds the same pipeline from the live microphone
(mic:?rate=8000), predicting with the network learned so far (no labels there).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _demo


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--short", action="store_true", help="digits 0-2, 300 recordings")
    p.add_argument("--data", default=str(_demo.DATA / "fsdd"), help="FSDD folder")
    p.add_argument("--mic", action="store_true", help="the live microphone instead of files")
    p.add_argument("--recordings", type=int, default=None, help="stop after this many")
    p.add_argument("--out", default="runs/demo-digits", help="checkpoint, metrics, plots")
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    args = p.parse_args(argv)
    overrides = list(args.set)
    if args.mic:
        overrides += ["source.uri=mic:?rate=8000&blocksize=800", "source.options={}",
                      "checkpoint.resume=true"]
        chance = 0.1
    else:
        folder = Path(args.data) / "recordings"
        if not folder.is_dir():
            _demo.skip(f"no FSDD recordings in {folder} (pass --data)")
        pattern = "[012]_*.wav" if args.short else "*.wav"
        classes = 3 if args.short else 10
        recordings = args.recordings or (300 if args.short else 3000)
        # ~40 frames per recording at a 10 ms hop.
        overrides += [f"source.uri=wav:{folder}?pattern={pattern}", f"network.n_out={classes}",
                      f"max_steps={recordings * 40}"]
        chance = 1 / classes
    result = _demo.run("digits", args.out, overrides)
    result.update(demo="digits", chance=chance, mic=args.mic)
    _demo.finish(result)
    return result


if __name__ == "__main__":
    main()
