"""Learning rules by name: "hypr" (S/P stages), "eprop" (step-by-step), "bptt" (autograd)."""

from __future__ import annotations

import torch

from ..scan import ScanMethod, choose_method
from .base import Rule
from .bptt import BPTT
from .eprop import EProp
from .hypr import HYPR
from .signals import LayerEligibility

RULES = ("hypr", "eprop", "bptt")


def make_rule(name: str, scan: ScanMethod = "auto") -> Rule:
    """The rule called ``name``; an unknown name or scan method is an error naming it."""
    choose_method(scan, torch.device("cpu"), 1)
    if name == "hypr":
        return HYPR(scan)
    if name == "eprop":
        return EProp()
    if name == "bptt":
        return BPTT()
    raise ValueError(f"unknown learning rule {name!r}; choose one of {RULES}")


__all__ = ["BPTT", "HYPR", "RULES", "EProp", "LayerEligibility", "Rule", "make_rule"]
