"""Speed and memory of the learning rules on a 1×256 BRF RSNN with B = 32 streams and 140 inputs.

    python benchmarks/bench_engine.py [--short] [--out benchmarks/results/engine.json] [--md PATH]

Measures, side by side in one run, time per step and peak memory of ``hypr_stream.gradients``
under ``hypr`` (λ ∈ {1, 10, 50, 100, 250, 1000}), ``eprop`` and ``bptt`` (full and truncated to a
window of 100 steps), and of inference alone (``with torch.no_grad(): net(x)``), at T = 1000 and
T = 10000. Prints a table, writes JSON (and a markdown table) and checks the issue's targets:

- speed:  hypr at λ ≥ 50 at least 10× faster per step than eprop (same T);
- memory: hypr's peak the same at T = 1000 and T = 10000 (≤ 1.25× + 8 MiB) while full BPTT's
  grows (≥ 1.5× from T = 1000 to its long row);
- cost:   hypr at λ ≥ 50 within 6× of inference alone per step (same T).

Method. Every configuration runs in a fresh process (this script with ``--child``), one after
another. The child builds the network (seed 0), draws x [steps, 32, 140] (Bernoulli spikes,
p = 0.05) and y [steps, 32] (class indices), warms the call up on a short prefix, then releases
freed heap to the system (``malloc_trim``), resets the kernel's resident-set high-water mark
(``/proc/self/clear_refs``) and records the resident set as the baseline. Peak memory is VmHWM
after the first timed call minus that baseline: what one call adds to the process, input tensors
excluded. This is resident memory under glibc malloc's defaults (PyTorch's CPU allocator keeps no
cache), so it exceeds the live tensor bytes by the heap's slack. "mapped" is a tensor-level
proxy: one more call with glibc's mmap threshold fixed at 64 KiB, so that every tensor from
64 KiB up is mapped when allocated and unmapped when freed; measured when the first call took at
most ``--mapped-max-s`` seconds. The verdicts use the default-allocator peak.

Time is wall-clock per step (best of up to 3 calls while their total stays under ``--budget``
seconds; one call for long runs), with process CPU time beside it. Configurations too slow to run
in full (e-prop, HYPR at λ ≤ 10, full BPTT at T = 10000: see PREFIX) run the first ``steps``
steps, recorded per row; their memory rows compare runs of those lengths (e-prop's and HYPR's
eligibility is constant in T by construction; full BPTT's memory is linear in the steps run).
Threads: torch's default. The machine may be shared: before each configuration the script waits
(up to ``--max-wait`` s) until the rest of the machine keeps fewer than 0.3 cores busy, each row
records "other cores", the average number of cores the rest of the machine kept busy during the
timed call (from /proc/stat minus this process's CPU), and rows above 0.3 (or timed out) are
measured once more at the end (the less contended run is kept).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

N_IN, N_HIDDEN, N_OUT, BATCH = 140, 256, 20, 32
# The network a child builds unless its spec names another (bench_scaling.py does).
NETWORK = {"n_in": N_IN, "hidden": [N_HIDDEN], "n_out": N_OUT, "neuron": "brf",
           "batch": BATCH}
INPUT_RATE = 0.05  # Bernoulli spike probability of the input
WARMUP_STEPS = 20
WINDOW = 100  # truncated BPTT window
LAMBDAS = (1, 10, 50, 100, 250, 1000)
SHORT_LAMBDAS = (50,)
TARGET_SPEEDUP, TARGET_COST = 10.0, 6.0  # vs eprop (≥), vs inference (≤)
# hypr's peak at T_long ≤ 1.25 × its peak at T_short + 8 MiB. The peak of one configuration at
# equal T varied by up to 10% between runs here (two threads); one linear in T would grow 10×.
MEMORY_SAME = (1.25, 8.0)
MEMORY_GROWS = 1.5  # bptt full's peak over its long run ≥ 1.5 × its peak at T_short
MIB = 2**20
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
QUIET_CORES = 0.3  # wait before a configuration while the rest of the machine keeps more busy

# Steps run for configurations too slow to run in full: (method, λ or window) -> {T: steps}.
# Full BPTT keeps the whole graph: about 1.1 GiB per 1000 steps at this size, so its long row
# runs the first 5000 steps (its memory is linear in the steps run; bench_scaling fits the line).
# Until commit 231e576 its backward was also quadratic in T (x[t] in SpikingLayer.run), which
# the results of 2026-11-29 before that commit show.
PREFIX = {("eprop", None): {1000: 1000, 10000: 2000},
          ("hypr", 1): {1000: 200, 10000: 400},
          ("hypr", 10): {1000: 1000, 10000: 2000},
          ("bptt", None): {10000: 5000}}
SHORT_PREFIX = {("eprop", None): {200: 30, 1000: 50}}


# ---------------------------------------------------------------- child: one configuration


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/self/status")


def _reset_peak(libc: ctypes.CDLL) -> int:
    """Release freed heap to the system, reset VmHWM and return the resident set (KiB)."""
    gc.collect()
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS")


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return sum(values) - values[3] - values[4], sum(values)


def busy_cores(seconds: float = 1.0) -> float:
    """Cores kept busy by the rest of the machine over `seconds` (this process sleeps)."""
    busy0, total0 = _cpu_jiffies()
    time.sleep(seconds)
    busy1, total1 = _cpu_jiffies()
    return (busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1)


def _call(net, method: str, param: int | None):
    import torch

    import hypr_stream

    if method == "inference":
        def run(x, y):
            with torch.no_grad():
                return float(net(x)[-1].sum())
        return run
    kwargs = {"hypr": {"lam": param}, "bptt": {"truncation": param}, "eprop": {}}[method]

    def run(x, y):
        grads = hypr_stream.gradients(net, x, y, rule=method, **kwargs)
        return float(sum(g.square().sum() for g in grads.values()))
    return run


def child(spec: dict) -> dict:
    """Run one configuration in this (fresh) process; see the module docstring.

    spec may name the network (keys of NETWORK) and a device ("cuda"): on CUDA, peak_MiB is the
    caching allocator's peak of allocated device memory over the first timed call (the resident
    set says nothing about device memory) and no mapped peak is taken. Timing needs no explicit
    synchronisation there: each call ends by reading a scalar back to the host.
    """
    import torch

    import hypr_stream

    net_spec, device = spec.get("network", NETWORK), torch.device(spec.get("device", "cpu"))
    n_in, n_out, batch = net_spec["n_in"], net_spec["n_out"], net_spec["batch"]
    torch.manual_seed(0)
    net = hypr_stream.RSNN(n_in, net_spec["hidden"], n_out, neuron=net_spec["neuron"]).to(device)
    steps = spec["steps"]
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(steps, batch, n_in, generator=gen) < INPUT_RATE).to(torch.float32).to(device)
    y = torch.randint(0, n_out, (steps, batch), generator=gen).to(device)
    run = _call(net, spec["method"], spec["param"])
    libc = ctypes.CDLL("libc.so.6")
    run(x[:WARMUP_STEPS], y[:WARMUP_STEPS])
    baseline = _reset_peak(libc)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        device_base = torch.cuda.memory_allocated(device)
    load, ticks = [os.getloadavg()[0]], os.sysconf("SC_CLK_TCK")
    wall, cpu, other, peak, check = [], [], [], None, 0.0
    while True:
        t0, c0, (busy0, _) = time.perf_counter(), time.process_time(), _cpu_jiffies()
        check = run(x, y)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        other.append(max(0.0, ((_cpu_jiffies()[0] - busy0) / ticks - cpu[-1]) / wall[-1]))
        if peak is None:
            peak = _status_kib("VmHWM") - baseline
            if cuda:
                peak = (torch.cuda.max_memory_allocated(device) - device_base) / 1024
        if len(wall) >= spec["repeats"] or sum(wall) + wall[-1] > spec["budget"]:
            break
    load.append(os.getloadavg()[0])
    mapped = None
    if wall[0] <= spec["mapped_max_s"] and not cuda:
        # Every allocation from 64 KiB up mapped on allocation and unmapped when freed: the
        # resident set then follows the live tensor bytes without the heap's slack.
        libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)
        mapped_base = _reset_peak(libc)
        run(x, y)
        mapped = (_status_kib("VmHWM") - mapped_base) / 1024
    if check != check or abs(check) == float("inf"):
        raise RuntimeError(f"non-finite result {check} for {spec}")
    best = min(range(len(wall)), key=wall.__getitem__)
    return {"wall_s": [round(w, 4) for w in wall], "ms_per_step": 1e3 * wall[best] / steps,
            "cpu_ms_per_step": 1e3 * cpu[best] / steps, "other_cores": round(other[best], 2),
            "peak_MiB": peak / 1024, "mapped_peak_MiB": mapped,
            "baseline_MiB": baseline / 1024, "input_MiB": (x.nbytes + y.nbytes) / MIB,
            "threads": torch.get_num_threads(), "load_1min": load, "check": check,
            "peak_of": "cuda allocated" if cuda else "resident set"}


# ---------------------------------------------------------------- parent: plan, run, report


def _available_mib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def measure(spec: dict, timeout: float) -> dict:
    """Run one configuration in a fresh interpreter; returns spec plus figures (or an error)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    row = {**spec, "process_s": round(time.perf_counter() - started, 1)}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {**row, "error": f"exit {done.returncode}: {done.stderr.strip()[-500:]}"}
    return {**row, **json.loads(lines[-1])}


