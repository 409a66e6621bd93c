"""hypr_stream: online learning for recurrent spiking neural networks on unbounded streams.

HYPR (a hybrid of online e-prop and segment-wise parallel computation) with step-by-step e-prop
and BPTT as references, over a model-agnostic RSNN in PyTorch.
"""

from .functional import gradients
from .learner import InvalidInput, StreamLearner
from .network import RSNN
from .neurons import ALIF, BRF, LI, LIF, Linear, NeuronModel, SEAdLIF

__all__ = [
    "ALIF",
    "BRF",
    "LI",
    "LIF",
    "RSNN",
    "InvalidInput",
    "Linear",
    "NeuronModel",
    "SEAdLIF",
    "StreamLearner",
    "gradients",
]
__version__ = "0.1.0"
