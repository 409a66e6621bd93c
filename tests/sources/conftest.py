"""Shared helpers for the sources tests: real sockets on 127.0.0.1, timeouts everywhere."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
from zmq.utils.garbage import GarbageCollectorThread

from sources import Source

FSDD = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "fsdd" / "recordings"


def take(source: Source, n: int) -> list:
    """The next n chunks of a source (its own timeout makes this fail rather than hang)."""
    return list(itertools.islice(source, n))


@pytest.fixture
def ipc_endpoint(tmp_path: Path) -> str:
    """An ipc:// endpoint in a fresh temporary folder."""
    return f"ipc://{tmp_path}/learner.sock"


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Every sources test must leave no thread of its own running.

    pyzmq's zero-copy garbage collector is one daemon thread per process, not ours to stop.
    """
    before = set(threading.enumerate())
    yield
    for _ in range(50):
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()
                 and not isinstance(t, GarbageCollectorThread)]
        if not extra:
            return
        threading.Event().wait(0.1)
    raise AssertionError(f"threads left running: {[t.name for t in extra]}")


def fsdd_files() -> list[Path]:
    """The spoken-digit recordings, when shared/data is present."""
    return sorted(FSDD.glob("*.wav")) if FSDD.is_dir() else []


