"""rules/eprop.py and rules/bptt.py against autograd references (tests/oracles.py): with one
feed-forward layer and a linear readout e-prop is exact; with an LI readout or recurrence it is
an approximation (and measurably so); the readout's gradient is BPTT's in every configuration;
BPTT equals autograd, and truncated BPTT equals autograd over detached blocks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import hypr_stream as hs
from tests.oracles import (
    SPIKING_MODEL_IDS,
    SPIKING_MODELS,
    assert_close_to_reference,
    bptt_reference,
    default_dtype,
    hidden_spike_counts,
    random_targets,
    relative_difference,
    spiking_net,
)


@pytest.fixture(autouse=True, scope="module")
def float64():
    with default_dtype(torch.float64):
        yield


MODELS, MODEL_IDS = SPIKING_MODELS, SPIKING_MODEL_IDS
HIDDEN = ["layers.0.weight_in", "layers.0.bias"]


def problem(neuron, options, seed, T, B, hidden, recurrent, readout, loss, masked, n_in=3,
            n_out=3):
    net = spiking_net(neuron, n_in, hidden, n_out, seed=seed, recurrent=recurrent,
                      readout=readout, **options)
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(T, B, n_in, generator=g)
    y, mask = random_targets(T, B, n_out, loss, masked, g)
    return net, x, y, mask


@pytest.mark.parametrize(("neuron", "options"), MODELS, ids=MODEL_IDS)
@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    T=st.integers(4, 12),
    B=st.integers(1, 3),
    n=st.integers(3, 6),
    loss=st.sampled_from(["ce", "mse"]),
    masked=st.booleans(),
)
def test_eprop_equals_bptt_with_one_feedforward_layer_and_linear_readout(
    neuron, options, seed, T, B, n, loss, masked
):
    net, x, y, mask = problem(neuron, options, seed, T, B, [n], False, "linear", loss, masked)
    assume(hidden_spike_counts(net, x)[0] > 0)
    reference = bptt_reference(net, x, y, mask)
    assert_close_to_reference(hs.gradients(net, x, y, mask, rule="eprop"), reference, 1e-9,
                              live=HIDDEN)
    assert_close_to_reference(hs.gradients(net, x, y, mask, rule="hypr", lam=3), reference,
                              1e-9, live=HIDDEN)


@pytest.mark.parametrize(("neuron", "options"), MODELS, ids=MODEL_IDS)
def test_eprop_is_an_approximation_with_an_li_readout(neuron, options):
    """The path from a spike at t through the readout's leak to later losses is dropped."""
    net, x, y, mask = problem(neuron, options, 0, 16, 2, [6], False, "li", "ce", False)
    assert hidden_spike_counts(net, x)[0] > 0
    reference = bptt_reference(net, x, y, mask)
    eprop = hs.gradients(net, x, y, mask, rule="eprop")
    assert_close_to_reference(eprop, reference, 1e-9, keys=["readout.weight_in", "readout.bias",
                                                            "readout.tau"], live=HIDDEN)
    assert relative_difference(eprop, reference, "layers.0.weight_in") > 1e-3


@pytest.mark.parametrize(("neuron", "options"), MODELS, ids=MODEL_IDS)
def test_eprop_is_an_approximation_with_recurrence(neuron, options):
    """The path through W_rec z_{t-1} is dropped from the eligibility (spec §3)."""
    net, x, y, mask = problem(neuron, options, 0, 16, 2, [6], True, "linear", "ce", False)
    assert hidden_spike_counts(net, x)[0] > 0
    reference = bptt_reference(net, x, y, mask)
    eprop = hs.gradients(net, x, y, mask, rule="eprop")
    assert_close_to_reference(eprop, reference, 1e-9, keys=["readout.weight_in", "readout.bias"],
                              live=[*HIDDEN, "layers.0.weight_rec"])
    assert relative_difference(eprop, reference, "layers.0.weight_rec") > 1e-3


@pytest.mark.parametrize(("neuron", "options"), MODELS, ids=MODEL_IDS)
@settings(max_examples=6, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    T=st.integers(3, 10),
    B=st.integers(1, 2),
    hidden=st.lists(st.integers(3, 5), min_size=1, max_size=2),
    recurrent=st.booleans(),
    readout=st.sampled_from(["li", "linear"]),
    loss=st.sampled_from(["ce", "mse"]),
    masked=st.booleans(),
    lam=st.integers(1, 10),
)
def test_readout_gradient_equals_bptt_in_every_configuration(
    neuron, options, seed, T, B, hidden, recurrent, readout, loss, masked, lam
):
    net, x, y, mask = problem(neuron, options, seed, T, B, hidden, recurrent, readout, loss,
                              masked)
    assume(hidden_spike_counts(net, x)[-1] > 0)
    reference = bptt_reference(net, x, y, mask)
    keys = [k for k in reference if k.startswith("readout.")]
    for rule, kwargs in (("eprop", {}), ("hypr", {"lam": lam}), ("bptt", {})):
        estimate = hs.gradients(net, x, y, mask, rule=rule, **kwargs)
        assert_close_to_reference(estimate, reference, 1e-9, keys=keys, live=["readout.bias"])


@pytest.mark.parametrize(("neuron", "options"), MODELS, ids=MODEL_IDS)
def test_bptt_rule_equals_autograd_through_the_whole_sequence(neuron, options):
    net, x, y, mask = problem(neuron, options, 1, 14, 2, [5, 4], [True, False], "li", "mse",
                              True)
    assert all(c > 0 for c in hidden_spike_counts(net, x))
    reference = bptt_reference(net, x, y, mask)
    live = ["layers.0.weight_in", "layers.0.weight_rec", "layers.1.weight_in", "readout.tau"]
    assert_close_to_reference(hs.gradients(net, x, y, mask, rule="bptt"), reference, 1e-9,
                              live=live)
    assert_close_to_reference(hs.gradients(net, x, y, mask, rule="bptt", truncation=14),
                              reference, 1e-9, live=live)


@pytest.mark.parametrize("window", [1, 4, 5])
def test_truncated_bptt_equals_autograd_over_detached_blocks_and_differs_from_full(window):
    net, x, y, mask = problem("alif", {}, 2, 15, 2, [6], True, "li", "ce", True)
    assert hidden_spike_counts(net, x)[0] > 0
    full = bptt_reference(net, x, y, mask)
    reference = bptt_reference(net, x, y, mask, window=window)
    truncated = hs.gradients(net, x, y, mask, rule="bptt", truncation=window)
    assert_close_to_reference(truncated, reference, 1e-9,
                              live=["layers.0.weight_in", "layers.0.weight_rec"])
    assert relative_difference(truncated, full, "layers.0.weight_rec") > 1e-3


def test_gradients_leave_parameters_and_grad_untouched():
    net, x, y, mask = problem("lif", {}, 0, 8, 2, [4], True, "li", "ce", False)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for rule in ("hypr", "eprop", "bptt"):
        hs.gradients(net, x, y, mask, rule=rule)
    for n, p in net.named_parameters():
        assert p.grad is None, n
        torch.testing.assert_close(p.detach(), before[n], rtol=0, atol=0)
