"""What a run sends out: metrics as JSON lines, predictions for the rest of a pipeline, memory.

- ``MetricsLog``: one JSON object per line, appended and flushed per row, so ``tail -f`` and
  a crash both see whole lines. Keys: ``time`` (unix s), ``elapsed_s``, the learner's metrics
  (steps, updates, loss, accuracy, *_window, steps_per_second, ...), ``rss_mb``, ``peak_rss_mb``
  and ``source`` (its counters).
- ``PredictionSink``: per chunk, the class predicted at each step (argmax of the outputs; the
  outputs themselves for ``loss: mse``). To ``zmq+tcp://127.0.0.1:5560?topic=pred`` (a PUB that
  binds; read it with ``open_source("zmq+tcp://127.0.0.1:5560?pattern=sub&topic=pred")``: x is
  the outputs float32 [T, (B,) K], y the predicted class int64 [T, (B)]) or to a ``.jsonl`` file
  (``{"seq", "step", "pred"}`` per chunk, pred nested [T][B]).
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident memory of this process now, in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class MetricsLog:
    """Append JSON lines to ``path`` (created with its folder); ``None`` keeps rows in memory
    only. The last ``keep`` rows stay in ``rows`` for plots (bounded memory)."""

    def __init__(self, path: str | Path | None, keep: int = 5000) -> None:
        self.path = None if path is None else Path(path)
        self.rows: list[dict[str, Any]] = []
        self.keep = keep
        self._file = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a")  # noqa: SIM115 - closed in close()

    def write(self, row: dict[str, Any]) -> dict[str, Any]:
        row = _plain(row)
        self.rows.append(row)
        if len(self.rows) > self.keep:
            del self.rows[: len(self.rows) - self.keep]
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
        return row

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class PredictionSink:
    """Publishes each chunk's predictions; see the module docstring for the two targets."""

    def __init__(self, target: str, loss: str = "ce") -> None:
        self.target, self.loss = target, loss
        self.sent = 0
        self._publisher = None
        self._file = None
        if target.startswith("zmq+"):
            from urllib.parse import parse_qsl, urlsplit

            from sources.zeromq import ZmqPublisher

            parts = urlsplit(target)
            query = dict(parse_qsl(parts.query))
            transport = parts.scheme.split("+", 1)[1]
            endpoint = f"{transport}://{parts.netloc + parts.path}"
            self._publisher = ZmqPublisher(endpoint, topic=query.get("topic", "pred"))
            self.endpoint = self._publisher.endpoint
        else:
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a")  # noqa: SIM115 - closed in close()
            self.endpoint = str(path)

    def send(self, outputs: torch.Tensor, step: int, seq: int) -> None:
        """``outputs`` [T, (B,) K] of the chunk that starts at stream step ``step``."""
        out = outputs.detach().to("cpu", torch.float32).numpy()
        pred = out.argmax(-1).astype(np.int64) if self.loss == "ce" else None
        if self._publisher is not None:
            self._publisher.send(np.ascontiguousarray(out),
                                 y=None if pred is None else np.ascontiguousarray(pred))
        else:
            row = {"seq": seq, "step": step,
                   "pred": (pred if pred is not None else out).tolist()}
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
        self.sent += 1

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None
        if self._file is not None:
            self._file.close()
            self._file = None


def metrics_row(metrics: dict[str, Any], started: float, source_counters: dict[str, int]
                ) -> dict[str, Any]:
    """One metrics row: the learner's figures plus time, memory and the source's counters."""
    row = {"time": time.time(), "elapsed_s": time.monotonic() - started}
    row.update(metrics)
    row["rss_mb"] = rss_mb()
    row["peak_rss_mb"] = peak_rss_mb()
    row["source"] = dict(source_counters)
    return row
