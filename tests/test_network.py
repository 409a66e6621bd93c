"""network.py: the RSNN behaves as PyTorch users expect of an ``nn.Module`` (parameter names,
state_dict, dtype and device moves, [T, C] input), options reach the models, initialisation and
constraints follow the spec, and running a stream in chunks equals running it at once."""

from __future__ import annotations

import pytest
import torch

import hypr_stream as hs
from hypr_stream.neurons import BRF, LI, SEAdLIF
from tests.oracles import assert_close_to_reference, default_dtype, spiking_net


@pytest.fixture(autouse=True, scope="module")
def float64():
    with default_dtype(torch.float64):
        yield


def test_parameter_names_follow_layers_then_readout():
    net = hs.RSNN(4, [5, 3], 2, neuron="brf", recurrent=[True, False], readout="li")
    shapes = {name: tuple(p.shape) for name, p in net.named_parameters()}
    assert shapes == {
        "layers.0.weight_in": (5, 4),
        "layers.0.weight_rec": (5, 5),
        "layers.0.bias": (5,),
        "layers.0.omega": (5,),
        "layers.0.b_offset": (5,),
        "layers.1.weight_in": (3, 5),
        "layers.1.bias": (3,),
        "layers.1.omega": (3,),
        "layers.1.b_offset": (3,),
        "readout.weight_in": (2, 3),
        "readout.bias": (2,),
        "readout.tau": (2,),
    }
    assert [prefix for prefix, _ in net.stack()] == ["layers.0", "layers.1", "readout"]


@pytest.mark.parametrize(("neuron", "extra"), [
    ("se_adlif", ["kappa_u", "kappa_w", "a", "b"]),
    ("alif", ["tau_u", "tau_a"]),
    ("lif", ["tau_u"]),
])
def test_each_model_registers_its_own_parameters(neuron, extra):
    net = hs.RSNN(2, [3], 2, neuron=neuron, readout="linear")
    assert [n for n, _ in net.named_parameters()] == [
        "layers.0.weight_in", "layers.0.weight_rec", "layers.0.bias",
        *[f"layers.0.{e}" for e in extra], "readout.weight_in", "readout.bias",
    ]


def test_gradients_are_keyed_like_named_parameters():
    net = spiking_net("alif", 3, [4, 3], 2, seed=0, recurrent=[True, False])
    x = 2 * torch.randn(6, 2, 3)
    y = torch.randint(0, 2, (6, 2))
    for rule in ("hypr", "eprop", "bptt"):
        grads = hs.gradients(net, x, y, rule=rule)
        assert list(grads) == [n for n, _ in net.named_parameters()]
        for name, p in net.named_parameters():
            assert grads[name].shape == p.shape and grads[name].dtype == p.dtype


def test_state_dict_round_trip_gives_identical_outputs():
    net = spiking_net("brf", 3, [5, 4], 2, seed=0, variant="exact")
    torch.manual_seed(99)
    fresh = hs.RSNN(3, [5, 4], 2, neuron="brf", variant="exact")
    x = 2 * torch.randn(12, 2, 3)
    assert not torch.equal(fresh(x), net(x))
    fresh.load_state_dict(net.state_dict())
    assert torch.equal(fresh(x), net(x))
    assert float(net(x).detach().abs().max()) > 0


def test_double_moves_parameters_and_gradients_come_back_in_float64():
    with default_dtype(torch.float32):
        net = hs.RSNN(3, [4], 2, neuron="lif")
        assert net.readout.bias.dtype == torch.float32
        x32 = torch.randn(5, 2, 3)
    net = net.double()
    assert all(p.dtype == torch.float64 for p in net.parameters())
    x = x32.double()
    assert net(x).dtype == torch.float64
    y = torch.randint(0, 2, (5, 2))
    for rule in ("hypr", "eprop", "bptt"):
        grads = hs.gradients(net, x, y, rule=rule)
        assert all(g.dtype == torch.float64 for g in grads.values()), rule
    with pytest.raises(TypeError, match="dtype"):
        net(x32)


def test_float32_network_computes_in_float32():
    with default_dtype(torch.float32):
        net = spiking_net("lif", 3, [4], 2, seed=0)
        x = 2 * torch.randn(6, 2, 3)
        y = torch.randint(0, 2, (6, 2))
        grads = hs.gradients(net, x, y, lam=2)
    assert net(x).dtype == torch.float32
    assert all(g.dtype == torch.float32 for g in grads.values())


def test_single_stream_input_gives_single_stream_output():
    net = spiking_net("alif", 3, [4], 2, seed=0)
    x = 2 * torch.randn(7, 3)
    out = net(x)
    assert out.shape == (7, 2)
    assert torch.equal(out, net(x.unsqueeze(1)).squeeze(1))
    y = torch.randint(0, 2, (7,))
    g_single = hs.gradients(net, x, y)
    g_batched = hs.gradients(net, x.unsqueeze(1), y.unsqueeze(1))
    assert_close_to_reference(g_single, g_batched, 1e-12, live=["layers.0.weight_in"])


def test_batched_output_shape_and_streams_are_independent():
    net = spiking_net("se_adlif", 3, [4], 5, seed=0)
    x = 2 * torch.randn(9, 3, 3)
    out = net(x)
    assert out.shape == (9, 3, 5)
    torch.testing.assert_close(out[:, 1], net(x[:, 1]), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("neuron", ["brf", "se_adlif", "alif", "lif"])
def test_stream_in_chunks_with_carried_state_equals_one_run(neuron):
    net = spiking_net(neuron, 3, [5, 4], 2, seed=1)
    x = 2 * torch.randn(20, 2, 3)
    whole = net(x)
    state, pieces = None, []
    for start in (0, 3, 4, 11):
        stop = {0: 3, 3: 4, 4: 11, 11: 20}[start]
        out, state = net(x[start:stop], state, return_state=True)
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces), whole, rtol=1e-12, atol=1e-12)
    assert float(whole.detach().abs().max()) > 0


