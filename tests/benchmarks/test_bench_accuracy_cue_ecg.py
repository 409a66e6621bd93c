"""The accuracy benchmarks bench_cue.py and bench_ecg.py end to end in their short modes: each
writes a JSON record (configuration, seed, wall time, one row per model and rule) and a PNG of
its learning curves; the ECG benchmark skips cleanly (exit 0) without its data.

Short modes check the pipeline, not the paper's claims (they are too short to learn), so
accuracies are only range-checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QTDB = ROOT.parent / "shared" / "data" / "qtdb"
PNG = b"\x89PNG\r\n\x1a\n"


def bench(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--short", *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def read_record(out: Path, done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["config"]["short"] is True and result["config"]["seed"] == 0
    assert result["provenance"]["commit"]
    for run in result["runs"]:
        assert run["wall_seconds"] > 0
    pytest.importorskip("matplotlib")
    assert out.with_suffix(".png").read_bytes()[:8] == PNG
    return result


def test_cue_short_writes_json_and_plot_for_every_rule(tmp_path):
    out = tmp_path / "cue.json"
    result = read_record(out, bench("bench_cue.py", "--out", str(out)))
    assert {(r["model"], r["delay"], r["method"]) for r in result["runs"]} == {
        ("brf", 50, rule) for rule in ("hypr", "bptt", "eprop")}
    for run in result["runs"]:
        assert 0.0 <= run["heldout_accuracy"] <= 1.0
        assert len(run["curve_batch_accuracy"]) == run["updates"] + int(run["solved"])


@pytest.mark.skipif(not (QTDB / "QTDB_train.mat").is_file(), reason="QTDB not in ../shared/data")
def test_ecg_short_writes_json_and_plot_for_hypr_and_bptt(tmp_path):
    out = tmp_path / "ecg.json"
    result = read_record(out, bench("bench_ecg.py", "--data", str(QTDB), "--out", str(out)))
    assert [(r["model"], r["method"]) for r in result["runs"]] == [("brf", "hypr"),
                                                                  ("brf", "bptt")]
    assert result["config"]["split"] == {"train_records": 12, "val_records": 4,
                                         "val": "QTDB_train records 12..15", "test_records": 8,
                                         "steps_per_record": 1301}
    for run in result["runs"]:
        assert 0.0 <= run["test_accuracy"] <= 1.0 and run["best_epoch"] == 1
    assert set(result["gap_hypr_minus_bptt_points"]) == {"brf"}


def test_ecg_without_data_skips_with_a_message_and_exit_0(tmp_path):
    out = tmp_path / "ecg.json"
    done = bench("bench_ecg.py", "--data", str(tmp_path / "absent"), "--out", str(out))
    assert done.returncode == 0
    assert "skipped: no QTDB_train.mat" in done.stdout
    assert not out.exists()
