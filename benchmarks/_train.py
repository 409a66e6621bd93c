"""Shared by the accuracy benchmarks (bench_cue.py, bench_ecg.py, and through _classify.py
bench_digits.py, bench_smnist.py): one optimizer step under any
rule, the provenance written beside every result, and the learning-curve plot.

Every rule goes through ``hypr_stream.functional.gradients`` so that HYPR, e-prop and BPTT see
the same network, loss, optimizer, clip and parameter constraints: the only difference between
two rows of a table is the gradient estimate.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hypr_stream import RSNN
from hypr_stream.functional import gradients

ROOT = Path(__file__).resolve().parents[1]
CLIP = 10.0  # global-norm clip before every step, as StreamLearner does by default


def train_step(net: RSNN, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
               mask: Tensor | None, rule: str, lam: int | None, clip: float = CLIP) -> None:
    """One Adam step on the batch: x [T, B, n_in], y [T, B] class indices (−1: no target).

    ``lam`` is HYPR's subsequence length (ignored by the other rules); it changes speed and
    memory, never the gradient (spec §4). After the step the neuron parameters are projected
    back into their valid ranges.
    """
    grads = gradients(net, x, y, mask, rule=rule, lam=lam if rule == "hypr" else None)
    for name, p in net.named_parameters():
        p.grad = grads[name]
    torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    net.constrain_()


def provenance() -> dict[str, Any]:
    """What was measured and where: commit (and whether hypr_stream/ differed from it),
    machine, threads, load, start time. The machine is shared, so the load average matters
    for the wall times."""

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"),
            "hypr_stream_modified": bool(git("status", "--porcelain", "--", "hypr_stream")),
            "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "cores": os.cpu_count(),
            "load_1min_at_start": os.getloadavg()[0], "dtype": "float32",
            "note": "shared machine: other CPU-heavy jobs may have run concurrently, so wall "
                    "times are upper bounds"}


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically, so that a result rewritten after every run is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)


def plot_panels(path: Path, panels: dict[str, list[dict[str, Any]]], xlabel: str,
                ylabel: str, chance: float | None = None) -> Path | None:
    """One panel per key, one line per curve ({"label", "x", "y"}); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot written", flush=True)
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items(), strict=True):
        for curve in curves:
            ax.plot(curve["x"], curve["y"], label=curve["label"], marker=".", markersize=3)
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
