"""Reference computations the engine's tests compare against, written independently of the engine.

Every comparison against a reference first asserts that the reference is alive (non-zero), as
chaobrain/braintrace:braintrace/_testing/oracle.py ``assert_model_is_live`` does: a test must not
pass because both sides are zero. The references here use plain Python loops, ``torch.matmul``
and ``torch.autograd``; none of them calls the engine's scans, Jacobians or rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from hypr_stream import RSNN

SPIKING = ("brf", "se_adlif", "alif", "lif")

# Per model: (gain on hidden weights, bias) so that neurons spike within a dozen steps from
# x ~ 2 randn; BRF integrates δ·I per step and SE-adLIF adapts strongly, so they need more drive.
DRIVE = {"brf": (100.0, 30.0), "se_adlif": (15.0, 2.0), "alif": (2.0, 0.3), "lif": (1.0, 0.1)}


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Set torch's default dtype for a block and restore the previous one afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def spiking_net(
    neuron: str,
    n_in: int,
    hidden: list[int],
    n_out: int,
    *,
    seed: int,
    recurrent: bool | list[bool] = True,
    readout: str = "li",
    **options,
) -> RSNN:
    """An RSNN (default dtype) whose hidden weights and biases are scaled so its neurons spike."""
    torch.manual_seed(seed)
    net = RSNN(n_in, hidden, n_out, neuron=neuron, recurrent=recurrent, readout=readout,
               **options)
    gain, bias = DRIVE[neuron]
    with torch.no_grad():
        for layer in net.layers:
            layer.weight_in.mul_(gain)
            if layer.weight_rec is not None:
                layer.weight_rec.mul_(gain)
            layer.bias.fill_(bias)
    return net


def hidden_spike_counts(net: RSNN, x: Tensor) -> list[int]:
    """Number of spikes each hidden layer emits on x [T, B, n_in] (to check the net is driven)."""
    counts, h = [], x
    with torch.no_grad():
        for layer, s in zip(net.layers, net.init_state(x.shape[1]), strict=False):
            h, _, _ = layer.run(h, s)
            counts.append(int(h.sum()))
    return counts


def assert_live(grads: dict[str, Tensor], keys: Iterable[str] | None = None) -> None:
    """Fail unless the reference gradient is finite and non-zero (every key in ``keys``, or the
    whole dict when ``keys`` is None): a comparison against zeros proves nothing."""
    for name, g in grads.items():
        assert torch.isfinite(g).all(), f"reference gradient {name} is not finite"
    if keys is None:
        total = sum(float(g.abs().sum()) for g in grads.values())
        assert total > 0, "reference gradient is zero everywhere: the model is not live"
        return
    dead = [k for k in keys if float(grads[k].abs().sum()) == 0.0]
    assert not dead, f"reference gradient is zero for {dead}: the model is not live there"


def assert_close_to_reference(
    actual: dict[str, Tensor],
    reference: dict[str, Tensor],
    rtol: float = 1e-9,
    keys: Iterable[str] | None = None,
    live: Iterable[str] | None = None,
) -> None:
    """Per parameter: max|actual − reference| ≤ rtol · max|reference| (and ≤ 1e-300 for a zero
    reference), after asserting the reference is live (on ``live``, default: anywhere)."""
    assert_live(reference, live)
    keys = list(reference) if keys is None else list(keys)
    assert keys, "nothing to compare"
    for name in keys:
        a, r = actual[name], reference[name]
        assert a.shape == r.shape, f"{name}: shape {tuple(a.shape)} != {tuple(r.shape)}"
        err = float((a - r).abs().max()) if a.numel() else 0.0
        scale = float(r.abs().max()) if r.numel() else 0.0
        assert err <= rtol * scale or err <= 1e-300, (
            f"{name}: max error {err:.3e} vs reference scale {scale:.3e} (rtol {rtol})"
        )


def relative_difference(a: dict[str, Tensor], b: dict[str, Tensor], key: str) -> float:
    """max|a − b| / max|b| for one parameter."""
    return float((a[key] - b[key]).abs().max() / b[key].abs().max())


def reference_loss(outputs: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
    """ℓ = (1/B) Σ_{t,b} m ℓ_{t,b}: cross-entropy for integer y [T, B] (−1: no target) through
    ``torch.nn.functional.cross_entropy``, MSE (mean over outputs) for real y [T, B, K]."""
    T, B, K = outputs.shape
    if y.is_floating_point():
        terms = ((outputs - y) ** 2).mean(-1)
        keep = torch.ones(T, B, dtype=torch.bool) if mask is None else mask
        return (terms * keep.to(outputs.dtype)).sum() / B
    target = y.clone()
    if mask is not None:
        target[~mask] = -1
    return torch.nn.functional.cross_entropy(
        outputs.reshape(T * B, K), target.reshape(T * B), ignore_index=-1, reduction="sum"
    ) / B


def bptt_reference(
    net: RSNN,
    x: Tensor,
    y: Tensor,
    mask: Tensor | None = None,
    window: int | None = None,
) -> dict[str, Tensor]:
    """Exact (window None) or truncated BPTT by autograd: blocks of ``window`` steps, each run
    from the previous block's final state detached, gradients summed over blocks."""
    names, params = zip(*net.named_parameters(), strict=True)
    total = [torch.zeros_like(p) for p in params]
    T = x.shape[0]
    window = window or T
    state = None
    for start in range(0, T, window):
        steps = slice(start, start + window)
        outputs, state = net(x[steps], state, return_state=True)
        loss = reference_loss(outputs, y[steps], None if mask is None else mask[steps])
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        total = [t if g is None else t + g for t, g in zip(total, grads, strict=True)]
        state = [s.detach() for s in state]
    return dict(zip(names, total, strict=True))


