"""Conformance suite over every neuron model (neurons/): the closed-form Jacobians A, c, D equal
``torch.func``'s Jacobians of ``step`` in float64, on random states (binary spike components),
parameters and currents, for every surrogate; and a user's model that defines only ``step``
runs end to end through the generic ``torch.func`` path, with hypr equal to e-prop."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import Tensor

import hypr_stream as hs
from hypr_stream.neurons import (
    ALIF,
    BRF,
    LI,
    LIF,
    Jacobians,
    Linear,
    NeuronModel,
    SEAdLIF,
    func_jacobians,
)
from hypr_stream.neurons.base import stack_components
from hypr_stream.neurons.surrogates import DoubleGaussian, Surrogate
from tests.oracles import (
    assert_close_to_reference,
    default_dtype,
    hidden_spike_counts,
)


@pytest.fixture(autouse=True, scope="module")
def float64():
    with default_dtype(torch.float64):
        yield


SURROGATE_NAMES = ("double_gaussian", "slayer", "straight_through")

# Every model, with every surrogate for the spiking ones.
MODELS = [
    *[BRF(variant=v, surrogate=s) for v in ("euler", "exact") for s in SURROGATE_NAMES],
    *[SEAdLIF(surrogate=s) for s in SURROGATE_NAMES],
    *[ALIF(surrogate=s) for s in SURROGATE_NAMES],
    *[LIF(surrogate=s) for s in SURROGATE_NAMES],
    LI(),
    Linear(),
]

# Valid parameter ranges (inside each model's constraints) to sample from.
PARAM_RANGES = {
    "omega": (1.0, 95.0),  # BRF: δω < 1
    "b_offset": (0.05, 3.0),
    "kappa_u": (0.0, 1.0),
    "kappa_w": (0.0, 1.0),
    "a": (0.0, 1.0),
    "b": (0.0, 2.0),
    "tau_u": (10.0, 40.0),
    "tau_a": (100.0, 400.0),
    "tau": (1.0, 40.0),
}

# Scale of the input current per model: enough to move the potential across threshold.
CURRENT_SCALE = {BRF: 60.0, SEAdLIF: 3.0, ALIF: 3.0, LIF: 3.0, LI: 3.0, Linear: 3.0}


def model_id(model: NeuronModel) -> str:
    name = type(model).__name__
    if isinstance(model, BRF):
        name += f"-{model.variant}"
    surrogate = getattr(model, "surrogate", None)
    return name + (f"-{type(surrogate).__name__}" if surrogate is not None else "")


def random_state(model: NeuronModel, lead: tuple[int, ...], g: torch.Generator) -> Tensor:
    """[..., N, d]: spikes binary, BRF's q ≥ 0, ALIF's a in [0, 1], potentials around threshold."""
    columns = []
    for name in model.state_names:
        if name == "z" and model.output == "z":
            columns.append(torch.bernoulli(torch.full(lead, 0.5), generator=g))
        elif name in ("q", "a"):
            columns.append(torch.rand(lead, generator=g) * (2.0 if name == "q" else 1.0))
        elif name == "u":
            columns.append(1.0 + torch.randn(lead, generator=g))
        else:
            columns.append(torch.randn(lead, generator=g))
    return stack_components(*columns)


def random_params(model: NeuronModel, n: int, g: torch.Generator) -> dict[str, Tensor]:
    params = {}
    for name in model.param_names:
        lo, hi = PARAM_RANGES[name]
        params[name] = lo + (hi - lo) * torch.rand(n, generator=g)
    return params


def as_dict(j: Jacobians) -> dict[str, Tensor]:
    return {"A": j.A, "c": j.c, "D": j.D}


@pytest.mark.parametrize("model", MODELS, ids=model_id)
@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
    n=st.integers(1, 6),
)
def test_closed_form_jacobians_equal_torch_func(model, seed, lead, n):
    g = torch.Generator().manual_seed(seed)
    shape = (*lead, n)
    s = random_state(model, shape, g)
    I = CURRENT_SCALE[type(model)] * torch.randn(shape, generator=g)
    params = random_params(model, n, g)
    closed = model.jacobians(I, s, params)
    reference = func_jacobians(model, I, s, params)
    d, P = model.d, len(model.param_names)
    assert closed.A.shape == (d, d, *shape)
    assert closed.c.shape == (d, *shape)
    assert closed.D.shape == (d, P, *shape)
    # Linear's A is 0 and it has no parameters by definition; everything else must be live.
    live = ["c"] + (["A", "D"] if P else [])
    assert_close_to_reference(as_dict(closed), as_dict(reference), rtol=1e-12, live=live)


@pytest.mark.parametrize("model", [m for m in MODELS if m.output == "z"], ids=model_id)
def test_spike_rows_of_the_jacobians_carry_the_surrogate(model):
    """The conformance test above is only meaningful if ψ is exercised: on states near threshold
    the spike component's input sensitivity c[z] is non-zero."""
    g = torch.Generator().manual_seed(0)
    shape = (4, 8)
    s = random_state(model, shape, g)
    I = CURRENT_SCALE[type(model)] * torch.randn(shape, generator=g)
    closed = model.jacobians(I, s, random_params(model, shape[-1], g))
    assert float(closed.c[model.out_index].abs().max()) > 1e-3


@pytest.mark.parametrize("model_type", [BRF, SEAdLIF, ALIF, LIF, LI, Linear])
def test_builtin_models_have_closed_form_jacobians(model_type):
    # Otherwise the conformance suite would compare torch.func with itself.
    assert model_type.jacobians is not NeuronModel.jacobians


@pytest.mark.parametrize("model", [MODELS[0], MODELS[3], MODELS[6], MODELS[9], MODELS[12]],
                         ids=model_id)
