"""Errors name the problem: wrong shapes and dtypes, unknown models, options, rules, scans and
losses, invalid λ or truncation, out-of-range targets. Each is raised before any work is done."""

from __future__ import annotations

import pytest
import torch

import hypr_stream as hs
from hypr_stream.neurons import BRF
from tests.oracles import default_dtype


@pytest.fixture(autouse=True, scope="module")
def float64():
    with default_dtype(torch.float64):
        yield


@pytest.fixture
def net() -> hs.RSNN:
    torch.manual_seed(0)
    return hs.RSNN(3, [4], 2, neuron="lif")


T, B = 5, 2


def x_() -> torch.Tensor:
    return torch.randn(T, B, 3)


def y_() -> torch.Tensor:
    return torch.zeros(T, B, dtype=torch.long)


@pytest.mark.parametrize(("shape", "match"), [
    ((3,), r"x must have shape \[T, B, 3\] or \[T, 3\].*got \(3,\)"),
    ((T, B, 4), r"x must have shape \[T, B, 3\].*got \(5, 2, 4\)"),
    ((T, 4), r"got \(5, 4\)"),
    ((T, B, 1, 3), r"got \(5, 2, 1, 3\)"),
    ((0, B, 3), r"T >= 1, got \(0, 2, 3\)"),
])
def test_wrong_input_shape_names_expected_and_actual(net, shape, match):
    with pytest.raises(ValueError, match=match):
        net(torch.randn(shape))
    with pytest.raises(ValueError, match=match):
        hs.gradients(net, torch.randn(shape), y_())


def test_float64_input_into_float32_network(net):
    with default_dtype(torch.float32):
        net32 = hs.RSNN(3, [4], 2, neuron="lif")
    with pytest.raises(TypeError, match="x has dtype torch.float64 but the network's parameters "
                                        "are torch.float32"):
        net32(x_())
    with pytest.raises(TypeError, match="dtype torch.float64"):
        hs.gradients(net32, x_(), y_())


def test_input_that_is_not_a_tensor(net):
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        net([[0.0, 0.0, 0.0]])


def test_unknown_neuron_model_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown neuron model 'izhikevich'; choose one of "
                                         r"\['alif', 'brf', 'lif', 'se_adlif'\]"):
        hs.RSNN(3, [4], 2, neuron="izhikevich")


def test_unknown_readout():
    with pytest.raises(ValueError, match=r"unknown readout 'softmax'; choose one of "
                                         r"\['li', 'linear'\]"):
        hs.RSNN(3, [4], 2, readout="softmax")


def test_unknown_model_option_names_the_option():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['omgea'\] for neuron model "
                                         r"'brf'"):
        hs.RSNN(3, [4], 2, neuron="brf", omgea=(1.0, 2.0))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['tau'\] for readout 'li'"):
        hs.RSNN(3, [4], 2, readout_options={"tau": 3.0})


def test_options_with_a_model_instance_are_rejected():
    with pytest.raises(ValueError, match=r"neuron model options \['variant'\] given with a "
                                         "model instance"):
        hs.RSNN(3, [4], 2, neuron=BRF(), variant="exact")


