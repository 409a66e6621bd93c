"""DistributedStreamLearner over real processes (gloo on 127.0.0.1, random ports).

Each test launches this file as two worker processes (``python tests/test_distributed.py
--worker MODE ...``) with torchrun's environment variables, so ``init_from_env`` is what joins
the group. Every process runs under a hard timeout and the group's collective timeout is short,
so no test can hang.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import hypr_stream as hs

N_IN, N_OUT, N_STREAMS, WORLD = 3, 2, 5, 2  # uneven shards (3 and 2) test the B_r weights
T_STEPS, CHUNK, LAM = 24, 5, 3  # chunks do not align with λ; update_every=1: 8 updates
SETTINGS = dict(rule="hypr", lam=LAM, optimizer="adam", lr=2e-2, update_every=1, clip=10.0,
                device="cpu")
PROCESS_TIMEOUT_S = 60.0
GROUP_TIMEOUT_S = 10.0


def make_net(seed: int = 1) -> hs.RSNN:
    torch.manual_seed(seed)
    return hs.RSNN(N_IN, [6], N_OUT, neuron="brf", init_gain=40.0).double()  # BRF spikes


def all_streams() -> tuple[torch.Tensor, torch.Tensor]:
    """x [T + 2 chunks, 2B, 3] float64 and class targets y [T + 2 chunks, 2B] (-1: none) for
    every rank together; the last two chunks are for rank 0 alone."""
    extra = 2 * CHUNK
    g = torch.Generator().manual_seed(0)
    x = (2 * torch.randn(T_STEPS + extra, N_STREAMS, N_IN, generator=g)).double()
    y = torch.randint(-1, N_OUT, (T_STEPS + extra, N_STREAMS), generator=g)
    return x, y


def chunks(T: int) -> list[tuple[int, int]]:
    return [(a, min(a + CHUNK, T)) for a in range(0, T, CHUNK)]


# ---------------------------------------------------------------------- worker processes
def worker(mode: str, out: Path) -> None:
    from hypr_stream import distributed as hd

    rank, world, group = hd.init_from_env(timeout_s=GROUP_TIMEOUT_S)
    if group is None or world != WORLD:
        raise RuntimeError(f"expected a group of {WORLD}, got world {world}")
    net = make_net(seed=1 + rank)  # different on purpose: the broadcast must make them equal
    learner = hd.DistributedStreamLearner(net, **SETTINGS, check_every=1,
                                          failure_checkpoint=out / "failure.pt")
    x, y = all_streams()
    x, y = hd.shard(x, rank, world, dim=1), hd.shard(y, rank, world, dim=1)
    if mode == "uneven":
        def source():  # rank 0: 4 chunks at once; rank 1: 2 chunks, each after a pause
            for a, b in chunks(T_STEPS)[:4 if rank == 0 else 2]:
                if rank == 1:
                    time.sleep(1.0)
                yield SimpleNamespace(x=x[a:b], y=y[a:b], mask=None, boundary=None)

        learned = hd.run_shard(learner, source(), idle_after_s=0.2)
        learner.check_weights()
        torch.save({"learned": learned, "updates": learner.counters["updates"],
                    "blocks": learner.counters["blocks"], "rounds": learner.comm["rounds"]},
                   out / f"uneven.rank{rank}.pt")
        torch.distributed.destroy_process_group()
        return
    for i, (a, b) in enumerate(chunks(T_STEPS)):
        if mode == "die" and rank == 1 and i == 2:
            os._exit(3)
        if mode == "diverge" and rank == 1 and i == 2:
            with torch.no_grad():
                learner.net.readout.bias[0] += 1e-6
        learner.learn(x[a:b], y[a:b])
    torch.save({n: p.detach().clone() for n, p in learner.net.named_parameters()},
               out / f"weights.rank{rank}.pt")
    learner.save(out / "ckpt.pt")
    again = hd.DistributedStreamLearner.load(out / "ckpt.pt", net=make_net(),
                                             failure_checkpoint=None)
    for (name, p), q in zip(learner.net.named_parameters(), again.net.parameters(), strict=True):
        if not torch.equal(p, q):
            raise RuntimeError(f"parameter {name} changed on save and load")
    for s, t in zip(learner.state, again.state, strict=True):
        if not torch.equal(s, t):
            raise RuntimeError("stream state changed on save and load")
    # Uneven ends: rank 1's source ends now, rank 0 has two more chunks, then ends too.
    if rank == 0:
        for a in range(T_STEPS, T_STEPS + 2 * CHUNK, CHUNK):
            learner.learn(x[a:a + CHUNK], y[a:a + CHUNK])
    learner.join()
    learner.check_weights()
    torch.save({"updates": learner.counters["updates"], "rounds": learner.comm["rounds"]},
               out / f"join.rank{rank}.pt")
    torch.distributed.destroy_process_group()


# ---------------------------------------------------------------------- the launcher
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(mode: str, out: Path) -> list[subprocess.CompletedProcess]:
    """Run both ranks to completion (each within PROCESS_TIMEOUT_S) and return their results."""
    port = free_port()
    procs = []
    for rank in range(WORLD):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                   CUDA_VISIBLE_DEVICES="")
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", mode, "--out", str(out)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"worker {proc.args} ({mode}) still running after {PROCESS_TIMEOUT_S} s")
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return results


def reference_weights() -> dict[str, torch.Tensor]:
    """One process, all streams, the same chunks."""
    learner = hs.StreamLearner(make_net(seed=1), **SETTINGS)
    x, y = all_streams()
    for a, b in chunks(T_STEPS):
        learner.learn(x[a:b], y[a:b])
    assert learner.counters["updates"] == T_STEPS // LAM
    return {n: p.detach().clone() for n, p in learner.net.named_parameters()}


def test_two_ranks_train_the_same_weights_as_one_process_on_all_streams(tmp_path):
    results = launch("equal", tmp_path)
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    expected = reference_weights()
    initial = dict(make_net(seed=1).named_parameters())
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"weights.rank{rank}.pt")
        assert got.keys() == expected.keys()
        for name in expected:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12,
                                       msg=lambda m, n=name: f"{n}: {m}")
        assert not torch.equal(got["readout.bias"], initial["readout.bias"])  # it learned
    # The checkpoint set: a manifest and one file per rank, each with its own stream state.
    assert (tmp_path / "ckpt.rank0.pt").is_file() and (tmp_path / "ckpt.rank1.pt").is_file()
    manifest = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert manifest["world_size"] == WORLD and manifest["batches"] == [3, 2]
    states = [torch.load(tmp_path / f"ckpt.rank{r}.pt", weights_only=True)["stream"]["state"]
              for r in range(WORLD)]
    assert not all(torch.equal(a, b) for a, b in zip(*states, strict=True))
    # Uneven ends: rank 0 learned alone for its last chunks, rank 1 joined those rounds.
    joined = [torch.load(tmp_path / f"join.rank{r}.pt") for r in range(WORLD)]
    assert joined[0]["updates"] == joined[1]["updates"] > T_STEPS // LAM
    assert joined[0]["rounds"] == joined[1]["rounds"]


def test_a_dead_rank_makes_the_survivor_stop_with_a_checkpoint(tmp_path):
    started = time.monotonic()
    survivor, dead = launch("die", tmp_path)
    elapsed = time.monotonic() - started
    assert dead.returncode == 3
    assert survivor.returncode != 0
    assert "PeerFailure: rank 0 of 2" in survivor.stderr, survivor.stderr[-3000:]
    assert "a peer rank died" in survivor.stderr
    saved = tmp_path / "failure.rank0.pt"
    assert f"saved this rank's state to {saved}" in survivor.stderr
    resumed = hs.StreamLearner.load(saved, device="cpu")  # model, optimizer and rank 0's streams
    assert resumed.batch == 3 and resumed.counters["updates"] >= 2
    assert resumed._grad is not None  # the gradient of the failed round is kept, not lost
    assert elapsed < GROUP_TIMEOUT_S + 30


def test_checksum_detects_weights_that_diverged(tmp_path):
    results = launch("diverge", tmp_path)
    for rank, r in enumerate(results):
        assert r.returncode != 0
        assert "WeightsDiverged: weights differ across ranks" in r.stderr, r.stderr[-3000:]
        assert "ranks [1] disagree with rank 0" in r.stderr, rank


def test_a_rank_with_nothing_ready_idles_and_a_finished_rank_joins(tmp_path):
    results = launch("uneven", tmp_path)
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    fast, slow = (torch.load(tmp_path / f"uneven.rank{r}.pt") for r in range(WORLD))
    assert (fast["learned"], slow["learned"]) == (4, 2)
    assert fast["rounds"] == slow["rounds"] and fast["updates"] == slow["updates"]
    assert slow["rounds"] > slow["blocks"]  # it joined rounds with nothing of its own: idle()
    assert fast["updates"] >= fast["blocks"]  # every block of the fast rank was applied


def test_shard_gives_every_stream_to_exactly_one_rank():
    from hypr_stream.distributed import rank_path, shard

    items = list(range(7))
    parts = [shard(items, r, 3) for r in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]
    x = torch.arange(14.0).reshape(1, 7, 2)
    assert torch.equal(torch.cat([shard(x, r, 3, dim=1) for r in range(3)], dim=1), x)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 3\), got 3"):
        shard(items, 3, 3)
    assert rank_path("run/ckpt.pt", 1) == Path("run/ckpt.rank1.pt")


def test_init_from_env_without_torchrun_runs_alone(monkeypatch):
    from hypr_stream.distributed import init_from_env

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env(5.0) == (0, 1, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    worker(args.worker, args.out)
    # Every result is on disk and the group destroyed. Skip interpreter finalization: there,
    # gloo's worker threads can still be torn down and abort the process ("terminate called
    # without an active exception", SIGABRT; pytorch/pytorch#190489). It happened once, in a
    # clean-clone CI run, to a worker whose work had all been done and saved.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
