"""StreamLearner: chunking invariance, batch mode, boundaries, bad input, the cue task."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hypr_stream as hs
from sources.synthetic import cue_batch

N_IN, N_OUT = 3, 2


def make_net(dtype: torch.dtype = torch.float64, seed: int = 1, neuron: str = "brf") -> hs.RSNN:
    torch.manual_seed(seed)
    return hs.RSNN(N_IN, [6], N_OUT, neuron=neuron, init_gain=40.0).to(dtype)  # BRF spikes


def stream(T: int, B: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = (2 * torch.randn(T, B, N_IN, generator=g)).to(dtype)
    y = torch.randint(-1, N_OUT, (T, B), generator=g)
    return x, y


def feed(learner: hs.StreamLearner, x, y, cuts: list[int]) -> torch.Tensor:
    bounds = [0, *sorted(set(cuts)), x.shape[0]]
    outs = [learner.learn(x[a:b], y[a:b])
            for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    return torch.cat(outs)


def snapshot(learner: hs.StreamLearner) -> dict:
    """Everything a learner carries, as tensors and numbers, for exact comparison."""
    metrics = {k: v for k, v in learner.metrics.items()
               if k not in ("steps_per_second", "latency_ms")}
    return {
        "params": {k: v.detach().clone() for k, v in learner.net.state_dict().items()},
        "state": [s.clone() for s in learner.state] if learner.state else None,
        "eligibility": copy.deepcopy(learner.eligibility),
        "metrics": metrics,
        "pending": learner.pending_steps,
    }


def assert_same(a: dict, b: dict, exact: bool = True) -> None:
    check = torch.equal if exact else (lambda u, v: torch.allclose(u, v, rtol=1e-4, atol=1e-6))
    assert a["params"].keys() == b["params"].keys()
    for key in a["params"]:
        assert check(a["params"][key], b["params"][key]), key
    for s, t in zip(a["state"], b["state"], strict=True):
        assert check(s, t)
    if a["eligibility"] is not None:
        for e, f in zip(a["eligibility"], b["eligibility"], strict=True):
            for u, v in zip(e, f, strict=True):
                assert check(u, v)
    if exact:
        assert a["metrics"] == b["metrics"]
    assert a["pending"] == b["pending"]


@settings(max_examples=12, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 59), max_size=12),
    lam=st.integers(1, 13),
    rule=st.sampled_from(["hypr", "eprop", "bptt"]),
    update_every=st.sampled_from([1, 2, None]),
)
def test_chunking_never_changes_outputs_weights_or_metrics(cuts, lam, rule, update_every):
    x, y = stream(60, 2, torch.float64)
    whole = hs.StreamLearner(make_net(), rule=rule, lam=lam, lr=1e-2,
                             update_every=update_every, device="cpu")
    pieces = hs.StreamLearner(make_net(), rule=rule, lam=lam, lr=1e-2,
                              update_every=update_every, device="cpu")
    out_whole = feed(whole, x, y, [])
    out_pieces = feed(pieces, x, y, cuts)
    assert torch.equal(out_whole, out_pieces)
    assert whole.counters["updates"] > 0 or update_every is None
    assert_same(snapshot(whole), snapshot(pieces))


def test_one_step_chunks_equal_one_chunk_in_float64_and_float32():
    for dtype, exact in [(torch.float64, True), (torch.float32, False)]:
        x, y = stream(45, 3, dtype)
        a = hs.StreamLearner(make_net(dtype), lam=7, lr=1e-2, device="cpu")
        b = hs.StreamLearner(make_net(dtype), lam=7, lr=1e-2, device="cpu")
        out_a = feed(a, x, y, [])
        out_b = feed(b, x, y, list(range(1, 45)))
        assert a.counters["updates"] == 6
        if exact:
            assert torch.equal(out_a, out_b)
        torch.testing.assert_close(out_a, out_b, rtol=1e-4, atol=1e-5)
        assert_same(snapshot(a), snapshot(b), exact=exact)


@pytest.mark.parametrize("rule", ["hypr", "eprop", "bptt"])
@pytest.mark.parametrize("end", ["boundary", "flush"])
def test_batch_mode_update_equals_one_optimizer_step_on_gradients(rule, end):
    x, y = stream(40, 2, torch.float64)
    learner = hs.StreamLearner(make_net(), rule=rule, lam=6, optimizer="adam", lr=1e-2,
                               update_every=None, device="cpu")
    feed(learner, x, y, [5, 17, 18, 31])
    assert learner.counters["updates"] == 0
    if end == "boundary":  # the next sample's first step ends this one
        learner.learn(x[:1], None, boundary=torch.ones(1, 2, dtype=torch.bool))
    else:
        learner.flush()
    assert learner.counters["updates"] == 1

    reference = make_net()
    g = hs.gradients(reference, x, y, rule=rule, **({"lam": 6} if rule == "hypr" else
                                                    {"truncation": 6} if rule == "bptt" else {}))
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    for name, p in reference.named_parameters():
        p.grad = g[name]
    torch.nn.utils.clip_grad_norm_(list(reference.parameters()), 10.0)
    optimizer.step()
    reference.constrain_()
    for (name, p), q in zip(reference.named_parameters(), learner.net.parameters(), strict=True):
        if rule == "eprop":  # gradients() sums e-prop over other blocks: rounding may differ
            torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
        else:
            assert torch.equal(p, q), name
    assert any(g[n].abs().sum() > 0 for n in g)


def test_a_boundary_resets_the_stream_it_marks_and_only_that_one():
    x, _ = stream(30, 2, torch.float64)
    learner = hs.StreamLearner(make_net(), lam=4, optimizer="sgd", lr=0.0, device="cpu")
    boundary = torch.zeros(30, 2, dtype=torch.bool)
    boundary[12, 0] = True
    out = learner.learn(x, None, boundary=boundary)
    with torch.no_grad():
        fresh = learner.net(x[12:, :1])
        continued = learner.net(x[:, 1:])
    assert torch.equal(out[12:, :1], fresh)  # stream 0 restarted at step 12
    assert torch.equal(out[:, 1:], continued)  # stream 1 never reset
    with torch.no_grad():
        assert not torch.equal(out[12:, 1:], learner.net(x[12:, 1:]))  # the reset mattered


def test_predict_learns_nothing_and_leaves_learning_state_alone():
    x, y = stream(20, 2, torch.float64)
    learner = hs.StreamLearner(make_net(), lam=5, lr=1e-2, device="cpu")
    learner.learn(x[:13], y[:13])
    before = snapshot(learner)
    first = learner.predict(x)
    second = learner.predict(x)
    assert_same(before, snapshot(learner))
    with torch.no_grad():
        expected, state = learner.net(x, return_state=True)
        again = learner.net(x, state)
    assert torch.equal(first, expected) and torch.equal(second, again)  # state carried


def test_chunks_without_targets_leave_the_weights_alone_even_under_adam():
    """Unlabelled steps (a live microphone after training) give a zero gradient; an Adam step
    on it would still move the weights by its momentum, so no step is taken."""
    x, y = stream(30, 2, torch.float64)
    learner = hs.StreamLearner(make_net(), lam=5, lr=1e-2, optimizer="adam", device="cpu")
    learner.learn(x[:10], y[:10])
    updates, weights = learner.counters["updates"], copy.deepcopy(learner.net.state_dict())
    assert updates == 2
    learner.learn(x[10:], torch.full_like(y[10:], -1))
    learner.flush()
    assert learner.counters["updates"] == updates
    for name, value in learner.net.state_dict().items():
        assert torch.equal(value, weights[name]), name


def test_single_stream_input_gives_single_stream_output():
    learner = hs.StreamLearner(make_net(), lam=4, device="cpu")
    x, y = stream(9, 1, torch.float64)
    out = learner.learn(x[:, 0], y[:, 0])
    assert out.shape == (9, N_OUT)


def test_numpy_chunks_from_sources_are_accepted():
    learner = hs.StreamLearner(make_net(torch.float32), lam=8, device="cpu")
    x, y, mask = cue_batch(2, delay=5)
    out = learner.learn(x[:, :, :N_IN], y, mask)
    assert out.shape == (x.shape[0], 2, N_OUT) and out.dtype == torch.float32


def with_value(x: torch.Tensor, step: int, value: float) -> torch.Tensor:
    x = x.clone()
    x[step, 0, 0] = value
    return x


BAD_CHUNKS = {
    "wrong feature count": (lambda x, y: (x[..., :2], y), "shape"),
    "wrong number of streams": (lambda x, y: (x[:, :1], y[:, :1]), "streams"),
    "integer x": (lambda x, y: (x.long(), y), "floating point"),
    "NaN in x": (lambda x, y: (with_value(x, 3, float("nan")), y), "NaN"),
    "Inf in x": (lambda x, y: (with_value(x, 0, float("inf")), y), "NaN or Inf"),
    "label out of range": (lambda x, y: (x, y.index_put((torch.tensor([2]),), torch.tensor(7))),
                           "class index 7"),
    "float labels for ce": (lambda x, y: (x, y.double()), "integer class indices"),
    "labels of wrong length": (lambda x, y: (x, y[:-1]), "shape"),
    "a list": (lambda x, y: (x.tolist(), y), "torch.Tensor or numpy"),
}


@pytest.mark.parametrize("case", sorted(BAD_CHUNKS))
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(case):
    make_bad, message = BAD_CHUNKS[case]
    x, y = stream(10, 2, torch.float64)
    for policy in ["raise", "skip"]:
        learner = hs.StreamLearner(make_net(), lam=3, lr=1e-2, device="cpu", on_invalid=policy)
        learner.learn(x[:7], y[:7])
        before = snapshot(learner)
        bad_x, bad_y = make_bad(x, y)
        if policy == "raise":
            with pytest.raises(hs.InvalidInput, match=message):
                learner.learn(bad_x, bad_y)
        else:
            assert learner.learn(bad_x, bad_y) is None
        after = snapshot(learner)
        assert after["metrics"].pop("rejected") == 1
        before["metrics"].pop("rejected")
        assert_same(before, after)
        assert learner.learn(x[7:], y[7:]).shape == (3, 2, N_OUT)  # and it keeps running


def test_nan_targets_for_regression_are_refused():
    torch.manual_seed(0)
    learner = hs.StreamLearner(make_net(), lam=3, loss="mse", device="cpu")
    x, _ = stream(5, 2, torch.float64)
    y = torch.zeros(5, 2, N_OUT, dtype=torch.float64)
    y[1, 0, 0] = float("nan")
    with pytest.raises(hs.InvalidInput, match="y contains NaN"):
        learner.learn(x, y)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"rule": "sgd"}, "unknown learning rule"), ({"lam": 0}, "lam must be"),
     ({"update_every": 0}, "update_every"), ({"clip": -1.0}, "clip"), ({"loss": "nll"}, "loss"),
     ({"optimizer": "lbfgs"}, "unknown optimizer"), ({"on_invalid": "ignore"}, "on_invalid"),
     ({"scan": "tree"}, "scan method")],
)
def test_bad_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hs.StreamLearner(make_net(), device="cpu", **kwargs)


def test_metrics_are_prequential_and_printable():
    x, y = stream(50, 2, torch.float64)
    learner = hs.StreamLearner(make_net(), lam=10, lr=1e-2, device="cpu", window=20)
    out = learner.learn(x, y)
    m = learner.metrics
    mask = y >= 0
    expected = (out.argmax(-1) == y)[mask].double().mean().item()
    assert m["accuracy"] == pytest.approx(expected)  # scored on the outputs learn() returned
    assert m["target_steps"] == int(mask.sum())
    recent = (out.argmax(-1) == y)[mask][-20:].double().mean().item()
    assert m["accuracy_window"] == pytest.approx(recent)
    assert m["steps"] == 50 and m["updates"] == 5 and m["steps_per_second"] > 0
    line = hs.metrics.format_metrics(m)
    assert "steps 50" in line and "updates 5" in line and "%" in line


def test_cue_task_is_learned_online_as_an_endless_stream_of_trials():
    """Short version of the README's delay-1000 run: delay 50, BRF, HYPR, prequential."""
    torch.manual_seed(0)
    net = hs.RSNN(15, [32], 2, neuron="brf", variant="exact", init_gain=30.0,
                  omega_init=(1.0, 5.0), b_offset_init=(0.01, 0.1))
    delay, streams = 50, 4
    learner = hs.StreamLearner(net, lam=20 + delay + 20, lr=0.01, update_every=None,
                               device="cpu")
    boundary = np.zeros((40 + delay, streams), dtype=bool)
    boundary[0] = True
    correct = []
    for r in range(150):
        x, y, mask = cue_batch(streams, delay, seed=r)
        out = learner.learn(x, y, mask, boundary=boundary)
        correct += (out[-20:].mean(0).argmax(-1).numpy() == y[-1]).tolist()
    assert np.mean(correct[:200]) < 0.8  # it starts near chance ...
    assert np.mean(correct[-200:]) >= 0.95  # ... and learns online


def test_subnormals_are_flushed_only_while_the_learner_computes():
    def flushing() -> bool:
        return float(torch.tensor(1e-30) * 1e-10) == 0.0

    assert not flushing()
    learner = hs.StreamLearner(make_net(), lam=4, device="cpu")
    learner.learn(*stream(9, 2, torch.float64))
    learner.flush()
    assert not flushing()  # the caller's floating-point mode is restored
