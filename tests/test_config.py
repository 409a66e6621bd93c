"""Config loading: every key and type checked at load, naming the key path; overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hypr_stream import config as cfg

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs").glob("*.yaml")))
def test_bundled_configs_load_and_round_trip(name):
    config = cfg.load(ROOT / "configs" / f"{name}.yaml")
    assert cfg.load(data=yaml.safe_load(cfg.dump(config))) == config


@pytest.mark.parametrize("data, message", [
    ({"learner": {"lamda": 64}}, "learner.lamda: unknown key (did you mean 'lam'?)"),
    ({"netwrk": {}}, "netwrk: unknown key (did you mean 'network'?)"),
    ({"learner": {"lr": "fast"}}, "learner.lr: expected float, got str 'fast'"),
    ({"learner": {"lam": 1.5}}, "learner.lam: expected int, got float 1.5"),
    ({"network": {"hidden": [32, "x"]}}, "network.hidden: expected int or list of int"),
    ({"network": {"recurrent": "yes"}}, "network.recurrent: expected bool or list of bool"),
    ({"learner": {"update_every": True}}, "learner.update_every: expected int or null"),
    ({"learner": {"rule": "hyper"}}, "learner.rule: expected one of ['hypr', 'eprop', 'bptt']"),
    ({"network": {"neuron": "izhikevich"}}, "network.neuron: unknown neuron 'izhikevich'"),
    ({"learner": {"lam": 0}}, "learner.lam: must be > 0"),
    ({"source": {"frontend": [{"kind": "logmel", "options": {"nmels": 20}}]}},
     "source.frontend[0].options.nmels: unknown key (did you mean 'n_mels'?)"),
    ({"source": {"frontend": [{"kind": "mfcc"}]}}, "source.frontend[0].kind: unknown key"),
    ({"source": {"uri": "nowhere"}}, "source.uri: source URI 'nowhere' has no scheme"),
    ({"checkpoint": {"every_steps": 10}}, "checkpoint.path: needed when every_steps"),
    ({"output": {"predictions": "out.txt"}}, "output.predictions: expected zmq+tcp"),
    ({"max_steps": "many"}, "max_steps: expected int or null, got str 'many'"),
    (["not", "a", "mapping"], "config: expected a mapping at the top level"),
])
def test_a_bad_key_or_type_fails_at_load_naming_the_key(data, message):
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(data=data)
    assert message in str(err.value)


def test_overrides_set_nested_keys_parsed_as_yaml():
    config = cfg.load(data={"learner": {"lr": 0.1}}, overrides=[
        "learner.lr=0.01", "network.hidden=[16, 8]", "source.options.delay=500",
        "learner.update_every=null", "output.quiet=true"])
    assert config.learner.lr == 0.01
    assert config.network.hidden == [16, 8]
    assert config.source.options == {"delay": 500}
    assert config.learner.update_every is None
    assert config.output.quiet is True


def test_a_misspelt_override_fails_like_a_misspelt_key():
    with pytest.raises(cfg.ConfigError, match=r"learner\.lerning_rate: unknown key"):
        cfg.load(overrides=["learner.lerning_rate=0.1"])
    with pytest.raises(cfg.ConfigError, match="expected KEY=VALUE"):
        cfg.load(overrides=["learner.lr"])


def test_a_missing_file_or_bad_yaml_is_a_config_error(tmp_path):
    with pytest.raises(cfg.ConfigError, match="no file"):
        cfg.load(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("learner: [unclosed\n")
    with pytest.raises(cfg.ConfigError, match="not valid YAML"):
        cfg.load(bad)


def test_ints_are_accepted_for_floats_and_defaults_fill_the_rest():
    config = cfg.load(data={"learner": {"lr": 1}, "network": {"n_out": 3}})
    assert config.learner.lr == 1.0 and isinstance(config.learner.lr, float)
    assert config.network.n_out == 3 and config.learner.rule == "hypr"


def test_overrides_index_into_lists_by_integer_key_parts():
    data = {"network": {"hidden": [32, 16]},
            "source": {"frontend": [{"kind": "logmel", "options": {"n_mels": 20}},
                                    {"kind": "delta", "options": {"threshold": 0.5}},
                                    {"kind": "norm"}]}}
    config = cfg.load(data=data, overrides=[
        "network.hidden.1=8", "source.frontend.0.options.n_mels=40",
        "source.frontend.1.options.threshold=0.3", "source.frontend.2={kind: gain}"])
    assert config.network.hidden == [32, 8]
    assert config.source.frontend[0].options == {"n_mels": 40}
    assert config.source.frontend[1] == cfg.FrontendConfig("delta", {"threshold": 0.3})
    assert config.source.frontend[2] == cfg.FrontendConfig("gain")
    assert data["network"]["hidden"] == [32, 16]  # the caller's mapping is left as it was


@pytest.mark.parametrize("override, message", [
    ("network.hidden.2=8", "network.hidden.2: index out of range, the list has 2 entries (0..1)"),
    ("network.hidden.first=8", "network.hidden: is a list of 2 entries (0..1), expected an "
                               "index, got 'first'"),
    ("network.hidden.-1=8", "expected an index, got '-1'"),
    ("source.frontend.0.kind=norm", "source.frontend.0: index out of range, the list has no "
                                    "entries"),
    ("network.n_out.0=3", "network.n_out: is int 2, not a mapping or list; cannot set "
                          "network.n_out.0"),
    ("learner.optimizer_options.0=1", "learner.optimizer_options: no list in the config to "
                                      "index with 0"),
])
def test_a_list_index_that_does_not_fit_fails_naming_the_key(override, message):
    data = {"network": {"hidden": [32, 16], "n_out": 2}, "source": {"frontend": []}}
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(data=data, overrides=[override])
    assert message in str(err.value)
