"""Speed and memory against λ and T (spec §4) for BRF, SE-adLIF and ALIF: hypr at several λ
against eprop, bptt (full and truncated) and inference, T from 10³ to 10⁵.

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_scaling.py [--short] \\
        [--out benchmarks/results/scaling.json] [--md PATH] [--png PATH]

Tests two claims of the HYPR paper:

- speed:  hypr's speed-up over e-prop grows with λ (the paper: up to 108× on a GPU);
- memory: hypr's peak memory is flat in T while full BPTT's grows linearly.

Every configuration runs in a fresh process through bench_engine.py's child (its module docstring
gives the method: warm-up, baseline, VmHWM peak over the first timed call, best-of-calls time,
process CPU time beside it, "other cores" busy during the call). This script only chooses the
grid, sizes full BPTT to the memory there is, and reports. The network is smaller than
bench_engine's (64 inputs, 128 hidden, 10 outputs, B = 16) so that the grid runs in under an
hour on 2 shared cores; e-prop's per-step cost grows with B·N·(M+N) and HYPR's much less, so
speed-ups at this size understate those of larger networks (bench_engine: 140-256-20, B = 32).

Configurations too slow to run in full run a prefix of their T-step input (PREFIX; e-prop's and
HYPR's per-step cost and memory do not depend on T). Full BPTT at the longest T runs the longest
prefix whose predicted peak (a line fitted to its shorter rows) fits in half the memory
available then; the fit's prediction for the full T is reported beside it. At T = 10⁵, HYPR runs
λ = 100 and 1000 in full and skips λ = 50 and 250 (SKIP), to keep the grid within the hour.
Threads: one per process by default (``--threads``, exported as OMP_NUM_THREADS to the
children) and the script lowers its priority (``--nice``), so that the machine stays usable for
others; under contention wall time is noisy and the ratios of process CPU time are the robust
figure. On CUDA (the default where present) peak memory is the device allocator's (bench_engine).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import (  # noqa: E402 (the sibling script, found through sys.path)
    INPUT_RATE,
    MEMORY_SAME,
    WARMUP_STEPS,
    WINDOW,
    _available_mib,
    label,
    machine,
    plan,
    run_quietly,
    source_version,
)

NEURONS = ("brf", "se_adlif", "alif")
NETWORK = {"n_in": 64, "hidden": [128], "n_out": 10, "batch": 16}
SHORT_NETWORK = {"n_in": 16, "hidden": [32], "n_out": 4, "batch": 4}
LENGTHS, SHORT_LENGTHS = (1000, 10000, 100000), (100, 400)
LAMBDAS, SHORT_LAMBDAS = (1, 10, 50, 100, 250, 1000), (50,)
# Steps run for configurations too slow to run in full: (method, λ or window) -> {T: steps}.
# Full BPTT at the longest T is sized at run time (bptt_prefix).
PREFIX = {("eprop", None): {1000: 300, 10000: 300, 100000: 300},
          ("hypr", 1): {1000: 200, 10000: 200, 100000: 200},
          ("hypr", 10): {10000: 2000, 100000: 2000},
          ("bptt", WINDOW): {100000: 10000}}
# Not run at all, to keep the grid within the hour on shared cores: (method, param, T). HYPR's
# per-step cost does not depend on T (compare its rows at 10³ and 10⁴), so T = 10⁵ runs the
# memory claim's smallest and largest λ of the fast ones in full and skips the two between.
SKIP = {("hypr", 50, 100000), ("hypr", 250, 100000)}
SHORT_PREFIX = {("eprop", None): {100: 50, 400: 50}}
SHORT_CONFIGS = {("hypr", 50), ("eprop", None), ("bptt", None)}
MEMORY_SHARE = 0.5  # full BPTT may take this share of the memory available before its row
GROWS_LINEARLY = 0.5  # bptt full's peak per step at its longest run ≥ this × at its shortest


def bptt_prefix(rows: list[dict], T: int, device: str) -> tuple[int, dict | None]:
    """Steps of full BPTT to run at T: all of them if a line through its measured (steps, peak)
    rows predicts a peak under MEMORY_SHARE of the memory available now, else the longest
    multiple of 1000 steps that does. Returns the steps and the fit (None with < 2 rows)."""
    fit = linear_fit(rows)
    if fit is None:
        return T, None
    if device == "cuda":
        import torch

        available = torch.cuda.mem_get_info()[0] / 2**20
    else:
        available = _available_mib()
    cap = MEMORY_SHARE * available
    fits = int((cap - fit["intercept_MiB"]) / max(fit["MiB_per_step"], 1e-9))
    steps = min(T, max(1000, fits // 1000 * 1000))
    return steps, {**fit, "cap_MiB": round(cap), "predicted_peak_MiB_at_T": round(
        fit["intercept_MiB"] + fit["MiB_per_step"] * T), "fits": steps == T}


def full_bptt(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["method"] == "bptt" and r["param"] is None]


def linear_fit(rows: list[dict]) -> dict | None:
    """Least-squares line peak_MiB = intercept + slope · steps over rows (None with < 2)."""
    points = [(r["steps"], r["peak_MiB"]) for r in rows if "error" not in r]
    if len({s for s, _ in points}) < 2:
        return None
    n = len(points)
    mean_s, mean_p = sum(s for s, _ in points) / n, sum(p for _, p in points) / n
    slope = (sum((s - mean_s) * (p - mean_p) for s, p in points)
             / sum((s - mean_s) ** 2 for s, _ in points))
    return {"MiB_per_step": slope, "intercept_MiB": mean_p - slope * mean_s, "points": points}


def add_ratios(rows: list[dict]) -> None:
    """Speed-up over eprop (wall and CPU time) and cost relative to inference, each for the
    same model at the same T."""
    for row in rows:
        if "error" in row:
            continue
        same = {r["method"]: r for r in rows if "error" not in r and r["T"] == row["T"]
                and r["neuron"] == row["neuron"] and r["method"] in ("eprop", "inference")}
        if "eprop" in same:
            row["speedup_vs_eprop"] = same["eprop"]["ms_per_step"] / row["ms_per_step"]
            row["speedup_vs_eprop_cpu"] = (same["eprop"]["cpu_ms_per_step"]
                                           / row["cpu_ms_per_step"])
        if "inference" in same:
            row["x_inference_cpu"] = row["cpu_ms_per_step"] / same["inference"]["cpu_ms_per_step"]


def claims(rows: list[dict], lengths: tuple[int, ...], fits: dict) -> dict:
    """Verdicts on the paper's two claims, from CPU-time ratios and default-allocator peaks."""
    ok = [r for r in rows if "error" not in r]
    speed: dict = {}
    for neuron in sorted({r["neuron"] for r in ok}):
        for T in lengths:
            curve = {r["param"]: round(r["speedup_vs_eprop_cpu"], 2) for r in ok
                     if r["neuron"] == neuron and r["T"] == T and r["method"] == "hypr"
                     and "speedup_vs_eprop_cpu" in r}
            if len(curve) < 2:
                continue
            lams = sorted(curve)
            best = max(lams, key=curve.__getitem__)
            rising = all(curve[a] <= curve[b] for a, b in pairwise(lams))
            rises_to_best = all(curve[a] <= curve[b]
                                for a, b in pairwise(lams[:lams.index(best) + 1]))
            speed[f"{neuron} T={T}"] = {"speedup_cpu_by_lambda": curve, "best_lambda": best,
                                        "best": curve[best], "monotone": rising,
                                        "rises_to_best": rises_to_best}
    monotone = [k for k, v in speed.items() if v["monotone"]]
    peaked = [k for k, v in speed.items() if not v["monotone"] and v["rises_to_best"]]
    speed_verdict = ("NO DATA (fewer than two λ)" if not speed else
                     "SUPPORTED" if len(monotone) == len(speed) else
                     "PARTLY: grows with λ up to a best λ, then falls"
                     if len(monotone) + len(peaked) == len(speed) else "NOT SUPPORTED")

    scale, slack = MEMORY_SAME
    mid, long = lengths[-2], lengths[-1]
    flat: dict = {}
    for neuron in sorted({r["neuron"] for r in ok}):
        for lam in sorted({r["param"] for r in ok if r["method"] == "hypr"}):
            full = [r for r in ok if r["neuron"] == neuron and r["method"] == "hypr"
                    and r["param"] == lam and r["steps"] == r["T"]]
            peak = {r["T"]: r["peak_MiB"] for r in full}
            if mid in peak and long in peak:
                slope = (peak[long] - peak[mid]) / (long - mid)
                flat[f"{neuron} λ={lam}"] = {
                    **{f"T={T}": round(p, 1) for T, p in sorted(peak.items())},
                    f"MiB_per_1000_steps_T{mid}_to_T{long}": round(1000 * slope, 2),
                    "flat": peak[long] <= scale * peak[mid] + slack}
    linear: dict = {}
    for neuron, fit in fits.items():
        runs = sorted(fit["points"])
        per_step = [p / s for s, p in runs]
        linear[neuron] = {"MiB_per_1000_steps": round(1000 * fit["MiB_per_step"], 1),
                          "runs": [{"steps": s, "peak_MiB": round(p, 1)} for s, p in runs],
                          "predicted_peak_MiB_at_T": fit.get("predicted_peak_MiB_at_T"),
                          "fits_at_T": fit.get("fits"), "cap_MiB": fit.get("cap_MiB"),
                          "linear": per_step[-1] >= GROWS_LINEARLY * per_step[0]}
    memory_ok = bool(flat) and all(v["flat"] for v in flat.values()) and bool(linear) and all(
        v["linear"] for v in linear.values())
    return {
        "speed": {"claim": "hypr's speed-up over eprop grows with λ (paper: up to 108× on a GPU)",
                  "rule": "CPU-time speed-up over eprop, per model and T, non-decreasing in λ",
                  "curves": speed, "verdict": speed_verdict,
                  "best": max((v["best"] for v in speed.values()), default=None)},
        "memory": {"claim": "hypr's memory is flat in T while bptt's grows linearly",
                   "rule": f"hypr (rows run in full) peak at T={long} ≤ {scale} × peak at "
                           f"T={mid} + {slack} MiB; bptt full's peak per step at its longest "
                           f"run ≥ {GROWS_LINEARLY} × its peak per step at its shortest. The "
                           f"shortest T is shown but not judged: there the largest λ runs one "
                           f"or a few subsequences, and the peak of a long run (many, with "
                           f"carried eligibility) is reached only later",
                   "hypr": flat, "bptt_full": linear,
                   "verdict": "SUPPORTED" if memory_ok else "NOT SUPPORTED"},
    }


