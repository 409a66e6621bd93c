"""HYPR's P-stage (spec §4): e-prop's gradient with one pass over the eligibility per block.

For a block of λ steps with incoming eligibility e_0, after the backward scan (see scan.py):

    g_W  = Σ_t (q_t · c_t) ⊗ x̃_t  +  q_0 · e_0^W        one GEMM (N × Bλ)(Bλ × M') + one read
    g_P  = Σ_t q_t · C_t          +  q_0 · e_0^P
    e_λ^W = Φ_0 e_0^W + Σ_t (Φ_t c_t) ⊗ x̃_t             one more GEMM + one pass over e
    e_λ^P = Φ_0 e_0^P + Σ_t Φ_t C_t

λ changes speed and memory, never the gradient: it equals e-prop's for every λ.
"""

from __future__ import annotations

from torch import Tensor

from ..scan import ScanMethod, backward_scan, component_matmul
from .signals import (
    EligibilityRule,
    LayerBlock,
    LayerEligibility,
    add_outer_,
    contract,
    local_contract,
    propagate,
)


class HYPR(EligibilityRule):
    name = "hypr"

    def __init__(self, scan: ScanMethod = "auto") -> None:
        self.scan = scan

    def layer_gradient(
        self, block: LayerBlock, e: LayerEligibility
    ) -> tuple[Tensor, Tensor, LayerEligibility]:
        x, A, C, L = block
        scan = backward_scan(A, L, C, self.scan)
        q_dot_c = (scan.q * C[:, 0]).sum(0).flatten(0, 1)  # [T·B, N]
        g_w = q_dot_c.t() @ x.flatten(0, 1) + contract(scan.q0, e.weight)
        g_p = local_contract(scan.q, C) + local_contract(scan.q0, e.local)
        e_w = add_outer_(propagate(scan.phi0, e.weight), scan.W[:, 0], x)
        e_p = component_matmul(scan.phi0, e.local) + scan.W.sum(2)
        return g_w, g_p, LayerEligibility(e_w, e_p)
