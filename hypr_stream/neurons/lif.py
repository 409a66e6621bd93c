"""LIF: ALIF with β = 0, carried with only (u, z) so its eligibility is as small as it can be.

    u_t = α u_{t-1} + (1−α) I_t − b_0 z_{t-1}      α = exp(−1/τ_u), τ_u ≥ 10
    z_t = H(u_t − b_0)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .alif import decay
from .base import (
    Jacobians,
    NeuronModel,
    Params,
    component_matrix,
    component_vector,
    stack_components,
    uniform,
)
from .surrogates import Surrogate


@dataclass(frozen=True)
class LIF(NeuronModel):
    """Leaky integrate-and-fire with reset by subtraction; the cheapest spiking model."""

    state_names = ("u", "z")
    param_names = ("tau_u",)

    b0: float = 0.01
    tau_u_init: tuple[float, float] = (15.0, 25.0)
    tau_u_min: float = 10.0
    surrogate: Surrogate | str = "double_gaussian"

    def init_params(self, n: int) -> Params:
        return {"tau_u": uniform(n, self.tau_u_init)}

    def constrain_(self, params: Params) -> None:
        params["tau_u"].clamp_(min=self.tau_u_min)

    def step(self, I: Tensor, s: Tensor, params: Params) -> tuple[Tensor, Tensor]:
        u, z = s.unbind(-1)
        alpha = decay(params["tau_u"])[0]
        u_new = alpha * u + (1.0 - alpha) * I - self.b0 * z
        z_new = self.surrogate.spike(u_new - self.b0)
        return z_new, stack_components(u_new, z_new)

    def jacobians(self, I: Tensor, s: Tensor, params: Params) -> Jacobians:
        u, z = s.unbind(-1)
        alpha, dalpha = decay(params["tau_u"])
        u_new = alpha * u + (1.0 - alpha) * I - self.b0 * z
        psi = self.surrogate.grad(u_new - self.b0)
        du = [alpha.expand_as(u), torch.full_like(u, -self.b0)]
        A = component_matrix([du, [psi * x for x in du]], like=u)
        c_u = (1.0 - alpha).expand_as(u)
        c = component_vector([c_u, psi * c_u], like=u)
        du_tau = dalpha * (u - I)
        D = component_matrix([[du_tau], [psi * du_tau]], like=u)
        return Jacobians(A, c, D)
