"""URIs open the right source; unknown schemes and options are named in the error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sources import open_source
from sources.files import ArraySource, CsvSource
from sources.synthetic import CueSource, OscillatorSource, SensorSource
from sources.tcp import TcpSource
from sources.uri import parse_uri
from sources.zeromq import ZmqSource


def test_parse_splits_scheme_target_and_options() -> None:
    uri = parse_uri("zmq+tcp://127.0.0.1:5556?pattern=sub&topic=imu")
    assert (uri.scheme, uri.target, uri.options) == ("zmq+tcp", "127.0.0.1:5556",
                                                     {"pattern": "sub", "topic": "imu"})
    assert parse_uri("file:data/x.npz").target == "data/x.npz"
    assert parse_uri("mic:?rate=16000").options == {"rate": "16000"}


def test_every_scheme_opens_its_source(tmp_path: Path, ipc_endpoint: str) -> None:
    np.save(tmp_path / "a.npy", np.zeros((3, 2), np.float32))
    (tmp_path / "t.csv").write_text("1,2\n3,4\n")
    opened = [
        (f"file:{tmp_path}/a.npy?loop=true&chunk_steps=2", ArraySource),
        (f"file:{tmp_path}/t.csv", CsvSource),
        ("tcp://127.0.0.1:0?timeout=1.5", TcpSource),
        ("zmq+tcp://127.0.0.1:0", ZmqSource),
        (f"zmq+{ipc_endpoint}?pattern=sub&topic=imu", ZmqSource),
        ("synthetic:cue?delay=1000", CueSource),
        ("synthetic:oscillators?channels=2", OscillatorSource),
        ("synthetic:sensor", SensorSource),
    ]
    for uri, kind in opened:
        with open_source(uri) as source:
            assert isinstance(source, kind), uri
    with open_source(f"file:{tmp_path}/a.npy?loop=true&chunk_steps=2") as source:
        assert source.loop is True and source.chunk_steps == 2
    with open_source("synthetic:cue?delay=1000", batch=4) as source:
        assert source.delay == 1000 and source.batch == 4


@pytest.mark.parametrize("uri, named", [
    ("ftp://host/x", "'ftp'"),
    ("synthetic:cue?dleay=3", "'dleay'"),
    ("synthetic:wave", "'wave'"),
    ("synthetic:cue?delay=soon", "delay='soon'"),
    ("tcp://127.0.0.1:0?mode=shout", "'shout'"),
    ("zmq+tcp://127.0.0.1:0?pattern=req", "'req'"),
    ("no-scheme-here", "no scheme"),
])
def test_errors_name_the_offending_part(uri: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("?", r"\?")):
        open_source(uri)


def test_unknown_keyword_option_is_named() -> None:
    with pytest.raises(ValueError, match="'colour'"):
        open_source("synthetic:sensor", colour="red")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.npy"):
        open_source(f"file:{tmp_path}/nothere.npy")
