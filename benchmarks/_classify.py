"""Sequence classification for the accuracy benchmarks (bench_digits.py, bench_smnist.py).

One protocol for every (neuron, rule) pair, so that HYPR and BPTT differ only in the gradient:
mini-batches of whole sequences, the gradient from `hypr_stream.functional.gradients`
(λ = T for HYPR: λ changes speed, never the gradient), global-norm clip, Adam, then the neuron
parameters projected back into range. Per-step cross-entropy on the steps from `mask_from` on (the
spec's online-compatible loss, §5); the prediction is the argmax of the logits summed over those
steps.

Hyper-parameters are chosen on a validation split carved from the training split, never on the
test split: every learning rate in `lrs` trains for `sweep_epochs`; the best (validation accuracy)
continues to `epochs`; the epoch with the best validation accuracy is kept, and only that network
sees the test split, once. A wall-clock budget per pair stops training at an epoch boundary and
says so ("cut_short"), rather than silently reporting a shorter run as the planned one.
"""

from __future__ import annotations

import copy
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from _train import train_step, write_json
from torch import Tensor

from hypr_stream import RSNN

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Split:
    """Samples of one split: x [n, T, C] float32, y [n] int64 class indices."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Time-major x [T, B, C] and labels [B] of the samples in `index`."""
        return self.x[index].transpose(0, 1).contiguous(), self.y[index]


@dataclass(frozen=True)
class Protocol:
    """What stays fixed across rules and neurons in one benchmark."""

    epochs: int
    sweep_epochs: int
    lrs: tuple[float, ...]
    batch: int
    mask_from: int  # first step that carries a target (steps before it are unmasked)
    clip: float
    seed: int
    budget_s: float  # wall clock per (neuron, rule), sweep included

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "lrs": list(self.lrs)}


def step_targets(labels: Tensor, steps: int, mask_from: int) -> tuple[Tensor, Tensor]:
    """Per-step class targets y [T, B] and the mask [T, B] of the steps that count."""
    y = labels.unsqueeze(0).expand(steps, -1).contiguous()
    mask = torch.zeros(steps, labels.shape[0], dtype=torch.bool)
    mask[mask_from:] = True
    return y, mask


@torch.no_grad()
def evaluate(net: RSNN, split: Split, mask_from: int, batch: int = 256) -> dict[str, float]:
    """Mean masked per-step cross-entropy and accuracy (argmax of the summed masked logits)."""
    loss, correct = 0.0, 0
    for start in range(0, len(split), batch):
        x, labels = split.batch(torch.arange(start, min(start + batch, len(split))))
        logits = net(x)[mask_from:]  # [T', B, K]
        ce = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.repeat(logits.shape[0]), reduction="sum")
        loss += float(ce) / logits.shape[0]
        correct += int((logits.sum(0).argmax(-1) == labels).sum())
    return {"loss": loss / len(split), "accuracy": correct / len(split)}


class Trainer:
    """One network, its Adam state and its learning curve, trained epoch by epoch."""

    def __init__(self, build: Callable[[], RSNN], rule: str, lr: float, protocol: Protocol,
                 train: Split, val: Split, probe: Split) -> None:
        torch.manual_seed(protocol.seed)
        self.net = build()
        self.rule, self.lr, self.protocol = rule, lr, protocol
        self.train, self.val, self.probe = train, val, probe
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.order = torch.Generator().manual_seed(protocol.seed)
        self.curve: list[dict[str, float]] = []
        self.best_state = copy.deepcopy(self.net.state_dict())
        self.best_epoch, self.best_val = 0, -1.0
        self.seconds = 0.0

    def epoch(self) -> dict[str, float]:
        """One pass over the training split in a seeded order; appends to and returns the curve."""
        p, started = self.protocol, time.perf_counter()
        order = torch.randperm(len(self.train), generator=self.order)
        for start in range(0, len(order), p.batch):
            x, labels = self.train.batch(order[start:start + p.batch])
            y, mask = step_targets(labels, x.shape[0], p.mask_from)
            train_step(self.net, self.optimizer, x, y, mask, self.rule, lam=None, clip=p.clip)
        train_s = time.perf_counter() - started
        val, probe = evaluate(self.net, self.val, p.mask_from), evaluate(self.net, self.probe,
                                                                          p.mask_from)
        self.seconds += time.perf_counter() - started
        row = {"epoch": len(self.curve) + 1, "train_loss": probe["loss"],
               "train_accuracy": probe["accuracy"], "val_loss": val["loss"],
               "val_accuracy": val["accuracy"], "train_seconds": round(train_s, 2),
               "seconds": round(self.seconds, 2)}
        self.curve.append(row)
        if val["accuracy"] > self.best_val:
            self.best_val, self.best_epoch = val["accuracy"], row["epoch"]
            self.best_state = copy.deepcopy(self.net.state_dict())
        return row


