"""PNG plots of a run, when matplotlib is installed (``pip install hypr-stream[plots]``).

- learning_curve.png: windowed prequential accuracy and loss against stream steps;
- raster.png: spikes of every hidden neuron over a recent window (stream 0);
- memory.png: resident memory (MiB) against elapsed seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PLOTS = ("learning_curve.png", "raster.png", "memory.png")


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(folder: str | Path, rows: list[dict[str, Any]],
                spikes: np.ndarray | None = None) -> list[Path]:
    """Write the plots into ``folder``; ``rows`` are metrics rows (see outputs.MetricsLog) and
    ``spikes`` a bool/0-1 array [T, N] of a recent window. Returns the files written (none,
    with a reason printed by the caller, when matplotlib is missing)."""
    if not available():
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    steps = [r.get("steps", 0) for r in rows]

    fig, ax = plt.subplots(figsize=(7, 3.5))
    acc = [r.get("accuracy_window") for r in rows]
    if any(a is not None for a in acc):
        ax.plot(steps, [np.nan if a is None else 100 * a for a in acc], label="accuracy (window)")
        ax.set_ylabel("accuracy %")
        ax.set_ylim(0, 100)
    ax2 = ax.twinx()
    loss = [r.get("loss_window") for r in rows]
    ax2.plot(steps, [np.nan if v is None else v for v in loss], color="tab:red", alpha=0.6,
             label="loss (window)")
    ax2.set_ylabel("loss")
    ax.set_xlabel("stream steps")
    ax.set_title("prequential learning curve")
    fig.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, folder / "learning_curve.png", plt))

    fig, ax = plt.subplots(figsize=(7, 3.5))
    if spikes is not None and spikes.size:
        t, n = np.nonzero(spikes)
        ax.scatter(t, n, s=1, marker="|", color="black")
        ax.set_xlim(0, spikes.shape[0])
        ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
        ax.set_title(f"hidden spikes, last {spikes.shape[0]} steps "
                     f"({float(np.mean(spikes)):.3f} spikes/neuron/step)")
    else:
        ax.set_title("hidden spikes: none recorded")
    ax.set_xlabel("step in window")
    ax.set_ylabel("neuron")
    fig.tight_layout()
    written.append(_save(fig, folder / "raster.png", plt))

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([r.get("elapsed_s", 0) for r in rows], [r.get("rss_mb") for r in rows],
            label="RSS")
    ax.plot([r.get("elapsed_s", 0) for r in rows], [r.get("peak_rss_mb") for r in rows],
            label="peak RSS", linestyle="--")
    ax.set_xlabel("seconds")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.set_title("memory over time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, folder / "memory.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
    return path
