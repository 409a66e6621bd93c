"""Faults: numerical ones and fuzzed input (the learner keeps running and never trains on NaN),
and crashes (``hypr-stream run`` killed with SIGKILL again and again resumes and finishes)."""

from __future__ import annotations

import copy
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hypr_stream as hs
from hypr_stream import checkpoint


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


# ---------------------------------------------------------------------- crashes
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
# At most 2000 steps/s, and no catching up after the learner was down, so a run's progress
# between its start and its kill stays well under max_steps.
SENSOR = """
import sys, time
from sources.synthetic import SensorSource
from sources.zeromq import ZmqPusher
with ZmqPusher(sys.argv[1]) as push:
    for chunk in SensorSource(channels=6, classes=4, chunk_steps=50):
        push.send(chunk.x, chunk.y, chunk.mask)
        time.sleep(0.025)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rows(path: Path) -> list[dict]:
    """Every line of a JSON-lines file, parsed (a torn line fails the test)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_run_killed_again_and_again_resumes_from_its_last_checkpoint_and_finishes(tmp_path):
    """SIGKILL at random moments while a ZeroMQ sensor streams: each restart, with the same
    config, resumes from the last checkpoint (which always loads), goes on with the live stream
    where it is now (no replay: a later seq), and the last run reaches max_steps."""
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    ck, preds = tmp_path / "ck.pt", tmp_path / "pred.jsonl"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "network": {"hidden": [8], "n_out": 4, "init_gain": 5.0,
                    "model_options": {"variant": "exact"}},
        "learner": {"lam": 50, "lr": 0.01},
        "source": {"uri": f"zmq+{endpoint}", "options": {"timeout": 30}},
        "checkpoint": {"path": str(ck), "every_steps": 200},
        "output": {"predictions": str(preds), "metrics_jsonl": str(tmp_path / "m.jsonl"),
                   "quiet": True},
        "max_steps": 8000, "progress_every": 1000,
    }))
    sensor = subprocess.Popen([sys.executable, "-c", SENSOR, endpoint], cwd=ROOT, env=ENV)
    rng = random.Random()
    saved, segments, log = 0, [], []
    try:
        for _ in range(3):
            before, started = len(_rows(preds)), time.monotonic()
            run = subprocess.Popen([sys.executable, "-m", "hypr_stream", "run", str(config)],
                                   cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 40
            while len(_rows(preds)) < before + 5:  # learning: 250 steps in, a checkpoint made
                assert run.poll() is None and time.monotonic() < deadline, run.communicate()
                time.sleep(0.05)
            learning = time.monotonic() - started
            delay = rng.uniform(0.0, 1.0)
            time.sleep(delay)
            run.send_signal(signal.SIGKILL)
            err = run.communicate()[1]
            assert run.returncode == -signal.SIGKILL, (log, err)
            steps = checkpoint.read(ck)["stream"]["counters"]["steps"]  # loads: never torn
            log.append(f"learning after {learning:.1f} s, killed {delay:.2f} s later, "
                       f"checkpoint at step {steps}")
            assert steps >= saved + 200, log
            if saved:
                assert f"resumed from {ck} at step {saved:,}" in err, (log, err)
            segments.append(_rows(preds)[before:])
            saved = steps
            # What a kill mid-write leaves: a temporary file, never read as the checkpoint.
            (tmp_path / f".ck.pt.{run.pid}.tmp").write_bytes(ck.read_bytes()[:100])
        done = subprocess.run([sys.executable, "-m", "hypr_stream", "run", str(config)],
                              cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    finally:
        sensor.kill()
        sensor.wait()
    assert done.returncode == 0, done.stderr
    assert f"resumed from {ck} at step {saved:,}" in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["stopped_by"] == "max_steps" and summary["steps"] >= 8000
    assert checkpoint.read(ck)["stream"]["counters"]["steps"] == summary["steps"]
    segments.append(_rows(preds)[sum(map(len, segments)):])
    for previous, resumed in itertools.pairwise(segments):  # the live stream went on
        assert resumed[0]["seq"] > previous[-1]["seq"], log
    assert not list(tmp_path.glob(".ck.pt.*.tmp"))  # the dead runs' temporaries are gone
