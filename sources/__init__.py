"""Streams for the learner: files, TCP, ZeroMQ, microphone and synthetic sources, one interface.

    with open_source("zmq+tcp://127.0.0.1:5556?pattern=sub&topic=imu", timeout=5) as source:
        for chunk in source:          # Chunk: x [T, B, C] or [T, C] float32, y, mask, boundary
            learner.learn(chunk.x, chunk.y, chunk.mask, chunk.boundary)

This package never imports the learner; the learner only reads `Chunk` fields.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from sources.base import Chunk, Counters, Source
from sources.uri import bind_options, parse_uri

__all__ = ["Chunk", "Counters", "Source", "open_source", "SCHEMES"]

SCHEMES = ("file", "wav", "tcp", "zmq+tcp", "zmq+ipc", "mic", "synthetic")


def _open_file(target: str, raw: dict[str, str], given: dict[str, object]) -> Source:
    from sources import files

    path = Path(target)
    if path.is_dir():
        kinds: tuple = (files.WavFolderSource,)
    elif path.suffix.lower() == ".csv":
        kinds = (files.CsvSource,)
    elif path.suffix.lower() == ".wav":
        kinds = (files.open_wav, files.ArraySource)
    else:
        kinds = (files.ArraySource,)
    data = ("x", "y", "mask", "boundary", "path", "folder")
    return files.open_path(path, **bind_options(raw, given, *kinds, fixed=data))


def _open_tcp(target: str, raw: dict[str, str], given: dict[str, object]) -> Source:
    from sources.tcp import TcpSource

    parts = urlsplit(f"tcp://{target}")
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"tcp URI needs host:port, got {target!r}")
    options = bind_options(raw, given, TcpSource, fixed=("host", "port"))
    return TcpSource(parts.hostname, parts.port, **options)


def _open_zmq(transport: str, target: str, raw: dict[str, str],
              given: dict[str, object]) -> Source:
    from sources.zeromq import ZmqSource

    options = bind_options(raw, given, ZmqSource, fixed=("endpoint",))
    return ZmqSource(f"{transport}://{target}", **options)


def _open_mic(target: str, raw: dict[str, str], given: dict[str, object]) -> Source:
    from sources.microphone import MicrophoneSource

    options = bind_options(raw, given, MicrophoneSource)
    if target:
        options.setdefault("device", target)
    return MicrophoneSource(**options)


def _open_synthetic(target: str, raw: dict[str, str], given: dict[str, object]) -> Source:
    from sources import synthetic

    kinds = {"cue": synthetic.CueSource, "oscillators": synthetic.OscillatorSource,
             "sensor": synthetic.SensorSource}
    if target not in kinds:
        raise ValueError(f"unknown synthetic source {target!r}; expected one of {sorted(kinds)}")
    return kinds[target](**bind_options(raw, given, kinds[target]))


def open_source(uri: str, **options: object) -> Source:
    """Open the source a URI names; keyword options override or add to the URI's query.

    Schemes: file: (.npy .npz .wav .csv or a folder), wav: (a wav file or labelled folder),
    tcp://, zmq+tcp://, zmq+ipc://, mic:, synthetic:{cue,oscillators,sensor}. See docs/sources.md.
    """
    parsed = parse_uri(uri)
    scheme, target, raw = parsed.scheme, parsed.target, parsed.options
    if scheme in ("file", "wav"):
        return _open_file(target, raw, options)
    if scheme == "tcp":
        return _open_tcp(target, raw, options)
    if scheme in ("zmq+tcp", "zmq+ipc"):
        return _open_zmq(scheme.split("+")[1], target, raw, options)
    if scheme == "mic":
        return _open_mic(target, raw, options)
    if scheme == "synthetic":
        return _open_synthetic(target, raw, options)
    raise ValueError(f"unknown source scheme {scheme!r} in {uri!r}; expected one of {SCHEMES}")
