"""``gradients``: one sequence's gradient estimate under any rule, updating nothing."""

from __future__ import annotations

import torch
from torch import Tensor

from .losses import make_targets
from .network import RSNN
from .rules import RULES, make_rule
from .scan import ScanMethod

EPROP_BLOCK = 128  # e-prop's recursion is per step; blocks only bound the S-stage cache


def gradients(
    net: RSNN,
    x: Tensor,
    y: Tensor,
    mask: Tensor | None = None,
    rule: str = "hypr",
    lam: int | None = None,
    *,
    loss: str | None = None,
    truncation: int | None = None,
    boundary: Tensor | None = None,
    scan: ScanMethod = "auto",
) -> dict[str, Tensor]:
    """The gradient estimate of ℓ = (1/B) Σ_{t,b} m ℓ_{t,b} for one sequence, keyed like
    ``net.named_parameters()``. Parameters and ``.grad`` are left untouched.

    x [T, B, n_in] (or [T, n_in]); y [T, B] class indices for cross-entropy (−1: no target) or
    [T, B, n_out] reals for MSE (``loss`` is inferred from y's dtype unless given); mask [T, B].
    ``rule``: "hypr" (subsequences of ``lam`` steps, default the whole sequence), "eprop", or
    "bptt" (``truncation``: window of truncated BPTT, default none). ``boundary`` [T, B] bool
    marks where a new sample starts in a stream (state and eligibility reset there).
    """
    if rule not in RULES:
        raise ValueError(f"unknown learning rule {rule!r}; choose one of {RULES}")
    x = net.check_input(x)
    T, B = x.shape[:2]
    targets = make_targets(y, mask, net.n_out, x, loss)
    if lam is not None and rule != "hypr":
        raise ValueError(f"lam applies to rule 'hypr' only (got rule {rule!r}); "
                         "bptt takes truncation=")
    if truncation is not None and rule != "bptt":
        raise ValueError(f"truncation applies to rule 'bptt' only (got rule {rule!r})")
    block = {"hypr": lam, "bptt": truncation, "eprop": EPROP_BLOCK}[rule]
    if block is None:
        block = T
    if not isinstance(block, int) or isinstance(block, bool) or block < 1:
        name = "lam" if rule == "hypr" else "truncation"
        raise ValueError(f"{name} must be an int >= 1, got {block!r}")
    reset = None
    if boundary is not None:
        reset = boundary.unsqueeze(1) if boundary.dim() == 1 else boundary
        if tuple(reset.shape) != (T, B) or reset.dtype != torch.bool:
            raise ValueError(f"boundary must be bool [T, B] = {(T, B)}, "
                             f"got {reset.dtype} {tuple(boundary.shape)}")

    learner = make_rule(rule, scan)
    state = net.init_state(B)
    eligibility = learner.init_eligibility(net, B)
    total = {name: torch.zeros_like(p) for name, p in net.named_parameters()}
    for start in range(0, T, block):
        steps = slice(start, min(start + block, T))
        with torch.no_grad():
            run = net.run(x[steps], state, None if reset is None else reset[steps], trace=True)
        grads, eligibility = learner.block_gradient(net, run, targets[steps], eligibility)
        for name, g in grads.items():
            total[name] += g
        state = run.state
    return total
