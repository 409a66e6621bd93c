"""The interface every learning rule implements: a block's gradient from the S-stage's trace.

A stream is processed in blocks (subsequences). ``net.run(..., trace=True)`` is the S-stage;
``block_gradient`` turns its trace and the block's targets into the block's gradient estimate
(a dict keyed like ``net.named_parameters()``) and the outgoing eligibility. Summing blocks gives
the stream's gradient. Rules never look at which neuron model they run on.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor

from ..losses import Targets
from ..network import RSNN, RunResult


class Rule(Protocol):
    name: str

    def init_eligibility(self, net: RSNN, batch: int) -> Any:
        """Carried eligibility for ``batch`` streams (None for rules that carry none)."""

    def block_gradient(
        self, net: RSNN, run: RunResult, targets: Targets, eligibility: Any
    ) -> tuple[dict[str, Tensor], Any]:
        """(gradient of the block's loss, outgoing eligibility) from a traced run."""
