"""The hypr-stream command as a user runs it: real subprocesses, real signals, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "hypr_stream"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

SMALL = {
    "network": {"hidden": [8], "n_out": 2, "init_gain": 30.0,
                "model_options": {"variant": "exact"}},
    "learner": {"lam": 64, "lr": 0.01},
    "source": {"uri": "synthetic:cue?delay=20&batch=2", "options": {"seed": 1}},
    "progress_every": 120,
}


def write_config(tmp_path: Path, **changes) -> Path:
    data = json.loads(json.dumps(SMALL))
    data.update(changes)
    data.setdefault("checkpoint", {"path": str(tmp_path / "ck.pt")})
    data.setdefault("output", {"metrics_jsonl": str(tmp_path / "metrics.jsonl"),
                               "predictions": str(tmp_path / "pred.jsonl")})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=ENV)


def test_run_writes_checkpoint_metrics_predictions_and_progress(tmp_path):
    config = write_config(tmp_path, max_steps=480)
    done = cli("run", str(config))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 480 and summary["stopped_by"] == "max_steps"
    assert (tmp_path / "ck.pt").is_file()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in rows] == [120, 240, 360, 480, 480]
    assert all(r["rss_mb"] > 0 and "accuracy_window" in r for r in rows)
    assert "steps 120 | updates" in done.stderr and "MiB" in done.stderr
    preds = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert [p["step"] for p in preds] == [0, 60, 120, 180, 240, 300, 360, 420]
    assert all(len(p["pred"]) == 60 and len(p["pred"][0]) == 2 for p in preds)


def test_a_bad_config_fails_before_anything_starts_naming_the_key(tmp_path):
    config = write_config(tmp_path, learner={"lamda": 64})
    done = cli("run", str(config))
    assert done.returncode == 2
    assert "learner.lamda: unknown key (did you mean 'lam'?)" in done.stderr
    assert not (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "ck.pt").exists()
    done = cli("run", str(write_config(tmp_path)), "--set", "network.hidden=lots")
    assert done.returncode == 2 and "network.hidden: expected int or list of int" in done.stderr


def test_set_overrides_config_keys(tmp_path):
    done = cli("run", str(write_config(tmp_path)), "--set", "learner.lr=0.5",
               "--set", "max_steps=60", "--check")
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["learner"]["lr"] == 0.5 and resolved["max_steps"] == 60


def test_inspect_says_what_a_checkpoint_holds(tmp_path):
    assert cli("run", str(write_config(tmp_path, max_steps=240))).returncode == 0
    done = cli("inspect", str(tmp_path / "ck.pt"))
    assert done.returncode == 0, done.stderr
    assert "network   15 -> [8] brf -> 2" in done.stdout
    assert "rule=hypr, lam=64" in done.stdout
    assert "counters  steps=240" in done.stdout
    assert "source synthetic:cue?delay=20&batch=2, stopped by max_steps" in done.stdout
    info = json.loads(cli("inspect", str(tmp_path / "ck.pt"), "--json").stdout)
    assert info["counters"]["steps"] == 240 and info["learner"]["lr"] == 0.01
    assert info["run"]["config"]["network"]["hidden"] == [8]
    assert info["metrics"]["target_steps"] > 0
    missing = cli("inspect", str(tmp_path / "absent.pt"))
    assert missing.returncode == 1 and "no checkpoint" in missing.stderr


def test_a_run_resumes_from_its_checkpoint(tmp_path):
    config = write_config(tmp_path, max_steps=240)
    assert cli("run", str(config)).returncode == 0
    done = cli("run", str(config), "--set", "max_steps=480")
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stderr and "at step 240" in done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["steps"] == 480


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_run_with_a_final_checkpoint_and_exit_0(tmp_path, sig):
    # An endless stream, paced so the run is still going when the signal comes.
    config = write_config(tmp_path, source={"uri": "synthetic:cue?delay=20&batch=2&pace=400"})
    proc = subprocess.Popen([*CLI, "run", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    try:
        deadline = time.monotonic() + 60
        metrics = tmp_path / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stopped_by"] == sig.name
    assert f"{sig.name}: stopping after a final checkpoint" in err
    info = json.loads(cli("inspect", str(tmp_path / "ck.pt"), "--json").stdout)
    assert info["counters"]["steps"] == summary["steps"] >= 120
    assert info["run"]["stopped_by"] == sig.name


def test_demo_and_bench_name_what_exists():
    done = cli("demo", "nosuchdemo")
    assert done.returncode == 2 and "unknown demo 'nosuchdemo'" in done.stderr
    listed = cli("bench", "--list")
    assert listed.returncode == 0 and "bench_sources" in listed.stdout.split()