def train_pair(label: str, build: Callable[[], RSNN], rule: str, protocol: Protocol,
               train: Split, val: Split, test: Split, probe: Split,
               max_epochs: int | None = None) -> dict[str, Any]:
    """Sweep the learning rates, continue the best to `epochs`, test the best epoch once.

    `max_epochs` stops at that many epochs: when the budget cut a rule short, the rules after it
    get no more epochs than it had, so a lighter CPU load later cannot favour one rule.
    """
    epochs = protocol.epochs if max_epochs is None else min(protocol.epochs, max_epochs)
    started = time.perf_counter()
    deadline = started + protocol.budget_s
    cut_short: str | None = None
    sweep = []
    for lr in protocol.lrs:
        trainer = Trainer(build, rule, lr, protocol, train, val, probe)
        for _ in range(protocol.sweep_epochs):
            row = trainer.epoch()
            print(f"  {label} {rule} lr={lr:g} sweep epoch {row['epoch']}: "
                  f"val {100 * row['val_accuracy']:.1f}%  ({row['seconds']:.0f} s)", flush=True)
        sweep.append(trainer)
        if time.perf_counter() > deadline:
            cut_short = f"budget of {protocol.budget_s:.0f} s spent during the learning-rate sweep"
            break
    chosen = max(sweep, key=lambda t: t.best_val)  # first of equals: the lower lr listed first
    while cut_short is None and len(chosen.curve) < epochs:
        if time.perf_counter() > deadline:
            cut_short = (f"budget of {protocol.budget_s:.0f} s per (neuron, rule) spent after "
                         f"{len(chosen.curve)} of {protocol.epochs} epochs (shared 2-core CPU)")
            break
        row = chosen.epoch()
        print(f"  {label} {rule} lr={chosen.lr:g} epoch {row['epoch']}: "
              f"train {100 * row['train_accuracy']:.1f}% val {100 * row['val_accuracy']:.1f}%  "
              f"({row['seconds']:.0f} s)", flush=True)
    chosen.net.load_state_dict(chosen.best_state)
    test_result = evaluate(chosen.net, test, protocol.mask_from)
    result = {
        "neuron": label, "rule": rule, "lam": "T (whole sequence)" if rule == "hypr" else None,
        "lr": chosen.lr, "epochs_run": len(chosen.curve), "chosen_epoch": chosen.best_epoch,
        "val_accuracy": chosen.best_val, "test_accuracy": test_result["accuracy"],
        "test_loss": test_result["loss"], "wall_s": round(time.perf_counter() - started, 1),
        "curve": chosen.curve,
        "sweep": [{"lr": t.lr, "best_val_accuracy": max(
                       (row["val_accuracy"] for row in t.curve[:protocol.sweep_epochs]),
                       default=None), "curve": t.curve[:protocol.sweep_epochs]}
                  for t in sweep],
        "parameters": sum(p.numel() for p in chosen.net.parameters()),
    }
    if cut_short:
        result["cut_short"] = cut_short
    elif epochs < protocol.epochs:
        result["cut_short"] = (f"capped at {epochs} of {protocol.epochs} epochs to match an "
                               "earlier rule that the budget cut short")
    print(f"{label} {rule}: test {100 * result['test_accuracy']:.2f}% (lr {chosen.lr:g}, epoch "
          f"{chosen.best_epoch}/{len(chosen.curve)}, {result['wall_s']:.0f} s)", flush=True)
    return result


