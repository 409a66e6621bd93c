"""Run configuration: dataclasses that mirror the constructors, loaded from YAML and validated.

    RunConfig
      network     NetworkConfig     -> RSNN(n_in, hidden, n_out, neuron, ..., **model_options)
      learner     LearnerConfig     -> StreamLearner(net, rule, lam, ..., optimizer_options)
      source      SourceConfig      -> sources.open_source(uri, **options) + front ends
      checkpoint  CheckpointConfig  -> where and how often to save; resume from it
      output      OutputConfig      -> metrics JSON lines, predictions out, plots
      distributed DistributedConfig -> under torchrun: stream split, timeouts, weight checks
      max_steps, max_seconds, progress_every, seed

Everything is checked before anything starts: an unknown key or a value of the wrong type raises
ConfigError naming the key path (``learner.lamda: unknown key (did you mean 'lam'?)``).
``--set learner.lr=0.01`` overrides (values parsed as YAML) are applied before validation; an
integer key part indexes a list (``--set network.hidden.0=128``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml


class ConfigError(ValueError):
    """A config that cannot run; the message starts with the key path."""


@dataclass
class NetworkConfig:
    """RSNN's constructor arguments. ``n_in: null`` takes the width of the first chunk."""

    n_in: int | None = None
    hidden: int | list[int] = 64
    n_out: int = 2
    neuron: str = "brf"
    recurrent: bool | list[bool] = True
    readout: str = "li"
    readout_options: dict[str, Any] = field(default_factory=dict)
    init_gain: float = 1.0
    model_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LearnerConfig:
    """StreamLearner's constructor arguments (``update_every: null`` is batch mode)."""

    rule: str = "hypr"
    lam: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    update_every: int | None = 1
    clip: float | None = 10.0
    loss: str = "ce"
    device: str | None = "cpu"
    scan: str = "auto"
    step_on_boundary: bool | None = None
    on_invalid: str = "raise"
    window: int = 1000
    optimizer_options: dict[str, Any] = field(default_factory=dict)


FRONTENDS = ("logmel", "norm", "delta", "rate", "gain")


@dataclass
class FrontendConfig:
    """One front-end stage: ``kind`` (logmel, norm, delta, rate, gain) and its options."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceConfig:
    """A source URI (see docs/sources.md), keyword options, and front ends applied in order."""

    uri: str = "synthetic:cue?delay=100&batch=4"
    options: dict[str, Any] = field(default_factory=dict)
    frontend: list[FrontendConfig] = field(default_factory=list)


@dataclass
class CheckpointConfig:
    """Checkpoint file; saved every ``every_steps`` steps and/or ``every_seconds`` seconds, and
    at the end. ``resume``: continue from the file when it exists."""

    path: str | None = None
    every_steps: int | None = None
    every_seconds: float | None = None
    resume: bool = True


@dataclass
class OutputConfig:
    """``metrics_jsonl``: one JSON object per progress report. ``predictions``: a
    ``zmq+tcp://host:port?topic=T`` PUB endpoint or a ``.jsonl`` file. ``plots``: folder for PNGs
    (needs matplotlib). ``quiet``: no progress lines on stderr."""

    metrics_jsonl: str | None = None
    predictions: str | None = None
    plots: str | None = None
    quiet: bool = False


SPLITS = ("none", "streams")


@dataclass
class DistributedConfig:
    """Only read under ``torchrun`` (see docs/distributed.md). ``split``: "streams" gives each
    rank its share of every chunk's B streams (all ranks open the same source), "none" learns
    from whatever the rank's source delivers (a ``{rank}`` in ``source.uri`` picks a source per
    rank; a ZeroMQ fan-out deals chunks out). ``timeout_s`` bounds every collective; a rank
    with no chunk ready for ``idle_after_s`` joins its peers' next update round; the weights
    are checksummed across ranks every ``check_every`` updates."""

    split: str = "none"
    timeout_s: float = 60.0
    idle_after_s: float = 1.0
    check_every: int = 100


@dataclass
class RunConfig:
    """Everything ``hypr-stream run`` needs. ``max_steps``/``max_seconds``: stop after that many
    stream steps / seconds (None: when the source ends). ``progress_every``: steps between
    progress lines and metrics rows."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    max_steps: int | None = None
    max_seconds: float | None = None
    progress_every: int = 1000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for YAML, JSON and checkpoints)."""
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------- validation
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "mapping"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _got(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


INT_LIMIT = 2**63  # torch and numpy take 64-bit integers; NaN, inf and beyond are typos
MAX_DEPTH = 32


def _height(value: Any, path: str, ancestors: set[int], heights: dict[int, int]) -> int:
    """Levels of lists/mappings under ``value``; ConfigError for one that contains itself (a
    YAML alias can make it) or nests over MAX_DEPTH deep, since copying the config, dumping it
    and checkpointing it all recurse through it. Shared values (aliases) are walked once."""
    if not isinstance(value, (dict, list)):
        return 0
    if id(value) in heights:
        return heights[id(value)]
    where = path or "config"
    if id(value) in ancestors:
        raise ConfigError(f"{where}: contains itself (a YAML alias to an enclosing value)")
    if len(ancestors) >= MAX_DEPTH:
        raise ConfigError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    ancestors.add(id(value))
    if isinstance(value, dict):
        children = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
    else:
        children = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    height = 1 + max((_height(v, at, ancestors, heights) for at, v in children), default=0)
    ancestors.discard(id(value))
    heights[id(value)] = height
    return height


def _convert(value: Any, tp: Any, path: str) -> Any:
    """``value`` checked against annotation ``tp``; ConfigError naming ``path`` if it is not."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_got(value)}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_got(value)}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{path}: expected a mapping with string keys, got {_got(value)}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -INT_LIMIT <= value < INT_LIMIT:
                raise ConfigError(f"{path}: {value} does not fit a 64-bit integer")
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not -INT_LIMIT <= value < INT_LIMIT or not math.isfinite(value):
                raise ConfigError(f"{path}: expected a finite number, got {_got(value)}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{path}: expected {_type_name(tp)}, got {_got(value)}")


