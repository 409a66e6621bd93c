"""A real JACK server on its dummy backend, for tests that play and record audio through
sounddevice's API without a sound card (Debian jackd2)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest


@contextmanager
def jack_server(rate: int, period: int) -> Iterator[ModuleType]:
    """Start ``jackd -d dummy`` at ``rate`` Hz with ``period``-frame periods, wait until it
    answers, and yield this process's sounddevice re-initialised to see it (PortAudio lists the
    JACK host API only when a server runs at initialisation). Skips when JACK's tools or
    PortAudio are missing. Stops the server by its PID after leaving it."""
    for tool in ("jackd", "jack_lsp", "jack_connect"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian jackd2)")
    sounddevice = pytest.importorskip("sounddevice", exc_type=OSError)
    server = subprocess.Popen(["jackd", "--no-realtime", "-d", "dummy", "-r", str(rate),
                               "-p", str(period)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if subprocess.run(["jack_lsp"], capture_output=True, timeout=5).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("jackd did not come up within 10 s")
        sounddevice._terminate()
        sounddevice._initialize()
        yield sounddevice
    finally:
        sounddevice._terminate()  # leave JACK before its server goes, or PortAudio aborts
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
        sounddevice._initialize()
