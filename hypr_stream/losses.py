"""Per-step losses, online-compatible: ℓ = (1/B) Σ_b Σ_t m_{t,b} ℓ_{t,b}.

Summing over time (not averaging) keeps a block's loss independent of the blocks around it, so a
stream's gradient is the sum of its subsequences' gradients; dividing by the number of streams B
keeps the scale independent of how many streams run in parallel.

- "ce": class-index targets y [T, B] (int); ℓ_{t,b} = −log softmax(o_t)[y]; y = −1 means none.
- "mse": real targets y [T, B, K]; ℓ_{t,b} = mean_k (o_{t,b,k} − y_{t,b,k})².
The mask [T, B] (bool) marks the steps that have a target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

LOSSES = ("ce", "mse")


@dataclass(frozen=True)
class Targets:
    """Validated targets for T steps of B streams; slicing by time gives a sub-block."""

    y: Tensor  # [T, B] int64 (ce) or [T, B, K] float (mse); masked entries are 0
    mask: Tensor  # [T, B] bool
    loss: str

    def __getitem__(self, steps: slice) -> Targets:
        return Targets(self.y[steps], self.mask[steps], self.loss)


def make_targets(
    y: Tensor, mask: Tensor | None, n_out: int, x: Tensor, loss: str | None = None
) -> Targets:
    """Check y and mask against x [T, B, C] and the network's n_out; infer the loss from y's dtype.

    Errors name the argument, the expected and the actual shape, dtype or value.
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    T, B = x.shape[:2]
    if loss is None:
        loss = "mse" if y.is_floating_point() else "ce"
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    if loss == "ce":
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"y for loss 'ce' must hold integer class indices, got {y.dtype}")
        if y.dim() == 1 and B == 1:
            y = y.unsqueeze(1)
        if tuple(y.shape) != (T, B):
            raise ValueError(f"y for loss 'ce' must have shape {(T, B)}, got {tuple(y.shape)}")
        y = y.to(device=x.device, dtype=torch.long)
        bad = (y < -1) | (y >= n_out)
        if bool(bad.any()):
            raise ValueError(
                f"y holds class index {int(y[bad][0])} outside [-1, {n_out}) (-1 marks no target)"
            )
        valid = y >= 0
    else:
        if not y.is_floating_point():
            raise TypeError(f"y for loss 'mse' must be floating point, got {y.dtype}")
        if y.dim() == 2 and B == 1:
            y = y.unsqueeze(1)
        if tuple(y.shape) != (T, B, n_out):
            raise ValueError(
                f"y for loss 'mse' must have shape {(T, B, n_out)}, got {tuple(y.shape)}"
            )
        y = y.to(device=x.device, dtype=x.dtype)
        valid = torch.ones(T, B, dtype=torch.bool, device=x.device)
    if mask is not None:
        if not isinstance(mask, Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.dim() == 1 and B == 1:
            mask = mask.unsqueeze(1)
        if tuple(mask.shape) != (T, B):
            raise ValueError(f"mask must have shape {(T, B)}, got {tuple(mask.shape)}")
        valid = valid & mask.to(device=x.device, dtype=torch.bool)
    keep = valid if loss == "ce" else valid[..., None]
    return Targets(torch.where(keep, y, torch.zeros_like(y)), valid, loss)


def step_losses(outputs: Tensor, targets: Targets) -> Tensor:
    """Per-step, per-stream losses [T, B] (0 where masked); differentiable for BPTT."""
    if targets.loss == "ce":
        logp = torch.log_softmax(outputs, dim=-1)
        terms = -logp.gather(-1, targets.y.unsqueeze(-1)).squeeze(-1)
    else:
        terms = ((outputs - targets.y) ** 2).mean(-1)
    return torch.where(targets.mask, terms, torch.zeros_like(terms))


def total_loss(outputs: Tensor, targets: Targets) -> Tensor:
    """ℓ = (1/B) Σ_{t,b} m ℓ_{t,b} for outputs [T, B, K]."""
    return step_losses(outputs, targets).sum() / outputs.shape[1]


def loss_cotangent(outputs: Tensor, targets: Targets) -> Tensor:
    """dℓ/do [T, B, K] in closed form, the learning signal at the readout."""
    mask = targets.mask[..., None].to(outputs.dtype) / outputs.shape[1]
    if targets.loss == "ce":
        onehot = torch.nn.functional.one_hot(targets.y, outputs.shape[-1]).to(outputs.dtype)
        return (torch.softmax(outputs, dim=-1) - onehot) * mask
    return 2.0 * (outputs - targets.y) / outputs.shape[-1] * mask