def run_quietly(spec: dict, args: argparse.Namespace) -> dict:
    """Wait (up to args.max_wait s) for a quiet machine, then measure one configuration."""
    waited, busy = 0.0, busy_cores(0.5)
    while busy > QUIET_CORES and waited < args.max_wait:
        time.sleep(4.5)
        waited, busy = waited + 5.0, busy_cores(0.5)
    row = {**measure(spec, args.timeout), "busy_cores_before": round(busy, 2), "waited_s": waited}
    shown = row.get("error") or (f"{row['ms_per_step']:8.2f} ms/step  {row['peak_MiB']:8.1f} MiB"
                                 f"  other cores {row['other_cores']}")
    print(f"{label(row):<18} T={row['T']:<6} steps={row['steps']:<6} {shown}", flush=True)
    return row


def plan(lengths: tuple[int, ...], lambdas: tuple[int, ...], prefix: dict, repeats: int,
         budget: float, mapped_max_s: float) -> list[dict]:
    configs = [("inference", None)] + [("hypr", lam) for lam in lambdas]
    configs += [("eprop", None), ("bptt", None), ("bptt", WINDOW)]
    return [{"method": method, "param": param, "T": T,
             "steps": min(T, prefix.get((method, param), {}).get(T, T)),
             "repeats": repeats, "budget": budget, "mapped_max_s": mapped_max_s}
            for T in lengths for method, param in configs]


