"""Many streams across processes: one StreamLearner per rank, one model, identical updates.

Each rank runs its own shard of B_r streams (its own neuron states and eligibilities, never sent
anywhere) and, before every optimizer step, all-reduces what it accumulated. The loss is
ℓ = (1/B) Σ_b Σ_t m ℓ_{t,b} (losses.py), so a rank's gradient g_r is normalised by its B_r; the
update every rank applies is

    g = Σ_r B_r g_r / Σ_r B_r        (sum over the ranks that accumulated anything this round)

which equals one process running all B = Σ_r B_r streams (up to the order of float additions).
Gradients, B_r and four flags (accumulated anything, non-finite, still active, checkpoint due)
travel in one flat all-reduce per update round, so every rank takes the same decision: step, skip
(a non-finite gradient anywhere skips everywhere, counted in ``counters["skipped_updates"]`` on
every rank) or do nothing, and then save or not (``save_when``). Initial weights are broadcast
from rank 0; every ``check_every`` updates a float64 checksum of the weights is all-gathered and
a difference raises ``WeightsDiverged``.

Rounds. Every call of ``_apply_update`` (after ``update_every`` blocks, on ``flush``, at a sample
boundary in batch mode, from ``idle``/``join``) is one collective round, matched by order across
ranks. A rank with nothing ready calls ``idle()``: it joins the peers' next round with whatever it
has (possibly nothing, then its B_r is not counted). A rank whose source ended calls ``join()``:
it keeps joining rounds until every rank has joined. A rank that does not come to a round within
the process group's timeout (``init_from_env(timeout_s)``), or that died, makes the collective
fail: the others save their own state (``failure_checkpoint``) and raise ``PeerFailure``.

Checkpoints. ``save("ckpt.pt")`` is collective: every rank writes its full StreamLearner
checkpoint to ``ckpt.rank{r}.pt`` (rank 0's is the authoritative model and optimizer; every
rank's holds its own stream state) and rank 0 writes the manifest ``ckpt.pt`` (world size, each
rank's B_r, update count). ``load`` refuses a manifest for a different world size.

Launch: ``torchrun --nproc_per_node 2 script.py`` with ``init_from_env``; see docs/distributed.md.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from . import checkpoint
from .learner import StreamLearner
from .network import RSNN

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "hypr_stream.distributed/1"
T = TypeVar("T")
C = TypeVar("C")
# Options for the constructor while StreamLearner.load (a classmethod that calls cls(...)) runs.
_LOAD_OPTIONS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "hypr_stream_distributed_load_options", default=None)


class PeerFailure(RuntimeError):
    """A collective failed: a peer died, hung past the timeout, or the network broke."""


class WeightsDiverged(RuntimeError):
    """The ranks' weights differ: the checksum all-gather found more than one value."""


def init_from_env(timeout_s: float = 60.0, backend: str | None = None
                  ) -> tuple[int, int, dist.ProcessGroup | None]:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT). Returns (rank, world_size, group).

    Without those variables (a plain ``python`` launch) returns (0, 1, None): run a plain
    StreamLearner. ``backend``: "nccl" when CUDA is available, else "gloo". ``timeout_s`` bounds
    every collective: a rank that does not arrive within it makes its peers' call fail (their
    ``PeerFailure``). Sets the CUDA device to LOCAL_RANK under NCCL. Calling it again returns
    the group already joined.
    """
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dist.group.WORLD
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, None
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return dist.get_rank(), dist.get_world_size(), dist.group.WORLD


def shard(items: Sequence[T] | Tensor, rank: int, world_size: int, dim: int = 0
          ) -> list[T] | Tensor:
    """Rank ``rank``'s contiguous share of ``items`` (a list of streams or sources, or a tensor
    along ``dim``, e.g. dim=1 of x [T, B, C]); shares differ in size by at most one, earlier
    ranks taking the extra ones. Every item goes to exactly one rank."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    n = items.shape[dim] if isinstance(items, Tensor) else len(items)
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)
    if isinstance(items, Tensor):
        return items.narrow(dim, start, stop - start)
    return list(items[start:stop])


