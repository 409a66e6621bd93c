"""Neuron models by name. A new model is one file defining a ``NeuronModel`` subclass;
register it here (or pass an instance to ``RSNN``) to use it."""

from __future__ import annotations

from typing import Any

from .alif import ALIF
from .base import Jacobians, NeuronModel, func_jacobians
from .brf import BRF
from .li import LI, Linear
from .lif import LIF
from .se_adlif import SEAdLIF
from .surrogates import DoubleGaussian, Slayer, StraightThrough, Surrogate

NEURONS: dict[str, type[NeuronModel]] = {"brf": BRF, "se_adlif": SEAdLIF, "alif": ALIF, "lif": LIF}
READOUTS: dict[str, type[NeuronModel]] = {"li": LI, "linear": Linear}


def build_model(
    kind: str | NeuronModel, registry: dict[str, type[NeuronModel]], what: str, **options: Any
) -> NeuronModel:
    """Instantiate a model from its name and options; errors name the unknown name or option."""
    if isinstance(kind, NeuronModel):
        if options:
            raise ValueError(f"{what} options {sorted(options)} given with a model instance")
        return kind
    if kind not in registry:
        raise ValueError(f"unknown {what} {kind!r}; choose one of {sorted(registry)}")
    cls = registry[kind]
    valid = set(cls.__dataclass_fields__)
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for {what} {kind!r}; valid options: {sorted(valid)}"
        )
    return cls(**options)


__all__ = [
    "ALIF",
    "BRF",
    "LI",
    "LIF",
    "NEURONS",
    "READOUTS",
    "DoubleGaussian",
    "Jacobians",
    "Linear",
    "NeuronModel",
    "SEAdLIF",
    "Slayer",
    "StraightThrough",
    "Surrogate",
    "build_model",
    "func_jacobians",
]