def label(row: dict) -> str:
    if row["method"] == "hypr":
        return f"hypr λ={row['param']}"
    if row["method"] == "bptt":
        return "bptt full" if row["param"] is None else f"bptt window={row['param']}"
    return row["method"]


def add_ratios(rows: list[dict]) -> None:
    """Speed-up over eprop and cost relative to inference, each at the same T."""
    for row in rows:
        if "error" in row:
            continue
        same_t = {r["method"]: r for r in rows if r["T"] == row["T"] and "error" not in r
                  and r["method"] in ("eprop", "inference")}
        if "eprop" in same_t:
            row["speedup_vs_eprop"] = same_t["eprop"]["ms_per_step"] / row["ms_per_step"]
        if "inference" in same_t:
            row["x_inference"] = row["ms_per_step"] / same_t["inference"]["ms_per_step"]


def check_targets(rows: list[dict], lengths: tuple[int, ...]) -> dict:
    ok = [r for r in rows if "error" not in r]
    fast_hypr = [r for r in ok if r["method"] == "hypr" and r["param"] >= 50]
    short, long = lengths

    def verdict(flag: bool) -> str:
        return "PASS" if flag else "MISS"

    speed = {f"{label(r)} T={r['T']}": round(r["speedup_vs_eprop"], 1)
             for r in fast_hypr if "speedup_vs_eprop" in r}
    cost = {f"{label(r)} T={r['T']}": round(r["x_inference"], 2)
            for r in fast_hypr if "x_inference" in r}
    memory, grows = {}, {}
    for method, param, into in [("hypr", lam, memory) for lam in sorted({
            r["param"] for r in fast_hypr})] + [("bptt", None, grows), ("bptt", WINDOW, grows)]:
        pair = {r["T"]: r for r in ok if r["method"] == method and r["param"] == param}
        if short in pair and long in pair:
            into[label(pair[short])] = {
                f"T={T}": {"steps": pair[T]["steps"], "peak_MiB": round(pair[T]["peak_MiB"], 1),
                           "mapped_peak_MiB": pair[T]["mapped_peak_MiB"]}
                for T in (short, long)}
    scale, slack = MEMORY_SAME
    same = all(v[f"T={long}"]["peak_MiB"] <= scale * v[f"T={short}"]["peak_MiB"] + slack
               for v in memory.values())
    full = grows.get("bptt full")
    bptt_grows = bool(full) and full[f"T={long}"]["peak_MiB"] >= MEMORY_GROWS * max(
        full[f"T={short}"]["peak_MiB"], 1.0)
    return {
        "speed": {"rule": f"eprop ms/step ÷ hypr ms/step ≥ {TARGET_SPEEDUP} for every λ ≥ 50",
                  "values": speed, "min": min(speed.values(), default=None),
                  "verdict": verdict(bool(speed) and min(speed.values()) >= TARGET_SPEEDUP)},
        "memory": {"rule": f"hypr (λ ≥ 50) peak at T={long} ≤ {scale} × peak at T={short} + "
                           f"{slack} MiB, and bptt full's peak on its T={long} row (steps run "
                           f"as listed) ≥ {MEMORY_GROWS} × its peak at T={short}",
                   "hypr": memory, "bptt": grows,
                   "verdict": verdict(bool(memory) and same and bptt_grows)},
        "cost": {"rule": f"hypr ms/step ÷ inference ms/step ≤ {TARGET_COST} for every λ ≥ 50",
                 "values": cost, "max": max(cost.values(), default=None),
                 "passing": sorted(k for k, v in cost.items() if v <= TARGET_COST),
                 "verdict": verdict(bool(cost) and max(cost.values()) <= TARGET_COST)},
    }


