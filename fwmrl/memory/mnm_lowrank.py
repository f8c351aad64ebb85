"""MNM over a window without materialising the memory weights at every step.

Each MNM write changes every layer of the memory MLP by a rank-``H`` outer product,
``W_t = W_{t-1} − P_tᵀ Q_t`` with ``P_t = β_t · error_t [B, H, d_out]`` and ``Q_t`` the layer's
inputs ``[B, H, d_in]``. Inside a chunk of steps the weights are therefore ``W_0`` minus the
chunk's factors, and every product with ``W_t`` is a product with ``W_0`` plus a small correction:
``X W_tᵀ = X W_0ᵀ − (X Q_{≤t}ᵀ) P_{≤t}`` and ``G W_t = G W_0 − (G P_{≤t}ᵀ) Q_{≤t}``. The full weights
are formed once per chunk (and where a sequence resets). The naive step instead allocates and
autograd keeps three ``[B, d, d]`` tensors per step.

Autograd would still form a full ``[B, d_out, d_in]`` gradient of ``W_0`` for every product with it.
:class:`_DeferredWeight` and :class:`_DeferredProduct` collect those products' vectors instead and
add them up in one matrix product per chunk when the backward pass reaches ``W_0``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from fwmrl.memory import fwm_kernel

if TYPE_CHECKING:
    from fwmrl.memory.mnm import MNMCore, MNMState


_KERNEL_SIZE = 16
"""The ``m`` of the :mod:`fwmrl.memory.fwm_kernel` library whose LSTM cell the controller uses
(the cell does not depend on it; the libraries are built per ``m``)."""


class _GradStore(list):
    """Vectors of the products with one ``W_0``, waiting for its backward."""


class _DeferredWeight(torch.autograd.Function):
    """Identity on ``W``; its backward adds ``Σ aᵀ b`` over the pairs that
    :class:`_DeferredProduct` left in ``store`` (autograd runs it after all of them)."""

    @staticmethod
    def forward(ctx, weight: Tensor, store: list) -> Tensor:  # noqa: ANN001
        ctx.store = store
        return weight.view_as(weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        store = ctx.store
        if store:
            left = torch.cat([a for a, _ in store], dim=1)  # [B, n, d_out]
            right = torch.cat([b for _, b in store], dim=1)  # [B, n, d_in]
            grad = torch.baddbmm(grad, left.transpose(1, 2), right)
            store.clear()
        return grad, None


class _DeferredProduct(torch.autograd.Function):
    """``X Wᵀ`` (``transpose=True``) or ``X W`` whose weight gradient is left to
    :class:`_DeferredWeight` (``W`` must be that Function's output). ``weight_t`` is ``Wᵀ`` as a
    contiguous tensor (outside the graph): every product, forward and backward, then runs on a
    contiguous right operand (a strided one made the batched products 2-2.5× slower)."""

    @staticmethod
    def forward(
        ctx, x: Tensor, weight: Tensor, weight_t: Tensor, store: list, transpose: bool
    ) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(x, weight, weight_t)
        ctx.store, ctx.transpose = store, transpose
        return torch.bmm(x, weight_t if transpose else weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None, None]:  # noqa: ANN001
        x, weight, weight_t = ctx.saved_tensors
        # Detached: a stored tensor that kept its graph would form a reference cycle through
        # autograd's C++ nodes, which Python's garbage collector cannot free.
        x, grad = x.detach(), grad.detach()
        if ctx.transpose:  # y = x Wᵀ: dW = gradᵀ x
            ctx.store.append((grad, x))
            return torch.bmm(grad, weight), None, None, None, None
        ctx.store.append((x, grad))  # y = x W: dW = xᵀ grad
        return torch.bmm(grad, weight_t), None, None, None, None


class _Layer:
    """One memory layer inside a chunk: ``W_0`` and the factors written so far."""

    def __init__(self, weight: Tensor, deferred: bool, steps: int) -> None:
        self.store = _GradStore()
        self.deferred = deferred
        self.weight = _DeferredWeight.apply(weight, self.store) if deferred else weight
        if deferred:  # outside the graph: W_0's gradient is the store's
            self.weight_t = weight.detach().transpose(1, 2).contiguous()
        elif steps > 1:  # a contiguous copy pays for itself over a few steps' products
            self.weight_t = weight.transpose(1, 2).contiguous()
        else:
            self.weight_t = weight.transpose(1, 2)
        self.P: Tensor | None = None  # [B, n, d_out]
        self.Q: Tensor | None = None  # [B, n, d_in]

    def _product(self, x: Tensor, transpose: bool) -> Tensor:
        if self.deferred:
            return _DeferredProduct.apply(x, self.weight, self.weight_t, self.store, transpose)
        return torch.bmm(x, self.weight_t if transpose else self.weight)

    def apply(self, x: Tensor) -> Tensor:
        """``x W_tᵀ`` for ``x [B, N, d_in]``."""
        y = self._product(x, transpose=True)
        if self.P is not None:
            y = y - (x @ self.Q.transpose(1, 2)) @ self.P
        return y

    def apply_left(self, g: Tensor) -> Tensor:
        """``g W_t`` for ``g [B, N, d_out]``."""
        y = self._product(g, transpose=False)
        if self.P is not None:
            y = y - (g @ self.P.transpose(1, 2)) @ self.Q
        return y

    def write(self, p: Tensor, q: Tensor) -> None:
        """``W ← W − pᵀ q`` for ``p [B, H, d_out]``, ``q [B, H, d_in]``."""
        self.P = p if self.P is None else torch.cat([self.P, p], dim=1)
        self.Q = q if self.Q is None else torch.cat([self.Q, q], dim=1)

    def materialise(self) -> Tensor:
        if self.P is None:
            return self.weight
        return torch.baddbmm(self.weight, self.P.transpose(1, 2), self.Q, alpha=-1.0)


def lowrank_scan(
    core: MNMCore, x: Tensor, state: MNMState, resets: Tensor | None
) -> tuple[Tensor, MNMState, Tensor]:
    """The same values and gradients as stepping ``core._step`` (tested), chunk by chunk."""
    steps = x.shape[0]
    any_reset = [False] * steps if resets is None else resets.any(dim=1).tolist()
    outputs, metas = [], []
    cell = core.controller
    # the cell's own weights, as built; a hooked cell (the memory plot's capture) runs as a module
    hooked = bool(cell._forward_hooks or cell._forward_pre_hooks)
    plain = type(cell) is torch.nn.LSTMCell and cell.bias and not hooked
    controller = _ControllerWindow(core, x) if steps > 1 and plain else None
    start = 0
    while start < steps:
        if any_reset[start]:
            state = core.reset_state(state, resets[start])
        end = min(start + core.chunk_size, steps)
        for t in range(start + 1, end):
            if any_reset[t]:
                end = t
                break
        y, state, meta = _chunk(core, x[start:end], state, controller, start)
        outputs.append(y)
        metas.append(meta)
        start = end
    return torch.cat(outputs), state, torch.cat(metas)


class _ControllerWindow:
    """The controller's cell over a window with its input products done once: ``x W_xᵀ + b_ih +
    b_hh`` for every step in one product (``W_x``: the input columns of ``W_ih``), and the
    transposed read columns of ``W_ih`` and ``W_hh`` formed once (so that their gradients are
    summed over the steps before one slice's backward, not a zero-filled ``W_ih`` per step)."""

    def __init__(self, core: MNMCore, x: Tensor) -> None:
        cell = core.controller
        w_x, w_read = cell.weight_ih.split([core.input_size, core.key_size], dim=1)
        bias = cell.bias_ih + cell.bias_hh
        gates = torch.addmm(bias, x.reshape(-1, x.shape[2]), w_x.t()).view(*x.shape[:2], -1)
        self.gates = gates.unbind(0)  # unbind: one stacking backward, not a zero tensor per step
        self.w_read_t, self.w_hh_t = w_read.t(), cell.weight_hh.t()
        self.compiled = fwm_kernel.available(gates, _KERNEL_SIZE)

    def step(self, t: int, read: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`MNMCore.controller_step`'s ``(h, c)`` at step ``t`` of the window (the gates
        to the state in the compiled C cell of :mod:`fwmrl.memory.fwm_kernel` where it builds,
        else ``torch.lstm_cell``'s equations)."""
        gates = torch.addmm(torch.addmm(self.gates[t], read, self.w_read_t), h, self.w_hh_t)
        if self.compiled:
            from fwmrl.memory.fwm import _LSTMCellFromGates  # noqa: PLC0415 (import cycle)

            return _LSTMCellFromGates.apply(gates, c, _KERNEL_SIZE)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def _chunk(
    core: MNMCore, x: Tensor, state: MNMState, controller: _ControllerWindow | None, offset: int
) -> tuple[Tensor, MNMState, Tensor]:
    d_k, heads = core.key_size, core.num_heads
    deferred = torch.is_grad_enabled() and x.shape[0] > 1
    steps = x.shape[0]
    layers = [
        _Layer(w, deferred and w.requires_grad, steps) for w in (state.w1, state.w2, state.w3)
    ]
    h, c, read = state.h, state.c, state.read
    hs, reads, recons, values = [], [], [], []
    for t in range(steps):
        if controller is None:
            h, c, k_w, v_w, k_r, beta = core.controller_step(x[t], read, h, c)  # [B, H, d_k]
        else:
            h, c = controller.step(offset + t, read, h, c)
            k_w, v_w, k_r, beta = core.interface(h)

        # First layer at W_{t-1} and at W_t share W_0's product with the keys.
        keys = torch.cat([k_w, k_r], dim=1)
        first = layers[0].apply(keys)
        z1 = torch.tanh(first[:, :heads])
        z2 = torch.tanh(layers[1].apply(z1))
        z3 = layers[2].apply(z2)
        inputs = (k_w, z1, z2)
        if core.rule == "gradient":
            g3 = (z3 - v_w) * (2.0 / (heads * d_k))
            g2 = layers[2].apply_left(g3) * (1.0 - z2 * z2)
            g1 = layers[1].apply_left(g2) * (1.0 - z1 * z1)
            errors = (g1, g2, g3)
        else:
            targets = (core.bfpf[0](v_w), core.bfpf[1](v_w), core.bfpf[2](v_w))
            errors = tuple(
                (z - z_hat) * (2.0 / (heads * z.shape[-1]))
                for z, z_hat in zip((z1, z2, z3), targets, strict=True)
            )
        p1 = beta * errors[0]
        layers[0].write(p1, k_w)
        for layer, error, layer_input in zip(layers[1:], errors[1:], inputs[1:], strict=True):
            layer.write(beta * error, layer_input)

        # Correct the shared first-layer product for this step's write: x (W − pᵀq)ᵀ.
        a1 = torch.tanh(first - (keys @ k_w.transpose(1, 2)) @ p1)
        out = layers[2].apply(torch.tanh(layers[1].apply(a1)))
        recon, read_all = out.split([heads, heads], dim=1)
        read = read_all.squeeze(1) if heads == 1 else read_all.mean(dim=1)
        hs.append(h)
        reads.append(read)
        recons.append(recon)
        values.append(v_w)
    w1, w2, w3 = (layer.materialise() for layer in layers)
    new_state = type(state)(h=h, c=c, read=read, w1=w1, w2=w2, w3=w3)
    # The output and the meta loss feed nothing back: one product and a few operations for the
    # chunk, not per step.
    y = core.output(torch.cat([torch.stack(hs), torch.stack(reads)], dim=-1))
    error = torch.stack(recons) - torch.stack(values)  # [C, B, H, d_k]
    meta = error.pow(2).mean(dim=(2, 3)) * core.meta_loss_weight
    return y, new_state, meta


def perceptron_kernel_scan(
    core: MNMCore, x: Tensor, state: MNMState, resets: Tensor | None
) -> tuple[Tensor, MNMState, Tensor]:
    """MNM-p (one head) over a window with each step's memory in the compiled kernel
    (:class:`_PerceptronStep`: the memory MLP at the write key, the three perceptron updates and
    the new weights' outputs at both keys, one C loop per sequence forward and backward); the
    controller as in :func:`lowrank_scan`, the three BFPF maps as one product per step, the
    output projection and the meta loss once per window. The same values and gradients as
    stepping ``core._step`` (tested)."""
    steps = x.shape[0]
    any_reset = [False] * steps if resets is None else resets.any(dim=1).tolist()
    cell = core.controller
    hooked = bool(cell._forward_hooks or cell._forward_pre_hooks)
    plain = type(cell) is torch.nn.LSTMCell and cell.bias and not hooked
    controller = _ControllerWindow(core, x) if plain and steps > 1 else None
    one_step = plain and steps == 1 and fwm_kernel.available(x, _KERNEL_SIZE)
    d_k = core.key_size
    assert core.bfpf is not None
    bfpf_w = torch.cat([layer.weight for layer in core.bfpf]).t()  # [d_k, 2 d_m + d_k]
    bfpf_b = torch.cat([layer.bias for layer in core.bfpf])
    hs, reads, recons, values = [], [], [], []
    for t in range(steps):
        if any_reset[t]:
            state = core.reset_state(state, resets[t])
        h, c, read = state.h, state.c, state.read
        if controller is not None:
            h, c = controller.step(t, read, h, c)
        elif one_step:  # (collecting's steps: no window set-up, the C cell)
            h, c = _one_step_controller(cell, x[t], read, h, c)
        else:
            h, c = cell(torch.cat([x[t], read], dim=-1), (h, c))
        beta_in, kvr = torch.tanh(core.interaction(h)).split([d_k, 3 * d_k], dim=-1)
        beta = torch.sigmoid(core.beta(beta_in)).squeeze(1)
        v_w = kvr[:, d_k : 2 * d_k]
        targets = torch.addmm(bfpf_b, v_w, bfpf_w)
        recon, read, w1, w2, w3 = _PerceptronStep.apply(
            state.w1, state.w2, state.w3, kvr, beta, targets
        )
        state = type(state)(h=h, c=c, read=read, w1=w1, w2=w2, w3=w3)
        hs.append(h)
        reads.append(read)
        recons.append(recon)
        values.append(v_w)
    y = core.output(torch.cat([torch.stack(hs), torch.stack(reads)], dim=-1))
    error = torch.stack(recons) - torch.stack(values)  # [T, B, d_k]
    meta = error.pow(2).mean(dim=2) * core.meta_loss_weight
    return y, state, meta


def _one_step_controller(
    cell: torch.nn.LSTMCell, x: Tensor, read: Tensor, h: Tensor, c: Tensor
) -> tuple[Tensor, Tensor]:
    """The controller's ``(h, c)`` for a one-step window: the gates as two products, the cell in
    the compiled C kernel (what :class:`_ControllerWindow` does without its per-window set-up,
    which costs more than it saves for one step)."""
    from fwmrl.memory.fwm import _LSTMCellFromGates  # noqa: PLC0415 (import cycle)

    gates = torch.addmm(cell.bias_ih, torch.cat([x, read], dim=-1), cell.weight_ih.t())
    gates = torch.addmm(gates, h, cell.weight_hh.t()) + cell.bias_hh
    return _LSTMCellFromGates.apply(gates, c, _KERNEL_SIZE)


class _PerceptronStep(torch.autograd.Function):
    """One MNM-p step's memory (one head): ``(recon, read, W1, W2, W3)`` after the step from
    ``(W1, W2, W3, kvr [B, 3 d_k], beta [B], targets [B, 2 d_m + d_k])``, forward and backward in
    the compiled kernels (:func:`fwmrl.memory.fwm_kernel.mnm_p_step`,
    :func:`~fwmrl.memory.fwm_kernel.mnm_p_step_backward`): one autograd node for the memory's
    two passes and three updates."""

    @staticmethod
    def forward(ctx, w1, w2, w3, kvr, beta, targets):  # noqa: ANN001, ANN205
        recon, read, new, save = fwm_kernel.mnm_p_step((w1, w2, w3), kvr, beta, targets)
        ctx.save_for_backward(w1, w2, w3, kvr, beta, targets, save)
        ctx.set_materialize_grads(False)
        return recon, read, *new

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):  # noqa: ANN001, ANN205
        return fwm_kernel.mnm_p_step_backward(ctx.saved_tensors, grads)
