"""Numerical faults and fuzzed input: the learner keeps running and never trains on NaN."""

from __future__ import annotations

import copy

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hypr_stream as hs


def make_learner(**kwargs) -> hs.StreamLearner:
    torch.manual_seed(0)
    net = hs.RSNN(3, [8], 2, neuron="brf", init_gain=40.0)
    return hs.StreamLearner(net, lam=4, lr=1e-2, device="cpu", **kwargs)


def normal_chunk(T: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(T, 2, 3, generator=g), torch.randint(0, 2, (T, 2), generator=g)


def finite_weights(learner: hs.StreamLearner) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in learner.net.parameters())


def test_an_overflowing_stream_is_reset_and_its_update_skipped():
    learner = make_learner()
    x, y = normal_chunk()
    learner.learn(x, y)
    before = copy.deepcopy(learner.net.state_dict())
    extreme = x.clone()
    extreme[:, 0] = 3e38  # finite, but the state overflows in stream 0
    learner.learn(extreme, y)
    assert learner.counters["state_faults"] >= 1
    assert learner.counters["skipped_updates"] >= 1
    assert finite_weights(learner)
    for name, value in before.items():  # the poisoned updates were not applied
        assert torch.equal(value, learner.net.state_dict()[name]), name
    out = learner.learn(*normal_chunk(seed=1))
    assert bool(torch.isfinite(out).all())  # and it keeps learning
    assert all(bool(torch.isfinite(s).all()) for s in learner.state)


def test_repeated_faults_roll_back_to_the_last_saved_weights(tmp_path):
    learner = make_learner(fault_limit=2)
    for seed in range(3):
        learner.learn(*normal_chunk(seed=seed))
    learner.save(tmp_path / "good.ckpt")
    saved = copy.deepcopy(learner.net.state_dict())
    learner.learn(*normal_chunk(seed=7))  # trains on past the checkpoint
    assert not all(torch.equal(v, learner.net.state_dict()[k]) for k, v in saved.items())
    x, y = normal_chunk()
    x[:] = 3e38
    learner.learn(x, y)
    assert learner.counters["rollbacks"] == 1
    for name, value in saved.items():
        assert torch.equal(value, learner.net.state_dict()[name]), name
    assert learner.learn(*normal_chunk(seed=9)).isfinite().all()


dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.float16, np.uint8])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=hnp.arrays(np.float64,
                      hnp.array_shapes(min_dims=1, max_dims=4, max_side=5)
                      | st.tuples(st.integers(1, 6), st.just(2), st.just(3)),  # the right shape
                      elements=st.floats(allow_nan=True, allow_infinity=True)
                      | st.floats(-3, 3)),
    dtype=dtypes,
    y=st.none() | hnp.arrays(st.sampled_from([np.int64, np.float32]),
                             hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                             elements=st.integers(-3, 3)),
)
def test_fuzzed_chunks_are_learned_or_refused_cleanly(values, dtype, y):
    with np.errstate(all="ignore"):
        x = values.astype(dtype)
    learner = make_learner(on_invalid="raise")
    learner.learn(*normal_chunk(5))
    before = copy.deepcopy(learner.net.state_dict())
    state = [s.clone() for s in learner.state]
    try:
        out = learner.learn(x, y)
    except hs.InvalidInput as err:
        assert str(err)
        assert learner.counters["rejected"] == 1
        assert all(torch.equal(a, b) for a, b in zip(state, learner.state, strict=True))
        assert all(torch.equal(v, learner.net.state_dict()[k]) for k, v in before.items())
    else:
        assert out.shape == (x.shape[0], 2, 2)
        assert all(bool(torch.isfinite(s).all()) for s in learner.state)
    assert finite_weights(learner)