def test_unknown_brf_variant():
    with pytest.raises(ValueError, match="BRF variant must be one of .* got 'rk4'"):
        hs.RSNN(3, [4], 2, neuron="brf", variant="rk4")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"hidden": []}, "hidden must list at least one layer size"),
    ({"hidden": [4, 0]}, "hidden must be a positive int, got 0"),
    ({"n_in": 0}, "n_in must be a positive int, got 0"),
    ({"n_out": 2.0}, r"n_out must be a positive int, got 2\.0"),
    ({"recurrent": [True, False]}, "recurrent has 2 entries for 1 hidden layers"),
])
def test_invalid_network_sizes(kwargs, match):
    args = {"n_in": 3, "hidden": [4], "n_out": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        hs.RSNN(**args)


def test_unknown_rule_lists_the_known_ones(net):
    with pytest.raises(ValueError, match=r"unknown learning rule 'sgd'; choose one of "
                                         r"\('hypr', 'eprop', 'bptt'\)"):
        hs.gradients(net, x_(), y_(), rule="sgd")


def test_unknown_scan_method(net):
    with pytest.raises(ValueError, match="unknown scan method 'tree'"):
        hs.gradients(net, x_(), y_(), scan="tree")


@pytest.mark.parametrize("lam", [0, -1, 2.5, True, "4"])
def test_lambda_must_be_a_positive_int(net, lam):
    with pytest.raises(ValueError, match=f"lam must be an int >= 1, got {lam!r}"):
        hs.gradients(net, x_(), y_(), lam=lam)


@pytest.mark.parametrize("truncation", [0, -3, 1.5])
def test_truncation_must_be_a_positive_int(net, truncation):
    with pytest.raises(ValueError, match=f"truncation must be an int >= 1, got {truncation!r}"):
        hs.gradients(net, x_(), y_(), rule="bptt", truncation=truncation)


@pytest.mark.parametrize("rule", ["eprop", "bptt"])
def test_lambda_with_another_rule(net, rule):
    with pytest.raises(ValueError, match=f"lam applies to rule 'hypr' only \\(got rule '{rule}'"):
        hs.gradients(net, x_(), y_(), rule=rule, lam=2)


def test_truncation_with_another_rule(net):
    with pytest.raises(ValueError, match="truncation applies to rule 'bptt' only"):
        hs.gradients(net, x_(), y_(), rule="hypr", truncation=2)


@pytest.mark.parametrize("bad", [2, -2, 7])
def test_class_index_out_of_range_is_named(net, bad):
    y = y_()
    y[3, 1] = bad
    with pytest.raises(ValueError, match=f"y holds class index {bad} outside \\[-1, 2\\)"):
        hs.gradients(net, x_(), y)


@pytest.mark.parametrize("shape", [(T,), (T, B + 1), (T - 1, B), (T, B, 1)])
def test_class_targets_of_the_wrong_shape(net, shape):
    with pytest.raises(ValueError, match=r"y for loss 'ce' must have shape \(5, 2\), got "
                                         + repr(shape).replace("(", r"\(").replace(")", r"\)")):
        hs.gradients(net, x_(), torch.zeros(shape, dtype=torch.long))


@pytest.mark.parametrize("shape", [(T, B), (T, B, 3), (T, 1, 2)])
def test_regression_targets_of_the_wrong_shape(net, shape):
    with pytest.raises(ValueError, match=r"y for loss 'mse' must have shape \(5, 2, 2\)"):
        hs.gradients(net, x_(), torch.zeros(shape))


def test_target_dtype_must_fit_the_loss(net):
    with pytest.raises(TypeError, match="y for loss 'mse' must be floating point, got torch.int64"):
        hs.gradients(net, x_(), torch.zeros(T, B, 2, dtype=torch.long), loss="mse")
    with pytest.raises(TypeError, match="y for loss 'ce' must hold integer class indices, got "
                                        "torch.float64"):
        hs.gradients(net, x_(), torch.zeros(T, B), loss="ce")
    with pytest.raises(TypeError, match="y must be a torch.Tensor, got list"):
        hs.gradients(net, x_(), [0] * T)


def test_unknown_loss(net):
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; choose one of \('ce', 'mse'\)"):
        hs.gradients(net, x_(), y_(), loss="hinge")


@pytest.mark.parametrize("shape", [(T,), (T, B + 1), (T - 1, B), (T, B, 1)])
def test_mask_of_the_wrong_shape(net, shape):
    with pytest.raises(ValueError, match=r"mask must have shape \(5, 2\), got"):
        hs.gradients(net, x_(), y_(), mask=torch.ones(shape, dtype=torch.bool))


def test_boundary_of_the_wrong_shape_or_dtype(net):
    with pytest.raises(ValueError, match=r"boundary must be bool \[T, B\] = \(5, 2\)"):
        hs.gradients(net, x_(), y_(), boundary=torch.zeros(T, B + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"boundary must be bool .* got torch.int64"):
        hs.gradients(net, x_(), y_(), boundary=torch.zeros(T, B, dtype=torch.long))


def test_unknown_surrogate_through_the_network():
    with pytest.raises(ValueError, match="unknown surrogate 'sigmoid'"):
        hs.RSNN(3, [4], 2, neuron="lif", surrogate="sigmoid")
