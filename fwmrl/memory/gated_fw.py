"""Gated fast weights (Schlag & Schmidhuber, 2017).

A slow RNN generates, at every step, gated rank-1 updates for the two weight matrices of a small fast
RNN. The generated weights are used from the next step on, so the slow net cannot predict by itself.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn
from typing_extensions import override

from fwmrl.memory import fwm_kernel
from fwmrl.memory.base import (
    CoreState,
    MemoryCore,
    check_choice,
    check_positive_int,
    check_recompute_chunk,
)

INITS = ["torch", "glorot"]
"""The values of :class:`GatedFWCore`'s ``init``."""
KERNELS = ["auto", "compiled", "eager"]
"""The values of :class:`GatedFWCore`'s ``kernel``."""


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
    init:
        Initialisation of ``S1`` and ``S2``: ``"torch"`` (PyTorch's ``nn.Linear`` default,
        ``U(±1/√fan_in)`` weights and biases) or ``"glorot"`` (Glorot-uniform weights and zero
        biases, the TensorFlow default of the paper's time; the paper states none).
    gate_bias:
        Added to the initial biases of the gate pre-activations ``γ`` and ``δ`` of both updates:
        the write gate starts at ``T ≈ σ(gate_bias)²`` (``0.25`` at ``0``), so a written
        association keeps about ``(1 − T)^k`` of its weight after ``k`` steps.
    recompute_chunk:
        ``None``: autograd keeps every step's fast weights. ``k``: keep them every ``k`` steps and
        recompute in between during backward (same gradients, less memory).
    kernel:
        The fast net and both fast-weight updates of a step (resets included) as one C loop per
        sequence forward and one backward (:func:`fwmrl.memory.fwm_kernel.gated_fw_step`, built
        on first use with the system compiler) and the slow net's input product for the whole
        window in one product: ``"auto"`` (default) where the kernels build (CPU,
        float32/float64) and the layer norms have no gain or bias, else PyTorch operations;
        ``"compiled"``: insist on them; ``"eager"``: never (the step as PyTorch operations). Same
        values and gradients to float rounding (tested).
    """

    def __init__(
        self,
        input_size: int,
        fast_size: int = 40,
        slow_size: int = 40,
        slow_hidden_size: int = 100,
        layer_norm_affine: bool = False,
        init: str = "torch",
        gate_bias: float = 0.0,
        recompute_chunk: int | None = None,
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        owner = "GatedFWCore"
        self.input_size = check_positive_int(owner, "input_size", input_size)
        self.fast_size = check_positive_int(owner, "fast_size", fast_size)
        self.slow_size = check_positive_int(owner, "slow_size", slow_size)
        self.slow_hidden_size = check_positive_int(owner, "slow_hidden_size", slow_hidden_size)
        self.output_size = fast_size
        self.recompute_chunk = check_recompute_chunk(owner, recompute_chunk)
        self.init = check_choice(owner, "init", init, INITS)
        if isinstance(gate_bias, bool) or not isinstance(gate_bias, (int, float)):
            raise ValueError(f"{owner}: 'gate_bias' must be a number, got {gate_bias!r}")
        self.gate_bias = float(gate_bias)
        self.kernel = check_choice(owner, "kernel", kernel, KERNELS)
        if kernel == "compiled" and layer_norm_affine:
            raise ValueError(
                f"{owner}: kernel 'compiled' has no layer-norm gain or bias; use "
                "layer_norm_affine=False or kernel 'auto'/'eager'"
            )

        f, n = fast_size, fast_size + input_size  # F1 is f × n, F2 is f × f
        self.update_sizes = [slow_size, f, n, f, n, f, f, f, f]  # z, Δ1 = (α β γ δ), Δ2 = (α β γ δ)
        self.slow_in = nn.Linear(slow_size + input_size, slow_hidden_size)
        self.slow_out = nn.Linear(slow_hidden_size, sum(self.update_sizes))
        self.norm1 = nn.LayerNorm(f, elementwise_affine=layer_norm_affine)
        self.norm2 = nn.LayerNorm(f, elementwise_affine=layer_norm_affine)
        self._initialise()

    def _initialise(self) -> None:
        if self.init == "glorot":
            for layer in (self.slow_in, self.slow_out):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        if self.gate_bias:
            with torch.no_grad():
                for start, size in self.gate_slices():
                    self.slow_out.bias[start : start + size] += self.gate_bias

    def gate_slices(self) -> list[tuple[int, int]]:
        """``(start, size)`` of ``γ`` and ``δ`` of ``Δ1`` and ``Δ2`` in ``S2``'s outputs."""
        starts = [0]
        for size in self.update_sizes:
            starts.append(starts[-1] + size)
        return [(starts[i], self.update_sizes[i]) for i in (3, 4, 7, 8)]

    @override
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

    @property  # type: ignore[override]
    def step_graph_is_cheap(self) -> bool:  # type: ignore[override]
        """False with the compiled kernels: a window's backward (one compiled loop, the slow
        net's update rows as one product) beats ``T`` recorded steps' (A2C then collects without
        a graph and re-runs the window, measured faster on gridworld_gated_fw); True without."""
        return not self._compiled(self.slow_in.weight)

    def _compiled(self, x: Tensor) -> bool:
        """Whether :meth:`_scan` runs the compiled step (see ``kernel``)."""
        if self.kernel == "eager" or self.norm1.elementwise_affine:
            return False
        if self.kernel == "compiled":
            if not fwm_kernel.available(x, fwm_kernel._GATED_KERNEL_SIZE):
                raise RuntimeError(
                    "GatedFWCore: kernel 'compiled', but the compiled kernels are unavailable "
                    f"for {x.dtype} on {x.device}"
                )
            return True
        return fwm_kernel.available(x, fwm_kernel._GATED_KERNEL_SIZE)

    @override
    def _scan(
        self, x: Tensor, state: CoreState, resets: Tensor | None
    ) -> tuple[Tensor, CoreState, Tensor | None]:
        """:meth:`_step` over the window: the slow net's recurrence per step (its input columns
        for all steps in one product, the updates' rows of ``S2`` in one product after it), then
        the fast net and both updates of every step in one compiled loop forward and one backward
        (:class:`_FastWindow`), resets applied inside it (the same values and gradients to float
        rounding); without the kernels, :meth:`_step` per step."""
        if not self._compiled(x):
            return super()._scan(x, state, resets)
        assert isinstance(state, GatedFWState)
        steps, batch, _ = x.shape
        s = self.slow_size
        w_h, w_x = self.slow_in.weight.split([s, self.input_size], dim=1)
        slow_x = torch.addmm(self.slow_in.bias, x.reshape(steps * batch, -1), w_x.t())
        slow_x = slow_x.view(steps, batch, -1).unbind(0)  # one stacking backward, not T slices
        w_h_t = w_h.t()  # its gradient is summed over the steps before one split's backward
        keep = None
        if resets is None:
            resets_at = [False] * steps
        else:
            resets_at = resets.any(dim=1).tolist()
            if any(resets_at):
                keep = (~resets).to(x.dtype)
        slow_h = state.slow_h
        if steps == 1:  # one product for z and the updates
            if keep is not None:
                slow_h = slow_h * keep[0].unsqueeze(1)
            o = self.slow_out(torch.tanh(torch.addmm(slow_x[0], slow_h, w_h_t)))
            slow_h, delta = torch.tanh(o[:, :s]), o[:, s:].unsqueeze(0)
        else:  # the slow net's recurrence needs z only; the updates' rows in one product after it
            w_z, w_d = self.slow_out.weight.split([s, self.slow_out.out_features - s])
            b_z, b_d = self.slow_out.bias.split([s, self.slow_out.out_features - s])
            w_z_t = w_z.t()
            hidden = []
            for t in range(steps):
                if resets_at[t]:
                    slow_h = slow_h * keep[t].unsqueeze(1)
                a = torch.tanh(torch.addmm(slow_x[t], slow_h, w_h_t))
                hidden.append(a)
                slow_h = torch.tanh(torch.addmm(b_z, a, w_z_t))
            a_all = torch.stack(hidden).view(steps * batch, -1)
            delta = torch.addmm(b_d, a_all, w_d.t()).view(steps, batch, -1)
        fast_h, F1, F2 = _FastWindow.apply(
            state.F1, state.F2, state.fast_h, x, delta, keep, self.norm1.eps
        )
        new_state = GatedFWState(slow_h=slow_h, fast_h=fast_h[-1], F1=F1, F2=F2)
        return fast_h, new_state, None

    def _step(self, x: Tensor, state: GatedFWState) -> tuple[Tensor, GatedFWState, None]:
        fast_in = torch.cat([state.fast_h, x], dim=-1)
        hidden = self.norm1(torch.tanh(batched_matvec(state.F1, fast_in)))
        fast_h = self.norm2(torch.tanh(batched_matvec(state.F2, hidden)))

        a = torch.tanh(self.slow_in(torch.cat([state.slow_h, x], dim=-1)))
        z, a1, b1, g1, d1, a2, b2, g2, d2 = self.slow_out(a).split(self.update_sizes, dim=-1)
        F1 = gated_outer_update(state.F1, a1, b1, g1, d1)
        F2 = gated_outer_update(state.F2, a2, b2, g2, d2)
        new_state = GatedFWState(slow_h=torch.tanh(z), fast_h=fast_h, F1=F1, F2=F2)
        return fast_h, new_state, None


class _FastWindow(torch.autograd.Function):
    """The fast net and fast-weight updates of a window: ``(fast_h [T, B, f], F1, F2)`` (every
    step's fast hidden state, the last step's weights) from ``(F1, F2, fast_h, x [T, B, I],
    delta [T, B, D], keep, eps)`` (``delta``: the slow net's update pre-activations; ``keep
    [T, B]``: 0 where the sequence resets before the step, or ``None``), forward and backward
    in one compiled loop each, sequence by sequence (:func:`fwmrl.memory.fwm_kernel.
    gated_fw_window`, :func:`~fwmrl.memory.fwm_kernel.gated_fw_window_backward`): one autograd
    node for what :meth:`GatedFWCore._step` records as about thirty per step."""

    @staticmethod
    def forward(ctx, F1, F2, fast_h, x, delta, keep, eps):  # noqa: ANN001, ANN205, N803
        if x.shape[0] == 1:  # out of place, no copy of the weights (collecting's steps)
            first = None if keep is None else keep[0]
            step = fwm_kernel.gated_fw_step(F1, F2, fast_h, x[0], delta[0], first, eps)
            fhs, F1o, F2o, save = step[0].unsqueeze(0), step[1], step[2], step[3].unsqueeze(0)  # noqa: N806
        else:
            window = fwm_kernel.gated_fw_window(F1, F2, fast_h, x, delta, keep, eps)
            fhs, F1o, F2o, save = window  # noqa: N806
        ctx.save_for_backward(F1, F2, fast_h, x, delta, fhs, save)
        ctx.keep, ctx.eps = keep, eps
        ctx.set_materialize_grads(False)
        return fhs, F1o, F2o

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_fhs, grad_F1, grad_F2):  # noqa: ANN001, ANN205, N803
        F1, F2, fast_h, x, delta, fhs, save = ctx.saved_tensors  # noqa: N806
        grads = fwm_kernel.gated_fw_window_backward(
            (F1, F2, fast_h, x, delta), ctx.keep, (fhs, save), (grad_fhs, grad_F1, grad_F2), ctx.eps
        )
        return (*grads, None, None)


