"""The ``hypr-stream`` command (also ``python -m hypr_stream``).

    hypr-stream run CONFIG.yaml [--set learner.lr=0.01 ...] [--check]
    hypr-stream demo NAME [--short] [demo options...]     cue, digits, sensors, ecg
    hypr-stream bench [NAME] [--list]                     scripts in benchmarks/
    hypr-stream inspect CHECKPOINT [--json]

The run loop reads top to bottom: source → front ends → learner (predict, score, learn) →
predictions out, metrics rows (JSON lines), a progress line on stderr every ``progress_every``
steps, a checkpoint every ``every_steps``/``every_seconds`` (atomic), plots at the end. SIGINT or
SIGTERM stops after the current chunk: final checkpoint, metrics flushed, plots, exit 0 (a second
signal aborts). Exit codes: 0 done, 1 failed while running, 2 bad config or arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import config as cfg
from . import outputs, plots

ROOT = Path(__file__).resolve().parents[1]
DEMOS = ("cue", "digits", "sensors", "ecg")
RASTER_STEPS = 2000


def log(message: str) -> None:
    """A line on stderr, flushed (progress and notices; stdout carries results)."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- building blocks
def open_stream(source: cfg.SourceConfig) -> tuple[Any, list[Any]]:
    """The configured source wrapped in its front ends; also the sources to close on a signal
    (innermost first)."""
    from sources import open_source
    from sources.frontends import transformed

    inner = open_source(source.uri, **source.options)
    if not source.frontend:
        return inner, [inner]
    stages = [cfg.frontend_class(s.kind)(**s.options) for s in source.frontend]
    outer = transformed(inner, *stages)
    return outer, [inner, outer]


def build_network(network: cfg.NetworkConfig, n_in: int) -> Any:
    from .network import RSNN

    return RSNN(n_in, network.hidden, network.n_out, neuron=network.neuron,
                recurrent=network.recurrent, readout=network.readout,
                readout_options=network.readout_options or None,
                init_gain=network.init_gain, **network.model_options)


def build_learner(config: cfg.RunConfig, n_in: int, group: Any = None) -> Any:
    """A StreamLearner, or under torchrun (``group`` set) a DistributedStreamLearner, whose
    construction is collective."""
    from .learner import StreamLearner

    c = config.learner
    net = build_network(config.network, n_in)
    options = dict(rule=c.rule, lam=c.lam, optimizer=c.optimizer, lr=c.lr,
                   update_every=c.update_every, clip=c.clip, loss=c.loss, device=c.device,
                   scan=c.scan, step_on_boundary=c.step_on_boundary, on_invalid=c.on_invalid,
                   window=c.window, optimizer_options=c.optimizer_options or None)
    if group is None:
        return StreamLearner(net, **options)
    from .distributed import DistributedStreamLearner

    return DistributedStreamLearner(net, **options, group=group,
                                    **_distributed_options(config))


def _distributed_options(config: cfg.RunConfig) -> dict[str, Any]:
    path = config.checkpoint.path
    failure = None if not path else Path(path).with_suffix(".failure" + Path(path).suffix)
    return {"check_every": config.distributed.check_every, "failure_checkpoint": failure}


def save_checkpoint(learner: Any, path: str | Path, config: cfg.RunConfig,
                    run_info: dict[str, Any]) -> Path:
    """The learner's checkpoint with the resolved run config and run counters, in one atomic
    write."""
    return learner.save(path, extra={"config": config.to_dict(), **run_info})


def resume_learner(config: cfg.RunConfig, group: Any = None) -> Any | None:
    """The learner from the configured checkpoint, if resuming and it exists (else None).
    Under torchrun (``group`` set) the checkpoint is a distributed manifest, loaded
    collectively."""
    from .learner import StreamLearner

    c = config.checkpoint
    if not (c.path and c.resume and Path(c.path).is_file()):
        return None
    net = None
    if config.network.n_in is not None:
        net = build_network(config.network, config.network.n_in)
    if group is None:
        return StreamLearner.load(c.path, net=net, device=config.learner.device)
    from .distributed import DistributedStreamLearner

    return DistributedStreamLearner.load(c.path, net=net, device=config.learner.device,
                                         group=group, **_distributed_options(config))