def naive_backward_scan(
    A: Tensor, L: Tensor, C: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The backward recurrence and suffix products by explicit loops and ``torch.matmul``.

    Component-major inputs A [d, d, T, ...], L [d, T, ...], C [d, P, T, ...] (as scan.py takes):

        q_T = L_T,  q_t = L_t + A_{t+1}^T q_{t+1},  q_0 = A_1^T q_1
        Φ_t = A_T ⋯ A_{t+1} (Φ_T = I),  W_t = Φ_t C_t,  Φ_0 = A_T ⋯ A_1

    Returns (q [d, T, ...], q0 [d, ...], W [d, P, T, ...], Φ_0 [d, d, ...]). Each Φ_t is
    multiplied out from scratch (O(T²) products), sharing nothing with the recurrence.
    """
    d, T = A.shape[0], A.shape[2]
    mats = [A[:, :, t].movedim((0, 1), (-2, -1)) for t in range(T)]  # [..., d, d] each
    vecs = [L[:, t].movedim(0, -1).unsqueeze(-1) for t in range(T)]  # [..., d, 1]
    cols = [C[:, :, t].movedim((0, 1), (-2, -1)) for t in range(T)]  # [..., d, P]
    eye = torch.eye(d, dtype=A.dtype).expand_as(mats[0])

    q = [None] * T
    q[T - 1] = vecs[T - 1]
    for t in range(T - 2, -1, -1):
        q[t] = vecs[t] + torch.matmul(mats[t + 1].transpose(-2, -1), q[t + 1])
    q0 = torch.matmul(mats[0].transpose(-2, -1), q[0])

    def phi(t: int) -> Tensor:  # Φ_t for t = 0..T (0-based: A_{k} is mats[k - 1])
        out = eye
        for k in range(T, t, -1):
            out = torch.matmul(out, mats[k - 1])
        return out

    W = [torch.matmul(phi(t + 1), cols[t]) for t in range(T)]
    q_out = torch.stack([v.squeeze(-1).movedim(-1, 0) for v in q], dim=1)
    W_out = torch.stack([w.movedim((-2, -1), (0, 1)) for w in W], dim=2)
    return q_out, q0.squeeze(-1).movedim(-1, 0), W_out, phi(0).movedim((-2, -1), (0, 1))


def random_targets(
    T: int, B: int, n_out: int, loss: str, masked: bool, g: torch.Generator
) -> tuple[Tensor, Tensor | None]:
    """(y, mask) for T steps of B streams: class indices with some −1 (ce) or reals (mse), and a
    random mask when ``masked``; the last step always keeps a target, so the loss is never empty."""
    if loss == "ce":
        y = torch.randint(0, n_out, (T, B), generator=g)
        y[torch.rand(T, B, generator=g) < 0.25] = -1
        y[-1] = torch.randint(0, n_out, (B,), generator=g)
    else:
        y = torch.randn(T, B, n_out, generator=g)
    mask = None
    if masked:
        mask = torch.rand(T, B, generator=g) < 0.6
        mask[-1] = True
    return y, mask


# Every spiking model the rules must handle, as (neuron, options), with readable test ids.
SPIKING_MODELS = [("brf", {}), ("brf", {"variant": "exact"}), ("se_adlif", {}), ("alif", {}),
                  ("lif", {})]
SPIKING_MODEL_IDS = ["brf-euler", "brf-exact", "se_adlif", "alif", "lif"]
