"""Source URIs, so a config file or a command line can name any source in one string.

    file:data.npz                  file:rec.wav?rate=16000&loop=true
    wav:recordings/?target=last    tcp://127.0.0.1:5555?mode=connect
    zmq+tcp://127.0.0.1:5556?pattern=sub&topic=imu     zmq+ipc://learner.sock
    mic:?rate=16000&blocksize=512  synthetic:cue?delay=1000&batch=32

Query values are strings; each is converted to the type its parameter is annotated with, and a
name no parameter has is an error that names it and lists the ones there are.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Uri:
    """A parsed source URI: scheme, target (path, host:port or synthetic kind), raw options."""

    scheme: str
    target: str
    options: dict[str, str] = field(default_factory=dict)


def parse_uri(uri: str) -> Uri:
    """Split `scheme:target?key=value&...`; a repeated key is an error."""
    if ":" not in uri:
        raise ValueError(f"source URI {uri!r} has no scheme; e.g. file:data.npz, tcp://host:port")
    parts = urlsplit(uri)
    target = parts.netloc + parts.path if parts.netloc else parts.path
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in options:
            raise ValueError(f"option {key!r} given twice in {uri!r}")
        options[key] = value
    return Uri(parts.scheme.lower(), target, options)


def _convert(name: str, value: str, annotation: str) -> object:
    if "None" in annotation and value.lower() in ("", "none"):
        return None
    if "bool" in annotation:
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        raise ValueError(f"option {name}={value!r} is not a boolean (true/false)")
    for kind in (int, float):
        if kind.__name__ in annotation:
            try:
                return kind(value)
            except ValueError:
                if "str" in annotation:
                    return value
                raise ValueError(f"option {name}={value!r} is not {kind.__name__}") from None
    return value


def bind_options(raw: dict[str, str], given: dict[str, object], *targets: Callable,
                 fixed: tuple[str, ...] = ()) -> dict[str, object]:
    """Merge URI options (converted by annotation) with keyword options (taken as they are).

    `targets` are the callables whose keyword parameters are accepted; `fixed` are parameters
    the URI itself supplies (a path, an endpoint), which options may not repeat.
    """
    params: dict[str, inspect.Parameter] = {}
    for target in targets:
        for name, param in inspect.signature(target).parameters.items():
            if param.kind is param.KEYWORD_ONLY or param.kind is param.POSITIONAL_OR_KEYWORD:
                params.setdefault(name, param)
    allowed = sorted(set(params) - set(fixed))
    merged: dict[str, object] = {}
    for source, values in (("URI", raw), ("keyword", given)):
        for name, value in values.items():
            if name not in allowed:
                raise ValueError(f"unknown {source} option {name!r}; this source takes {allowed}")
            if source == "URI":
                value = _convert(name, value, str(params[name].annotation))
            merged[name] = value
    return merged
