"""BPTT through autograd (spec §7): exact gradients of the surrogate network.

A block is re-run with autograd from the state it started in and differentiated; state is
carried between blocks but not differentiated across them, so blocks of k steps are truncated
BPTT with window k, and one block over the whole sequence is full BPTT. Memory grows linearly
with the block length: the accuracy reference, not a streaming method.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..losses import Targets, total_loss
from ..network import RSNN, RunResult


class BPTT:
    name = "bptt"

    def init_eligibility(self, net: RSNN, batch: int) -> None:
        return None

    def block_gradient(
        self, net: RSNN, run: RunResult, targets: Targets, eligibility: None
    ) -> tuple[dict[str, Tensor], None]:
        names, params = zip(*net.named_parameters(), strict=True)
        start = [trace.s_prev[0].detach() for trace in run.traces]
        with torch.enable_grad():
            rerun = net.run(run.traces[0].x, start, run.reset)
            loss = total_loss(rerun.outputs, targets)
            if not loss.requires_grad:  # no target in this block
                return {n: torch.zeros_like(p) for n, p in zip(names, params, strict=True)}, None
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        return {
            n: torch.zeros_like(p) if g is None else g
            for n, g, p in zip(names, grads, params, strict=True)
        }, None