class Checkpoints:
    """When the periodic checkpoint is due (every ``every_steps`` steps and/or ``every_seconds``
    seconds since the last one), and writing it with the run config and counters."""

    def __init__(self, config: cfg.RunConfig, steps: int = 0) -> None:
        self.config, self.c = config, config.checkpoint
        self.saved_at_steps, self.saved_at_time, self.written = steps, time.monotonic(), 0

    def due(self, steps: int) -> bool:
        c = self.c
        return bool(c.path) and bool(
            (c.every_steps and steps - self.saved_at_steps >= c.every_steps)
            or (c.every_seconds and time.monotonic() - self.saved_at_time >= c.every_seconds))

    def save(self, learner: Any, run_info: dict[str, Any]) -> None:
        """Write the checkpoint (collective under torchrun: every rank calls it together)."""
        self.written += 1
        save_checkpoint(learner, self.c.path, self.config, {**run_info,
                                                            "checkpoints": self.written})
        self.saved_at_steps, self.saved_at_time = learner.counters["steps"], time.monotonic()


def for_rank(config: cfg.RunConfig, rank: int, world: int) -> cfg.RunConfig:
    """Rank ``rank``'s copy of the config under torchrun: ``{rank}`` in the source URI and the
    output paths becomes the rank; output files without it get ``.rank{r}`` before their suffix
    on ranks > 0; plots come from rank 0 only. A ZeroMQ predictions endpoint needs ``{rank}``
    (ranks cannot bind one port)."""
    from .distributed import rank_path

    def own(path: str | None) -> str | None:
        if path is None:
            return None
        if "{rank}" in path:
            return path.replace("{rank}", str(rank))
        return path if rank == 0 else str(rank_path(path, rank))

    out = config.output
    zmq_out = bool(out.predictions) and out.predictions.startswith("zmq+")
    if world > 1 and zmq_out and "{rank}" not in out.predictions:
        raise ValueError("output.predictions: under torchrun every rank publishes its own "
                         "predictions; put {rank} in the endpoint, e.g. "
                         "zmq+tcp://127.0.0.1:600{rank}")
    output = dataclasses.replace(out, metrics_jsonl=own(out.metrics_jsonl),
                                 predictions=own(out.predictions),
                                 plots=own(out.plots) if rank == 0 else None)
    source = dataclasses.replace(config.source,
                                 uri=config.source.uri.replace("{rank}", str(rank)))
    return dataclasses.replace(config, output=output, source=source)


def hidden_spikes(learner: Any, x: np.ndarray, state: list[torch.Tensor] | None,
                  boundary: np.ndarray | None) -> np.ndarray | None:
    """Spikes [T, N] of the last hidden layer (stream 0) when ``x`` runs from ``state``."""
    x_t = torch.as_tensor(np.asarray(x, dtype=np.float32))[-RASTER_STEPS:]
    x_t = x_t.unsqueeze(1) if x_t.dim() == 2 else x_t
    reset = None
    if boundary is not None:
        b = torch.as_tensor(np.asarray(boundary, dtype=bool))[-RASTER_STEPS:]
        reset = b.unsqueeze(1) if b.dim() == 1 else b
        reset = reset.to(learner.device) if bool(reset.any()) else None
    x_t = x_t.to(learner.device, learner.net.readout.bias.dtype)
    with torch.no_grad():
        run = learner.net.run(x_t, state, reset, trace=True)
    return (run.traces[-1].x[:, 0] > 0).cpu().numpy()


class _Stop:
    """Turns SIGINT/SIGTERM into a clean stop: the first closes the sources (a consumer blocked
    in a receive returns) and sets ``signal``; a second raises KeyboardInterrupt."""

    def __init__(self, closables: list[Any]) -> None:
        self.closables = closables
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        for source in self.closables:
            source.close()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------- the run loop
