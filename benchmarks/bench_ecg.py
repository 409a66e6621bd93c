"""ECG (QTDB) per-step accuracy: HYPR against BPTT for BRF 1×36, ALIF 2×36, SE-adLIF 2×64.

    python benchmarks/bench_ecg.py [--short] [--data ../shared/data/qtdb] [--models brf alif]

QTDB as preprocessed by Yin et al. 2021 (the HYPR paper's ECG task, spec §8): 4 input channels
with values in {-1, 0, 1}, 1301 steps per record, one of 6 wave classes on every step; the
score is per-step accuracy. The network sizes are the paper's.

Protocol, so that the test split informs no choice: the last ``--val-fraction`` of the training
records is a validation split. For each (model, method) a fresh network (same seed, so the
same initial weights for both methods) is trained with each learning rate in ``--lrs`` for
``--select-epochs`` epochs; the one with the best validation accuracy continues to ``--epochs``
epochs, and the epoch with the best validation accuracy is kept. Only then is QTDB_test scored,
once per (model, method). Training is Adam on batches of whole records (the loss summed over
all steps, each step a target), one step per batch, the gradient from
``hypr_stream.functional.gradients`` under the rule; the batches come in the same order for
every run. HYPR's λ changes speed, never the gradient (spec §4).

Writes a table to stdout, JSON (configuration, seeds, curves, wall time per run) and a PNG of
the validation curves; both are rewritten after every (model, method), so a run stopped for
time keeps the finished rows. Skips with a message (exit 0) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _train import CLIP, ROOT, plot_panels, provenance, train_step, write_json
from torch import Tensor

from hypr_stream import RSNN

N_IN, N_OUT = 4, 6
# The paper's sizes; BRF's ω and b' initialisation for ECG from spec §2. Each gain was picked
# (before any training, on the first 16 training records) for an initial firing rate of a few
# percent: the input is sparse (6% of entries non-zero) and BRF integrates δ·I with δ = 0.01.
MODELS: dict[str, dict[str, Any]] = {
    "brf": {"hidden": [36], "neuron": "brf", "init_gain": 80.0, "omega_init": (3.0, 5.0),
            "b_offset_init": (0.1, 1.0)},
    "alif": {"hidden": [36, 36], "neuron": "alif", "init_gain": 3.0},
    "se_adlif": {"hidden": [64, 64], "neuron": "se_adlif", "init_gain": 20.0},
}
PAPER = "the spec (hypr-method.md §8) names the ECG task but gives no accuracy for it"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--short", action="store_true",
                   help="BRF only, 12 training / 4 validation / 8 test records, one epoch, "
                        "one learning rate (under a minute)")
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "qtdb"),
                   help="folder with QTDB_train.mat and QTDB_test.mat")
    p.add_argument("--models", nargs="+", default=["brf", "alif", "se_adlif"],
                   choices=sorted(MODELS))
    p.add_argument("--methods", nargs="+", default=["hypr", "bptt"],
                   choices=["hypr", "bptt", "eprop"])
    p.add_argument("--lrs", type=float, nargs="+", default=[0.005, 0.02],
                   help="learning rates compared on the validation split")
    p.add_argument("--select-epochs", type=int, default=2,
                   help="epochs after which the learning rate is chosen")
    p.add_argument("--epochs", type=int, default=8, help="epochs of the chosen run in all")
    p.add_argument("--batch", type=int, default=32, help="records per optimizer step")
    p.add_argument("--lam", type=int, default=256, help="HYPR's λ")
    p.add_argument("--val-fraction", type=float, default=0.15,
                   help="the last fraction of QTDB_train records held out for validation")
    p.add_argument("--records", type=int, default=None,
                   help="use only the first N training records (and N//2 test records)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cut-short", default=None,
                   help="why this run is smaller than the paper's, recorded in the JSON")
    p.add_argument("--out", default="benchmarks/results/ecg.json")
    args = p.parse_args(argv)
    if args.short:
        args.models, args.lrs, args.select_epochs, args.epochs = ["brf"], [0.02], 1, 1
        args.records, args.batch = 16, 4
        args.val_fraction = 0.25
    if not 1 <= args.select_epochs <= args.epochs:
        p.error("need 1 <= --select-epochs <= --epochs")
    return args


def load(path: Path, records: int | None) -> tuple[Tensor, Tensor]:
    """x float32 [T, N, 4] in {-1, 0, 1}, y int64 [T, N] (class per step): time-major."""
    import scipy.io

    mat = scipy.io.loadmat(path)
    x = torch.from_numpy(mat["x"][:records].astype(np.float32)).transpose(0, 1).contiguous()
    y = torch.from_numpy(mat["y"][:records].argmax(-1).astype(np.int64)).T.contiguous()
    return x, y


def accuracy(net: RSNN, x: Tensor, y: Tensor, batch: int = 128) -> float:
    """Per-step accuracy over all records and steps."""
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[1], batch):
            correct += int((net(x[:, i:i + batch]).argmax(-1) == y[:, i:i + batch]).sum())
    return correct / y.numel()


class Run:
    """One network, its optimizer and its validation curve, trained epoch by epoch."""

    def __init__(self, args: argparse.Namespace, model: str, method: str, lr: float) -> None:
        options = dict(MODELS[model])
        hidden = options.pop("hidden")
        torch.manual_seed(args.seed)
        self.net = RSNN(N_IN, hidden, N_OUT, **options)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.args, self.method, self.lr = args, method, lr
        self.val_curve: list[float] = []
        self.epoch_seconds: list[float] = []
        self.best: tuple[float, int, dict[str, Tensor]] | None = None

    def epoch(self, x: Tensor, y: Tensor, x_val: Tensor, y_val: Tensor) -> None:
        """One pass over the training records (order seeded per epoch: the same for every
        run), then score the validation split and keep the best state so far."""
        epoch = len(self.val_curve)
        order = torch.from_numpy(
            np.random.default_rng(self.args.seed * 1000 + epoch).permutation(x.shape[1]))
        started = time.perf_counter()
        for i in range(0, len(order), self.args.batch):
            idx = order[i:i + self.args.batch]
            train_step(self.net, self.optimizer, x[:, idx], y[:, idx], None, self.method,
                       self.args.lam)
        self.epoch_seconds.append(round(time.perf_counter() - started, 1))
        acc = accuracy(self.net, x_val, y_val)
        self.val_curve.append(acc)
        if self.best is None or acc > self.best[0]:
            self.best = (acc, epoch + 1, copy.deepcopy(self.net.state_dict()))


def run_model(args: argparse.Namespace, model: str, method: str,
              data: tuple[Tensor, ...]) -> dict[str, Any]:
    """Choose the learning rate and the epoch on validation, then score the test split once."""
    x, y, x_val, y_val, x_test, y_test = data
    started = time.perf_counter()
    runs = [Run(args, model, method, lr) for lr in args.lrs]
    for run in runs:
        for _ in range(args.select_epochs):
            run.epoch(x, y, x_val, y_val)
        print(f"  {model} {method} lr {run.lr:g}: validation "
              f"{', '.join(f'{a:.1%}' for a in run.val_curve)}", flush=True)
    chosen = max(runs, key=lambda r: r.val_curve[-1])
    for _ in range(args.epochs - args.select_epochs):
        chosen.epoch(x, y, x_val, y_val)
        print(f"  {model} {method} lr {chosen.lr:g} epoch {len(chosen.val_curve)}: "
              f"validation {chosen.val_curve[-1]:.1%}", flush=True)
    best_val, best_epoch, state = chosen.best
    chosen.net.load_state_dict(state)
    test = accuracy(chosen.net, x_test, y_test)
    return {"model": model, "method": method, "hidden": MODELS[model]["hidden"],
            "lam": args.lam if method == "hypr" else None,
            "lr_selection": {f"{r.lr:g}": r.val_curve for r in runs},
            "lr": chosen.lr, "best_epoch": best_epoch, "val_accuracy": best_val,
            "val_curve": chosen.val_curve, "test_accuracy": test,
            "epoch_seconds": chosen.epoch_seconds,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "parameters": sum(p.numel() for p in chosen.net.parameters())}


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'model':9} {'size':>6} {'method':6} {'lr':>6} {'epoch':>5} {'val':>6} "
            f"{'test':>6} {'wall s':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        size = f"{len(r['hidden'])}×{r['hidden'][0]}"
        lines.append(f"{r['model']:9} {size:>6} {r['method']:6} {r['lr']:6g} "
                     f"{r['best_epoch']:5d} {r['val_accuracy']:6.1%} {r['test_accuracy']:6.1%} "
                     f"{r['wall_seconds']:7.1f}")
    return "\n".join(lines)


def plot(path: Path, rows: list[dict[str, Any]], majority: float) -> Path | None:
    panels: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        panels.setdefault(f"{r['model']} {len(r['hidden'])}×{r['hidden'][0]}", []).append({
            "label": f"{r['method']} (lr {r['lr']:g})",
            "x": list(range(1, len(r["val_curve"]) + 1)), "y": r["val_curve"]})
    return plot_panels(path, panels, "epoch", "validation per-step accuracy", majority)


def gaps(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Test accuracy HYPR − BPTT per model, in percentage points."""
    by = {(r["model"], r["method"]): r["test_accuracy"] for r in rows}
    return {m: round(100 * (by[(m, "hypr")] - by[(m, "bptt")]), 2)
            for m in dict.fromkeys(r["model"] for r in rows)
            if (m, "hypr") in by and (m, "bptt") in by}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    folder = Path(args.data)
    files = [folder / "QTDB_train.mat", folder / "QTDB_test.mat"]
    if not all(f.is_file() for f in files):
        reason = f"no QTDB_train.mat / QTDB_test.mat in {folder} (pass --data PATH)"
        print(f"skipped: {reason}", flush=True)
        print(json.dumps({"skipped": reason}), flush=True)
        sys.exit(0)
    x_all, y_all = load(files[0], args.records)
    x_test, y_test = load(files[1], None if args.records is None else max(1, args.records // 2))
    n_val = max(1, round(args.val_fraction * x_all.shape[1]))
    n_train = x_all.shape[1] - n_val
    data = (x_all[:, :n_train], y_all[:, :n_train], x_all[:, n_train:], y_all[:, n_train:],
            x_test, y_test)
    majority = float(torch.bincount(y_test.reshape(-1)).max() / y_test.numel())
    out = Path(args.out)
    config = {k: v for k, v in vars(args).items() if k != "out"}
    config.update(models_options={m: MODELS[m] for m in args.models},
                  split={"train_records": n_train, "val_records": n_val,
                         "val": f"QTDB_train records {n_train}..{n_train + n_val - 1}",
                         "test_records": x_test.shape[1], "steps_per_record": x_all.shape[0]},
                  loss="per-step cross-entropy, summed over steps, mean over records",
                  optimizer=f"Adam, global-norm clip {CLIP}")
    result: dict[str, Any] = {"benchmark": "ecg", "config": config, "paper": PAPER,
                              "test_majority_class_rate": majority,
                              "provenance": provenance(), "runs": []}
    if args.cut_short:
        result["cut_short"] = args.cut_short
    for model in args.models:
        for method in args.methods:
            row = run_model(args, model, method, data)
            result["runs"].append(row)
            result["gap_hypr_minus_bptt_points"] = gaps(result["runs"])
            print(f"{model} {method}: validation {row['val_accuracy']:.1%} (epoch "
                  f"{row['best_epoch']}, lr {row['lr']:g}), test {row['test_accuracy']:.1%}, "
                  f"{row['wall_seconds']:.0f} s", flush=True)
            png = plot(out.with_suffix(".png"), result["runs"], majority)
            result["plot"] = None if png is None else str(png)
            write_json(out, result)
    print(table(result["runs"]))
    print(f"HYPR − BPTT (test, points): {result['gap_hypr_minus_bptt_points']}")
    print(f"majority class on test: {majority:.1%}; paper: {PAPER}")
    return result


if __name__ == "__main__":
    main()
