"""Checkpoint files: written atomically, read without executing code, checked against the net.

A checkpoint is a plain dict of tensors and Python scalars saved with ``torch.save`` and read
with ``torch.load(weights_only=True)``, which refuses anything that would need code to rebuild.
Writing goes to a temporary file in the same folder, fsynced, then renamed over the target (and
the folder fsynced), so a crash leaves either the old file or the new one, never a torn one.
A process killed mid-write (kill -9, the OOM killer) leaves its temporary file behind; the next
write removes those whose process is gone, so a run that crashes again and again does not fill
the disk. Temporary files are never read as checkpoints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .network import RSNN

FORMAT = "hypr_stream.checkpoint/1"


def network_signature(net: RSNN) -> dict[str, Any]:
    """What must match for a checkpoint to continue on ``net``: parameter shapes and models."""
    return {
        "parameters": {name: list(p.shape) for name, p in net.named_parameters()},
        "models": [repr(layer.model) for _, layer in net.stack()],
        "recurrent": [layer.recurrent for _, layer in net.stack()],
    }


def check_signature(saved: dict[str, Any], net: RSNN) -> None:
    """Raise a ValueError that names the first difference between ``saved`` and ``net``."""
    here = network_signature(net)
    for name in sorted(set(saved["parameters"]) | set(here["parameters"])):
        a, b = saved["parameters"].get(name), here["parameters"].get(name)
        if a != b:
            raise ValueError(
                f"checkpoint is for a different network: parameter {name!r} has shape {a} in the "
                f"checkpoint and {b} in this network (None: absent)"
            )
    for idx, (a, b) in enumerate(zip(saved["models"], here["models"], strict=True)):
        if a != b:
            raise ValueError(f"checkpoint is for a different network: layer {idx} is {a} in the "
                             f"checkpoint and {b} in this network")
    if saved["recurrent"] != here["recurrent"]:
        raise ValueError(f"checkpoint is for a different network: recurrent flags "
                         f"{saved['recurrent']} in the checkpoint, {here['recurrent']} here")


def _remove_stale_temporaries(path: Path) -> None:
    """Delete ``.NAME.PID.tmp`` files next to ``path`` left by processes that no longer run."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-4]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except PermissionError:
            pass  # alive, another user's


def write_atomic(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Save ``payload`` to ``path`` via a fsynced temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


def read(path: str | os.PathLike, device: torch.device | str | None = None) -> dict[str, Any]:
    """Load a checkpoint without executing code; refuse files that are not ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # pickle errors come in many types; all mean "not loadable"
        raise ValueError(f"{path} is not a loadable hypr_stream checkpoint: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a hypr_stream checkpoint (format {FORMAT})")
    return payload
