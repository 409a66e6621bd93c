"""Online e-prop (spec §3): one eligibility update per step. The reference HYPR must equal.

    e_t = A_t e_{t-1} + C_t ⊗ x̃_t,    g += Σ_k L_t[k] e_t[k]

Every step reads and writes the whole synaptic eligibility [B, N, d, M']: T memory-bound passes
per stream, which is what HYPR avoids. Jacobians and learning signals are computed per block
with the code HYPR uses; only the recursion differs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..losses import Targets, loss_cotangent
from ..network import RSNN, RunResult
from ..scan import component_matmul
from .signals import (
    LayerEligibility,
    add_outer_,
    block_jacobians,
    contract,
    init_eligibility,
    learning_signals,
    local_contract,
    named_gradients,
    presynaptic,
    propagate,
)


class EProp:
    name = "eprop"

    def init_eligibility(self, net: RSNN, batch: int) -> list[LayerEligibility]:
        return init_eligibility(net, batch)

    @torch.no_grad()
    def block_gradient(
        self, net: RSNN, run: RunResult, targets: Targets, eligibility: list[LayerEligibility]
    ) -> tuple[dict[str, Tensor], list[LayerEligibility]]:
        jacobians = [block_jacobians(layer, tr, run.reset) for (_, layer), tr in
                     zip(net.stack(), run.traces, strict=True)]
        signals = learning_signals(net, [C for _, C in jacobians],
                                   loss_cotangent(run.outputs, targets))
        weight_grads, local_grads, new_eligibility = [], [], []
        for (_, layer), trace, (A, C), L, e in zip(
            net.stack(), run.traces, jacobians, signals, eligibility, strict=True
        ):
            x = presynaptic(layer, trace)
            e_w, e_p = e
            g_w = x.new_zeros(layer.n, layer.presynaptic_size)
            g_p = x.new_zeros(layer.n, C.shape[1])
            for t in range(x.shape[0]):
                e_w = add_outer_(propagate(A[:, :, t], e_w), C[:, 0, t : t + 1], x[t : t + 1])
                e_p = component_matmul(A[:, :, t], e_p) + C[:, :, t]
                g_w += contract(L[:, t], e_w)
                g_p += local_contract(L[:, t], e_p)
            weight_grads.append(g_w)
            local_grads.append(g_p)
            new_eligibility.append(LayerEligibility(e_w, e_p))
        return named_gradients(net, weight_grads, local_grads), new_eligibility
