"""Surrogate derivatives ψ(x) for the Heaviside spike H(x) (H(0) = 0).

Each surrogate provides ψ itself (used by the closed-form Jacobians) and a primitive S with
S' = ψ. The spike is computed as ``H(x) + (S(x) - S(x).detach())``: its value is exactly H(x),
and every autodiff path (autograd for BPTT, ``torch.func`` for the generic Jacobians) sees ψ.
One definition therefore serves all learning rules, so they cannot disagree about the surrogate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


class Surrogate:
    """Base class: subclasses define ``grad`` (ψ) and ``primitive`` (S with S' = ψ)."""

    def grad(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def primitive(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def spike(self, x: Tensor) -> Tensor:
        """H(x) in the forward pass, ψ(x) in every derivative."""
        s = self.primitive(x)
        return (x > 0).to(x.dtype) + (s - s.detach())


def _normal_cdf(x: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _normal_pdf(x: Tensor, sigma: float) -> Tensor:
    return torch.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))


@dataclass(frozen=True)
class DoubleGaussian(Surrogate):
    """ψ = γ[(1+p) N(x; 0, σ1) − 2p N(x; 0, σ2)]: a peak with negative side lobes (BRF default)."""

    p: float = 0.15
    sigma1: float = 0.5
    sigma2: float = 3.0
    gamma: float = 0.5

    def grad(self, x: Tensor) -> Tensor:
        return self.gamma * (
            (1 + self.p) * _normal_pdf(x, self.sigma1) - 2 * self.p * _normal_pdf(x, self.sigma2)
        )

    def primitive(self, x: Tensor) -> Tensor:
        return self.gamma * (
            (1 + self.p) * _normal_cdf(x / self.sigma1) - 2 * self.p * _normal_cdf(x / self.sigma2)
        )


@dataclass(frozen=True)
class Slayer(Surrogate):
    """ψ = c·α/2·exp(−α|x|), the SLAYER kernel (SE-adLIF default with α = 5, c = 0.4)."""

    alpha: float = 5.0
    c: float = 0.4

    def grad(self, x: Tensor) -> Tensor:
        return 0.5 * self.c * self.alpha * torch.exp(-self.alpha * x.abs())

    def primitive(self, x: Tensor) -> Tensor:
        # Each branch is evaluated on its own half-line so neither can overflow (a non-finite
        # unselected branch would poison torch.where's gradient).
        pos = 1.0 - torch.exp(-self.alpha * x.clamp(min=0.0))
        neg = torch.exp(self.alpha * x.clamp(max=0.0)) - 1.0
        return 0.5 * self.c * torch.where(x >= 0, pos, neg)


@dataclass(frozen=True)
class StraightThrough(Surrogate):
    """ψ = 1: the spike passes gradients unchanged."""

    def grad(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)

    def primitive(self, x: Tensor) -> Tensor:
        return x


SURROGATES: dict[str, type[Surrogate]] = {
    "double_gaussian": DoubleGaussian,
    "slayer": Slayer,
    "straight_through": StraightThrough,
}


def resolve_surrogate(surrogate: Surrogate | str) -> Surrogate:
    """A surrogate instance from itself or its name; an unknown name is an error naming it."""
    if isinstance(surrogate, Surrogate):
        return surrogate
    if surrogate not in SURROGATES:
        raise ValueError(
            f"unknown surrogate {surrogate!r}; choose one of {sorted(SURROGATES)} "
            "or pass a Surrogate instance"
        )
    return SURROGATES[surrogate]()
