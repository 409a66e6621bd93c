"""The neuron-model protocol: data plus a step function, with Jacobians for the P-stage.

A model is a frozen dataclass of constants. Its carried state is one tensor ``s`` of shape
``[..., N, d]`` whose components are named in ``state_names``; the layer's output (the spike z,
or a readout's potential) is the component ``output``. Learnable per-neuron parameters live in
the network as ``nn.Parameter``s of shape ``[N]`` and are passed in as a dict.

    s_t = F(s_{t-1}, I_t; θ)        step(I, s, params) -> (out, s_new)

The learning rules need, at every step, the Jacobians of F (spec §3), component-major:

    A = ∂F/∂s_{t-1}  [d, d, ...]     c = ∂F/∂I_t  [d, ...]     D = ∂F/∂θ  [d, P, ...]

Component-major (the many neurons, steps and streams last and contiguous) is how the Jacobians
are written, one partial derivative per entry, and it makes the P-stage's d×d products plain
elementwise arithmetic over long vectors, several times faster than batched tiny matmuls.

A model may override ``jacobians`` with closed forms (fast); otherwise ``torch.func`` computes
them from ``step`` (slower, exact), so a user's own neuron needs only its equations.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from .surrogates import Surrogate, resolve_surrogate

Params = dict[str, Tensor]


class Jacobians(NamedTuple):
    """Per-step Jacobians of F, batched over trailing dims ``...`` (time, batch, neurons)."""

    A: Tensor  # [d, d, ...]  A[i, j] = ∂s_t[i]/∂s_{t-1}[j]
    c: Tensor  # [d, ...]     ∂s_t/∂I_t
    D: Tensor  # [d, P, ...]  ∂s_t/∂θ_p, in the order of param_names


@dataclass(frozen=True)
class NeuronModel:
    """Base class for neuron models. Subclasses set the class variables and define ``step``."""

    state_names: ClassVar[tuple[str, ...]]
    param_names: ClassVar[tuple[str, ...]] = ()
    output: ClassVar[str] = "z"

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name == "surrogate":
                object.__setattr__(self, "surrogate", resolve_surrogate(self.surrogate))

    @property
    def d(self) -> int:
        """Number of state components per neuron."""
        return len(self.state_names)

    @property
    def out_index(self) -> int:
        """Index of the output component (the spike) in the state."""
        return self.state_names.index(self.output)

    def init_params(self, n: int) -> Params:
        """Initial per-neuron parameters, shape [n] each (uses torch's global RNG)."""
        return {}

    def constrain_(self, params: Params) -> None:
        """Project parameters back into their valid range, in place (after an optimizer step)."""

    def step(self, I: Tensor, s: Tensor, params: Params) -> tuple[Tensor, Tensor]:
        """One step: I [..., N], s [..., N, d] -> (output [..., N], s_new [..., N, d])."""
        raise NotImplementedError

    def jacobians(self, I: Tensor, s: Tensor, params: Params) -> Jacobians:
        """Jacobians of ``step`` at (I [..., N], s [..., N, d]) as A [d, d, ..., N],
        c [d, ..., N], D [d, P, ..., N]; see the module docstring."""
        return func_jacobians(self, I, s, params)


def func_jacobians(model: NeuronModel, I: Tensor, s: Tensor, params: Params) -> Jacobians:
    """Jacobians of ``model.step`` by forward-mode ``torch.func``, one neuron at a time (vmapped).

    Exact for any model whose step is elementwise across neurons; costs about (d + 1 + P) forward
    passes, so closed forms are worth writing for models used at scale.
    """
    names = model.param_names
    lead = I.shape
    d = model.d

    def one_neuron(s1: Tensor, i1: Tensor, *p1: Tensor) -> Tensor:
        return model.step(i1, s1, dict(zip(names, p1, strict=True)))[1]

    flat_params = [params[n].expand(lead).reshape(-1) for n in names]
    jac = torch.func.vmap(torch.func.jacfwd(one_neuron, argnums=tuple(range(2 + len(names)))))
    # vmap(jacfwd) promotes a Python float times a float32 tensor to float64 (torch 2.13):
    # cast back, so the Jacobians have the network's dtype.
    J = [j.to(s.dtype) for j in jac(s.reshape(-1, d), I.reshape(-1), *flat_params)]
    A = J[0].reshape(*lead, d, d).movedim((-2, -1), (0, 1))
    c = J[1].reshape(*lead, d).movedim(-1, 0)
    if names:
        D = torch.stack(J[2:], dim=-1).reshape(*lead, d, len(names)).movedim((-2, -1), (0, 1))
    else:
        D = I.new_zeros(d, 0, *lead)
    return Jacobians(A.contiguous(), c.contiguous(), D.contiguous())


def uniform(n: int, bounds: tuple[float, float]) -> Tensor:
    """n samples of U(lo, hi) from torch's global RNG, in the default dtype."""
    lo, hi = bounds
    return torch.empty(n).uniform_(lo, hi)


def stack_components(*columns: Tensor) -> Tensor:
    """Stack d per-component tensors [...] into a state [..., d]."""
    return torch.stack(columns, dim=-1)


def component_vector(entries: list[Tensor | float], like: Tensor) -> Tensor:
    """Stack per-component entries (tensors or scalars, broadcast to ``like``) into [d, ...]."""
    return torch.stack(
        [torch.as_tensor(v, dtype=like.dtype, device=like.device).expand_as(like) for v in entries]
    )


def component_matrix(rows: list[list[Tensor | float]], like: Tensor) -> Tensor:
    """Assemble a matrix [rows, cols, ...] from a row-major table of entries (see above)."""
    return torch.stack([component_vector(row, like) for row in rows])


__all__ = [
    "Jacobians",
    "NeuronModel",
    "Params",
    "Surrogate",
    "func_jacobians",
    "component_matrix",
    "component_vector",
    "stack_components",
    "uniform",
]