def table(rows: list[dict]) -> list[str]:
    head = ["method", "T", "steps run", "ms/step", "CPU ms/step", "peak MiB", "mapped MiB",
            "× faster than eprop", "× inference", "other cores"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:
            cells = [label(r), str(r["T"]), str(r["steps"]), r["error"]] + [""] * 6
        else:
            cells = [label(r), str(r["T"]), str(r["steps"]), f"{r['ms_per_step']:.2f}",
                     f"{r['cpu_ms_per_step']:.2f}", f"{r['peak_MiB']:.1f}",
                     "–" if r["mapped_peak_MiB"] is None else f"{r['mapped_peak_MiB']:.1f}",
                     f"{r.get('speedup_vs_eprop', float('nan')):.1f}",
                     f"{r.get('x_inference', float('nan')):.2f}", f"{r['other_cores']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def source_version() -> dict:
    """The commit measured, and whether hypr_stream/ differed from it."""
    root = Path(__file__).resolve().parents[1]

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"),
            "hypr_stream_modified": bool(git("status", "--porcelain", "--", "hypr_stream"))}


def machine() -> dict:
    import torch

    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "platform": platform.platform(), "mem_available_MiB": round(_available_mib()),
            "note": "shared machine, noisy: other CPU-heavy work may run concurrently; "
                    "see load_1min per row"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true",
                        help="T = 200 and 1000, λ = 50 only, one call each, no mapped peak "
                             "(under a minute on a quiet machine)")
    parser.add_argument("--out", default="benchmarks/results/engine.json")
    parser.add_argument("--md", default=None, help="also write the table as markdown here")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="seconds of timed calls per configuration before repeats stop")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration")
    parser.add_argument("--mapped-max-s", type=float, default=40.0,
                        help="measure the mapped (tensor-level) peak with one more call when "
                             "the first call took at most this many seconds")
    parser.add_argument("--max-wait", type=float, default=120.0,
                        help="seconds to wait for a quiet machine before each configuration")
    parser.add_argument("--no-retry", dest="retry", action="store_false",
                        help="do not rerun, at the end, rows measured while other work ran")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    started, version = time.perf_counter(), source_version()
    if args.short:
        lengths = (200, 1000)
        specs = plan(lengths, SHORT_LAMBDAS, SHORT_PREFIX, 1, 0.0, 0.0)
    else:
        lengths = (1000, 10000)
        specs = plan(lengths, LAMBDAS, PREFIX, 3, args.budget, args.mapped_max_s)
    rows: list[dict] = []
    for spec in specs:
        rows.append(run_quietly(spec, args))
    for index, row in enumerate(rows):
        if args.retry and ("error" in row or row["other_cores"] > QUIET_CORES):
            again = run_quietly({k: row[k] for k in specs[index]}, args)
            if "error" not in again and again["other_cores"] < row.get("other_cores", 1e9):
                rows[index] = {**again, "retried": True}
    add_ratios(rows)
    targets = check_targets(rows, lengths)

    lines = table(rows)
    print()
    print("\n".join(lines))
    print()
    for name, target in targets.items():
        figure = {"speed": "min", "cost": "max"}.get(name)
        extra = f" ({figure} {target[figure]})" if figure else ""
        if name == "cost":
            extra += f"; met by: {', '.join(target['passing']) or 'none'}"
        print(f"{target['verdict']}  {name}: {target['rule']}{extra}")

    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/bench_engine.py", *sys.argv[1:]]),
        "mode": "short" if args.short else "full", "machine": machine(),
        "source_at_start": version, "source_at_end": source_version(),
        "network": {"n_in": N_IN, "hidden": [N_HIDDEN], "n_out": N_OUT, "neuron": "brf",
                    "recurrent": True, "readout": "li", "batch": BATCH, "dtype": "float32",
                    "input": f"Bernoulli spikes p={INPUT_RATE}", "loss": "ce, every step",
                    "flush_denormal": "off (gradients() leaves torch's default)"},
        "method": {
            "time": "wall clock of one gradients() call (or net(x) under no_grad) over the row's "
                    "'steps', divided by steps; best of the calls in wall_s; after a warm-up "
                    f"call on {WARMUP_STEPS} steps; cpu_ms_per_step is process CPU time (all "
                    "threads) of the same call",
            "memory": "fresh process per row; peak_MiB = VmHWM after the first timed call minus "
                      "VmRSS just before it (after warm-up, gc, malloc_trim(0) and "
                      "clear_refs=5); input x, y allocated before the baseline; resident set "
                      "size under glibc defaults. mapped_peak_MiB: the same on one more call "
                      "with mallopt(M_MMAP_THRESHOLD, 64 KiB), so RSS follows live tensor "
                      "bytes (a tensor-level proxy); null where the first call was too long",
            "noise": "other_cores = cores the rest of the machine kept busy during the best "
                     "timed call; the script waits for < 0.3 busy cores before each row",
            "prefix": "rows with steps < T ran only the first 'steps' steps of a T-step input "
                      "(configurations too slow to run in full); their per-step time is of "
                      "that prefix",
            "ratios": "speedup_vs_eprop = eprop ms/step ÷ row ms/step, x_inference = row "
                      "ms/step ÷ inference ms/step, both at the same T",
        },
        "rows": rows, "targets": targets,
        "contended_rows": [f"{label(r)} T={r['T']} (other cores {r['other_cores']})"
                           for r in rows if r.get("other_cores", 0.0) > QUIET_CORES],
        "total_s": round(time.perf_counter() - started, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if args.md:
        verdicts = [f"- **{t['verdict']}** {name}: {t['rule']}"
                    + (f"; met by: {', '.join(t['passing']) or 'none'}" if name == "cost" else "")
                    for name, t in targets.items()]
        Path(args.md).write_text(
            f"# Engine benchmark ({result['mode']}, {result['date']})\n\n"
            f"`{result['command']}` on {result['machine']['cpu']}, "
            f"{result['machine']['cores']} cores, torch {result['machine']['torch']}; "
            f"{result['machine']['note']}.\n\n" + "\n".join(lines) + "\n\n"
            + "\n".join(verdicts) + "\n")
    if result["contended_rows"]:
        print("measured while other work ran:", "; ".join(result["contended_rows"]))
    print(f"total {result['total_s']} s; wrote {out}")


if __name__ == "__main__":
    main()
