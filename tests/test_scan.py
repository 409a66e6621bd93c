"""scan.py: the parallel and sequential backward scans agree with each other and with a naive
loop-and-matmul reference (tests/oracles.py); "auto" resolves by device; unknown names fail."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hypr_stream as hs
from hypr_stream.scan import backward_scan, choose_method
from tests.oracles import (
    assert_close_to_reference,
    default_dtype,
    naive_backward_scan,
    spiking_net,
)


@pytest.fixture(autouse=True, scope="module")
def float64():
    with default_dtype(torch.float64):
        yield


def random_system(seed: int, d: int, P: int, T: int, batch: tuple[int, ...]):
    g = torch.Generator().manual_seed(seed)
    # Entries of size ~1/sqrt(d) keep long products O(1) so relative errors stay meaningful.
    A = torch.randn(d, d, T, *batch, generator=g) / d**0.5
    L = torch.randn(d, T, *batch, generator=g)
    C = torch.randn(d, P, T, *batch, generator=g)
    return A, L, C


def as_dict(result) -> dict[str, torch.Tensor]:
    q, q0, W, phi0 = result
    return {"q": q, "q0": q0, "W": W, "phi0": phi0}


systems = dict(
    seed=st.integers(0, 2**31 - 1),
    d=st.integers(1, 4),
    P=st.integers(1, 3),
    T=st.integers(1, 19),
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
)


@settings(max_examples=40, deadline=None)
@given(**systems)
def test_sequential_scan_matches_naive_loops(seed, d, P, T, batch):
    A, L, C = random_system(seed, d, P, T, batch)
    reference = as_dict(naive_backward_scan(A, L, C))
    assert_close_to_reference(as_dict(backward_scan(A, L, C, "sequential")), reference, 1e-12)


@settings(max_examples=40, deadline=None)
@given(**systems)
def test_parallel_scan_matches_naive_loops(seed, d, P, T, batch):
    A, L, C = random_system(seed, d, P, T, batch)
    reference = as_dict(naive_backward_scan(A, L, C))
    assert_close_to_reference(as_dict(backward_scan(A, L, C, "parallel")), reference, 1e-12)


@settings(max_examples=25, deadline=None)
@given(**systems)
def test_parallel_and_sequential_scans_agree(seed, d, P, T, batch):
    A, L, C = random_system(seed, d, P, T, batch)
    sequential = as_dict(backward_scan(A, L, C, "sequential"))
    assert_close_to_reference(as_dict(backward_scan(A, L, C, "parallel")), sequential, 1e-12)


def test_scan_of_a_single_step_is_the_step_itself():
    A, L, C = random_system(0, 3, 2, 1, (4,))
    for method in ("parallel", "sequential"):
        q, q0, W, phi0 = backward_scan(A, L, C, method)
        torch.testing.assert_close(q, L, rtol=0, atol=0)
        torch.testing.assert_close(W, C, rtol=0, atol=0)
        torch.testing.assert_close(phi0, A[:, :, 0])
        torch.testing.assert_close(q0, torch.einsum("jib,jb->ib", A[:, :, 0], L[:, 0]))


def test_scan_with_identity_jacobians_sums_the_signals():
    T, d = 7, 2
    A = torch.eye(d)[:, :, None, None].expand(d, d, T, 3).clone()
    L = torch.randn(d, T, 3)
    C = torch.randn(d, 1, T, 3)
    for method in ("parallel", "sequential"):
        q, q0, W, phi0 = backward_scan(A, L, C, method)
        torch.testing.assert_close(q, L.flip(1).cumsum(1).flip(1))
        torch.testing.assert_close(q0, L.sum(1))
        torch.testing.assert_close(W, C)
        torch.testing.assert_close(phi0, A[:, :, 0])


def test_auto_scan_is_sequential_on_cpu_and_parallel_on_long_cuda_blocks():
    assert choose_method("auto", torch.device("cpu"), 1000) == "sequential"
    assert choose_method("auto", torch.device("cuda"), 1000) == "parallel"
    assert choose_method("auto", torch.device("cuda"), 4) == "sequential"
    assert choose_method("parallel", torch.device("cpu"), 3) == "parallel"


def test_unknown_scan_method_is_rejected_by_name():
    A, L, C = random_system(0, 2, 1, 3, ())
    with pytest.raises(ValueError, match="unknown scan method 'tree'"):
        backward_scan(A, L, C, "tree")


@settings(max_examples=8, deadline=None)
@given(
    neuron=st.sampled_from(["brf", "se_adlif", "alif", "lif"]),
    seed=st.integers(0, 2**16),
    T=st.integers(2, 14),
    lam=st.integers(1, 14),
)
def test_hypr_gradient_does_not_depend_on_the_scan_method(neuron, seed, T, lam):
    net = spiking_net(neuron, 3, [5], 2, seed=seed, recurrent=True)
    x = 2 * torch.randn(T, 2, 3)
    y = torch.randint(-1, 2, (T, 2))
    y[-1] = 0  # at least one target
    sequential = hs.gradients(net, x, y, lam=lam, scan="sequential")
    parallel = hs.gradients(net, x, y, lam=lam, scan="parallel")
    assert_close_to_reference(parallel, sequential, 1e-10)