def table(rows: list[dict]) -> list[str]:
    head = ["model", "method", "T", "steps run", "ms/step", "CPU ms/step", "peak MiB",
            "× eprop (wall)", "× eprop (CPU)", "× inference (CPU)", "other cores"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            cells = [r["neuron"], label(r), str(r["T"]), str(r["steps"]), r["error"]] + [""] * 6
        else:
            cells = [r["neuron"], label(r), str(r["T"]), str(r["steps"]),
                     f"{r['ms_per_step']:.3f}", f"{r['cpu_ms_per_step']:.3f}",
                     f"{r['peak_MiB']:.1f}", f"{r.get('speedup_vs_eprop', float('nan')):.2f}",
                     f"{r.get('speedup_vs_eprop_cpu', float('nan')):.2f}",
                     f"{r.get('x_inference_cpu', float('nan')):.2f}", f"{r['other_cores']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _xy(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in points], [p[1] for p in points]


def plot(rows: list[dict], fits: dict, lengths: tuple[int, ...], title: str, path: Path) -> None:
    """(a) CPU-time speed-up over eprop against λ, a colour per model and a line style per T;
    (b) peak memory against steps run (log-log), one panel per model: hypr per λ, full BPTT
    (measured, and its fitted line to the longest T)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if "error" not in r]
    neurons = [n for n in NEURONS if any(r["neuron"] == n for r in ok)]
    fig, axes = plt.subplots(1, 1 + len(neurons), figsize=(5 * (1 + len(neurons)), 4.5),
                             squeeze=False)
    colours = {n: f"C{i}" for i, n in enumerate(NEURONS)}
    styles = dict(zip(lengths, ("-", "--", ":", "-."), strict=False))
    ax = axes[0][0]
    for neuron in neurons:
        for T in lengths:
            pts = sorted((r["param"], r["speedup_vs_eprop_cpu"]) for r in ok
                         if r["neuron"] == neuron and r["T"] == T and r["method"] == "hypr"
                         and "speedup_vs_eprop_cpu" in r)
            if pts:
                ax.plot(*_xy(pts), styles.get(T, "-"), marker="o", color=colours[neuron],
                        label=f"{neuron} T={T}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set(xscale="log", xlabel="λ", ylabel="speed-up over e-prop (CPU time)",
           title="(a) hypr speed-up over e-prop")
    ax.legend(fontsize=7)
    for ax, neuron in zip(axes[0][1:], neurons, strict=True):
        mine = [r for r in ok if r["neuron"] == neuron]
        for i, lam in enumerate(sorted({r["param"] for r in mine if r["method"] == "hypr"})):
            pts = sorted((r["steps"], r["peak_MiB"]) for r in mine
                         if r["method"] == "hypr" and r["param"] == lam)
            ax.plot(*_xy(pts), marker="o", color=f"C{i}", label=f"hypr λ={lam}")
        pts = sorted((r["steps"], r["peak_MiB"]) for r in mine
                     if r["method"] == "bptt" and r["param"] is None)
        if pts:
            ax.plot(*_xy(pts), marker="s", color="black", lw=2, label="bptt full")
        fit = fits.get(neuron)
        if fit and fit.get("predicted_peak_MiB_at_T") is not None:
            ax.plot([pts[-1][0], lengths[-1]], [pts[-1][1], fit["predicted_peak_MiB_at_T"]],
                    ":", marker="s", mfc="none", color="black",
                    label=f"bptt full, fitted ({1000 * fit['MiB_per_step']:.0f} MiB/1000 steps)")
            ax.axhline(fit["cap_MiB"], color="red", lw=0.8, ls="--", label="half of available")
        ax.set(xscale="log", yscale="log", xlabel="steps run", ylabel="peak MiB",
               title=f"(b) peak memory, {neuron}")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(rows: list[dict], fits: dict, lengths: tuple[int, ...], args: argparse.Namespace,
           meta: dict, total_s: float | None) -> dict:
    """Ratios, verdicts, then JSON, markdown and the plot, written also after each model
    (total_s None) so that an interrupted run leaves its rows, labelled incomplete."""
    complete = total_s is not None
    add_ratios(rows)
    verdicts = claims(rows, lengths, fits)
    net = meta["network"]
    sizes = f"{net['n_in']}-{net['hidden'][0]}-{net['n_out']}, B={net['batch']}"
    result = {**meta, "complete": complete, "rows": rows, "claims": verdicts,
              "bptt_full_fit": {k: {kk: vv for kk, vv in v.items() if kk != "points"}
                                for k, v in fits.items()},
              "contended_rows": [f"{r['neuron']} {label(r)} T={r['T']} (other cores "
                                 f"{r['other_cores']})" for r in rows
                                 if r.get("other_cores", 0.0) > 0.3],
              "total_s": total_s}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    lines = table(rows)
    status = "" if complete else " — INCOMPLETE: the run did not finish; rows so far"
    m = meta["machine"]
    text = [f"# Scaling benchmark ({meta['mode']}, {meta['date']}){status}", "",
            f"`{meta['command']}`" + (f" (report rebuilt from its JSON by "
                                      f"`{meta['report_rebuilt_by']}`)"
                                      if "report_rebuilt_by" in meta else ""), "",
            f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, device "
            f"{meta['device']}, {meta['threads']} thread(s) per process, nice {meta['nice']}; "
            f"shared: other engineers' jobs ran beside it (\"other cores\" per row), so wall "
            f"times are noisy and the CPU-time ratios are the robust figure.",
            f"Network {sizes} (RSNN, one recurrent layer, LI readout, CE every step), input "
            f"Bernoulli spikes p={INPUT_RATE}; commit {meta['source_at_start']['commit'][:10]}"
            f" (hypr_stream modified in the working tree: "
            f"{meta['source_at_start']['hypr_stream_modified']}).",
            "Rows with steps run < T ran a prefix of T (per-step cost and memory of e-prop and "
            "HYPR do not depend on T; full BPTT's prefix is what fits in half the available "
            "memory). Peak memory is what one gradients() call adds to the process; that call "
            "takes the whole sequence and builds its targets from y ([T, B] int64 plus bool "
            "masks), so even HYPR's peak holds O(T·B) bytes beside its constant state (the "
            "targets alone ~0.14 MiB per 1000 steps at B = 16); the streaming learner sees "
            "chunks instead.",
            "", *lines, ""]
    for name, claim in verdicts.items():
        text.append(f"- **{claim['verdict']}** {name}: {claim['claim']} (rule: {claim['rule']})")
    speed = verdicts["speed"]["curves"]
    for key, curve in speed.items():
        text.append(f"  - {key}: speed-up (CPU) by λ {curve['speedup_cpu_by_lambda']}, best "
                    f"{curve['best']}× at λ={curve['best_lambda']}")
    for key, v in verdicts["memory"]["hypr"].items():
        text.append(f"  - hypr {key}: peak {v}")
    growth = {k: max(vv for kk, vv in v.items() if kk.startswith("MiB_per_1000"))
              for k, v in verdicts["memory"]["hypr"].items()}
    bptt_slopes = [v["MiB_per_1000_steps"] for v in verdicts["memory"]["bptt_full"].values()]
    if growth and bptt_slopes:
        worst = max(growth, key=growth.__getitem__)
        text.append(f"  - hypr's largest growth per 1000 steps (T={lengths[-2]} to "
                    f"{lengths[-1]}): {growth[worst]} MiB ({worst}); full BPTT's smallest: "
                    f"{min(bptt_slopes)} MiB, {min(bptt_slopes) / max(growth[worst], 1e-9):.0f}× "
                    f"more")
    for key, v in verdicts["memory"]["bptt_full"].items():
        text.append(f"  - bptt full {key}: {v['MiB_per_1000_steps']} MiB per 1000 steps, runs "
                    f"{v['runs']}; predicted at T={lengths[-1]}: {v['predicted_peak_MiB_at_T']} "
                    f"MiB (fits in the cap {v['cap_MiB']} MiB: {v['fits_at_T']})")
    Path(args.md).write_text("\n".join(text) + "\n")
    plot(rows, fits, lengths, f"{sizes}, {meta['device']}, {meta['threads']} thread(s), "
         f"{meta['date']}{status}", Path(args.png))
    return result


def refit(rows: list[dict], sizing: dict | None, T: int) -> dict | None:
    """Full BPTT's line through every run of one model, the prefix at T included, with the cap
    its prefix was sized against (bptt_prefix) and the line's peak predicted at T."""
    fit = linear_fit(full_bptt(rows))
    if fit is None or sizing is None:
        return fit
    return {**fit, "cap_MiB": sizing["cap_MiB"], "fits": sizing["fits"],
            "predicted_peak_MiB_at_T": round(fit["intercept_MiB"] + fit["MiB_per_step"] * T)}


def measure_grid(args: argparse.Namespace) -> tuple[list[dict], dict, tuple[int, ...], dict,
                                                       float]:
    """Run every configuration, model by model; returns rows, fits, lengths, meta, seconds."""
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.nice(max(0, args.nice - os.nice(0)))

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    neurons = tuple(args.neurons.split(","))
    if args.short:
        network, lengths, prefix = SHORT_NETWORK, SHORT_LENGTHS, SHORT_PREFIX
        specs = [s for s in plan(lengths, SHORT_LAMBDAS, prefix, 1, 0.0, 0.0)
                 if (s["method"], s["param"]) in SHORT_CONFIGS]
        args.max_wait = 0.0
    else:
        network, lengths, prefix = NETWORK, LENGTHS, PREFIX
        specs = [s for s in plan(lengths, LAMBDAS, prefix, 3, args.budget, args.mapped_max_s)
                 if (s["method"], s["param"], s["T"]) not in SKIP]
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}",
                                 f"nice -n {os.nice(0)}", "python",
                                 "benchmarks/bench_scaling.py", *sys.argv[1:]]),
            "mode": "short" if args.short else "full", "machine": machine(),
            "device": device, "threads": int(os.environ["OMP_NUM_THREADS"]),
            "nice": os.nice(0), "source_at_start": source_version(),
            "network": {**network, "neurons": list(neurons), "recurrent": True, "readout": "li",
                        "dtype": "float32", "input": f"Bernoulli spikes p={INPUT_RATE}",
                        "loss": "ce, every step"},
            "grid": {"T": list(lengths), "lambdas": sorted({s["param"] for s in specs
                                                            if s["method"] == "hypr"}),
                     "bptt_window": WINDOW, "warmup_steps": WARMUP_STEPS,
                     "prefix": {f"{m} {p}": v for (m, p), v in prefix.items()},
                     "skipped": [] if args.short else [f"{m} {p} T={T}" for m, p, T in SKIP],
                     "bptt_full_memory_share": MEMORY_SHARE}}
    started = time.perf_counter()
    rows: list[dict] = []
    fits: dict = {}
    for neuron in neurons:
        print(f"--- {neuron}", flush=True)
        mine: list[dict] = []
        sizing: dict | None = None
        for spec in specs:
            spec = {**spec, "network": {**network, "neuron": neuron}, "device": device}
            if spec["method"] == "bptt" and spec["param"] is None and spec["T"] == lengths[-1]:
                spec["steps"], sizing = bptt_prefix(full_bptt(mine), spec["T"], device)
            mine.append({"neuron": neuron, **run_quietly(spec, args)})
        rows += mine
        if fit := refit(mine, sizing, lengths[-1]):
            fits[neuron] = fit
        if neuron != neurons[-1]:
            report(rows, fits, lengths, args, meta, None)
    return rows, fits, lengths, meta, round(time.perf_counter() - started, 1)


