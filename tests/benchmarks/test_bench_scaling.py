"""benchmarks/bench_scaling.py end to end in its short mode, in a subprocess as a user runs it:
a row for every model and configuration, ratios against e-prop, the memory fit of full BPTT,
and the plot written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_short_mode_writes_rows_for_each_model_and_a_plot(tmp_path: Path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "scaling.json"
    done = subprocess.run([sys.executable, "benchmarks/bench_scaling.py", "--short",
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["complete"] and result["mode"] == "short" and result["threads"] == 1
    rows = result["rows"]
    assert all("error" not in r for r in rows), [r["error"] for r in rows if "error" in r]
    for neuron in ("brf", "se_adlif", "alif"):
        mine = [r for r in rows if r["neuron"] == neuron]
        assert {(r["method"], r["param"], r["T"]) for r in mine} == {
            (m, p, T) for m, p in [("hypr", 50), ("eprop", None), ("bptt", None)]
            for T in (100, 400)}
        assert all(r["ms_per_step"] > 0 and r["cpu_ms_per_step"] > 0 for r in mine)
        assert all(r["speedup_vs_eprop_cpu"] > 0 for r in mine)
        assert result["bptt_full_fit"][neuron]["MiB_per_step"] > 0
    assert (tmp_path / "scaling.png").stat().st_size > 10_000
    assert "| brf | hypr λ=50 | 400 |" in (tmp_path / "scaling.md").read_text()