def run(config: cfg.RunConfig) -> dict[str, Any]:
    """Run the configured stream until it ends, a limit is reached or a signal arrives.

    Under ``torchrun`` (WORLD_SIZE > 1 in the environment) every rank runs this with its own
    source (``for_rank``) and a DistributedStreamLearner: periodic checkpoints are decided
    inside the update rounds, a rank with nothing ready idles, and a rank that stops joins
    until every rank has stopped, then all write the final checkpoint together.
    Returns the summary printed as the last line of ``hypr-stream run``.
    """
    from .distributed import init_from_env

    rank, world, group = 0, 1, None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        rank, world, group = init_from_env(timeout_s=config.distributed.timeout_s)
    config = for_rank(config, rank, world)  # a plain launch is rank 0 of 1
    try:
        return _run(config, group)
    finally:
        if group is not None:
            import torch.distributed as dist

            dist.destroy_process_group()


def _run(config: cfg.RunConfig, group: Any) -> dict[str, Any]:
    from .distributed import ready_or_idle, shard_chunk
    from .metrics import format_metrics

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    started = time.monotonic()
    out = config.output
    metrics_log = outputs.MetricsLog(out.metrics_jsonl)
    stream, closables = open_stream(config.source)
    learner = resume_learner(config, group)
    if learner is not None:
        log(f"resumed from {config.checkpoint.path} at step {learner.counters['steps']:,}")
    elif group is not None:
        if config.network.n_in is None:
            raise ValueError("network.n_in: needed under torchrun (every rank builds the "
                             "network together, before its first chunk)")
        learner = build_learner(config, config.network.n_in, group)
    rank = getattr(learner, "rank", 0)
    prefix = f"[rank {rank}] " if group is not None else ""
    sink = None
    stopped_by = "source ended"
    last_x = last_state = last_boundary = None
    keep_raster = bool(out.plots)
    ckpts = Checkpoints(config, learner.counters["steps"] if learner is not None else 0)
    next_progress = config.progress_every

    def info() -> dict[str, Any]:
        return {"stopped_by": stopped_by, "wall_seconds": time.monotonic() - started,
                "checkpoints": ckpts.written, "source": stream.counters.as_dict()}

    if group is not None:  # the rounds decide when, so that every rank saves together
        learner.save_when(lambda: ckpts.due(learner.counters["steps"]),
                          lambda: ckpts.save(learner, info()))
    chunks = stream if group is None else ready_or_idle(stream, config.distributed.idle_after_s)
    try:
        with _Stop(closables) as stop:
            if out.predictions:
                sink = outputs.PredictionSink(out.predictions, config.learner.loss)
                log(f"{prefix}predictions -> {sink.endpoint}")
            if learner is not None:
                next_progress = learner.counters["steps"] + config.progress_every
            for chunk in chunks:
                if chunk is None:  # torchrun: nothing ready on this rank
                    learner.idle()
                else:
                    if config.distributed.split == "streams" and group is not None:
                        chunk = shard_chunk(chunk, rank, learner.world_size)
                    if learner is None:
                        n_in = config.network.n_in or int(chunk.x.shape[-1])
                        learner = build_learner(config, n_in)
                    if keep_raster:
                        last_state = None if learner.state is None else list(learner.state)
                        last_x, last_boundary = chunk.x, chunk.boundary
                    step0 = learner.counters["steps"]
                    y_out = learner.learn(chunk.x, chunk.y, chunk.mask, chunk.boundary)
                    if sink is not None and y_out is not None:
                        sink.send(y_out, step0, chunk.seq)
                steps = learner.counters["steps"]
                if steps >= next_progress:
                    next_progress = steps + config.progress_every
                    row = metrics_log.write(outputs.metrics_row(
                        learner.metrics, started, stream.counters.as_dict()))
                    if not out.quiet:
                        log(f"{prefix}{format_metrics(row)} | rss {row['rss_mb']:.0f} MiB | "
                            f"{row['elapsed_s']:.0f} s")
                if group is None and ckpts.due(steps):
                    ckpts.save(learner, info())
                if stop.signal:
                    break
                if config.max_steps and steps >= config.max_steps:
                    stopped_by = "max_steps"
                    break
                if config.max_seconds and time.monotonic() - started >= config.max_seconds:
                    stopped_by = "max_seconds"
                    break
            if stop.signal:
                stopped_by = stop.signal
                log(f"{prefix}{stop.signal}: stopping after a final checkpoint")
            if group is not None:
                learner.join()  # keeps joining rounds until every rank has stopped
            elif stopped_by == "source ended" and learner is not None:
                learner.flush()
            summary: dict[str, Any] = {"steps": 0}
            if learner is not None:
                metrics = learner.metrics
                row = metrics_log.write(outputs.metrics_row(metrics, started,
                                                            stream.counters.as_dict()))
                if ckpts.c.path:
                    ckpts.save(learner, info())
                summary = {k: row[k] for k in ("steps", "updates", "accuracy",
                                                "accuracy_window", "loss", "loss_window",
                                                "steps_per_second", "peak_rss_mb")}
                if group is not None:
                    summary.update(rank=rank, world_size=learner.world_size)
                if keep_raster:
                    spikes = None
                    if last_x is not None:
                        spikes = hidden_spikes(learner, last_x, last_state, last_boundary)
                    written = plots.write_plots(out.plots, metrics_log.rows, spikes)
                    if not written:
                        log("plots skipped: matplotlib is not installed "
                            "(pip install 'hypr-stream[plots]')")
                    summary["plots"] = [str(p) for p in written]
            summary.update(info())
            summary["checkpoint"] = ckpts.c.path
            return summary
    finally:
        for source in reversed(closables):
            source.close()
        if sink is not None:
            sink.close()
        metrics_log.close()


