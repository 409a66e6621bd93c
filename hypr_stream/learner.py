"""StreamLearner: learn continuously from an unbounded stream in constant memory.

    chunk → validate → S-stage (outputs now) → buffer → every λ steps: P-stage → gradient sum
          → every ``update_every`` subsequences: clip, optimizer step, constrain

Chunks may have any length and need not align with λ: the buffer is cut at stream positions
that are multiples of λ (and, in batch mode, at sample boundaries), so outputs, weights and
metrics do not depend on how the stream was chunked. Memory is the eligibility plus at most λ
buffered steps, whatever the stream's length.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import checkpoint
from .losses import LOSSES, Targets, make_targets
from .metrics import Prequential, Scores
from .network import RSNN, LayerTrace, RunResult
from .rules import RULES, make_rule
from .scan import ScanMethod

log = logging.getLogger(__name__)

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
INVALID_POLICIES = ("raise", "skip")


class InvalidInput(ValueError):
    """A chunk that the learner refused; its message names the problem. Nothing was changed."""


class StreamLearner:
    """Online learner over B parallel streams; see the module docstring.

    ``rule``: "hypr", "eprop" or "bptt" (truncated to λ). ``lam``: subsequence length λ.
    ``optimizer``: a name in OPTIMIZERS or a torch.optim class, built with ``lr`` and
    ``optimizer_options``. ``update_every``: optimizer step every k subsequences; None steps only
    at sample boundaries (and on ``flush``): the paper's batch mode. ``clip``: global-norm clip
    (None: off). ``loss``: "ce" or "mse". ``device``: CUDA when available unless given.
    ``step_on_boundary``: flush and step when a sample boundary arrives (default: batch mode only).
    ``on_invalid``: "raise" an InvalidInput, or "skip" (log, count, return None).
    ``window``: target steps in the windowed metrics.
    ``fault_limit``: after this many updates in a row skipped for a non-finite gradient, roll
    back to the last good weights (those last saved, else the initial ones) and restart the
    streams' state. Streams whose neuron state turns non-finite are reset and counted.
    ``flush_denormal``: on a CPU, flush subnormal floats to zero while the learner computes
    (``torch.set_flush_denormal``, restored afterwards). Decaying states and eligibilities drift
    into the subnormal range, where x86 arithmetic is up to 30× slower (measured on the cue task:
    31 against 976 steps/s); values below 1e-38 (float32) carry no learning signal.
    """

    def __init__(
        self,
        net: RSNN,
        rule: str = "hypr",
        lam: int = 64,
        optimizer: str | type[torch.optim.Optimizer] = "adam",
        lr: float = 1e-3,
        update_every: int | None = 1,
        clip: float | None = 10.0,
        loss: str = "ce",
        device: torch.device | str | None = None,
        *,
        scan: ScanMethod = "auto",
        step_on_boundary: bool | None = None,
        on_invalid: str = "raise",
        window: int = 1000,
        optimizer_options: dict[str, Any] | None = None,
        fault_limit: int = 3,
        flush_denormal: bool = True,
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown learning rule {rule!r}; choose one of {RULES}")
        _check_count("lam", lam)
        if update_every is not None:
            _check_count("update_every", update_every)
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be > 0 or None, got {clip!r}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
        _check_count("fault_limit", fault_limit)
        if on_invalid not in INVALID_POLICIES:
            raise ValueError(f"on_invalid must be one of {INVALID_POLICIES}, got {on_invalid!r}")
        if isinstance(optimizer, str):
            if optimizer not in OPTIMIZERS:
                raise ValueError(f"unknown optimizer {optimizer!r}; choose one of "
                                 f"{sorted(OPTIMIZERS)} or pass a torch.optim class")
            optimizer_cls = OPTIMIZERS[optimizer]
        else:
            optimizer_cls = optimizer
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.flush_denormal = flush_denormal and self.device.type == "cpu"
        self.net = net.to(self.device)
        self.rule_name, self.lam, self.lr = rule, lam, lr
        self.update_every, self.clip, self.loss = update_every, clip, loss
        self.scan, self.on_invalid = scan, on_invalid
        self.step_on_boundary = (update_every is None if step_on_boundary is None
                                 else step_on_boundary)
        self.optimizer_options = dict(optimizer_options or {})
        self.optimizer = optimizer_cls(self.net.parameters(), lr=lr, **self.optimizer_options)
        self.rule = make_rule(rule, scan)
        self.prequential = Prequential(window)

        self.batch: int | None = None
        self.state: list[Tensor] | None = None
        self.eligibility: Any = None
        self.predict_state: list[Tensor] | None = None
        self._pending: list[tuple[RunResult, Targets]] = []
        self._grad: dict[str, Tensor] | None = None
        self._blocks_since_update = 0
        self.fault_limit = fault_limit
        self.counters = {"steps": 0, "blocks": 0, "updates": 0, "rejected": 0,
                         "skipped_updates": 0, "state_faults": 0, "rollbacks": 0}
        self._skips_in_a_row = 0
        self._good = self._weights_snapshot()
        self._busy_seconds = 0.0
        self._last_latency = 0.0

    # ------------------------------------------------------------------ the streaming API
    def learn(
        self,
        x: Tensor | np.ndarray,
        y: Tensor | np.ndarray | None = None,
        mask: Tensor | np.ndarray | None = None,
        boundary: Tensor | np.ndarray | None = None,
    ) -> Tensor | None:
        """Learn from a chunk x [T, B, n_in] (or [T, n_in] for one stream) with optional per-step
        targets y, mask [T, B] and sample boundaries [T, B] (True where a new sample begins).

        Returns the chunk's per-step outputs [T, B, n_out] (scored before learning from them).
        A chunk that fails validation changes nothing: it raises InvalidInput, or with
        ``on_invalid="skip"`` is logged, counted and answered with None.
        """
        with _denormals_flushed(self.flush_denormal):
            return self._learn(x, y, mask, boundary)

    def _learn(self, x: Any, y: Any, mask: Any, boundary: Any) -> Tensor | None:
        started = time.perf_counter()
        try:
            x_t, targets, reset, single = self._validate(x, y, mask, boundary)
        except InvalidInput as err:
            self.counters["rejected"] += 1
            if self.on_invalid == "raise":
                raise
            log.warning("rejected a chunk: %s", err)
            return None
        if self.state is None:
            self.batch = x_t.shape[1]
            self.state = self.net.init_state(self.batch)
            self.eligibility = self.rule.init_eligibility(self.net, self.batch)
        outputs = []
        steps, start = x_t.shape[0], 0
        sample_starts = [] if reset is None or not self.step_on_boundary else (
            reset.any(1).nonzero()[:, 0].tolist())
        while start < steps:
            if start in sample_starts:
                self.flush(step=True)
            later_starts = [t for t in sample_starts if t > start]
            stop = min([steps, start + self.lam - self.pending_steps, *later_starts])
            piece_reset = None if reset is None else reset[start:stop]
            with torch.no_grad():
                run = self.net.run(x_t[start:stop], self.state, piece_reset, trace=True)
            self.state = self._reset_nonfinite(run.state)
            self._pending.append((run, targets[start:stop]))
            outputs.append(run.outputs)
            # Counted per piece, so that a checkpoint taken inside an update round (a
            # collective one, distributed.py) says exactly how many steps its state holds.
            self.counters["steps"] += stop - start
            if self.pending_steps == self.lam:
                self._p_stage()
            start = stop
        self._last_latency = time.perf_counter() - started
        self._busy_seconds += self._last_latency
        out = torch.cat(outputs)
        return out.squeeze(1) if single else out

    @torch.no_grad()
    def predict(
        self, x: Tensor | np.ndarray, boundary: Tensor | np.ndarray | None = None
    ) -> Tensor:
        """Inference only: outputs [T, B, n_out] for x. Carries its own state across calls
        (separate from the learning streams, so evaluating never disturbs learning); a boundary
        resets it. Nothing is learned and no metric changes."""
        x_t, _, reset, single = self._validate(x, None, None, boundary, check_batch=False)
        if self.predict_state is None or self.predict_state[0].shape[0] != x_t.shape[1]:
            self.predict_state = self.net.init_state(x_t.shape[1])
        run = self.net.run(x_t, self.predict_state, reset)
        self.predict_state = run.state
        return run.outputs.squeeze(1) if single else run.outputs

    def flush(self, step: bool = True) -> None:
        """End of a finite sequence: run the P-stage on the buffered steps now, and (if ``step``)
        apply an optimizer step with everything accumulated since the last one."""
        with _denormals_flushed(self.flush_denormal):
            if self._pending:
                self._p_stage(allow_update=False)
            if step:
                self._apply_update()

    @property
    def pending_steps(self) -> int:
        """Steps run through the S-stage but not yet through the P-stage (< λ)."""
        return sum(run.outputs.shape[0] for run, _ in self._pending)

    @property
    def metrics(self) -> dict[str, Any]:
        """Prequential loss/accuracy (running and windowed) and counters, as a dict."""
        pending = None
        if self._pending:
            run, targets = self._merged_pending()
            pending = Scores.of(run.outputs, targets)
        figures = self.prequential.get(pending)
        figures.update(self.counters)
        figures["window"] = self.prequential.window
        figures["steps_per_second"] = (self.counters["steps"] / self._busy_seconds
                                       if self._busy_seconds else None)
        figures["latency_ms"] = self._last_latency * 1e3
        return figures

    def tensor_bytes(self) -> int:
        """Bytes held in tensors by the learner: weights, optimizer state, gradient sum, neuron
        state, eligibility and the S-stage buffer. Constant once the buffer has filled."""
        seen: dict[int, int] = {}

        def visit(value: Any) -> None:
            if isinstance(value, Tensor):
                seen[value.data_ptr()] = value.numel() * value.element_size()
            elif isinstance(value, (list, tuple)):
                for v in value:
                    visit(v)
            elif isinstance(value, dict):
                for v in value.values():
                    visit(v)

        visit([list(self.net.parameters()), self.optimizer.state_dict()["state"], self._grad,
               self.state, self.eligibility, self.predict_state,
               [(run.traces, run.outputs, t.y, t.mask) for run, t in self._pending]])
        return sum(seen.values())

    # ------------------------------------------------------------------ internals
    def _merged_pending(self) -> tuple[RunResult, Targets]:
        if len(self._pending) == 1:
            return self._pending[0]
        runs = [run for run, _ in self._pending]
        traces = [
            LayerTrace(*(torch.cat(parts) for parts in zip(*layer_traces, strict=True)))
            for layer_traces in zip(*(run.traces for run in runs), strict=True)
        ]
        resets = [run.reset for run in runs]
        reset = None
        if any(r is not None for r in resets):
            reset = torch.cat([
                torch.zeros(run.outputs.shape[:2], dtype=torch.bool, device=self.device)
                if r is None else r for run, r in zip(runs, resets, strict=True)
            ])
        targets = [t for _, t in self._pending]
        merged_targets = Targets(torch.cat([t.y for t in targets]),
                                 torch.cat([t.mask for t in targets]), targets[0].loss)
        outputs = torch.cat([run.outputs for run in runs])
        return RunResult(outputs, runs[-1].state, traces, reset), merged_targets

    def _p_stage(self, allow_update: bool = True) -> None:
        run, targets = self._merged_pending()
        self._pending = []
        grads, self.eligibility = self.rule.block_gradient(self.net, run, targets,
                                                           self.eligibility)
        if self.eligibility is not None:
            self.eligibility = [type(e)(*(_zero_nonfinite_streams(part, dim) for part, dim
                                          in zip(e, (0, 2), strict=True)))
                                for e in self.eligibility]
        self.prequential.commit(Scores.of(run.outputs, targets))
        # A block without targets adds nothing: an optimizer step on its zero gradient would
        # still move the weights (Adam's momentum), e.g. while predicting from a microphone.
        if bool(targets.mask.any()):
            if self._grad is None:
                self._grad = grads
            else:
                for name, g in grads.items():
                    self._grad[name] += g
        self.counters["blocks"] += 1
        self._blocks_since_update += 1
        if allow_update and self.update_every and self._blocks_since_update >= self.update_every:
            self._apply_update()

    def _apply_update(self) -> None:
        grads, self._grad = self._grad, None
        self._blocks_since_update = 0
        if grads is None:
            return
        if not all(bool(torch.isfinite(g).all()) for g in grads.values()):
            self._skip_update("the accumulated gradient is not finite")
            return
        params = []
        for name, p in self.net.named_parameters():
            p.grad = grads[name]
            params.append(p)
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.net.constrain_()
        self.counters["updates"] += 1
        self._skips_in_a_row = 0

    def _skip_update(self, reason: str) -> None:
        """Count a skipped update; after ``fault_limit`` in a row, roll back."""
        self.counters["skipped_updates"] += 1
        self._skips_in_a_row += 1
        log.warning("skipped an update (%d in a row): %s", self._skips_in_a_row, reason)
        if self._skips_in_a_row >= self.fault_limit:
            self._roll_back()

    def _roll_back(self) -> None:
        """Restore the last good weights and optimizer state; restart every stream's state."""
        weights, optimizer = copy.deepcopy(self._good)
        self.net.load_state_dict(weights)
        self.optimizer.load_state_dict(optimizer)
        if self.batch is not None:
            self.state = self.net.init_state(self.batch)
            self.eligibility = self.rule.init_eligibility(self.net, self.batch)
        self._pending, self._grad, self._blocks_since_update = [], None, 0
        self._skips_in_a_row = 0
        self.counters["rollbacks"] += 1
        log.error("rolled back to the last good weights after %d non-finite updates in a row",
                  self.fault_limit)

    def _weights_snapshot(self) -> tuple[dict, dict]:
        return (copy.deepcopy(self.net.state_dict()),
                copy.deepcopy(self.optimizer.state_dict()))

    def _reset_nonfinite(self, state: list[Tensor]) -> list[Tensor]:
        """Zero the state of streams whose state is no longer finite (extreme inputs)."""
        bad = torch.zeros(state[0].shape[0], dtype=torch.bool, device=state[0].device)
        for s in state:
            bad |= ~torch.isfinite(s).flatten(1).all(1)
        if not bool(bad.any()):
            return state
        self.counters["state_faults"] += int(bad.sum())
        log.warning("reset the state of %d stream(s): it was not finite", int(bad.sum()))
        return [s.masked_fill(bad[:, None, None], 0.0) for s in state]

    def _validate(
        self, x: Any, y: Any, mask: Any, boundary: Any, check_batch: bool = True
    ) -> tuple[Tensor, Targets, Tensor | None, bool]:
        """Tensors on the learner's device, or InvalidInput naming what is wrong."""
        x = _as_tensor("x", x)
        if not x.is_floating_point():
            raise InvalidInput(f"x must be floating point, got {x.dtype}")
        single = x.dim() == 2
        x = x.unsqueeze(1) if single else x
        n_in = self.net.n_in
        if x.dim() != 3 or x.shape[-1] != n_in or x.shape[0] < 1:
            raise InvalidInput(f"x must have shape [T, B, {n_in}] or [T, {n_in}] with T >= 1, "
                               f"got {tuple(x.shape)}")
        if check_batch and self.batch is not None and x.shape[1] != self.batch:
            raise InvalidInput(f"x has {x.shape[1]} streams but this learner runs {self.batch}")
        x = x.to(device=self.device, dtype=self.net.readout.bias.dtype)
        if not bool(torch.isfinite(x).all()):
            raise InvalidInput("x contains NaN or Inf")
        T, B = x.shape[:2]
        if y is None:
            targets = Targets(torch.zeros(T, B, dtype=torch.long, device=self.device),
                              torch.zeros(T, B, dtype=torch.bool, device=self.device), self.loss)
        else:
            y = _as_tensor("y", y)
            if y.is_floating_point() and not bool(torch.isfinite(y).all()):
                raise InvalidInput("y contains NaN or Inf")
            try:
                targets = make_targets(y, _maybe_tensor("mask", mask), self.net.n_out, x,
                                       self.loss)
            except (TypeError, ValueError) as err:
                raise InvalidInput(str(err)) from err
        reset = None
        if boundary is not None:
            reset = _as_tensor("boundary", boundary)
            reset = reset.unsqueeze(1) if reset.dim() == 1 else reset
            if tuple(reset.shape) != (T, B):
                raise InvalidInput(f"boundary must have shape {(T, B)}, got {tuple(reset.shape)}")
            if reset.dtype != torch.bool:
                if reset.is_floating_point() or not bool(((reset == 0) | (reset == 1)).all()):
                    raise InvalidInput(
                        f"boundary must be bool (or 0/1 integers), got {reset.dtype}")
                reset = reset.bool()
            reset = reset.to(self.device)
            reset = reset if bool(reset.any()) else None
        return x, targets, reset, single

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write everything needed to continue exactly (atomically; see checkpoint.py), plus
        ``extra`` (plain data, e.g. a run's config) under the key "extra". The weights saved
        become the ones a run of non-finite updates rolls back to."""
        self._good = self._weights_snapshot()
        stream = {
            "batch": self.batch,
            "state": self.state,
            "eligibility": None if self.eligibility is None else [list(e) for e in
                                                                   self.eligibility],
            "predict_state": self.predict_state,
            "grad": self._grad,
            "blocks_since_update": self._blocks_since_update,
            "skips_in_a_row": self._skips_in_a_row,
            "counters": dict(self.counters),
            "pending": None,
        }
        if self._pending:
            run, targets = self._merged_pending()
            stream["pending"] = {
                "outputs": run.outputs, "state": run.state, "reset": run.reset,
                "traces": [list(tr) for tr in run.traces],
                "y": targets.y, "mask": targets.mask,
            }
        payload = {
            "format": checkpoint.FORMAT,
            "network": {"config": self.net.config,
                        "signature": checkpoint.network_signature(self.net)},
            "learner": self.settings(),
            "model_state": self.net.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "stream": stream,
            "metrics": self.prequential.state_dict(),
            "rng": torch.get_rng_state(),
        }
        if extra is not None:
            payload["extra"] = extra
        return checkpoint.write_atomic(payload, path)

    def settings(self) -> dict[str, Any]:
        """The constructor arguments, as plain data."""
        return {
            "rule": self.rule_name, "lam": self.lam,
            "optimizer": type(self.optimizer).__name__, "lr": self.lr,
            "update_every": self.update_every, "clip": self.clip, "loss": self.loss,
            "scan": self.scan, "step_on_boundary": self.step_on_boundary,
            "on_invalid": self.on_invalid, "window": self.prequential.window,
            "optimizer_options": self.optimizer_options, "fault_limit": self.fault_limit,
            "flush_denormal": self.flush_denormal,
        }

    @classmethod
    def load(
        cls, path: str | Path, net: RSNN | None = None, device: torch.device | str | None = None
    ) -> StreamLearner:
        """Continue from a checkpoint. ``net`` is rebuilt from the checkpoint's config unless
        given (needed for networks built from model instances); a network that does not match
        the checkpoint is refused with the first difference named."""
        payload = checkpoint.read(path, device="cpu")
        saved_net = payload["network"]
        if net is None:
            config = saved_net["config"]
            if config is None:
                raise ValueError(f"{path} holds a network built from custom model instances; "
                                 "pass net= to load it")
            config = dict(config)
            options = config.pop("model_options")
            net = RSNN(**config, **options)
        checkpoint.check_signature(saved_net["signature"], net)
        net.load_state_dict(payload["model_state"])
        settings = dict(payload["learner"])
        optimizer = settings.pop("optimizer")
        optimizer_cls = getattr(torch.optim, optimizer, None)
        if optimizer_cls is None:
            raise ValueError(f"checkpoint uses optimizer {optimizer!r}, not found in torch.optim")
        learner = cls(net, optimizer=optimizer_cls, device=device, **settings)
        learner.optimizer.load_state_dict(payload["optimizer_state"])
        learner._restore_stream(payload["stream"])
        learner.prequential.load_state_dict(payload["metrics"])
        torch.set_rng_state(payload["rng"])
        return learner

    def _restore_stream(self, stream: dict[str, Any]) -> None:
        def move(value: Any) -> Any:
            if isinstance(value, Tensor):
                return value.to(self.device)
            if isinstance(value, list):
                return [move(v) for v in value]
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            return value

        stream = move(stream)
        self.batch = stream["batch"]
        self.state = stream["state"]
        self.predict_state = stream["predict_state"]
        if stream["eligibility"] is not None:
            from .rules import LayerEligibility

            self.eligibility = [LayerEligibility(*e) for e in stream["eligibility"]]
        elif self.batch is not None:
            self.eligibility = self.rule.init_eligibility(self.net, self.batch)
        self._grad = stream["grad"]
        self._blocks_since_update = stream["blocks_since_update"]
        self.counters = dict(stream["counters"])
        self._skips_in_a_row = stream["skips_in_a_row"]
        self._good = self._weights_snapshot()
        pending = stream["pending"]
        if pending is not None:
            run = RunResult(pending["outputs"], pending["state"],
                            [LayerTrace(*tr) for tr in pending["traces"]], pending["reset"])
            self._pending = [(run, Targets(pending["y"], pending["mask"], self.loss))]


@contextlib.contextmanager
def _denormals_flushed(enabled: bool) -> Iterator[None]:
    """Flush subnormals to zero inside the block, then restore the caller's setting (torch has
    no getter, so it is probed: 1e-30 * 1e-10 underflows to 0 only when flushing)."""
    if not enabled:
        yield
        return
    was_flushing = float(torch.tensor(1e-30) * 1e-10) == 0.0
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if not was_flushing:
            torch.set_flush_denormal(False)


def _zero_nonfinite_streams(e: Tensor, batch_dim: int) -> Tensor:
    """Zero the eligibility of streams (along ``batch_dim``) that hold a non-finite value."""
    finite = torch.isfinite(e).movedim(batch_dim, 0).flatten(1).all(1)
    if bool(finite.all()):
        return e
    shape = [1] * e.dim()
    shape[batch_dim] = -1
    return e.masked_fill(~finite.view(shape), 0.0)


def _check_count(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _as_tensor(name: str, value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise InvalidInput(f"{name} must be a numeric array, got dtype object")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise InvalidInput(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def _maybe_tensor(name: str, value: Any) -> Tensor | None:
    return None if value is None else _as_tensor(name, value)
