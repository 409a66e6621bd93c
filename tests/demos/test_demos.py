"""Each demo end to end in its short mode, as `hypr-stream demo NAME --short` in a subprocess:
it learned (accuracy above chance by a clear margin), wrote its checkpoint and plots, exit 0.
Plots need matplotlib (in the `test` extra)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
PLOTS = ("learning_curve.png", "raster.png", "memory.png")


def demo(name: str, out: Path, *extra: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "hypr_stream", "demo", name, "--short",
                           "--out", str(out), *extra], capture_output=True, text=True,
                          timeout=400, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_outputs(result: dict, out: Path) -> None:
    pytest.importorskip("matplotlib")
    assert Path(result["checkpoint"]).is_file()
    for name in PLOTS:
        png = out / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


def test_cue_short_learns_and_writes_checkpoint_and_plots(tmp_path):
    result = demo("cue", tmp_path, "--memory", "100")
    assert result["final_accuracy_last_trials"] >= 0.9  # chance 0.5
    assert_outputs(result, tmp_path)
    assert result["memory"][0]["peak_rss_mb"] > 0


def test_sensors_over_zeromq_survive_a_publisher_restart(tmp_path):
    result = demo("sensors", tmp_path)
    assert result["publisher_restarts"] == 1
    assert result["steps"] == 8000 and result["stopped_by"] == "max_steps"
    assert result["accuracy"] >= result["chance"] + 0.15
    # Predictions came back out over a real PUB socket to a subscriber.
    assert result["predictions_received"]["steps"] > 0
    assert_outputs(result, tmp_path)


@pytest.mark.skipif(not (DATA / "qtdb" / "QTDB_train.mat").is_file(),
                    reason="QTDB not in ../shared/data/qtdb")
def test_ecg_short_learns_per_step_waves(tmp_path):
    result = demo("ecg", tmp_path)
    assert result["accuracy_window"] >= result["chance"] + 0.2
    assert_outputs(result, tmp_path)


def test_ecg_skips_cleanly_without_data(tmp_path):
    result = demo("ecg", tmp_path, "--data", str(tmp_path / "absent"))
    assert "no QTDB_train.mat" in result["skipped"]


@pytest.mark.skipif(not (DATA / "fsdd" / "recordings").is_dir(),
                    reason="FSDD not in ../shared/data/fsdd")
def test_digits_short_learns_to_name_digits(tmp_path):
    result = demo("digits", tmp_path)
    assert result["accuracy_window"] >= result["chance"] + 0.1
    assert_outputs(result, tmp_path)