def shard_chunk(chunk: C, rank: int, world_size: int) -> C:
    """Rank ``rank``'s share of the B streams of a chunk (a dataclass with ``x`` [T, B, C] and
    optional ``y``, ``mask``, ``boundary`` with B on axis 1, e.g. ``sources.Chunk``): when
    every rank opens the same source, each learns from its own streams."""
    x = chunk.x
    if getattr(x, "ndim", 0) != 3:
        raise ValueError(f"splitting streams across ranks needs chunks x [T, B, C]; this source "
                         f"delivers x of shape {tuple(getattr(x, 'shape', ()))}")
    if x.shape[1] < world_size:
        raise ValueError(f"the source has {x.shape[1]} streams for {world_size} ranks: every "
                         "rank needs at least one")
    streams = shard(range(x.shape[1]), rank, world_size)
    cut = slice(streams[0], streams[-1] + 1)
    parts = {name: getattr(chunk, name) for name in ("x", "y", "mask", "boundary")}
    return dataclasses.replace(chunk, **{name: None if v is None else v[:, cut]
                                         for name, v in parts.items()})


def fanout_uri(host: str, port: int) -> str:
    """The source URI a rank opens to take its share of a ZeroMQ PUSH/PULL fan-out: every rank
    connects a PULL socket to the producer's bound PUSH socket
    (``sources.zeromq.ZmqPusher("tcp://host:port", bind=True)``) and ZeroMQ deals chunks out
    round-robin. Chunks then land on any rank, so use it for self-contained samples (each chunk
    starting with a boundary); a continuous stream needs one endpoint per rank (``rank_uri``)."""
    return f"zmq+tcp://{host}:{port}?pattern=pull&bind=false"


def rank_uri(host: str, base_port: int, rank: int) -> str:
    """One PULL endpoint per rank (port ``base_port + rank``, bound by the rank): the producer
    pushes stream s to the rank that owns it, so a stream's chunks always reach the same state."""
    return f"zmq+tcp://{host}:{base_port + rank}?pattern=pull"


def ready_or_idle(chunks: Iterable[T], idle_after_s: float = 1.0, prefetch: int = 8
                  ) -> Iterator[T | None]:
    """``chunks`` read ahead by a thread into a bounded queue, with ``None`` in between whenever
    no chunk has been ready for ``idle_after_s`` seconds: the caller's cue to ``idle()``. Ends
    when ``chunks`` ends; an error in the reader is raised here, after the chunks read before
    it."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
    done, failure = object(), []

    def read() -> None:
        try:
            for chunk in chunks:
                ready.put(chunk)
        except BaseException as err:  # handed to the consuming thread
            failure.append(err)
        finally:
            ready.put(done)

    threading.Thread(target=read, name="hypr_stream-shard-reader", daemon=True).start()
    while True:
        try:
            chunk = ready.get(timeout=idle_after_s)
        except queue.Empty:
            yield None
            continue
        if chunk is done:
            break
        yield chunk
    if failure:
        raise failure[0]


def run_shard(learner: DistributedStreamLearner, chunks: Iterable[Any],
              idle_after_s: float = 1.0, prefetch: int = 8) -> int:
    """Learn from this rank's chunks (anything with ``x``, ``y``, ``mask``, ``boundary``, e.g. a
    ``sources`` Source) under the join policy: when no chunk is ready for ``idle_after_s`` the
    rank calls ``learner.idle()`` (joins the peers' next update, so they never wait on it for
    longer than one of their own updates), and when the chunks end it calls
    ``learner.join()``. Returns the number of chunks learned. An error in the reader is raised
    here, after this rank has joined."""
    learned, ready = 0, ready_or_idle(chunks, idle_after_s, prefetch)
    while True:
        try:
            chunk = next(ready)
        except StopIteration:
            break
        except Exception:  # the reader failed: join first, so no peer waits on this rank
            learner.join()
            raise
        if chunk is None:
            learner.idle()
            continue
        learner.learn(chunk.x, chunk.y, chunk.mask, chunk.boundary)
        learned += 1
    learner.join()
    return learned


def rank_path(path: str | Path, rank: int) -> Path:
    """``ckpt.pt`` → ``ckpt.rank{rank}.pt``: where rank ``rank`` keeps its part of a checkpoint."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