def test_torch_func_jacobians_equal_autograd_per_neuron(model):
    """The reference itself, checked against ``torch.autograd.functional.jacobian`` neuron by
    neuron (so a vmap or layout mistake in func_jacobians cannot hide)."""
    g = torch.Generator().manual_seed(1)
    n = 3
    s = random_state(model, (n,), g)
    I = CURRENT_SCALE[type(model)] * torch.randn(n, generator=g)
    params = random_params(model, n, g)
    ref = func_jacobians(model, I, s, params)
    names = model.param_names
    for k in range(n):
        def one(s1, i1, *p1):
            return model.step(i1, s1, dict(zip(names, p1, strict=True)))[1]

        args = (s[k], I[k], *[params[p][k] for p in names])
        J = torch.autograd.functional.jacobian(one, args)
        torch.testing.assert_close(ref.A[..., k], J[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ref.c[..., k], J[1], rtol=1e-12, atol=1e-12)
        for p in range(len(names)):
            torch.testing.assert_close(ref.D[:, p, k], J[2 + p], rtol=1e-12, atol=1e-12)


@dataclass(frozen=True)
class UserAdaptiveLIF(NeuronModel):
    """A user's own neuron, defining only its equations: subtractive reset and an adaptation
    current driven by the new spike (so A couples all three components)."""

    state_names = ("u", "w", "z")
    param_names = ("tau",)

    threshold: float = 0.5
    surrogate: Surrogate | str = DoubleGaussian()

    def init_params(self, n: int) -> dict[str, Tensor]:
        return {"tau": torch.empty(n).uniform_(5.0, 15.0)}

    def step(self, I: Tensor, s: Tensor, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        u, w, z = s.unbind(-1)
        alpha = torch.exp(-1.0 / params["tau"])
        u_new = alpha * u + (1.0 - alpha) * I - w - self.threshold * z
        z_new = self.surrogate.spike(u_new - self.threshold)
        w_new = 0.9 * w + 0.1 * z_new
        return z_new, stack_components(u_new, w_new, z_new)


def drive_(net: hs.RSNN) -> None:
    """Stronger weights and a positive bias so the user model's neurons spike from the start."""
    with torch.no_grad():
        for layer in net.layers:
            layer.weight_in.mul_(3.0)
            layer.bias.fill_(1.0)


def test_user_model_without_jacobians_uses_the_torch_func_path():
    assert UserAdaptiveLIF.jacobians is NeuronModel.jacobians
    model = UserAdaptiveLIF()
    g = torch.Generator().manual_seed(0)
    s = random_state(model, (2, 5), g)
    I = 2 * torch.randn(2, 5, generator=g)
    params = {"tau": 5 + 10 * torch.rand(5, generator=g)}
    j = model.jacobians(I, s, params)
    assert j.A.shape == (3, 3, 2, 5) and j.c.shape == (3, 2, 5) and j.D.shape == (3, 1, 2, 5)
    # ∂u_t/∂u_{t-1} = α, ∂u_t/∂w_{t-1} = −1, ∂u_t/∂z_{t-1} = −θ, ∂u_t/∂I_t = 1 − α.
    alpha = torch.exp(-1.0 / params["tau"]).expand(2, 5)
    torch.testing.assert_close(j.A[0, 0], alpha)
    torch.testing.assert_close(j.A[0, 1], -torch.ones(2, 5))
    torch.testing.assert_close(j.A[0, 2], torch.full((2, 5), -0.5))
    torch.testing.assert_close(j.c[0], 1.0 - alpha)


@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    T=st.integers(3, 12),
    lam=st.integers(1, 12),
    two_layers=st.booleans(),
)
def test_user_model_trains_end_to_end_with_hypr_equal_to_eprop(seed, T, lam, two_layers):
    torch.manual_seed(seed)
    hidden = [5, 4] if two_layers else [5]
    net = hs.RSNN(3, hidden, 2, neuron=UserAdaptiveLIF(), recurrent=True)
    drive_(net)
    x = 2 * torch.randn(T, 2, 3)
    y = torch.randint(0, 2, (T, 2))
    assume(hidden_spike_counts(net, x)[0] > 0)  # a few short draws stay silent
    eprop = hs.gradients(net, x, y, rule="eprop")
    hypr = hs.gradients(net, x, y, rule="hypr", lam=lam)
    assert_close_to_reference(hypr, eprop, 1e-9, live=["layers.0.weight_in", "layers.0.tau"])


def test_user_model_eprop_equals_bptt_when_the_estimator_is_exact():
    torch.manual_seed(3)
    net = hs.RSNN(3, [6], 2, neuron=UserAdaptiveLIF(), recurrent=False, readout="linear")
    drive_(net)
    x = 2 * torch.randn(10, 3, 3)
    y = torch.randint(0, 2, (10, 3))
    bptt = hs.gradients(net, x, y, rule="bptt")
    eprop = hs.gradients(net, x, y, rule="eprop")
    assert_close_to_reference(eprop, bptt, 1e-9,
                              live=["layers.0.weight_in", "layers.0.bias", "layers.0.tau"])


def test_torch_func_jacobians_keep_a_float32_network_in_float32():
    """vmap(jacfwd) promotes Python-float products to float64; the fallback casts back."""
    with torch.device("cpu"):
        model = UserAdaptiveLIF()
        s = torch.zeros(2, 5, model.d, dtype=torch.float32)
        I = torch.randn(2, 5, dtype=torch.float32)
        params = {"tau": torch.full((5,), 10.0, dtype=torch.float32)}
        assert all(j.dtype == torch.float32 for j in model.jacobians(I, s, params))
