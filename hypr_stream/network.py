"""The RSNN: a stack of spiking layers and a readout, as an ``nn.Module``.

Layer l maps its input x_t [B, M] (stream features, or the spikes of the layer below) to

    I_t = W_in x_t + b + W_rec z_{t-1}        (W_rec only in recurrent layers; z_0 = 0)
    s_t = F(s_{t-1}, I_t; θ)                   (the layer's neuron model)

and emits its output component of s_t (spikes; the readout's potential, which is the logits).
A run goes layer by layer over a whole block of steps (nothing flows back from a layer to the
ones below it within a step). Currents are computed one step at a time, always as a [B, M]
product: a GEMM's rounding depends on its shape, so per-step products make a stream's outputs
bit-identical however it is cut into chunks. With ``trace=True`` a run also returns what the
P-stage needs (the S-stage of spec §4): each layer's inputs, entering states and currents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .neurons import NEURONS, READOUTS, NeuronModel, build_model


class LayerTrace(NamedTuple):
    """What a layer saw during a block of T steps (the S-stage cache)."""

    x: Tensor  # [T, B, M]     layer input
    s_prev: Tensor  # [T, B, N, d]  state entering each step (after any reset)
    I: Tensor  # [T, B, N]     input current


class RunResult(NamedTuple):
    outputs: Tensor  # [T, B, n_out]  per-step logits
    state: list[Tensor]  # per layer (readout last): [B, N, d] after the last step
    traces: list[LayerTrace] | None  # per layer (readout last) when traced
    reset: Tensor | None  # [T, B] bool: stream b's state was reset before step t


class SpikingLayer(nn.Module):
    """One layer: weights, bias and the neuron model's per-neuron parameters."""

    def __init__(
        self, model: NeuronModel, n_in: int, n: int, recurrent: bool, init_gain: float = 1.0
    ) -> None:
        super().__init__()
        self.model = model
        self.n_in, self.n, self.recurrent = n_in, n, recurrent
        # Xavier-uniform over fan_in = M + N: [W_in | W_rec] is initialised as one matrix.
        weight = torch.empty(n, n_in + (n if recurrent else 0))
        nn.init.xavier_uniform_(weight, gain=init_gain)
        self.weight_in = nn.Parameter(weight[:, :n_in].clone())
        self.weight_rec = nn.Parameter(weight[:, n_in:].clone()) if recurrent else None
        self.bias = nn.Parameter(torch.zeros(n))
        for name, value in model.init_params(n).items():
            self.register_parameter(name, nn.Parameter(value))

    @property
    def presynaptic_size(self) -> int:
        """Columns of [W_in | W_rec]: the width of the synaptic eligibility."""
        return self.n_in + (self.n if self.recurrent else 0)

    def neuron_params(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in self.model.param_names}

    def local_param_names(self) -> list[str]:
        """Names of the per-neuron parameters, bias first, in eligibility column order."""
        return ["bias", *self.model.param_names]

    def init_state(self, batch: int) -> Tensor:
        return self.bias.new_zeros(batch, self.n, self.model.d)

    def run(
        self, x: Tensor, s: Tensor, reset: Tensor | None = None, trace: bool = False
    ) -> tuple[Tensor, Tensor, LayerTrace | None]:
        """x [T, B, M], s [B, N, d] -> (outputs [T, B, N], final state, trace or None)."""
        model, params, out = self.model, self.neuron_params(), self.model.out_index
        reset_steps = set() if reset is None else set(reset.any(1).nonzero()[:, 0].tolist())
        outputs, entering, currents = [], [], []
        # unbind, not x[t]: the backward of each x[t] would fill a zero [T, B, M] gradient,
        # making BPTT through a stacked layer quadratic in T; unbind's backward stacks once.
        for t, x_t in enumerate(x.unbind(0)):
            if t in reset_steps:
                s = s.masked_fill(reset[t][:, None, None], 0.0)
            I = nn.functional.linear(x_t, self.weight_in, self.bias)
            if self.recurrent:
                I = I + nn.functional.linear(s[..., out], self.weight_rec)
            if trace:
                entering.append(s)
                currents.append(I)
            z, s = model.step(I, s, params)
            outputs.append(z)
        layer_trace = LayerTrace(x, torch.stack(entering), torch.stack(currents)) if trace else None
        return torch.stack(outputs), s, layer_trace

    @torch.no_grad()
    def constrain_(self) -> None:
        self.model.constrain_(self.neuron_params())

    def extra_repr(self) -> str:
        kind = "recurrent" if self.recurrent else "feed-forward"
        return f"{type(self.model).__name__}: {self.n_in} -> {self.n}, {kind}"


