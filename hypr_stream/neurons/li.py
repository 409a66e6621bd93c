"""Readouts: the leaky integrator (LI) and the plain linear readout, as d = 1 models.

    LI:      u_t = α u_{t-1} + (1−α) I_t,   α = exp(−1/τ_out), τ_out trainable;  logits o_t = u_t
    linear:  u_t = I_t

Treating the readout as a layer lets every rule handle it with the same code as hidden layers;
its eligibility is exact, so all rules give the readout BPTT's gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .alif import decay
from .base import Jacobians, NeuronModel, Params, uniform


@dataclass(frozen=True)
class LI(NeuronModel):
    """Leaky-integrator readout with a trainable time constant per output unit."""

    state_names = ("u",)
    param_names = ("tau",)
    output = "u"

    tau_init: tuple[float, float] = (15.0, 25.0)
    tau_min: float = 1.0

    def init_params(self, n: int) -> Params:
        return {"tau": uniform(n, self.tau_init)}

    def constrain_(self, params: Params) -> None:
        params["tau"].clamp_(min=self.tau_min)

    def step(self, I: Tensor, s: Tensor, params: Params) -> tuple[Tensor, Tensor]:
        alpha = decay(params["tau"])[0]
        u_new = alpha * s[..., 0] + (1.0 - alpha) * I
        return u_new, u_new.unsqueeze(-1)

    def jacobians(self, I: Tensor, s: Tensor, params: Params) -> Jacobians:
        alpha, dalpha = decay(params["tau"])
        u = s[..., 0]
        A = alpha.expand_as(u)[None, None]
        c = (1.0 - alpha).expand_as(u)[None]
        D = (dalpha * (u - I))[None, None]
        return Jacobians(A, c, D)


@dataclass(frozen=True)
class Linear(NeuronModel):
    """Memoryless readout o_t = W z_t + b: with one feed-forward layer, e-prop is exact."""

    state_names = ("u",)
    output = "u"

    def step(self, I: Tensor, s: Tensor, params: Params) -> tuple[Tensor, Tensor]:
        return I, I.unsqueeze(-1)

    def jacobians(self, I: Tensor, s: Tensor, params: Params) -> Jacobians:
        A = torch.zeros_like(I)[None, None]
        return Jacobians(A, torch.ones_like(I)[None], I.new_zeros(1, 0, *I.shape))
