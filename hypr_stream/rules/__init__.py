"""Learning rules by name: "hypr" (S/P stages), "eprop" (step-by-step), "bptt" (autograd)."""

from __future__ import annotations

from ..scan import ScanMethod
from .base import Rule
from .bptt import BPTT
from .eprop import EProp
from .hypr import HYPR
from .signals import LayerEligibility

RULES = ("hypr", "eprop", "bptt")


def make_rule(name: str, scan: ScanMethod = "auto") -> Rule:
    """The rule called ``name``; an unknown name is an error that lists the known ones."""
    if name == "hypr":
        return HYPR(scan)
    if name == "eprop":
        return EProp()
    if name == "bptt":
        return BPTT()
    raise ValueError(f"unknown learning rule {name!r}; choose one of {RULES}")


__all__ = ["BPTT", "HYPR", "RULES", "EProp", "LayerEligibility", "Rule", "make_rule"]