def test_reset_restarts_only_the_marked_stream():
    net = spiking_net("alif", 3, [4], 2, seed=0)
    x = 2 * torch.randn(10, 2, 3)
    reset = torch.zeros(10, 2, dtype=torch.bool)
    reset[6, 0] = True
    with torch.no_grad():
        out = net.run(x, reset=reset).outputs
        torch.testing.assert_close(out[6:, 0], net(x[6:, 0]), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(out[:, 1], net(x[:, 1]), rtol=1e-12, atol=1e-14)
        assert not torch.allclose(out[6:, 0], net(x[:, 0])[6:])


def test_model_and_readout_options_reach_the_models():
    net = hs.RSNN(2, [3, 3], 2, neuron="brf", variant="exact", omega_init=(15.0, 50.0),
                  surrogate="slayer", readout="li", readout_options={"tau_init": (2.0, 3.0)})
    model = net.layers[0].model
    assert isinstance(model, BRF) and model.variant == "exact"
    assert net.layers[1].model is model
    assert type(model.surrogate).__name__ == "Slayer"
    for layer in net.layers:
        assert bool(((layer.omega >= 15.0) & (layer.omega <= 50.0)).all())
    assert isinstance(net.readout.model, LI)
    assert bool(((net.readout.tau >= 2.0) & (net.readout.tau <= 3.0)).all())


def test_recurrent_flag_per_layer():
    net = hs.RSNN(2, [3, 4, 5], 2, neuron="lif", recurrent=[False, True, False])
    assert [layer.weight_rec is not None for layer in net.layers] == [False, True, False]
    assert all(layer.weight_rec is None for layer in hs.RSNN(2, [3], 2, recurrent=False).layers)


def test_initialisation_follows_the_spec():
    torch.manual_seed(0)
    net = hs.RSNN(20, [30], 4, neuron="brf")
    layer = net.layers[0]
    assert bool(((layer.omega >= 5.0) & (layer.omega <= 10.0)).all())
    assert bool(((layer.b_offset >= 2.0) & (layer.b_offset <= 3.0)).all())
    # Xavier-uniform over fan_in = M + N for [W_in | W_rec] of shape [N, M + N].
    bound = (6.0 / (30 + 50)) ** 0.5
    weights = torch.cat([layer.weight_in, layer.weight_rec], dim=1).detach()
    assert float(weights.abs().max()) <= bound
    assert float(weights.abs().max()) > 0.8 * bound
    assert torch.equal(layer.bias, torch.zeros(30))


def test_constrain_clamps_out_of_range_parameters():
    net = hs.RSNN(2, [3], 2, neuron="brf")
    layer = net.layers[0]
    delta = layer.model.delta
    with torch.no_grad():
        layer.omega.copy_(torch.tensor([2.0 / delta, -1.0, 7.0]))
        layer.b_offset.copy_(torch.tensor([-0.5, 0.0, 2.5]))
        net.readout.tau.fill_(0.1)
    net.constrain_()
    omega, b_offset = layer.omega.tolist(), layer.b_offset.tolist()
    assert max(omega) < 1.0 / delta and min(omega) > 0.0 and omega[2] == 7.0
    assert min(b_offset) > 0.0 and b_offset[2] == 2.5
    assert min(net.readout.tau.tolist()) >= LI().tau_min
    x = torch.randn(5, 2)
    assert torch.isfinite(net(x)).all()  # p(ω) exists again


def test_constrain_clamps_adaptive_models():
    se = hs.RSNN(2, [2], 2, neuron="se_adlif").layers[0]
    with torch.no_grad():
        se.kappa_u.copy_(torch.tensor([-0.5, 1.5]))
        se.a.copy_(torch.tensor([2.0, -1.0]))
        se.b.copy_(torch.tensor([3.0, -1.0]))
    se.constrain_()
    assert se.kappa_u.tolist() == [0.0, 1.0]
    assert se.a.tolist() == [1.0, 0.0]
    assert se.b.tolist() == [SEAdLIF().b_range[1], 0.0]
    alif = hs.RSNN(2, [2], 2, neuron="alif").layers[0]
    with torch.no_grad():
        alif.tau_u.fill_(1.0)
        alif.tau_a.fill_(5.0)
    alif.constrain_()
    assert alif.tau_u.tolist() == [10.0, 10.0] and alif.tau_a.tolist() == [100.0, 100.0]


def test_model_instance_can_be_passed_directly():
    model = BRF(variant="exact")
    net = hs.RSNN(2, [3], 2, neuron=model)
    assert net.layers[0].model is model


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gradients_equal_cpu_gradients():
    net = spiking_net("brf", 3, [6], 2, seed=0)
    x = 2 * torch.randn(40, 2, 3)
    y = torch.randint(0, 2, (40, 2))
    cpu = hs.gradients(net, x, y, lam=16, scan="sequential")
    net_gpu = net.to("cuda")
    for scan in ("parallel", "sequential"):
        gpu = hs.gradients(net_gpu, x.cuda(), y.cuda(), lam=16, scan=scan)
        assert all(g.device.type == "cuda" for g in gpu.values())
        assert_close_to_reference({k: v.cpu() for k, v in gpu.items()}, cpu, 1e-9,
                                  live=["layers.0.weight_in"])
