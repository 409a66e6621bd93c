"""The cue task (spec §8) learned online: an endless stream of trials, B streams side by side.

Each stream receives trial after trial (evidence, a silent delay, a cue); the learner sees each
chunk once, predicts first, then learns (prequential), with a boundary at every trial start.
A trial counts as correct when the mean logits over its cue window name its class.

    python demos/cue.py --delay 1000 --trials 2000
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque

import numpy as np
import torch

import hypr_stream as hs
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    net = hs.RSNN(15, [args.hidden], 2, neuron="brf", variant="exact", init_gain=args.gain,
                  omega_init=tuple(args.omega), b_offset_init=tuple(args.b_offset))
    trial_steps = 40 + args.delay
    learner = hs.StreamLearner(net, rule=args.rule, lam=args.lam or trial_steps, lr=args.lr,
                               update_every=None, device="cpu")
    recent: deque[bool] = deque(maxlen=args.last)
    started = time.perf_counter()
    rounds = -(-args.trials // args.streams)
    boundary = np.zeros((trial_steps, args.streams), dtype=bool)
    boundary[0] = True
    for r in range(rounds):
        x, y, mask = cue_batch(args.streams, args.delay, seed=args.seed * 100_003 + r)
        outputs = learner.learn(x, y, mask, boundary=boundary)
        logits = outputs[-20:].mean(0)
        recent.extend((logits.argmax(-1).numpy() == y[-1]).tolist())
        if (r + 1) % max(1, rounds // 20) == 0 or r == rounds - 1:
            m = learner.metrics
            print(f"trials {(r + 1) * args.streams:6d} | acc(last {len(recent)}) "
                  f"{np.mean(recent):.1%} | step acc {m['accuracy_window']:.1%} | "
                  f"{m['steps_per_second']:.0f} steps/s", flush=True)
    learner.flush()
    result = {
        "delay": args.delay, "trials": rounds * args.streams, "streams": args.streams,
        "hidden": args.hidden, "rule": args.rule, "lr": args.lr, "seed": args.seed,
        "final_accuracy_last_trials": float(np.mean(recent)), "last_trials": len(recent),
        "wall_seconds": time.perf_counter() - started,
    }
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