# ---------------------------------------------------------------------- inspect
def describe_checkpoint(path: str | Path) -> dict[str, Any]:
    """What a checkpoint holds, as plain data: network config, learner settings, counters,
    metrics, parameter shapes, and the run config when written by ``hypr-stream run``.
    A distributed manifest (torchrun) is described by its rank 0 file plus the manifest."""
    from . import checkpoint
    from .distributed import MANIFEST_FORMAT
    from .metrics import Prequential

    try:
        manifest = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # missing or not loadable: checkpoint.read below says which, clearly
        manifest = None
    if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT:
        info = describe_checkpoint(Path(path).with_name(manifest["files"][0]))
        info["distributed"] = {k: manifest[k] for k in ("world_size", "files", "batches",
                                                         "updates")}
        return info
    payload = checkpoint.read(path, device="cpu")
    stream = payload.get("stream", {})
    prequential = Prequential(payload["metrics"]["window"])
    prequential.load_state_dict(payload["metrics"])
    params = {k: list(v.shape) for k, v in payload["model_state"].items()}
    info = {
        "path": str(path),
        "format": payload["format"],
        "bytes": Path(path).stat().st_size,
        "network": payload["network"]["config"],
        "parameters": params,
        "parameter_count": int(sum(np.prod(s) for s in params.values())),
        "learner": payload["learner"],
        "streams": stream.get("batch"),
        "counters": stream.get("counters"),
        "metrics": prequential.get(),
    }
    if "extra" in payload:
        info["run"] = payload["extra"]
    return outputs._plain(info)


def format_description(info: dict[str, Any]) -> str:
    net, learner, metrics = info["network"] or {}, info["learner"], info["metrics"]
    lines = [f"checkpoint {info['path']} ({info['bytes']:,} bytes, {info['format']})"]
    if net:
        lines.append(f"network   {net['n_in']} -> {net['hidden']} {net['neuron']} -> "
                     f"{net['n_out']} ({net['readout']} readout), recurrent {net['recurrent']}, "
                     f"init_gain {net['init_gain']}, options {net['model_options']}")
    else:
        lines.append("network   built from custom model instances (pass net= to load)")
    lines.append(f"params    {info['parameter_count']:,} in {len(info['parameters'])} tensors")
    lines.append("learner   " + ", ".join(f"{k}={v}" for k, v in learner.items()))
    lines.append(f"streams   {info['streams']}")
    lines.append("counters  " + ", ".join(f"{k}={v:,}" for k, v in (info["counters"] or {}
                                                                     ).items()))

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v:.2%}"

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.4f}"

    lines.append(f"metrics   accuracy {pct(metrics['accuracy'])} (window "
                 f"{pct(metrics['accuracy_window'])}), loss {num(metrics['loss'])} (window "
                 f"{num(metrics['loss_window'])}), target steps {metrics['target_steps']:,}")
    if "distributed" in info:
        d = info["distributed"]
        lines.append(f"torchrun  {d['world_size']} ranks, streams per rank {d['batches']}, "
                     f"files {', '.join(d['files'])}")
    if "run" in info:
        run_info = info["run"]
        lines.append(f"run       source {run_info['config']['source']['uri']}, stopped by "
                     f"{run_info.get('stopped_by')}, {run_info.get('wall_seconds', 0):.1f} s")
    return "\n".join(lines)


