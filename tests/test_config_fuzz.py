"""Fuzzed YAML configs: the loader answers with a RunConfig or a ConfigError naming the key.

Random documents, random text and bytes, and random mutations of the bundled configs/*.yaml
(a key deleted, renamed or added, a value replaced by one of the wrong type, a huge or
non-finite number, a nested structure), each written to a file and read by `config.load`, as
`hypr-stream run` does. Any other exception type is a loader bug. A config that loads must also
dump and load back to itself, since checkpoints store it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hypr_stream import config as cfg

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = {p.name: yaml.safe_load(p.read_text()) for p in sorted(ROOT.glob("configs/*.yaml"))}
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**80, 2**80)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["hypr", "brf", "", "null", "1e999", "synthetic:cue", "-1"]))
keys = st.text(min_size=1, max_size=10) | st.integers() | st.none() | st.booleans()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(keys, inner, max_size=4), max_leaves=12)


def load_text(tmp_path: Path, text: str | bytes) -> cfg.RunConfig | cfg.ConfigError:
    """Write a config file and load it as the command line does."""
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    try:
        return cfg.load(path)
    except cfg.ConfigError as err:
        return err


def check(outcome: cfg.RunConfig | cfg.ConfigError, document: Any = None) -> None:
    """A valid config round-trips; an error's message starts with the key path it is about:
    "config" for the document as a whole, else one of its top-level keys, then more of the
    path ("network.hidden[0]: expected int, got ...")."""
    if isinstance(outcome, cfg.ConfigError):
        message = str(outcome)
        tops = [str(k) for k in document] if isinstance(document, dict) else []
        assert any(message.startswith((f"{top}: ", f"{top}.", f"{top}["))
                   for top in ["config", *tops]), message
        assert len(message.split(": ", 1)[-1]) > 5, message  # and says what is wrong
        return
    assert isinstance(outcome, cfg.RunConfig)
    assert cfg.load(data=yaml.safe_load(cfg.dump(outcome))) == outcome


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


@SETTINGS
@given(document=values)
@example(document=[1, 2])
@example(document="just text")
@example(document={"learner": {"lr": math.nan}})
@example(document={"learner": {"lr": math.inf}})
@example(document={"network": {"hidden": [2**70]}})
@example(document={"max_seconds": -math.inf})
@example(document={None: 1, 3: {"x": 1}})
def test_random_documents_load_or_fail_naming_the_key(tmp_path, document):
    check(load_text(tmp_path, dump(document)), document)


@SETTINGS
@given(text=st.text(max_size=80) | st.binary(max_size=80).map(bytes))
@example(text="max_steps: 2001-02-30")  # a timestamp PyYAML cannot build
@example(text="seed: 0000-01-01")
@example(text="network: {model_options: &a {loop: *a}}")  # a value that contains itself
@example(text="network: {hidden: &a [*a]}")
@example(text="source: {options: " + "[" * 2000 + "]" * 2000 + "}")
@example(text="learner: !!python/object:os.system {}")
@example(text="\x00\xff")
@example(text=b"learner: {rule: \xff\xfe}")
def test_random_text_loads_or_fails_naming_the_key(tmp_path, text):
    try:
        document = yaml.safe_load(text)
    except Exception:  # what PyYAML itself cannot read is the loader's to name as "config"
        document = None
    check(load_text(tmp_path, text), document)


def key_paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a nested mapping/list, as tuples of keys and indices."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += key_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += key_paths(value, (*prefix, i))
    return found


def mutate(data: Any, path: tuple, how: str, value: Any) -> Any:
    """A deep copy of data with the node at path deleted, replaced, renamed or given a key."""
    data = yaml.safe_load(dump(data))
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    if how == "delete":
        del node[last]
    elif how == "replace":
        node[last] = value
    elif how == "rename" and isinstance(node, dict):
        node[f"{last}x"] = node.pop(last)
    elif how == "add" and isinstance(node[last], dict):
        node[last][str(value)[:12] or "k"] = value
    return data


@SETTINGS
@given(name=st.sampled_from(sorted(BUNDLED)), data=st.data(),
       how=st.sampled_from(["delete", "replace", "replace", "rename", "add"]), value=values)
def test_mutated_bundled_configs_load_or_fail_naming_the_mutated_key(tmp_path, name, data, how,
                                                                       value):
    original = BUNDLED[name]
    path = data.draw(st.sampled_from(key_paths(original)), label="path")
    document = mutate(original, path, how, value)
    outcome = load_text(tmp_path, dump(document))
    check(outcome, document)
    if isinstance(outcome, cfg.ConfigError):  # named: the mutated section (or its parent)
        head = str(outcome).split(":", 1)[0].removeprefix("config.")
        assert head == "config" or head.startswith(str(path[0])), (path, str(outcome))


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_bundled_config_loads(name):
    check(cfg.load(ROOT / "configs" / name))