def rebuild(args: argparse.Namespace) -> tuple[list[dict], dict, tuple[int, ...], dict,
                                                  float | None]:
    """The rows and settings of an earlier run's JSON, to report them again (as measure_grid's
    result) after the report changed, without measuring again."""
    old = json.loads(Path(args.from_json).read_text())
    rows, lengths = old["rows"], tuple(old["grid"]["T"])
    fits = {}
    for neuron in old["network"]["neurons"]:
        sizing = old["bptt_full_fit"].get(neuron, {})
        fit = refit([r for r in rows if r["neuron"] == neuron],
                    sizing if "cap_MiB" in sizing else None, lengths[-1])
        if fit:
            fits[neuron] = fit
    computed = ("complete", "rows", "claims", "bptt_full_fit", "contended_rows", "total_s")
    meta = {k: v for k, v in old.items() if k not in computed}
    meta["report_rebuilt_by"] = " ".join(["python benchmarks/bench_scaling.py", *sys.argv[1:]])
    return rows, fits, lengths, meta, old["total_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true",
                        help="a 16-32-4 network, B=4, T = 100 and 400, λ = 50, hypr, eprop "
                             "and full bptt only, one call each: 18 fresh processes, about "
                             "40 s on 2 idle cores (it checks the pipeline, not the claims)")
    parser.add_argument("--neurons", default=",".join(NEURONS), help="comma-separated models")
    parser.add_argument("--out", default="benchmarks/results/scaling.json")
    parser.add_argument("--md", default=None, help="markdown table (default: beside --out)")
    parser.add_argument("--png", default=None, help="plot (default: beside --out)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP_NUM_THREADS of each measured process (unless already set)")
    parser.add_argument("--nice", type=int, default=5, help="lower priority to at least this")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds of timed calls per configuration before repeats stop")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration")
    parser.add_argument("--mapped-max-s", type=float, default=2.0,
                        help="also measure the tensor-level (mapped) peak when a call is this "
                             "short (see bench_engine.py)")
    parser.add_argument("--max-wait", type=float, default=0.0,
                        help="seconds to wait for a quiet machine before each configuration "
                             "(default none: on a machine shared all along, waiting only "
                             "lengthens the run; contention is recorded per row instead)")
    parser.add_argument("--from-json", default=None,
                        help="measure nothing: report again the rows of this earlier run's JSON "
                             "(verdicts, markdown, plot), e.g. after the report changed")
    args = parser.parse_args()
    out = Path(args.out)
    args.md = args.md or str(out.with_suffix(".md"))
    args.png = args.png or str(out.with_suffix(".png"))
    rows, fits, lengths, meta, total_s = rebuild(args) if args.from_json else measure_grid(args)
    result = report(rows, fits, lengths, args, meta, total_s)

    print()
    print("\n".join(table(rows)))
    print()
    for name, claim in result["claims"].items():
        print(f"{claim['verdict']}  {name}: {claim['claim']}")
    print(f"total {result['total_s']} s; wrote {args.out}, {args.md}, {args.png}")


if __name__ == "__main__":
    main()