def batched_matvec(F: Tensor, x: Tensor) -> Tensor:
    """``F x`` for ``F [B, p, q]`` and ``x [B, q]`` (the fast net's layers), as :class:`_MatVec`."""
    return _MatVec.apply(F, x)


class _MatVec(torch.autograd.Function):
    """``y = F x``, batched. On a CPU ``torch.bmm`` is several times slower for ``F @ x[..., None]``
    and for the outer product of its gradient than for the row-vector forms used here."""

    @staticmethod
    def forward(ctx, F: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(F, x)
        return torch.bmm(x.unsqueeze(-2), F.transpose(-1, -2)).squeeze(-2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        F, x = ctx.saved_tensors
        grad_F = grad.unsqueeze(-1) * x.unsqueeze(-2) if ctx.needs_input_grad[0] else None
        grad_x = torch.bmm(grad.unsqueeze(-2), F).squeeze(-2) if ctx.needs_input_grad[1] else None
        return grad_F, grad_x


def gated_outer_update(
    F: Tensor, alpha: Tensor, beta: Tensor, gamma: Tensor, delta: Tensor
) -> Tensor:
    """``T ⊙ H + (1 − T) ⊙ F`` with ``H = tanh(α) tanh(β)ᵀ`` and ``T = σ(γ) σ(δ)ᵀ`` (batched).

    ``T ⊙ H = (σ(γ) ⊙ tanh(α)) (σ(δ) ⊙ tanh(β))ᵀ`` is rank one, so neither ``H`` nor
    ``T ⊙ H`` is built; :class:`_GatedBlend` computes ``F − T ⊙ F + a bᵀ`` and its gradients
    with few passes over the ``[B, p, q]`` matrices (the update is memory-bound on a CPU).
    """
    s, r = torch.sigmoid(gamma), torch.sigmoid(delta)
    return _GatedBlend.apply(F, s, r, s * torch.tanh(alpha), r * torch.tanh(beta))


class _GatedBlend(torch.autograd.Function):
    """``F' = F − (s rᵀ) ⊙ F + a bᵀ`` for ``F [B, p, q]``, ``s, a [B, p]``, ``r, b [B, q]``."""

    @staticmethod
    def forward(ctx, F: Tensor, s: Tensor, r: Tensor, a: Tensor, b: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(F, s, r, a, b)
        gate = s.unsqueeze(-1) * r.unsqueeze(-2)
        out = torch.addcmul(F, a.unsqueeze(-1), b.unsqueeze(-2))
        return out.addcmul_(gate, F, value=-1.0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        F, s, r, a, b = ctx.saved_tensors
        grad_F = grad_s = grad_r = grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_F = torch.addcmul(grad, grad, s.unsqueeze(-1) * r.unsqueeze(-2), value=-1.0)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            grad_times_F = grad * F
            grad_s = -torch.bmm(r.unsqueeze(-2), grad_times_F.transpose(-1, -2)).squeeze(-2)
            grad_r = -torch.bmm(s.unsqueeze(-2), grad_times_F).squeeze(-2)
        if ctx.needs_input_grad[3]:
            grad_a = torch.bmm(b.unsqueeze(-2), grad.transpose(-1, -2)).squeeze(-2)
        if ctx.needs_input_grad[4]:
            grad_b = torch.bmm(a.unsqueeze(-2), grad).squeeze(-2)
        return grad_F, grad_s, grad_r, grad_a, grad_b