def _unknown(path: str, key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; expected one of {known}"
    return ConfigError(f"{path}: unknown key{hint}")


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, checking every key and type (recursively)."""
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {_got(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in names:
            raise _unknown(key_path, str(key), names)
        values[key] = _convert(value, hints[key], key_path)
    for f in dataclasses.fields(cls):
        if (f.name not in values and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING):
            raise ConfigError(f"{path + '.' if path else ''}{f.name}: required key missing")
    made = cls(**values)
    check = getattr(made, "_check", None) or _CHECKS.get(cls)
    if check is not None:
        check(made, path)
    return made


def _positive(path: str, name: str, value: float | None, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(f"{path}.{name}: must be > 0, got {_got(value)}")


def _check_network(c: NetworkConfig, path: str) -> None:
    from .network import NEURONS, READOUTS

    if c.neuron not in NEURONS:
        raise ConfigError(f"{path}.neuron: unknown neuron {c.neuron!r}; expected one of "
                          f"{sorted(NEURONS)}")
    if c.readout not in READOUTS:
        raise ConfigError(f"{path}.readout: unknown readout {c.readout!r}; expected one of "
                          f"{sorted(READOUTS)}")
    for name in ("n_in", "n_out"):
        _positive(path, name, getattr(c, name))
    for i, h in enumerate([c.hidden] if isinstance(c.hidden, int) else c.hidden):
        _positive(path, f"hidden[{i}]", h, allow_none=False)


def _check_learner(c: LearnerConfig, path: str) -> None:
    from .learner import INVALID_POLICIES, OPTIMIZERS
    from .losses import LOSSES
    from .rules import RULES

    choices = {"rule": RULES, "optimizer": tuple(OPTIMIZERS), "loss": LOSSES,
               "on_invalid": INVALID_POLICIES}
    for name, allowed in choices.items():
        if getattr(c, name) not in allowed:
            raise ConfigError(f"{path}.{name}: expected one of {list(allowed)}, got "
                              f"{getattr(c, name)!r}")
    for name in ("lam", "update_every", "clip", "lr", "window"):
        _positive(path, name, getattr(c, name))


def _check_source(c: SourceConfig, path: str) -> None:
    from sources.uri import parse_uri

    try:
        parse_uri(c.uri.replace("{rank}", "0"))  # under torchrun each rank fills in its rank
    except ValueError as err:
        raise ConfigError(f"{path}.uri: {err}") from None
    for i, stage in enumerate(c.frontend):
        where = f"{path}.frontend[{i}]"
        if stage.kind not in FRONTENDS:
            raise _unknown(f"{where}.kind", stage.kind, list(FRONTENDS)) from None
        params = inspect.signature(frontend_class(stage.kind)).parameters
        for key in stage.options:
            if key not in params:
                raise _unknown(f"{where}.options.{key}", key, list(params))


def _check_checkpoint(c: CheckpointConfig, path: str) -> None:
    _positive(path, "every_steps", c.every_steps)
    _positive(path, "every_seconds", c.every_seconds)
    if (c.every_steps or c.every_seconds) and not c.path:
        raise ConfigError(f"{path}.path: needed when every_steps or every_seconds is set")


def _check_output(c: OutputConfig, path: str) -> None:
    if c.predictions and not (c.predictions.startswith("zmq+")
                              or c.predictions.endswith(".jsonl")):
        raise ConfigError(f"{path}.predictions: expected zmq+tcp://host:port?topic=T, "
                          f"zmq+ipc://path or a .jsonl file, got {c.predictions!r}")


def _check_distributed(c: DistributedConfig, path: str) -> None:
    if c.split not in SPLITS:
        raise ConfigError(f"{path}.split: expected one of {list(SPLITS)}, got {c.split!r}")
    for name in ("timeout_s", "idle_after_s"):
        _positive(path, name, getattr(c, name), allow_none=False)
    if c.check_every < 0:
        raise ConfigError(f"{path}.check_every: must be >= 0 (0: only at checkpoints), got "
                          f"{_got(c.check_every)}")


def _check_run(c: RunConfig, path: str) -> None:
    _positive("config" if not path else path, "max_steps", c.max_steps)
    _positive("config" if not path else path, "max_seconds", c.max_seconds)
    _positive("config" if not path else path, "progress_every", c.progress_every,
              allow_none=False)


_CHECKS = {NetworkConfig: _check_network, LearnerConfig: _check_learner,
           SourceConfig: _check_source, CheckpointConfig: _check_checkpoint,
           OutputConfig: _check_output, DistributedConfig: _check_distributed,
           RunConfig: _check_run}


class Gain:
    """Multiply x by a constant (a front end; e.g. to scale analog input currents)."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = gain

    def __call__(self, chunk: Any) -> Any:
        return dataclasses.replace(chunk, x=(chunk.x * self.gain).astype("float32"))


def frontend_class(kind: str) -> type:
    """The transform class for a front-end ``kind``."""
    from sources import frontends

    return {"logmel": frontends.LogMel, "norm": frontends.RunningNorm,
            "delta": frontends.DeltaEncoder, "rate": frontends.RateEncoder,
            "gain": Gain}[kind]


# ---------------------------------------------------------------------- loading
def parse_override(text: str) -> tuple[list[str], Any]:
    """``"learner.lr=0.01"`` -> (["learner", "lr"], 0.01); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. learner.lr=0.01")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {text!r}: empty key part in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each ``a.b.c=value`` in a copy of the raw mapping (validation comes after).

    An integer part indexes a list already in the config (``network.hidden.0=64``,
    ``source.frontend.1.options.threshold=0.3``); it replaces an entry but never adds one, so
    an index past the end is an error rather than a silently longer list.
    """
    import copy

    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for i, part in enumerate(parts):
            where, last = ".".join(parts[:i]), i == len(parts) - 1
            if isinstance(node, list):
                part = _list_index(node, part, where)
            elif not isinstance(node, dict):
                raise ConfigError(f"{where}: is {_got(node)}, not a mapping or list; cannot set "
                                  f"{'.'.join(parts)}")
            elif not last and node.get(part) is None:
                if parts[i + 1].lstrip("-").isdigit():
                    raise ConfigError(f"{'.'.join(parts[: i + 1])}: no list in the config to "
                                      f"index with {parts[i + 1]}; set the whole list instead")
                node[part] = {}
            if last:
                node[part] = value
            else:
                node = node[part]
    return data


def _list_index(items: list[Any], part: str, where: str) -> int:
    """``part`` as an index into ``items`` (the list at key path ``where``), checked."""
    n = len(items)
    entries = f"{n} {'entry' if n == 1 else 'entries'} (0..{n - 1})" if n else "no entries"
    if not part.isdigit():
        raise ConfigError(f"{where}: is a list of {entries}, expected an index, got {part!r}")
    if int(part) >= len(items):
        raise ConfigError(f"{where}.{part}: index out of range, the list has {entries}")
    return int(part)


def load(path: str | Path | None = None, overrides: list[str] | None = None,
         data: dict[str, Any] | None = None) -> RunConfig:
    """Read YAML (or take ``data``), apply ``overrides``, validate: a RunConfig or ConfigError."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config: no file {path}")
        try:  # bytes, so that bad UTF-8 is a YAML reader error too
            data = yaml.safe_load(path.read_bytes())
        except (yaml.YAMLError, ValueError, RecursionError) as err:
            # ValueError: a timestamp no date has (2001-02-30); RecursionError: deep nesting
            raise ConfigError(f"config: {path} is not valid YAML: {err}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {_got(data)}")
    _height(data, "", set(), {})
    data = apply_overrides(data, overrides or [])
    _height(data, "", set(), {})
    return from_dict(RunConfig, data)


def dump(config: RunConfig) -> str:
    """The config as YAML (round-trips through ``load``)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
