"""SE-adLIF: adaptive LIF discretised by symplectic Euler (Baronig et al. 2024), spec §2.

State s = (u, w, z); per-neuron parameters κ_u, κ_w ∈ [0, 1] (time constants by interpolation:
τ_u = 5 + 20 κ_u, τ_w = 60 + 240 κ_w), a ∈ [0, 1], b ∈ [0, 2]; q = 120, threshold 1:

    ũ_t = α u_{t-1} + (1−α)(I_t − w_{t-1})             α = exp(−1/τ_u)
    z_t = H(ũ_t − 1);   u_t = ũ_t (1 − z_t)           (reset; derivative through z stopped)
    w_t = β w_{t-1} + (1−β) q (a u_t + b z_t)          β = exp(−1/τ_w), post-reset u_t and z_t

Training κ rather than τ keeps the time constants inside their ranges with a simple clip.
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
from .surrogates import Slayer, Surrogate


@dataclass(frozen=True)
class SEAdLIF(NeuronModel):
    """Adaptive LIF with symplectic-Euler coupling of potential and adaptation."""

    state_names = ("u", "w", "z")
    param_names = ("kappa_u", "kappa_w", "a", "b")

    tau_u_range: tuple[float, float] = (5.0, 25.0)
    tau_w_range: tuple[float, float] = (60.0, 300.0)
    a_range: tuple[float, float] = (0.0, 1.0)
    b_range: tuple[float, float] = (0.0, 2.0)
    q: float = 120.0
    theta: float = 1.0
    surrogate: Surrogate | str = Slayer(alpha=5.0, c=0.4)

    def init_params(self, n: int) -> Params:
        return {
            "kappa_u": uniform(n, (0.0, 1.0)),
            "kappa_w": uniform(n, (0.0, 1.0)),
            "a": uniform(n, self.a_range),
            "b": uniform(n, self.b_range),
        }

    def constrain_(self, params: Params) -> None:
        params["kappa_u"].clamp_(0.0, 1.0)
        params["kappa_w"].clamp_(0.0, 1.0)
        params["a"].clamp_(*self.a_range)
        params["b"].clamp_(*self.b_range)

    def _decay(self, kappa: Tensor, tau_range: tuple[float, float]) -> tuple[Tensor, Tensor]:
        """exp(−1/τ(κ)) and its derivative with respect to κ."""
        lo, hi = tau_range
        tau = lo + kappa * (hi - lo)
        decay = torch.exp(-1.0 / tau)
        return decay, decay / tau**2 * (hi - lo)

    def step(self, I: Tensor, s: Tensor, params: Params) -> tuple[Tensor, Tensor]:
        u, w, _ = s.unbind(-1)
        alpha = self._decay(params["kappa_u"], self.tau_u_range)[0]
        beta = self._decay(params["kappa_w"], self.tau_w_range)[0]
        u_pre = alpha * u + (1.0 - alpha) * (I - w)
        z_new = self.surrogate.spike(u_pre - self.theta)
        u_new = u_pre * (1.0 - z_new.detach())
        w_new = beta * w + (1.0 - beta) * self.q * (params["a"] * u_new + params["b"] * z_new)
        return z_new, stack_components(u_new, w_new, z_new)

    def jacobians(self, I: Tensor, s: Tensor, params: Params) -> Jacobians:
        u, w, _ = s.unbind(-1)
        a, b = params["a"], params["b"]
        alpha, dalpha = self._decay(params["kappa_u"], self.tau_u_range)
        beta, dbeta = self._decay(params["kappa_w"], self.tau_w_range)
        u_pre = alpha * u + (1.0 - alpha) * (I - w)
        x = u_pre - self.theta
        z_new = (x > 0).to(u.dtype)
        psi = self.surrogate.grad(x)
        keep = 1.0 - z_new
        u_new = u_pre * keep
        zero = torch.zeros_like(u)
        # Partials of ũ w.r.t. (u, w, z), I and (κ_u, κ_w, a, b).
        pre_s = [alpha, -(1.0 - alpha), zero]
        pre_i = 1.0 - alpha
        pre_p = [dalpha * (u - (I - w)), zero, zero, zero]
        gain = (1.0 - beta) * self.q

        def rows(pre: list) -> tuple[list, list, list]:
            """(u_t, w_t, z_t) partials from ũ_t's; w_t's own direct terms are added after."""
            du = [keep * x_ for x_ in pre]
            dz = [psi * x_ for x_ in pre]
            dw = [gain * (a * du_ + b * dz_) for du_, dz_ in zip(du, dz, strict=True)]
            return du, dw, dz

        du, dw, dz = rows(pre_s)
        dw[1] = dw[1] + beta
        A = component_matrix([du, dw, dz], like=u)
        cu, cw, cz = rows([pre_i])
        c = component_vector([cu[0], cw[0], cz[0]], like=u)
        du, dw, dz = rows(pre_p)
        dw[1] = dw[1] + dbeta * (w - self.q * (a * u_new + b * z_new))
        dw[2] = dw[2] + gain * u_new
        dw[3] = dw[3] + gain * z_new
        D = component_matrix([du, dw, dz], like=u)
        return Jacobians(A, c, D)
