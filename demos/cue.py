"""The cue task (spec §8) learned online: an endless stream of trials, B streams side by side.

Each stream receives trial after trial (evidence, a silent delay, a cue); the learner sees each
chunk once, predicts first, then learns (prequential), with a boundary at every trial start.
A trial counts as correct when the mean logits over its cue window name its class.

    python demos/cue.py --delay 1000 --trials 2000
    hypr-stream demo cue            # the main job (--main): delay 1000, 4 streams, then peak RSS
                                    # at delays 1k/5k/10k with λ fixed, checkpoint and plots
    hypr-stream demo cue --short    # a quick check (delay 50, 2 streams)

With --out (implied by --main and --short) a checkpoint, metrics rows and plots are written
there; the learning itself is the same with or without them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

import hypr_stream as hs
from hypr_stream.outputs import peak_rss_mb
from sources.synthetic import cue_batch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=int, default=1000, help="silent steps before the cue")
    parser.add_argument("--trials", type=int, default=1600, help="trials in total (all streams)")
    parser.add_argument("--streams", type=int, default=16, help="parallel streams B")
    parser.add_argument("--hidden", type=int, default=32, help="BRF neurons")
    parser.add_argument("--lam", type=int, default=0, help="λ (0: one trial)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--gain", type=float, default=20.0, help="initial weight gain")
    parser.add_argument("--omega", type=float, nargs=2, default=(1.0, 5.0))
    parser.add_argument("--b-offset", type=float, nargs=2, default=(0.01, 0.1))
    parser.add_argument("--rule", default="hypr", choices=["hypr", "eprop", "bptt"])
    parser.add_argument("--last", type=int, default=200, help="trials in the final accuracy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the result here")
    parser.add_argument("--out", default=None, help="write checkpoint, metrics and plots here")
    parser.add_argument("--main", action="store_true",
                        help="the main job: --delay 1000 --streams 4 --gain 30 --trials 600 "
                             "--last 200 --out runs/demo-cue, then --memory 1000 5000 10000")
    parser.add_argument("--short", action="store_true",
                        help="quick: --delay 50 --streams 4 --gain 30 --trials 400 --last 100 "
                             "--out runs/demo-cue-short")
    parser.add_argument("--memory", type=int, nargs="*", default=None, metavar="DELAY",
                        help="after learning, peak RSS of a fresh process learning 2 rounds at "
                             "each delay with λ = 256")
    args = parser.parse_args(argv)
    presets = {"main": dict(delay=1000, streams=4, gain=30.0, trials=600, last=200,
                            out="runs/demo-cue", memory=[1000, 5000, 10000]),
               "short": dict(delay=50, streams=4, gain=30.0, trials=400, last=100,
                             out="runs/demo-cue-short")}
    for name, preset in presets.items():
        if getattr(args, name):
            for key, value in preset.items():
                if key != "out" or args.out is None:
                    setattr(args, key, value)
    return args


def peak_rss_at(delay: int, streams: int, gain: float, lam: int = 256) -> dict:
    """Peak RSS (MiB) of a fresh process learning two rounds of trials at ``delay``."""
    command = [sys.executable, __file__, "--delay", str(delay), "--trials", str(2 * streams),
               "--streams", str(streams), "--gain", str(gain), "--lam", str(lam)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"delay": delay, "lam": lam, "peak_rss_mb": result["peak_rss_mb"],
            "steps": 2 * (40 + delay), "wall_seconds": result["wall_seconds"]}


def write_outputs(args: argparse.Namespace, learner: hs.StreamLearner, rows: list,
                  last: tuple) -> dict:
    """Checkpoint (with the equivalent run config), metrics rows and plots into args.out."""
    from hypr_stream import cli, plots
    from hypr_stream import config as cfg
    from hypr_stream.outputs import MetricsLog

    out = Path(args.out)
    (out / "metrics.jsonl").unlink(missing_ok=True)
    log = MetricsLog(out / "metrics.jsonl")
    for row in rows:
        log.write(row)
    log.close()
    config = cfg.load(data={
        "network": {"n_in": 15, "hidden": [args.hidden], "n_out": 2, "init_gain": args.gain,
                    "model_options": {"variant": "exact", "omega_init": list(args.omega),
                                      "b_offset_init": list(args.b_offset)}},
        "learner": {"rule": args.rule, "lam": learner.lam, "lr": args.lr,
                    "update_every": None},
        "source": {"uri": f"synthetic:cue?delay={args.delay}&batch={args.streams}"},
        "checkpoint": {"path": str(out / "checkpoint.pt")}, "seed": args.seed})
    path = cli.save_checkpoint(learner, out / "checkpoint.pt", config, {"stopped_by": "done"})
    spikes = cli.hidden_spikes(learner, *last)
    written = plots.write_plots(out / "plots", rows, spikes)
    return {"checkpoint": str(path), "plots": [str(p) for p in written]}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    net = hs.RSNN(15, [args.hidden], 2, neuron="brf", variant="exact", init_gain=args.gain,
                  omega_init=tuple(args.omega), b_offset_init=tuple(args.b_offset))
    trial_steps = 40 + args.delay
    learner = hs.StreamLearner(net, rule=args.rule, lam=args.lam or trial_steps, lr=args.lr,
                               update_every=None, device="cpu")
    recent: deque[bool] = deque(maxlen=args.last)
    rows: list[dict] = []
    started = time.perf_counter()
    wall = time.monotonic()
    rounds = -(-args.trials // args.streams)
    boundary = np.zeros((trial_steps, args.streams), dtype=bool)
    boundary[0] = True
    for r in range(rounds):
        x, y, mask = cue_batch(args.streams, args.delay, seed=args.seed * 100_003 + r)
        if args.out:
            last = (x, None if learner.state is None else list(learner.state), boundary)
        outputs = learner.learn(x, y, mask, boundary=boundary)
        logits = outputs[-20:].mean(0)
        recent.extend((logits.argmax(-1).numpy() == y[-1]).tolist())
        if (r + 1) % max(1, rounds // 20) == 0 or r == rounds - 1:
            m = learner.metrics
            print(f"trials {(r + 1) * args.streams:6d} | acc(last {len(recent)}) "
                  f"{np.mean(recent):.1%} | step acc {m['accuracy_window']:.1%} | "
                  f"{m['steps_per_second']:.0f} steps/s", flush=True)
            if args.out:
                from hypr_stream.outputs import metrics_row

                row = metrics_row(m, wall, {})
                row["trial_accuracy"] = float(np.mean(recent))
                rows.append(row)
    learner.flush()
    result = {
        "delay": args.delay, "trials": rounds * args.streams, "streams": args.streams,
        "hidden": args.hidden, "rule": args.rule, "lr": args.lr, "seed": args.seed,
        "final_accuracy_last_trials": float(np.mean(recent)), "last_trials": len(recent),
        "wall_seconds": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
    }
    if args.out:
        result.update(write_outputs(args, learner, rows, last))
    if args.memory:
        result["memory"] = [peak_rss_at(d, args.streams, args.gain) for d in args.memory]
        for m in result["memory"]:
            print(f"delay {m['delay']:6d} | λ {m['lam']} | peak RSS {m['peak_rss_mb']:.0f} MiB",
                  flush=True)
    print(f"final accuracy {result['final_accuracy_last_trials']:.1%} over the last "
          f"{len(recent)} trials (chance 50%)", flush=True)
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