class RSNN(nn.Module):
    """A recurrent spiking network: ``RSNN(n_in=140, hidden=[256], n_out=20, neuron="brf")``.

    ``neuron`` is "brf", "se_adlif", "alif", "lif" or a ``NeuronModel`` instance; its options
    (e.g. ``variant="exact"``, ``omega_init=(15, 50)``, ``surrogate="slayer"``) are keyword
    arguments. ``recurrent`` is one bool or one per hidden layer. ``readout`` is "li" (leaky
    integrator, trainable τ_out) or "linear"; ``readout_options`` go to its model.
    ``init_gain`` scales the hidden layers' Xavier-uniform initial weights: BRF integrates δ·I
    per step (δ = 0.01), so inputs of few, brief spikes need a gain of tens to make it fire.
    ``net(x)`` takes [T, B, n_in] (or [T, n_in] for one stream) and returns [T, B, n_out].
    """

    def __init__(
        self,
        n_in: int,
        hidden: Sequence[int] | int,
        n_out: int,
        neuron: str | NeuronModel = "brf",
        recurrent: bool | Sequence[bool] = True,
        readout: str | NeuronModel = "li",
        readout_options: dict[str, Any] | None = None,
        init_gain: float = 1.0,
        **model_options: Any,
    ) -> None:
        super().__init__()
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        if not hidden:
            raise ValueError("hidden must list at least one layer size")
        for name, value in [("n_in", n_in), ("n_out", n_out)] + [("hidden", h) for h in hidden]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        flags = [recurrent] * len(hidden) if isinstance(recurrent, bool) else list(recurrent)
        if len(flags) != len(hidden):
            raise ValueError(f"recurrent has {len(flags)} entries for {len(hidden)} hidden layers")
        model = build_model(neuron, NEURONS, "neuron model", **model_options)
        readout_model = build_model(readout, READOUTS, "readout", **(readout_options or {}))
        sizes = [n_in, *hidden]
        self.n_in, self.n_out = n_in, n_out
        self.config = _plain_config(
            n_in=n_in, hidden=hidden, n_out=n_out, neuron=neuron, recurrent=flags,
            readout=readout, readout_options=dict(readout_options or {}), init_gain=init_gain,
            model_options=dict(model_options),
        )
        self.layers = nn.ModuleList(
            SpikingLayer(model, m, n, flag, init_gain)
            for m, n, flag in zip(sizes[:-1], hidden, flags, strict=True)
        )
        self.readout = SpikingLayer(readout_model, hidden[-1], n_out, recurrent=False)

    def stack(self) -> list[tuple[str, SpikingLayer]]:
        """(name prefix, layer) for every layer, the readout last: the order rules work in."""
        return [(f"layers.{i}", layer) for i, layer in enumerate(self.layers)] + [
            ("readout", self.readout)
        ]

    def init_state(self, batch: int) -> list[Tensor]:
        """Zero state for ``batch`` streams: one [batch, N, d] tensor per layer, readout last."""
        return [layer.init_state(batch) for _, layer in self.stack()]

    def check_input(self, x: Tensor) -> Tensor:
        """Validate x and return it as [T, B, n_in]; errors name expected and actual."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (2, 3) or x.shape[-1] != self.n_in or x.shape[0] < 1:
            raise ValueError(
                f"x must have shape [T, B, {self.n_in}] or [T, {self.n_in}] with T >= 1, "
                f"got {tuple(x.shape)}"
            )
        x = x.unsqueeze(1) if x.dim() == 2 else x
        dtype = self.readout.bias.dtype
        if x.dtype != dtype:
            raise TypeError(f"x has dtype {x.dtype} but the network's parameters are {dtype}")
        if x.device != self.readout.bias.device:
            raise ValueError(f"x is on {x.device} but the network is on {self.readout.bias.device}")
        return x

    def run(
        self,
        x: Tensor,
        state: list[Tensor] | None = None,
        reset: Tensor | None = None,
        trace: bool = False,
    ) -> RunResult:
        """Run a block: x [T, B, n_in] from ``state`` (zero if None).

        ``reset`` [T, B] bool zeroes stream b's state (all layers) just before step t.
        """
        if state is None:
            state = self.init_state(x.shape[1])
        h, new_state, traces = x, [], []
        for (_, layer), s in zip(self.stack(), state, strict=True):
            h, s, layer_trace = layer.run(h, s, reset, trace)
            new_state.append(s)
            traces.append(layer_trace)
        return RunResult(h, new_state, traces if trace else None, reset)

    def forward(
        self, x: Tensor, state: list[Tensor] | None = None, return_state: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Per-step outputs [T, B, n_out] ([T, n_out] for [T, n_in] input)."""
        checked = self.check_input(x)
        single = x.dim() == 2
        result = self.run(checked, state)
        outputs = result.outputs.squeeze(1) if single else result.outputs
        return (outputs, result.state) if return_state else outputs

    def constrain_(self) -> None:
        """Project every neuron parameter back into its valid range (after an optimizer step)."""
        for _, layer in self.stack():
            layer.constrain_()


def _plain_config(**config: Any) -> dict[str, Any] | None:
    """The constructor arguments if they are plain data (so a checkpoint can rebuild the net
    without executing code), else None: a net built from model instances must be passed in."""

    def plain(value: Any) -> bool:
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        return value is None or isinstance(value, (str, int, float, bool))

    return config if plain(config) else None
