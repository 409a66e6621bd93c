"""surrogates.py: each surrogate's ψ is the spec's formula, the spike's value is exactly H(x)
(H(0) = 0) and every autodiff path through the spike sees ψ; names resolve, unknown names fail."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hypr_stream.neurons import BRF, LIF, SEAdLIF
from hypr_stream.neurons.surrogates import (
    DoubleGaussian,
    Slayer,
    StraightThrough,
    resolve_surrogate,
)
from tests.oracles import default_dtype


@pytest.fixture(autouse=True, scope="module")
def float64():
    with default_dtype(torch.float64):
        yield


SURROGATES = [DoubleGaussian(), Slayer(), Slayer(alpha=5.0, c=0.2), StraightThrough()]


def spec_psi(surrogate, x: float) -> float:
    """ψ from spec §2, written out with math (not torch)."""
    if isinstance(surrogate, DoubleGaussian):
        def normal(v, sigma):
            return math.exp(-0.5 * (v / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        p, s1, s2, gamma = surrogate.p, surrogate.sigma1, surrogate.sigma2, surrogate.gamma
        return gamma * ((1 + p) * normal(x, s1) - 2 * p * normal(x, s2))
    if isinstance(surrogate, Slayer):
        return surrogate.c * surrogate.alpha / 2 * math.exp(-surrogate.alpha * abs(x))
    return 1.0


def test_spec_defaults():
    assert DoubleGaussian() == DoubleGaussian(p=0.15, sigma1=0.5, sigma2=3.0, gamma=0.5)
    assert (Slayer().alpha, Slayer().c) == (5.0, 0.4)
    assert isinstance(BRF().surrogate, DoubleGaussian)
    assert SEAdLIF().surrogate == Slayer(alpha=5.0, c=0.4)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
@settings(max_examples=30, deadline=None)
@given(x=st.floats(-8.0, 8.0, allow_nan=False))
def test_grad_is_the_spec_formula(surrogate, x):
    value = float(surrogate.grad(torch.tensor(x)))
    assert value == pytest.approx(spec_psi(surrogate, x), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
def test_spike_is_heaviside_forward_and_surrogate_backward(surrogate):
    x = torch.cat([torch.linspace(-4, 4, 81), torch.tensor([0.0, 1e-12, -1e-12])])
    x.requires_grad_(True)
    z = surrogate.spike(x)
    torch.testing.assert_close(z.detach(), (x.detach() > 0).double(), rtol=0, atol=0)
    assert float(z.detach()[x.detach() == 0].max()) == 0.0  # H(0) = 0
    (dz,) = torch.autograd.grad(z.sum(), x)
    torch.testing.assert_close(dz, surrogate.grad(x.detach()), rtol=1e-12, atol=1e-14)
    assert float(dz.abs().max()) > 0


@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
def test_spike_derivative_is_psi_under_torch_func(surrogate):
    x = torch.linspace(-3, 3, 25)
    d = torch.func.vmap(torch.func.grad(lambda v: surrogate.spike(v)))(x)
    torch.testing.assert_close(d, surrogate.grad(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("surrogate", SURROGATES, ids=repr)
def test_spike_gradient_stays_finite_far_from_threshold(surrogate):
    x = torch.tensor([-1e4, -800.0, 800.0, 1e4], requires_grad=True)
    (dz,) = torch.autograd.grad(surrogate.spike(x).sum(), x)
    assert torch.isfinite(dz).all()


def test_double_gaussian_has_negative_side_lobes_and_total_weight_gamma_one_minus_p():
    dg = DoubleGaussian()
    assert float(dg.grad(torch.tensor(0.0))) > 0
    assert float(dg.grad(torch.tensor(2.5))) < 0
    area = dg.primitive(torch.tensor(60.0)) - dg.primitive(torch.tensor(-60.0))
    assert float(area) == pytest.approx(dg.gamma * (1 - dg.p), rel=1e-12)


def test_models_resolve_surrogates_by_name():
    assert isinstance(LIF(surrogate="slayer").surrogate, Slayer)
    assert isinstance(BRF(surrogate="straight_through").surrogate, StraightThrough)
    assert resolve_surrogate("double_gaussian") == DoubleGaussian()
    custom = Slayer(alpha=2.0, c=1.0)
    assert resolve_surrogate(custom) is custom


def test_unknown_surrogate_name_is_an_error_naming_it():
    with pytest.raises(ValueError, match="unknown surrogate 'sigmoid'"):
        LIF(surrogate="sigmoid")
