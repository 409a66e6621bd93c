"""``hypr-stream run`` under torchrun: 2 real processes (gloo on 127.0.0.1), real files.

The reference is the same command in one plain process on all the streams: the torchrun run
must end with the same weights (float32, up to the order of the all-reduce's additions).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
N_IN, STREAMS, STEPS = 3, 4, 48

CONFIG = {
    "network": {"n_in": N_IN, "hidden": [6], "n_out": 2, "init_gain": 40.0},
    "learner": {"lam": 4, "lr": 0.02, "update_every": 1},
    "distributed": {"timeout_s": 30, "idle_after_s": 0.2, "check_every": 1},
    "progress_every": 16,
}


def write_streams(path: Path, steps: int, streams: int, seed: int) -> None:
    g = np.random.default_rng(seed)
    np.savez(path, x=(2 * g.standard_normal((steps, streams, N_IN))).astype(np.float32),
             y=g.integers(0, 2, (steps, streams)))


def write_config(tmp_path: Path, name: str, uri: str, **changes) -> Path:
    data = json.loads(json.dumps(CONFIG))
    data["source"] = {"uri": uri}
    data["checkpoint"] = {"path": str(tmp_path / name / "ckpt.pt"), "every_steps": 16}
    data["output"] = {"metrics_jsonl": str(tmp_path / name / "metrics.jsonl")}
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def torchrun(config: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "hypr_stream", "run", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=ENV)


def plain(config: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hypr_stream", "run", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={k: v for k, v in ENV.items() if k not in ("RANK", "WORLD_SIZE")})


def summaries(done: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


def test_two_ranks_splitting_streams_equal_one_process_on_all(tmp_path):
    data = tmp_path / "streams.npz"
    write_streams(data, STEPS, STREAMS, seed=0)
    uri = f"file:{data}?chunk_steps=8"
    one = plain(write_config(tmp_path, "one", uri))
    assert one.returncode == 0, one.stderr
    two = torchrun(write_config(tmp_path, "two", uri, distributed={"split": "streams"}))
    assert two.returncode == 0, two.stderr[-3000:]

    ranks = sorted(summaries(two), key=lambda s: s["rank"])
    assert [(s["rank"], s["world_size"], s["steps"]) for s in ranks] == [(0, 2, STEPS),
                                                                       (1, 2, STEPS)]
    reference = summaries(one)[-1]
    assert reference["updates"] == ranks[0]["updates"] == ranks[1]["updates"] == STEPS // 4
    manifest = torch.load(tmp_path / "two" / "ckpt.pt", weights_only=True)
    assert manifest["world_size"] == 2 and manifest["batches"] == [2, 2]
    expected = weights(tmp_path / "one" / "ckpt.pt")
    for rank in (0, 1):
        got = weights(tmp_path / "two" / f"ckpt.rank{rank}.pt")
        for name, value in expected.items():
            torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-5, msg=name)
    for rank, suffix in ((0, "metrics.jsonl"), (1, "metrics.rank1.jsonl")):
        rows = (tmp_path / "two" / suffix).read_text().splitlines()
        assert json.loads(rows[-1])["rank"] == rank


def test_uneven_streams_per_rank_join_checkpoint_and_resume(tmp_path):
    """Rank 0 has 64 steps, rank 1 only 16: rank 1 joins until rank 0 ends (no hang), the
    periodic checkpoints are collective, and a second launch resumes from them."""
    write_streams(tmp_path / "part0.npz", 64, 2, seed=1)
    write_streams(tmp_path / "part1.npz", 16, 1, seed=2)
    config = write_config(tmp_path, "uneven", f"file:{tmp_path}/part{{rank}}.npz?chunk_steps=8")
    first = torchrun(config)
    assert first.returncode == 0, first.stderr[-3000:]
    ranks = sorted(summaries(first), key=lambda s: s["rank"])
    assert [s["steps"] for s in ranks] == [64, 16]
    assert ranks[0]["updates"] == ranks[1]["updates"] == 16  # rank 1 joined every update
    assert ranks[0]["checkpoints"] >= 2  # periodic ones (every 16 steps) plus the final one
    manifest = torch.load(tmp_path / "uneven" / "ckpt.pt", weights_only=True)
    assert manifest["batches"] == [2, 1] and manifest["updates"] == 16
    inspect = subprocess.run([sys.executable, "-m", "hypr_stream", "inspect",
                              str(tmp_path / "uneven" / "ckpt.pt")], capture_output=True,
                             text=True, timeout=60, cwd=ROOT, env=ENV)
    assert inspect.returncode == 0, inspect.stderr
    assert "torchrun  2 ranks, streams per rank [2, 1]" in inspect.stdout

    again = torchrun(config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stderr
    ranks = sorted(summaries(again), key=lambda s: s["rank"])
    assert [s["steps"] for s in ranks] == [128, 32]  # each rank continued its own counters
    assert ranks[0]["updates"] == 32


def test_zmq_predictions_without_rank_placeholder_fail_clearly(tmp_path):
    write_streams(tmp_path / "s.npz", 8, 2, seed=3)
    config = write_config(tmp_path, "bad", f"file:{tmp_path}/s.npz",
                          output={"predictions": "zmq+tcp://127.0.0.1:6123"})
    done = torchrun(config, timeout=120)
    assert done.returncode != 0
    assert "put {rank} in the endpoint" in done.stderr


def test_split_streams_needs_a_stream_axis(tmp_path):
    np.savez(tmp_path / "flat.npz", x=np.zeros((8, N_IN), np.float32))
    config = write_config(tmp_path, "flat", f"file:{tmp_path}/flat.npz",
                          distributed={"split": "streams"})
    done = torchrun(config, timeout=120)
    assert done.returncode != 0
    assert "splitting streams across ranks needs chunks x [T, B, C]" in done.stderr
