"""BRF: the balanced resonate-and-fire neuron (Higuchi et al., ICML 2024), spec §2.

State s = (u, v, q, z); per-neuron parameters ω > 0 (angular frequency) and b' > 0 (damping
offset); δ = 0.01, θ = 1:

    p(ω) = (−1 + sqrt(1 − (δω)²)) / δ            divergence boundary (needs δω ≤ 1)
    b_t  = p(ω) − b' − q_{t-1}
    u_t  = u_{t-1} + δ(b_t u_{t-1} − ω v_{t-1} + I_t)          (variant "euler")
    v_t  = v_{t-1} + δ(ω u_{t-1} + b_t v_{t-1})
    z_t  = H(u_t − θ − q_{t-1})
    q_t  = 0.9 q_{t-1} + z_t

The "exact" variant rotates (u, v) by exp(δ(b_t + iω)) and then adds δI_t; it stays stable for
the very long cue task. q_{t-1} is carried in q and the spike in z, so z_t is read from s_t.
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

VARIANTS = ("euler", "exact")


@dataclass(frozen=True)
class BRF(NeuronModel):
    """Balanced resonate-and-fire neuron; ``variant`` is "euler" or "exact"."""

    state_names = ("u", "v", "q", "z")
    param_names = ("omega", "b_offset")

    delta: float = 0.01
    theta: float = 1.0
    q_decay: float = 0.9
    variant: str = "euler"
    omega_init: tuple[float, float] = (5.0, 10.0)
    b_offset_init: tuple[float, float] = (2.0, 3.0)
    min_value: float = 1e-6
    surrogate: Surrogate | str = "double_gaussian"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.variant not in VARIANTS:
            raise ValueError(f"BRF variant must be one of {VARIANTS}, got {self.variant!r}")

    def init_params(self, n: int) -> Params:
        return {"omega": uniform(n, self.omega_init), "b_offset": uniform(n, self.b_offset_init)}

    def constrain_(self, params: Params) -> None:
        # δω must stay below 1 for p(ω) to exist; its derivative diverges at δω = 1.
        params["omega"].clamp_(self.min_value, (1.0 - self.min_value) / self.delta)
        params["b_offset"].clamp_(min=self.min_value)

    def _p(self, omega: Tensor) -> tuple[Tensor, Tensor]:
        """p(ω) and dp/dω."""
        root = torch.sqrt(1.0 - (self.delta * omega) ** 2)
        return (root - 1.0) / self.delta, -self.delta * omega / root

    def _oscillate(self, I: Tensor, u: Tensor, v: Tensor, b: Tensor, omega: Tensor):
        dt = self.delta
        if self.variant == "euler":
            return u + dt * (b * u - omega * v + I), v + dt * (omega * u + b * v)
        r = torch.exp(dt * b)
        cos, sin = torch.cos(dt * omega), torch.sin(dt * omega)
        return r * (cos * u - sin * v) + dt * I, r * (sin * u + cos * v)

    def step(self, I: Tensor, s: Tensor, params: Params) -> tuple[Tensor, Tensor]:
        u, v, q, _ = s.unbind(-1)
        omega = params["omega"]
        b = self._p(omega)[0] - params["b_offset"] - q
        u_new, v_new = self._oscillate(I, u, v, b, omega)
        z_new = self.surrogate.spike(u_new - self.theta - q)
        q_new = self.q_decay * q + z_new
        return z_new, stack_components(u_new, v_new, q_new, z_new)

    def jacobians(self, I: Tensor, s: Tensor, params: Params) -> Jacobians:
        u, v, q, _ = s.unbind(-1)
        omega = params["omega"]
        p, dp = self._p(omega)
        b = p - params["b_offset"] - q
        dt = self.delta
        # Partials of (u_t, v_t) w.r.t. (u, v, q), ω and b'. b depends on q and b' with slope −1.
        if self.variant == "euler":
            u_new = u + dt * (b * u - omega * v + I)
            uu, uv, uq = 1.0 + dt * b, -dt * omega, -dt * u
            vu, vv, vq = dt * omega, 1.0 + dt * b, -dt * v
            u_om, v_om = dt * (dp * u - v), dt * (u + dp * v)
        else:
            r = torch.exp(dt * b)
            cos, sin = torch.cos(dt * omega), torch.sin(dt * omega)
            ru, rv = cos * u - sin * v, sin * u + cos * v
            u_new = r * ru + dt * I
            uu, uv, uq = r * cos, -r * sin, -dt * r * ru
            vu, vv, vq = r * sin, r * cos, -dt * r * rv
            u_om, v_om = dt * r * (dp * ru - rv), dt * r * (dp * rv + ru)
        u_b, v_b = uq, vq
        psi = self.surrogate.grad(u_new - self.theta - q)
        # z_t = H(u_t − θ − q_{t-1}): its row is ψ times u_t's row, minus ψ on q.
        zu, zv, zq = psi * uu, psi * uv, psi * (uq - 1.0)
        zero = torch.zeros_like(u)
        A = component_matrix(
            [
                [uu, uv, uq, zero],
                [vu, vv, vq, zero],
                [zu, zv, self.q_decay + zq, zero],
                [zu, zv, zq, zero],
            ],
            like=u,
        )
        c_z = psi * dt
        c = component_vector([torch.full_like(u, dt), zero, c_z, c_z], like=u)
        z_om, z_b = psi * u_om, psi * u_b
        D = component_matrix([[u_om, u_b], [v_om, v_b], [z_om, z_b], [z_om, z_b]], like=u)
        return Jacobians(A, c, D)