def epoch_cap(runs: list[dict[str, Any]]) -> int | None:
    """The fewest epochs any earlier run was cut short at (None if none was)."""
    return min((r["epochs_run"] for r in runs if "cut_short" in r), default=None)


def environment() -> dict[str, Any]:
    """Where and with what the numbers were measured."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "commit": commit,
            "machine": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": "float32"}


def gaps(runs: list[dict[str, Any]]) -> dict[str, float]:
    """HYPR − BPTT test accuracy in points, per neuron model that has both."""
    by = {(r["neuron"], r["rule"]): r["test_accuracy"] for r in runs}
    return {n: round(100 * (by[(n, "hypr")] - by[(n, "bptt")]), 2)
            for n in dict.fromkeys(r["neuron"] for r in runs)
            if (n, "hypr") in by and (n, "bptt") in by}


def print_table(runs: list[dict[str, Any]], paper: dict[str, dict[str, float | None]]) -> None:
    """Test accuracy per (neuron, rule) beside the paper's number, then the gaps."""
    print(f"{'neuron':<8} {'rule':<5} {'test %':>7} {'paper %':>8} {'val %':>6} {'lr':>7} "
          f"{'epoch':>7} {'wall s':>7}  note")
    for r in runs:
        ref = paper.get(r["neuron"], {}).get(r["rule"])
        print(f"{r['neuron']:<8} {r['rule']:<5} {100 * r['test_accuracy']:>7.2f} "
              f"{'-' if ref is None else f'{ref:.2f}':>8} {100 * r['val_accuracy']:>6.1f} "
              f"{r['lr']:>7g} {r['chosen_epoch']:>3}/{r['epochs_run']:<3} {r['wall_s']:>7.0f}  "
              f"{'cut short' if 'cut_short' in r else ''}")
    for neuron, gap in gaps(runs).items():
        ref = paper.get(neuron, {})
        paper_gap = (f"{ref['hypr'] - ref['bptt']:+.2f}"
                     if ref.get("hypr") is not None and ref.get("bptt") is not None else "-")
        print(f"HYPR - BPTT, {neuron}: {gap:+.2f} points (paper: {paper_gap})")


def plot_curves(runs: list[dict[str, Any]], title: str, path: Path) -> Path | None:
    """Validation (solid) and training-probe (dashed) accuracy per epoch, one panel per neuron.

    Returns None (and the caller says so) when matplotlib is missing.
    """
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    neurons = list(dict.fromkeys(r["neuron"] for r in runs))
    fig, axes = plt.subplots(1, len(neurons), figsize=(5 * len(neurons), 3.6), squeeze=False)
    colours = {"hypr": "tab:blue", "bptt": "tab:orange"}
    for ax, neuron in zip(axes[0], neurons, strict=True):
        for r in (r for r in runs if r["neuron"] == neuron):
            epochs = [row["epoch"] for row in r["curve"]]
            colour = colours.get(r["rule"], "k")
            ax.plot(epochs, [100 * row["val_accuracy"] for row in r["curve"]], color=colour,
                    label=f"{r['rule']} val (test {100 * r['test_accuracy']:.1f}%)")
            ax.plot(epochs, [100 * row["train_accuracy"] for row in r["curve"]], color=colour,
                    ls="--", alpha=0.6, label=f"{r['rule']} train probe")
            ax.axvline(r["chosen_epoch"], color=colour, ls=":", alpha=0.5)
        ax.set_title(f"{title}: {neuron}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy %")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_result(result: dict[str, Any], path: Path) -> Path:
    """The JSON record, indented (it is read by people as much as by tests), written
    atomically."""
    write_json(path, result)
    return path
