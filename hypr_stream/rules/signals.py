"""What e-prop and HYPR share: Jacobians over a block, learning signals, eligibility layout.

Per layer, the eligibility (spec §3) is kept as two tensors:

    weight [B, N, d, M']  for [W_in | W_rec]  (presynaptic x_t, then z_{t-1} in recurrent layers)
    local  [B, N, d, P]   for the bias and the neuron's P−1 parameters (columns of C below)

and a block's Jacobians as A [T, B, N, d, d] and C = [c | ∂F/∂θ] [T, B, N, d, P]. A reset of
stream b before step t makes s_{t-1} a constant, so A_t = 0 there: the eligibility restarts.

Learning signals go top down, same step (spec §3): the readout's is dℓ/do; a layer below gets
∂ℓ_t/∂z_t = W_in^T (L^{above}_t · c^{above}_t), placed at its output component.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..network import RSNN, LayerTrace, SpikingLayer


class LayerEligibility(NamedTuple):
    weight: Tensor  # [B, N, d, M']
    local: Tensor  # [B, N, d, P]


def init_eligibility(net: RSNN, batch: int) -> list[LayerEligibility]:
    """Zero eligibilities for ``batch`` streams, one entry per layer (readout last)."""
    result = []
    for _, layer in net.stack():
        like = layer.bias
        d, P = layer.model.d, len(layer.local_param_names())
        result.append(
            LayerEligibility(
                like.new_zeros(batch, layer.n, d, layer.presynaptic_size),
                like.new_zeros(batch, layer.n, d, P),
            )
        )
    return result


def presynaptic(layer: SpikingLayer, trace: LayerTrace) -> Tensor:
    """x̃_t = [x_t, z_{t-1}] [T, B, M']: what multiplies [W_in | W_rec] at each step."""
    if not layer.recurrent:
        return trace.x
    return torch.cat([trace.x, trace.s_prev[..., layer.model.out_index]], dim=-1)


def block_jacobians(
    layer: SpikingLayer, trace: LayerTrace, reset: Tensor | None
) -> tuple[Tensor, Tensor]:
    """A [T, B, N, d, d] and C = [c | ∂F/∂θ] [T, B, N, d, P] for all steps of a block at once."""
    A, c, D = layer.model.jacobians(trace.I, trace.s_prev, layer.neuron_params())
    if reset is not None:
        A = A.masked_fill(reset[:, :, None, None, None], 0.0)
    return A, torch.cat([c.unsqueeze(-1), D], dim=-1)


def learning_signals(net: RSNN, Cs: list[Tensor], dl_do: Tensor) -> list[Tensor]:
    """L^{(l)}_t = ∂ℓ_t/∂s^{(l)}_t [T, B, N, d] for every layer (readout last), same step."""
    layers = [layer for _, layer in net.stack()]
    signals: list[Tensor] = [torch.empty(0)] * len(layers)
    dl_dout = dl_do
    for idx in range(len(layers) - 1, -1, -1):
        layer = layers[idx]
        L = dl_dout.new_zeros(*dl_dout.shape, layer.model.d)
        L[..., layer.model.out_index] = dl_dout
        signals[idx] = L
        if idx > 0:
            dl_dI = (L * Cs[idx][..., 0]).sum(-1)  # [T, B, N]
            dl_dout = dl_dI @ layer.weight_in  # [T, B, N_below]
    return signals


def named_gradients(
    net: RSNN, weight_grads: list[Tensor], local_grads: list[Tensor]
) -> dict[str, Tensor]:
    """Split per-layer g_W [N, M'] and g_P [N, P] into a dict keyed like named_parameters()."""
    out: dict[str, Tensor] = {}
    for (prefix, layer), g_w, g_p in zip(net.stack(), weight_grads, local_grads, strict=True):
        out[f"{prefix}.weight_in"] = g_w[:, : layer.n_in]
        if layer.recurrent:
            out[f"{prefix}.weight_rec"] = g_w[:, layer.n_in :]
        for p, name in enumerate(layer.local_param_names()):
            out[f"{prefix}.{name}"] = g_p[:, p]
    return out
