"""Gated fast weights (Schlag & Schmidhuber, 2017).

A slow RNN generates, at every step, gated rank-1 updates for the two weight matrices of a small fast
RNN. The generated weights are used from the next step on, so the slow net cannot predict by itself.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from fwmrl.memory.base import CoreState, MemoryCore, check_positive_int, check_recompute_chunk


@dataclasses.dataclass
class GatedFWState(CoreState):
    """Slow hidden ``[B, s]``, fast hidden ``[B, f]``, fast weights ``F1 [B, f, f + F_in]`` and
    ``F2 [B, f, f]``."""

    slow_h: Tensor
    fast_h: Tensor
    F1: Tensor
    F2: Tensor


class GatedFWCore(MemoryCore):
    """Slow/fast network pair with gated outer-product updates.

    Slow net: ``a = tanh(S1 [h^S; x] + b1)``, ``[z; Δ1; Δ2] = S2 a + b2``, ``h^S ← tanh(z)``.
    Each ``Δ`` splits into ``(α, β, γ, δ)``: ``H = tanh(α) tanh(β)ᵀ``, ``T = σ(γ) σ(δ)ᵀ``,
    ``F ← T ⊙ H + (1 − T) ⊙ F``. Fast net (with the weights of the previous step):
    ``h^F ← LN(tanh(F2 LN(tanh(F1 [h^F; x]))))``. The output is ``h^F``.

    The paper's sizes for associative retrieval are ``input_size=15`` (the embedding),
    ``fast_size=40``, ``slow_size=40``, ``slow_hidden_size=100``: ``S2`` then has
    ``40 + 2(40 + 55) + 4·40 = 390`` outputs.

    Parameters
    ----------
    input_size:
        Features per input step (the embedding size in the paper).
    fast_size:
        Fast hidden size ``f``; also the output size.
    slow_size:
        Slow hidden size ``s``.
    slow_hidden_size:
        Width of the slow net's inner layer (``S1``'s output).
    layer_norm_affine:
        Learnable gain and bias in the fast net's layer norms (the paper's count has none).
    recompute_chunk:
        ``None``: autograd keeps every step's fast weights. ``k``: keep them every ``k`` steps and
        recompute in between during backward (same gradients, less memory).
    """

    def __init__(
        self,
        input_size: int,
        fast_size: int = 40,
        slow_size: int = 40,
        slow_hidden_size: int = 100,
        layer_norm_affine: bool = False,
        recompute_chunk: int | None = None,
    ) -> None:
        super().__init__()
        owner = "GatedFWCore"
        self.input_size = check_positive_int(owner, "input_size", input_size)
        self.fast_size = check_positive_int(owner, "fast_size", fast_size)
        self.slow_size = check_positive_int(owner, "slow_size", slow_size)
        self.slow_hidden_size = check_positive_int(owner, "slow_hidden_size", slow_hidden_size)
        self.output_size = fast_size
        self.recompute_chunk = check_recompute_chunk(owner, recompute_chunk)

        f, n = fast_size, fast_size + input_size  # F1 is f × n, F2 is f × f
        self.update_sizes = [slow_size, f, n, f, n, f, f, f, f]  # z, Δ1 = (α β γ δ), Δ2 = (α β γ δ)
        self.slow_in = nn.Linear(slow_size + input_size, slow_hidden_size)
        self.slow_out = nn.Linear(slow_hidden_size, sum(self.update_sizes))
        self.norm1 = nn.LayerNorm(f, elementwise_affine=layer_norm_affine)
        self.norm2 = nn.LayerNorm(f, elementwise_affine=layer_norm_affine)

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> GatedFWState:
        f, n = self.fast_size, self.fast_size + self.input_size
        dtype = self.slow_in.weight.dtype

        def zeros(*shape: int) -> Tensor:
            return torch.zeros(batch_size, *shape, device=device, dtype=dtype)

        return GatedFWState(
            slow_h=zeros(self.slow_size), fast_h=zeros(f), F1=zeros(f, n), F2=zeros(f, f)
        )

    def _step(self, x: Tensor, state: GatedFWState) -> tuple[Tensor, GatedFWState, None]:
        fast_in = torch.cat([state.fast_h, x], dim=-1)
        hidden = self.norm1(torch.tanh(torch.bmm(state.F1, fast_in.unsqueeze(-1)).squeeze(-1)))
        fast_h = self.norm2(torch.tanh(torch.bmm(state.F2, hidden.unsqueeze(-1)).squeeze(-1)))

        a = torch.tanh(self.slow_in(torch.cat([state.slow_h, x], dim=-1)))
        z, a1, b1, g1, d1, a2, b2, g2, d2 = self.slow_out(a).split(self.update_sizes, dim=-1)
        F1 = gated_outer_update(state.F1, a1, b1, g1, d1)
        F2 = gated_outer_update(state.F2, a2, b2, g2, d2)
        new_state = GatedFWState(slow_h=torch.tanh(z), fast_h=fast_h, F1=F1, F2=F2)
        return fast_h, new_state, None


def gated_outer_update(
    F: Tensor, alpha: Tensor, beta: Tensor, gamma: Tensor, delta: Tensor
) -> Tensor:
    """``T ⊙ H + (1 − T) ⊙ F`` with ``H = tanh(α) tanh(β)ᵀ`` and ``T = σ(γ) σ(δ)ᵀ`` (batched)."""
    H = torch.tanh(alpha).unsqueeze(-1) * torch.tanh(beta).unsqueeze(-2)
    T = torch.sigmoid(gamma).unsqueeze(-1) * torch.sigmoid(delta).unsqueeze(-2)
    return torch.lerp(F, H, T)
