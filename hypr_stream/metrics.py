"""Prequential metrics (test-then-train, as River and scikit-multiflow evaluate streams).

Every output is scored before the learner learns from its step. Scores are committed one
subsequence at a time, in stream order, so running and windowed figures are identical however
the stream was cut into chunks; steps still in the buffer are scored on read.

- running: loss and accuracy over every target step so far;
- windowed: over the last ``window`` target steps (a fixed ring: constant memory).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .losses import Targets, step_losses


@dataclass
class Scores:
    """Per-target-step loss and correctness, in stream order (t-major, then stream)."""

    loss: Tensor  # [K] float64
    correct: Tensor  # [K] bool (empty for regression)

    @classmethod
    def of(cls, outputs: Tensor, targets: Targets) -> Scores:
        mask = targets.mask
        loss = step_losses(outputs, targets)[mask].double().cpu()
        if targets.loss == "ce":
            correct = (outputs.argmax(-1) == targets.y)[mask].cpu()
        else:
            correct = torch.zeros(0, dtype=torch.bool)
        return cls(loss, correct)

    @classmethod
    def empty(cls) -> Scores:
        return cls(torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.bool))


class Prequential:
    """Running and windowed loss/accuracy plus the learner's counters."""

    def __init__(self, window: int = 1000) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.loss_sum = torch.zeros((), dtype=torch.float64)
        self.correct = 0
        self.scored = 0  # target steps with a class target
        self.target_steps = 0
        self.recent = Scores.empty()

    def commit(self, scores: Scores) -> None:
        """Fold one subsequence's scores in (called in stream order)."""
        self.loss_sum += scores.loss.sum()
        self.target_steps += scores.loss.numel()
        self.correct += int(scores.correct.sum())
        self.scored += scores.correct.numel()
        self.recent = _tail(self.recent, scores, self.window)

    def get(self, pending: Scores | None = None) -> dict[str, float | int | None]:
        """Current figures, including ``pending`` (buffered, not yet committed) scores."""
        pending = pending or Scores.empty()
        target_steps = self.target_steps + pending.loss.numel()
        loss_sum = float(self.loss_sum + pending.loss.sum())
        correct = self.correct + int(pending.correct.sum())
        scored = self.scored + pending.correct.numel()
        recent = _tail(self.recent, pending, self.window)
        return {
            "target_steps": target_steps,
            "loss": loss_sum / target_steps if target_steps else None,
            "accuracy": correct / scored if scored else None,
            "loss_window": float(recent.loss.mean()) if recent.loss.numel() else None,
            "accuracy_window": (float(recent.correct.double().mean())
                                if recent.correct.numel() else None),
        }

    def state_dict(self) -> dict:
        return {
            "window": self.window,
            "loss_sum": self.loss_sum.clone(),
            "correct": self.correct,
            "scored": self.scored,
            "target_steps": self.target_steps,
            "recent_loss": self.recent.loss.clone(),
            "recent_correct": self.recent.correct.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.window = state["window"]
        self.loss_sum = state["loss_sum"].clone()
        self.correct, self.scored = state["correct"], state["scored"]
        self.target_steps = state["target_steps"]
        self.recent = Scores(state["recent_loss"].clone(), state["recent_correct"].clone())


def _tail(old: Scores, new: Scores, window: int) -> Scores:
    return Scores(torch.cat([old.loss, new.loss])[-window:],
                  torch.cat([old.correct, new.correct])[-window:])


def format_metrics(metrics: dict) -> str:
    """One human-readable line, for terminals and log files alike."""
    def num(key: str, fmt: str) -> str:
        value = metrics.get(key)
        return "-" if value is None else format(value, fmt)

    return (
        f"steps {metrics['steps']:,} | updates {metrics['updates']:,} | "
        f"loss {num('loss_window', '.4f')} (all {num('loss', '.4f')}) | "
        f"acc {num('accuracy_window', '.2%')} (all {num('accuracy', '.2%')}) | "
        f"{num('steps_per_second', ',.0f')} steps/s | rejected {metrics['rejected']}"
    )
