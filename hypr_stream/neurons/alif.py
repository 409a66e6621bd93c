"""ALIF: LIF with an adaptive threshold, in the form of Yin et al. 2021 (spec §2).

State s = (u, a, z); per-neuron parameters τ_u ≥ 10 and τ_a ≥ 100 (kept there by clipping);
b_0 = 0.01, β = 1.8:

    a_t = ρ a_{t-1} + (1−ρ) z_{t-1}          ρ = exp(−1/τ_a)
    A_t = b_0 + β a_t
    u_t = α u_{t-1} + (1−α) I_t − A_t z_{t-1}   α = exp(−1/τ_u)
    z_t = H(u_t − A_t)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

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


def decay(tau: Tensor) -> tuple[Tensor, Tensor]:
    """exp(−1/τ) and its derivative with respect to τ."""
    k = torch.exp(-1.0 / tau)
    return k, k / tau**2


@dataclass(frozen=True)
class ALIF(NeuronModel):
    """Adaptive-threshold LIF; ``beta=0`` makes it a plain LIF (see lif.py for the lean one)."""

    state_names = ("u", "a", "z")
    param_names = ("tau_u", "tau_a")

    b0: float = 0.01
    beta: float = 1.8
    tau_u_init: tuple[float, float] = (15.0, 25.0)
    tau_a_init: tuple[float, float] = (150.0, 250.0)
    tau_u_min: float = 10.0
    tau_a_min: float = 100.0
    surrogate: Surrogate | str = "double_gaussian"

    def init_params(self, n: int) -> Params:
        return {"tau_u": uniform(n, self.tau_u_init), "tau_a": uniform(n, self.tau_a_init)}

    def constrain_(self, params: Params) -> None:
        params["tau_u"].clamp_(min=self.tau_u_min)
        params["tau_a"].clamp_(min=self.tau_a_min)

    def step(self, I: Tensor, s: Tensor, params: Params) -> tuple[Tensor, Tensor]:
        u, a, z = s.unbind(-1)
        alpha = decay(params["tau_u"])[0]
        rho = decay(params["tau_a"])[0]
        a_new = rho * a + (1.0 - rho) * z
        threshold = self.b0 + self.beta * a_new
        u_new = alpha * u + (1.0 - alpha) * I - threshold * z
        z_new = self.surrogate.spike(u_new - threshold)
        return z_new, stack_components(u_new, a_new, z_new)

    def jacobians(self, I: Tensor, s: Tensor, params: Params) -> Jacobians:
        u, a, z = s.unbind(-1)
        alpha, dalpha = decay(params["tau_u"])
        rho, drho = decay(params["tau_a"])
        a_new = rho * a + (1.0 - rho) * z
        threshold = self.b0 + self.beta * a_new
        u_new = alpha * u + (1.0 - alpha) * I - threshold * z
        psi = self.surrogate.grad(u_new - threshold)
        zero = torch.zeros_like(u)
        bz = self.beta * z
        # Rows over columns (u, a, z) for the state, then (τ_u, τ_a) for the parameters.
        da = [zero, rho.expand_as(u), 1.0 - rho.expand_as(u)]
        du = [alpha.expand_as(u), -bz * rho, -(bz * (1.0 - rho) + threshold)]
        da_p = [zero, drho * (a - z)]
        du_p = [dalpha * (u - I), -bz * drho * (a - z)]

        def spike_row(du_: list, da_: list) -> list:
            return [psi * (x - self.beta * y) for x, y in zip(du_, da_, strict=True)]

        A = component_matrix([du, da, spike_row(du, da)], like=u)
        c_u = (1.0 - alpha).expand_as(u)
        c = component_vector([c_u, zero, psi * c_u], like=u)
        D = component_matrix([du_p, da_p, spike_row(du_p, da_p)], like=u)
        return Jacobians(A, c, D)