class DistributedStreamLearner(StreamLearner):
    """StreamLearner whose optimizer steps use the gradient of all ranks' streams.

    Takes StreamLearner's arguments plus: ``group`` (a torch.distributed process group; None:
    the world group, which must be initialised, e.g. by ``init_from_env``); ``check_every``
    (checksum the weights every k updates, 0: only at ``save``); ``failure_checkpoint`` (where
    a rank saves its own state when a collective fails, as ``rank_path(failure_checkpoint, r)``;
    None: do not save). Construction is collective: it checks that every rank built the same
    network and settings and broadcasts rank 0's weights.
    """

    def __init__(self, net: RSNN, *args: Any, group: dist.ProcessGroup | None = None,
                 check_every: int = 100, failure_checkpoint: str | Path | None =
                 "hypr_stream_failure.pt", **kwargs: Any) -> None:
        loading = _LOAD_OPTIONS.get()
        if loading is not None:
            group = loading.get("group", group)
            check_every = loading.get("check_every", check_every)
            failure_checkpoint = loading.get("failure_checkpoint", failure_checkpoint)
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised: call "
                               "hypr_stream.distributed.init_from_env() (under torchrun) first")
        if not isinstance(check_every, int) or isinstance(check_every, bool) or check_every < 0:
            raise ValueError(f"check_every must be an int >= 0, got {check_every!r}")
        super().__init__(net, *args, **kwargs)
        self.group = group if group is not None else dist.group.WORLD
        self.rank = dist.get_rank(self.group)
        self.world_size = dist.get_world_size(self.group)
        self.check_every = check_every
        self.failure_checkpoint = failure_checkpoint
        self._active = True
        self._round = 0
        self._active_ranks = self.world_size
        self.comm = {"rounds": 0, "bytes": 0, "seconds": 0.0, "checks": 0}
        self._save_due: Callable[[], bool] | None = None
        self._save: Callable[[], Any] | None = None
        self._check_same_setup()
        self._broadcast_weights()

    # ------------------------------------------------------------------ public, collective
    def idle(self) -> None:
        """Nothing ready on this rank: join the peers' next update round now with what this rank
        has accumulated (possibly nothing), and receive the update. Blocks until every rank has
        come to that round (at most the process group's timeout)."""
        self._apply_update()

    def join(self) -> None:
        """This rank's streams ended: run the P-stage on the buffered steps, then keep joining
        update rounds until every rank has joined, so no peer waits for this one."""
        if self._pending:
            self._p_stage(allow_update=False)
        self._active = False
        while True:
            self._apply_update()
            if self._active_ranks == 0:
                return

    def save_when(self, due: Callable[[], bool], save: Callable[[], Any]) -> None:
        """Periodic checkpoints without a deadlock: every round each rank sends ``due()`` (its
        own clock or step count says a checkpoint is due) with the gradients, and if any rank is
        due, every rank calls ``save()`` right after that round. A round is the one point where
        all ranks stand at the same place in the collective order; ``save`` must call the
        collective ``self.save(...)``. The checkpoint then holds each rank's state after the
        steps it had run when the round came (``counters["steps"]``), possibly mid-chunk."""
        self._save_due, self._save = due, save

    def check_weights(self) -> float:
        """All-gather a float64 checksum of the weights; raise WeightsDiverged naming the ranks
        that differ from rank 0. Returns the checksum."""
        flat = torch.cat([t.detach().reshape(-1).to(torch.float64)
                          for t in self.net.state_dict().values() if t.is_floating_point()])
        ramp = torch.linspace(1.0, 2.0, flat.numel(), dtype=torch.float64, device=flat.device)
        mine = torch.stack([flat.sum(), (flat * ramp).sum()])
        sums = [torch.empty_like(mine) for _ in range(self.world_size)]
        self._collective("checksum all_gather", dist.all_gather, sums, mine, group=self.group)
        self.comm["checks"] += 1
        bad = [r for r, s in enumerate(sums) if not torch.equal(s, sums[0])]
        if bad:
            values = ", ".join(f"rank {r}: {sums[r].tolist()}" for r in [0, *bad])
            raise WeightsDiverged(
                f"weights differ across ranks after {self.counters['updates']} updates: ranks "
                f"{bad} disagree with rank 0 (float64 [sum, ramp-weighted sum]: {values}); "
                "something changed one rank's weights outside the shared update")
        return float(mine[0])

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Collective: check the weights agree, write this rank's checkpoint to
        ``rank_path(path, rank)`` and (rank 0) the manifest to ``path``.
        Returns this rank's file."""
        self.check_weights()
        batch = torch.tensor([self.batch or 0], dtype=torch.int64,
                             device=self._comm_device())
        batches = [torch.empty_like(batch) for _ in range(self.world_size)]
        self._collective("save all_gather", dist.all_gather, batches, batch, group=self.group)
        mine = super().save(rank_path(path, self.rank), extra)
        if self.rank == 0:
            checkpoint.write_atomic({
                "format": MANIFEST_FORMAT,
                "world_size": self.world_size,
                "files": [rank_path(path, r).name for r in range(self.world_size)],
                "batches": [int(b) for b in batches],
                "updates": self.counters["updates"],
            }, path)
        self._collective("save barrier", dist.barrier, group=self.group)
        return mine

    @classmethod
    def load(cls, path: str | Path, net: RSNN | None = None,
             device: torch.device | str | None = None, *,
             group: dist.ProcessGroup | None = None, **options: Any
             ) -> DistributedStreamLearner:
        """Collective: continue from ``save(path)``'s files. The manifest's world size must equal
        the group's; each rank reads its own file. ``options``: ``check_every``,
        ``failure_checkpoint``."""
        group = group if group is not None else dist.group.WORLD
        if not Path(path).is_file():
            raise FileNotFoundError(f"no distributed checkpoint manifest at {path}")
        manifest = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{path} is not a distributed checkpoint manifest (no "
                             f"{MANIFEST_FORMAT!r} format field); a rank file loads with "
                             "StreamLearner.load")
        world, rank = dist.get_world_size(group), dist.get_rank(group)
        if manifest["world_size"] != world:
            raise ValueError(f"{path} was saved by {manifest['world_size']} ranks but this group "
                             f"has {world}; each rank's stream state belongs to its rank")
        token = _LOAD_OPTIONS.set({"group": group, **options})
        try:
            learner = super().load(Path(path).with_name(manifest["files"][rank]), net, device)
        finally:
            _LOAD_OPTIONS.reset(token)
        if learner.counters["updates"] != manifest["updates"]:
            raise ValueError(f"rank {rank}'s file has {learner.counters['updates']} updates, "
                             f"the manifest {manifest['updates']}: files from different saves")
        learner.check_weights()
        return learner

    @property
    def metrics(self) -> dict[str, Any]:
        """StreamLearner's metrics plus rank, world size and the communication counters."""
        figures = super().metrics
        figures.update(rank=self.rank, world_size=self.world_size,
                       **{f"comm_{k}": v for k, v in self.comm.items()})
        return figures

    # ------------------------------------------------------------------ the shared update
    def _apply_update(self) -> None:
        """One collective round: all-reduce [B_r g_r, B_r, has_grad, non_finite, active, due] and
        step with Σ B_r g_r / Σ B_r on every rank (or skip, or do nothing, on every rank)."""
        grads, blocks = self._grad, self._blocks_since_update
        self._grad, self._blocks_since_update = None, 0
        params = list(self.net.named_parameters())
        like = params[0][1]
        has = grads is not None
        finite = has and all(bool(torch.isfinite(g).all()) for g in grads.values())
        weight = float(self.batch or 0) if finite else 0.0
        parts = [(grads[name] * weight if finite else torch.zeros_like(p)).reshape(-1)
                 for name, p in params]
        due = self._save_due is not None and bool(self._save_due())
        flags = torch.tensor([weight, float(has), float(has and not finite), float(self._active),
                              float(due)], dtype=like.dtype, device=like.device)
        buf = torch.cat([*parts, flags])
        self._round += 1
        try:
            self._collective(f"all_reduce of update round {self._round}", dist.all_reduce, buf,
                             group=self.group, restore=(grads, blocks))
        finally:
            self.comm["rounds"] += 1
            self.comm["bytes"] += buf.numel() * buf.element_size()
        total_b, any_grad, non_finite, active, any_due = buf[-5:].tolist()
        self._active_ranks = round(active)
        if non_finite > 0:
            self._skip_update(f"rank {self.rank}: {round(non_finite)} rank(s) accumulated a "
                              "non-finite gradient")
        elif any_grad > 0 and total_b > 0:
            offset, reduced = 0, {}
            for name, p in params:
                reduced[name] = (buf[offset:offset + p.numel()].view_as(p) / total_b)
                offset += p.numel()
            self._grad = reduced
            super()._apply_update()
            if self.check_every and self.counters["updates"] % self.check_every == 0:
                self.check_weights()
        if any_due > 0 and self._save is not None:
            self._save()

    # ------------------------------------------------------------------ internals
    def _collective(self, what: str, fn: Any, *args: Any,
                    restore: tuple[Any, int] | None = None, **kwargs: Any) -> None:
        """Run a collective; on failure restore the accumulated gradient, save this rank's state
        to the failure checkpoint and raise PeerFailure naming what failed."""
        started = time.perf_counter()
        try:
            fn(*args, **kwargs)
        except RuntimeError as err:  # gloo and NCCL raise RuntimeError (DistError)
            waited = time.perf_counter() - started
            if restore is not None:
                self._grad, self._blocks_since_update = restore
            saved = "no failure checkpoint configured"
            if self.failure_checkpoint is not None:
                try:
                    where = StreamLearner.save(self, rank_path(self.failure_checkpoint,
                                                               self.rank))
                    saved = f"saved this rank's state to {where}"
                except Exception as save_err:  # report the peer failure, not this one
                    saved = f"could not save this rank's state: {save_err}"
            message = (f"rank {self.rank} of {self.world_size}: {what} failed after "
                       f"{waited:.1f} s at update {self.counters['updates']}: a peer rank died, "
                       f"hung past the process group's timeout, or the network broke; "
                       f"{saved}. Cause: {err}")
            log.error(message)
            raise PeerFailure(message) from err
        finally:
            self.comm["seconds"] += time.perf_counter() - started

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend(self.group) == "nccl" else torch.device("cpu")

    def _check_same_setup(self) -> None:
        mine = {"network": checkpoint.network_signature(self.net), "learner": self.settings(),
                "dtype": str(next(self.net.parameters()).dtype)}
        everyone: list[Any] = [None] * self.world_size
        self._collective("setup all_gather_object", dist.all_gather_object, everyone, mine,
                         group=self.group)
        for r, theirs in enumerate(everyone):
            for key in mine:
                if theirs[key] != everyone[0][key]:
                    raise ValueError(f"rank {r}'s {key} differs from rank 0's: {theirs[key]} "
                                     f"against {everyone[0][key]}; every rank must build the "
                                     "same network and learner")

    @torch.no_grad()
    def _broadcast_weights(self) -> None:
        src = dist.get_global_rank(self.group, 0)
        for tensor in self.net.state_dict().values():
            self._collective("initial weight broadcast", dist.broadcast, tensor, src=src,
                             group=self.group)
