"""rules/hypr.py against rules/eprop.py: HYPR's gradient equals online e-prop's for every λ
(1, one that does not divide T, T), every model, 1 or 2 hidden layers, recurrent or not, both
losses, masks and −1 targets, and sequence boundaries; a stream processed in subsequences (with
non-zero incoming eligibility) gives the gradient of one pass."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import hypr_stream as hs
import hypr_stream.functional
from hypr_stream.losses import make_targets
from hypr_stream.rules import make_rule
from tests.oracles import (
    SPIKING_MODEL_IDS,
    SPIKING_MODELS,
    assert_close_to_reference,
    default_dtype,
    hidden_spike_counts,
    random_targets,
    spiking_net,
)


@pytest.fixture(autouse=True, scope="module")
def float64():
    with default_dtype(torch.float64):
        yield


MODELS, MODEL_IDS = SPIKING_MODELS, SPIKING_MODEL_IDS


def lam_for(kind: str, T: int) -> int:
    """λ = 1, λ = T, or a λ in (1, T) that does not divide T (the last subsequence is short)."""
    if kind == "one":
        return 1
    if kind == "whole":
        return T
    return next(k for k in range(T - 1, 1, -1) if T % k)


problems = dict(
    seed=st.integers(0, 2**16),
    T=st.integers(4, 11),
    B=st.integers(1, 3),
    n_in=st.integers(2, 4),
    hidden=st.lists(st.integers(3, 6), min_size=1, max_size=2),
    n_out=st.integers(2, 3),
    recurrent=st.lists(st.booleans(), min_size=2, max_size=2),
    readout=st.sampled_from(["li", "linear"]),
    loss=st.sampled_from(["ce", "mse"]),
    masked=st.booleans(),
)


def build(neuron, options, seed, T, B, n_in, hidden, n_out, recurrent, readout, loss, masked):
    net = spiking_net(neuron, n_in, hidden, n_out, seed=seed,
                      recurrent=recurrent[: len(hidden)], readout=readout, **options)
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(T, B, n_in, generator=g)
    y, mask = random_targets(T, B, n_out, loss, masked, g)
    # Every hidden layer must spike, or the comparison would be of (partly) dead gradients.
    assume(all(count > 0 for count in hidden_spike_counts(net, x)))
    return net, x, y, mask


LIVE = ["layers.0.weight_in", "layers.0.bias", "readout.bias"]


@pytest.mark.parametrize("lam_kind", ["one", "ragged", "whole"])
@pytest.mark.parametrize(("neuron", "options"), MODELS, ids=MODEL_IDS)
@settings(max_examples=20, deadline=None)
@given(**problems)
def test_hypr_equals_eprop_for_every_lambda(neuron, options, lam_kind, **problem):
    net, x, y, mask = build(neuron, options, **problem)
    lam = lam_for(lam_kind, x.shape[0])
    eprop = hs.gradients(net, x, y, mask, rule="eprop")
    hypr = hs.gradients(net, x, y, mask, rule="hypr", lam=lam)
    assert set(hypr) == {name for name, _ in net.named_parameters()}
    assert_close_to_reference(hypr, eprop, 1e-9, live=LIVE)


@pytest.mark.parametrize(("neuron", "options"), MODELS, ids=MODEL_IDS)
@settings(max_examples=15, deadline=None)
@given(lam=st.integers(1, 12), boundary_seed=st.integers(0, 2**16), **problems)
def test_hypr_equals_eprop_across_sequence_boundaries(neuron, options, lam, boundary_seed,
                                                       **problem):
    net, x, y, mask = build(neuron, options, **problem)
    g = torch.Generator().manual_seed(boundary_seed)
    boundary = torch.rand(x.shape[:2], generator=g) < 0.25
    eprop = hs.gradients(net, x, y, mask, rule="eprop", boundary=boundary)
    hypr = hs.gradients(net, x, y, mask, rule="hypr", lam=lam, boundary=boundary)
    assert_close_to_reference(hypr, eprop, 1e-9, live=LIVE)


def driven_problem(neuron="alif", T=24, B=2, seed=0, **options):
    net = spiking_net(neuron, 3, [6, 5], 3, seed=seed, recurrent=True, **options)
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(T, B, 3, generator=g)
    y, mask = random_targets(T, B, 3, "ce", True, g)
    assert all(c > 0 for c in hidden_spike_counts(net, x))
    return net, x, y, mask


HIDDEN_KEYS = ["layers.0.weight_in", "layers.0.weight_rec", "layers.1.weight_in",
               "layers.1.weight_rec", "layers.1.bias"]


@pytest.mark.parametrize("neuron", ["brf", "se_adlif", "alif", "lif"])
def test_long_stream_in_short_subsequences_equals_one_pass(neuron):
    net, x, y, mask = driven_problem(neuron)
    whole = hs.gradients(net, x, y, mask, lam=x.shape[0])
    for lam in (1, 5, 7):
        assert_close_to_reference(hs.gradients(net, x, y, mask, lam=lam), whole, 1e-9,
                                  live=HIDDEN_KEYS)


@pytest.mark.parametrize("rule", ["hypr", "eprop"])
def test_subsequences_carry_a_nonzero_eligibility_that_completes_the_gradient(rule):
    """Drive the rule block by block by hand: the eligibility handed from one block to the next
    is non-zero, and dropping it (restarting from zero) changes the gradient."""
    net, x, y, mask = driven_problem("alif", T=20)
    targets = make_targets(y, mask, net.n_out, x)
    reference = hs.gradients(net, x, y, mask, rule="eprop")

    def blockwise(carry: bool) -> dict[str, torch.Tensor]:
        learner = make_rule(rule, "sequential")
        state, eligibility = net.init_state(x.shape[1]), learner.init_eligibility(net, x.shape[1])
        total = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
        for start in range(0, 20, 6):
            steps = slice(start, start + 6)
            with torch.no_grad():
                run = net.run(x[steps], state, trace=True)
            if not carry:
                eligibility = learner.init_eligibility(net, x.shape[1])
            elif start > 0:
                assert float(eligibility[0].weight.abs().max()) > 0
                assert float(eligibility[0].local.abs().max()) > 0
            grads, eligibility = learner.block_gradient(net, run, targets[steps], eligibility)
            for n, gr in grads.items():
                total[n] += gr
            state = run.state
        return total

    assert_close_to_reference(blockwise(carry=True), reference, 1e-9, live=HIDDEN_KEYS)
    dropped = blockwise(carry=False)
    assert float((dropped["layers.0.weight_in"] - reference["layers.0.weight_in"]).abs().max()) \
        > 1e-6 * float(reference["layers.0.weight_in"].abs().max())


def test_eprop_gradient_does_not_depend_on_its_internal_block_size(monkeypatch):
    net, x, y, mask = driven_problem("lif", T=17)
    one_block = hs.gradients(net, x, y, mask, rule="eprop")  # 17 < EPROP_BLOCK: one block
    monkeypatch.setattr(hypr_stream.functional, "EPROP_BLOCK", 4)
    assert_close_to_reference(hs.gradients(net, x, y, mask, rule="eprop"), one_block, 1e-9,
                              live=HIDDEN_KEYS)


@pytest.mark.parametrize("rule", ["hypr", "eprop", "bptt"])
def test_boundary_splits_a_stream_into_independent_samples(rule):
    """A boundary resets state and eligibility: the gradient over a stream with a boundary at
    t0 is the sum of the gradients of the two pieces run from zero state."""
    net, x, y, mask = driven_problem("alif", T=16, B=1)
    t0 = 9
    boundary = torch.zeros(16, 1, dtype=torch.bool)
    boundary[t0] = True
    mask[t0 - 1] = True
    y[t0 - 1] = 1
    kwargs = {"lam": 5} if rule == "hypr" else {}
    joined = hs.gradients(net, x, y, mask, rule=rule, boundary=boundary, **kwargs)
    first = hs.gradients(net, x[:t0], y[:t0], mask[:t0], rule=rule, **kwargs)
    second = hs.gradients(net, x[t0:], y[t0:], mask[t0:], rule=rule, **kwargs)
    split = {n: first[n] + second[n] for n in first}
    assert_close_to_reference(joined, split, 1e-9, live=HIDDEN_KEYS)
    unsplit = hs.gradients(net, x, y, mask, rule=rule, **kwargs)
    assert not torch.allclose(unsplit["layers.0.weight_in"], joined["layers.0.weight_in"])


def test_lambda_one_is_eprop_step_by_step():
    net, x, y, mask = driven_problem("brf", T=9)
    assert_close_to_reference(hs.gradients(net, x, y, mask, lam=1),
                              hs.gradients(net, x, y, mask, rule="eprop"), 1e-9, live=HIDDEN_KEYS)
