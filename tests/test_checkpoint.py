"""Checkpoints: exact continuation in a new process, safe loading, refusal of other networks."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import hypr_stream as hs


def make_learner(hidden: int = 6, neuron: str = "brf") -> hs.StreamLearner:
    torch.manual_seed(3)
    net = hs.RSNN(3, [hidden, 5], 2, neuron=neuron, init_gain=40.0, variant="exact")
    return hs.StreamLearner(net, lam=7, lr=1e-2, update_every=2, device="cpu")


def data(T: int = 80, B: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(9)
    x = 2 * torch.randn(T, B, 3, generator=g)
    y = torch.randint(-1, 2, (T, B), generator=g)
    boundary = torch.zeros(T, B, dtype=torch.bool)
    boundary[min(33, T - 1), 1] = True
    return x, y, boundary


def feed(learner: hs.StreamLearner, x, y, boundary, start: int, stop: int, size: int = 5):
    for a in range(start, stop, size):
        b = min(a + size, stop)
        learner.learn(x[a:b], y[a:b], boundary=boundary[a:b])


def final_state(learner: hs.StreamLearner) -> dict:
    metrics = {k: v for k, v in learner.metrics.items()
               if k not in ("steps_per_second", "latency_ms")}
    return {"params": learner.net.state_dict(), "optimizer": learner.optimizer.state_dict(),
            "state": learner.state, "eligibility": [list(e) for e in learner.eligibility],
            "metrics": metrics}


CONTINUE = textwrap.dedent("""
    import sys, torch
    import hypr_stream as hs
    sys.path.insert(0, {tests!r})
    from test_checkpoint import feed, final_state
    x, y, boundary = torch.load({data!r})
    learner = hs.StreamLearner.load({ckpt!r})
    feed(learner, x, y, boundary, {cut}, x.shape[0])
    torch.save(final_state(learner), {out!r})
""")


@pytest.mark.parametrize("cut", [23, 41])  # mid-subsequence; 41: with a gradient pending
def test_a_run_saved_and_continued_in_a_new_process_is_bit_identical(tmp_path, cut):
    x, y, boundary = data()
    uninterrupted = make_learner()
    feed(uninterrupted, x, y, boundary, 0, x.shape[0])

    first = make_learner()
    feed(first, x, y, boundary, 0, cut)
    assert first.pending_steps > 0
    first.save(tmp_path / "run.ckpt")
    torch.save((x, y, boundary), tmp_path / "data.pt")
    script = CONTINUE.format(tests=str(Path(__file__).parent), data=str(tmp_path / "data.pt"),
                             ckpt=str(tmp_path / "run.ckpt"), cut=cut,
                             out=str(tmp_path / "out.pt"))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    resumed = torch.load(tmp_path / "out.pt", weights_only=False)
    expected = final_state(uninterrupted)

    for key, value in expected["params"].items():
        assert torch.equal(value, resumed["params"][key]), key
    for a, b in zip(expected["state"], resumed["state"], strict=True):
        assert torch.equal(a, b)
    for e, f in zip(expected["eligibility"], resumed["eligibility"], strict=True):
        assert all(torch.equal(u, v) for u, v in zip(e, f, strict=True))
    assert expected["metrics"] == resumed["metrics"]
    assert expected["metrics"]["updates"] > 2
    exp_opt, res_opt = expected["optimizer"]["state"], resumed["optimizer"]["state"]
    for idx in exp_opt:
        assert torch.equal(exp_opt[idx]["exp_avg"], res_opt[idx]["exp_avg"])


def test_a_checkpoint_for_another_network_is_refused_naming_the_difference(tmp_path):
    learner = make_learner()
    x, y, boundary = data(10)
    feed(learner, x, y, boundary, 0, 10)
    learner.save(tmp_path / "a.ckpt")
    torch.manual_seed(0)
    wider = hs.RSNN(3, [7, 5], 2, neuron="brf", variant="exact")
    with pytest.raises(ValueError, match="different network: parameter .* has shape"):
        hs.StreamLearner.load(tmp_path / "a.ckpt", net=wider)
    other_model = hs.RSNN(3, [6, 5], 2, neuron="brf", variant="euler")
    with pytest.raises(ValueError, match="layer 0"):
        hs.StreamLearner.load(tmp_path / "a.ckpt", net=other_model)


def test_loading_never_executes_code_from_the_file(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "evil.ckpt", "wb") as f:
        pickle.dump({"format": "hypr_stream.checkpoint/1", "x": Payload()}, f)
    with pytest.raises(ValueError, match="not a loadable hypr_stream checkpoint"):
        hs.StreamLearner.load(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a hypr_stream checkpoint"):
        hs.StreamLearner.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        hs.StreamLearner.load(tmp_path / "missing.pt")


def test_saving_is_atomic_and_leaves_no_temporary_file(tmp_path):
    learner = make_learner()
    x, y, boundary = data(20)
    feed(learner, x, y, boundary, 0, 10)
    path = learner.save(tmp_path / "ckpt" / "run.ckpt")
    first = path.read_bytes()
    feed(learner, x, y, boundary, 10, 20)
    learner.save(path)
    assert path.read_bytes() != first
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.ckpt"]
    assert hs.StreamLearner.load(path).counters["steps"] == 20


def test_a_network_of_custom_model_instances_needs_the_net_to_load(tmp_path):
    torch.manual_seed(0)
    net = hs.RSNN(3, [4], 2, neuron=hs.LIF(tau_u_init=(12.0, 14.0)))
    learner = hs.StreamLearner(net, lam=4, device="cpu")
    learner.learn(torch.randn(6, 2, 3), torch.randint(0, 2, (6, 2)))
    learner.save(tmp_path / "c.ckpt")
    with pytest.raises(ValueError, match="pass net="):
        hs.StreamLearner.load(tmp_path / "c.ckpt")
    torch.manual_seed(1)
    again = hs.StreamLearner.load(tmp_path / "c.ckpt",
                                  net=hs.RSNN(3, [4], 2, neuron=hs.LIF(tau_u_init=(12.0, 14.0))))
    for a, b in zip(net.parameters(), again.net.parameters(), strict=True):
        assert torch.equal(a, b)
