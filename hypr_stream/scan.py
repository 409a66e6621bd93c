"""Backward linear scans for the P-stage (spec §4, steps 3 and 5). Knows nothing of neurons.

Given per-step matrices A_1..A_T, vectors L_1..L_T and column blocks C_1..C_T (d×P), stored
component-major (A [d, d, T, ...]: the long batch of small systems last and contiguous), compute

    q_T = L_T,   q_t = L_t + A_{t+1}^T q_{t+1},   q_0 = A_1^T q_1        (learning-signal sweep)
    Φ_t = A_T ⋯ A_{t+1} (Φ_T = I),   W_t = Φ_t C_t,   Φ_0 = A_T ⋯ A_1   (suffix products)

The parallel scan runs the pair operator (M_a, v_a) • (M_b, v_b) = (M_a M_b, M_a v_b + v_a)
over the elements (A_{t+1}^T, L_t), t = 0..T (L_0 = 0, A_{T+1} = I), in ⌈log2(T+1)⌉ rounds of
batched small-matrix products (Hillis–Steele): the suffix composition from t is (Φ_t^T, q_t).
It does O(T log T) work and holds all T+1 matrices, which a GPU turns into speed. The sequential
scan does O(T) work with O(d²) carried state; on a CPU it is the faster of the two.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

ScanMethod = Literal["auto", "parallel", "sequential"]
SCAN_METHODS = ("auto", "parallel", "sequential")


class ScanResult(NamedTuple):
    q: Tensor  # [d, T, ...]     q_1..q_T
    q0: Tensor  # [d, ...]       q_0
    W: Tensor  # [d, P, T, ...]  Φ_t C_t
    phi0: Tensor  # [d, d, ...]  Φ_0


def choose_method(method: ScanMethod, device: torch.device, steps: int) -> str:
    """Resolve "auto": log depth pays off on a GPU for long subsequences; a CPU wants O(T) work."""
    if method not in SCAN_METHODS:
        raise ValueError(f"unknown scan method {method!r}; choose one of {SCAN_METHODS}")
    if method != "auto":
        return method
    return "parallel" if device.type == "cuda" and steps >= 16 else "sequential"


def component_matmul(M: Tensor, N: Tensor) -> Tensor:
    """Product over the leading (component) dims: M [a, b, ...] @ N [b, c, ...] -> [a, c, ...]."""
    return (M.unsqueeze(2) * N.unsqueeze(0)).sum(1)


def component_matvec(M: Tensor, v: Tensor) -> Tensor:
    """M [a, b, ...] @ v [b, ...] -> [a, ...]."""
    return (M * v.unsqueeze(0)).sum(1)


def backward_scan(A: Tensor, L: Tensor, C: Tensor, method: ScanMethod = "auto") -> ScanResult:
    """Learning-signal sweep and suffix products over one subsequence; see the module docstring.

    Component-major: A [d, d, T, ...], L [d, T, ...], C [d, P, T, ...] -> ScanResult.
    """
    method = choose_method(method, A.device, A.shape[2])
    if method == "parallel":
        return _parallel(A, L, C)
    return _sequential(A, L, C)


def _sequential(A: Tensor, L: Tensor, C: Tensor) -> ScanResult:
    T = A.shape[2]
    At = A.transpose(0, 1)
    q = torch.empty_like(L)
    W = torch.empty_like(C)
    q[:, T - 1] = L[:, T - 1]
    W[:, :, T - 1] = C[:, :, T - 1]
    phi = A[:, :, T - 1]  # A_T ⋯ A_{t+1} for the next (earlier) t
    for t in range(T - 2, -1, -1):
        q[:, t] = L[:, t] + component_matvec(At[:, :, t + 1], q[:, t + 1])
        W[:, :, t] = component_matmul(phi, C[:, :, t])
        phi = component_matmul(phi, A[:, :, t])
    q0 = component_matvec(At[:, :, 0], q[:, 0])
    return ScanResult(q, q0, W, phi)


def _parallel(A: Tensor, L: Tensor, C: Tensor) -> ScanResult:
    T, d = A.shape[2], A.shape[0]
    eye = torch.eye(d, dtype=A.dtype, device=A.device)
    eye = eye.reshape(d, d, *[1] * (A.dim() - 2)).expand(d, d, 1, *A.shape[3:])
    M = torch.cat([A.transpose(0, 1), eye], dim=2)  # element t = 0..T: A_{t+1}^T
    v = torch.cat([torch.zeros_like(L[:, :1]), L], dim=1)  # element t = 0..T: L_t
    offset = 1
    while offset <= T:
        head_M, tail_M = M[:, :, :-offset], M[:, :, offset:]
        v = torch.cat([v[:, :-offset] + component_matvec(head_M, v[:, offset:]),
                       v[:, -offset:]], dim=1)
        M = torch.cat([component_matmul(head_M, tail_M), M[:, :, -offset:]], dim=2)
        offset *= 2
    phi_t = M.transpose(0, 1)  # Φ_t for t = 0..T
    return ScanResult(v[:, 1:], v[:, 0], component_matmul(phi_t[:, :, 1:], C), phi_t[:, :, 0])