# ---------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = cfg.load(args.config, args.set)
    except cfg.ConfigError as err:
        log(f"config error: {err}")
        return 2
    if args.check:
        print(cfg.dump(config), end="")
        return 0
    from .distributed import PeerFailure, WeightsDiverged

    try:
        summary = run(config)
    except (ValueError, FileNotFoundError, TypeError, PeerFailure, WeightsDiverged) as err:
        log(f"error: {err}")
        return 1
    # One write: under torchrun every rank's summary goes to the same pipe, and print() writes
    # the line and its newline separately when stdout is unbuffered, so lines could interleave.
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    return 0


def _script(folder: str, name: str) -> Path | None:
    base = ROOT / folder
    for candidate in (base / f"{name}.py", base / f"bench_{name}.py"):
        if candidate.is_file():
            return candidate
    return None


def cmd_demo(args: argparse.Namespace, extra: list[str]) -> int:
    script = _script("demos", args.name)
    if script is None:
        log(f"unknown demo {args.name!r}; expected one of {list(DEMOS)} "
            f"(looked in {ROOT / 'demos'})")
        return 2
    preset = ["--short"] if args.short else []
    if args.name == "cue" and not args.short and not extra:
        preset = ["--main"]  # the default main job (demos/cue.py --main)
    command = [sys.executable, str(script), *preset, *extra]
    return subprocess.call(command, cwd=ROOT)


def cmd_bench(args: argparse.Namespace, extra: list[str]) -> int:
    """``bench`` runs every ``bench_*.py`` in turn; ``bench NAME`` one script, including the
    long-running ones outside that set (``soak_zmq``); modules starting with ``_`` are
    shared code, not benchmarks."""
    folder = ROOT / "benchmarks"
    found = sorted(folder.glob("bench_*.py"))
    if args.list or not found:
        scripts = sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))
        print("\n".join(scripts) or f"no benchmarks in {folder}")
        return 0
    if args.name:
        script = _script("benchmarks", args.name)
        if script is None or script.name.startswith("_"):
            log(f"unknown benchmark {args.name!r}; expected one of {[p.stem for p in found]}")
            return 2
        found = [script]
    status = 0
    for script in found:
        log(f"== {script.name}")
        status = subprocess.call([sys.executable, str(script), *extra], cwd=ROOT) or status
    return status


def cmd_inspect(args: argparse.Namespace) -> int:
    try:
        info = describe_checkpoint(args.checkpoint)
    except (FileNotFoundError, ValueError) as err:
        log(f"error: {err}")
        return 1
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypr-stream", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="learn online from the stream a YAML config describes")
    r.add_argument("config", help="YAML file (see docs/cli.md)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set learner.lr=0.01 (repeatable)")
    r.add_argument("--check", action="store_true",
                   help="validate and print the resolved config, then exit")
    d = sub.add_parser("demo", help=f"run a bundled demo: {', '.join(DEMOS)}")
    d.add_argument("name")
    d.add_argument("--short", action="store_true", help="a quick version (used by the tests)")
    b = sub.add_parser("bench", help="run the scripts in benchmarks/ (all, or NAME)")
    b.add_argument("name", nargs="?")
    b.add_argument("--list", action="store_true", help="list the benchmarks")
    i = sub.add_parser("inspect", help="say what a checkpoint holds")
    i.add_argument("checkpoint")
    i.add_argument("--json", action="store_true", help="as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args, extra = parser().parse_known_args(argv)
    if extra and args.command not in ("demo", "bench"):
        parser().error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "run" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        code = cmd_run(args)
        # Under torchrun the process group is destroyed by now and every output written.
        # Interpreter finalization can still abort in gloo's thread teardown (SIGABRT,
        # pytorch/pytorch#190489), which torchrun would report as a failed rank: skip it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "demo":
        return cmd_demo(args, extra)
    if args.command == "bench":
        return cmd_bench(args, extra)
    return cmd_inspect(args)


if __name__ == "__main__":
    sys.exit(main())
