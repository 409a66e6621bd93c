"""Online e-prop (spec §3): one eligibility update per step. The reference HYPR must equal.

    e_t = A_t e_{t-1} + C_t ⊗ x̃_t,    g += Σ_k L_t[k] e_t[k]

Every step reads and writes the whole synaptic eligibility [B, N, d, M']: T memory-bound passes
per stream, which is what HYPR avoids. Jacobians and learning signals are computed per block
with the code HYPR uses (signals.py); only the recursion differs.
"""

from __future__ import annotations

from torch import Tensor

from ..scan import component_matmul
from .signals import (
    EligibilityRule,
    LayerBlock,
    LayerEligibility,
    add_outer_,
    contract,
    local_contract,
    propagate,
)


class EProp(EligibilityRule):
    name = "eprop"

    def layer_gradient(
        self, block: LayerBlock, e: LayerEligibility
    ) -> tuple[Tensor, Tensor, LayerEligibility]:
        x, A, C, L = block
        e_w, e_p = e
        g_w = x.new_zeros(e_w.shape[1], e_w.shape[-1])
        g_p = x.new_zeros(e_w.shape[1], C.shape[1])
        for t in range(x.shape[0]):
            e_w = add_outer_(propagate(A[:, :, t], e_w), C[:, 0, t : t + 1], x[t : t + 1])
            e_p = component_matmul(A[:, :, t], e_p) + C[:, :, t]
            g_w += contract(L[:, t], e_w)
            g_p += local_contract(L[:, t], e_p)
        return g_w, g_p, LayerEligibility(e_w, e_p)
