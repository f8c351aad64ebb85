"""The fast-weight scan of FWM: writes and multi-hop reads over the third-order tensor ``F``.

This is the one place that runs the recurrence over time; :class:`fwmrl.memory.fwm.FWMCore` computes
the LSTM controller and all projections for the whole sequence first and hands them here. A faster
implementation (fused, chunk-parallel, custom backward) registers itself in :data:`FWM_SCANS` and is
selected with ``FWMCore(..., implementation=NAME)``; ``"naive"`` stays the reference.

Shapes: ``write[T, B, 3m + 1]`` holds the pre-activations ``[ŝ; r̂; v̂; b̂]``, ``read[T, B, m + N_r m]``
holds ``[n̂₀; ê₁ … ê_{N_r}]``, ``F[B, m, m, m]`` the fast weights.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as functional
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from fwmrl.memory import fwm_kernel


@dataclasses.dataclass(frozen=True)
class FWMScanOptions:
    """What a scan needs to know besides the tensors.

    Parameters
    ----------
    memory_size:
        ``m``; ``F`` is ``m × m × m`` per sequence.
    read_hops:
        ``N_r``, the number of chained reads.
    write_scale:
        ``λ`` in the delta rule ``F' = F + K ⊗ (λ β (v − v_old))``.
    tanh_query:
        Apply ``tanh`` to the first query ``n⁽⁰⁾`` (the authors' language-model code).
    tanh_hop_keys:
        Apply ``tanh`` to the hop keys ``e_i`` (off in the authors' RL code).
    layer_norm_eps:
        Epsilon of the parameter-free layer norm after every hop.
    chunk_size:
        Steps between stored ``F`` for implementations that recompute inside chunks.
    kernel:
        Where the compiled CPU kernels of :mod:`fwmrl.memory.fwm_kernel` run: a single step on
        the factor form without autograd (the acting path) and the chunk scans' delta-rule
        recurrence (:class:`_ScaledDeltaRecurrence`, forward and backward). ``"auto"``: where
        they build, else eager PyTorch; ``"compiled"``: an error where they cannot build;
        ``"eager"``: never. Same values and gradients to float rounding (tested).
    """

    memory_size: int
    read_hops: int = 3
    write_scale: float = 1.0
    tanh_query: bool = False
    tanh_hop_keys: bool = True
    layer_norm_eps: float = 1e-5
    chunk_size: int = 16
    kernel: str = "auto"


ScanFn = Callable[[Tensor, Tensor, Tensor, "Tensor | None", FWMScanOptions], tuple[Tensor, Tensor]]


def _segment_masks(
    resets: Tensor | None, batch: int, steps: int, like: Tensor
) -> tuple[Tensor, Tensor, Tensor | None]:
    """For a chunk of ``steps`` steps: ``same_segment [B, C, C]`` (1 where step ``r <= t`` lies in
    the same episode segment as ``t``), ``from_start [B, C]`` (1 where no reset happened yet in the
    chunk, so the chunk's initial memory is visible) in ``like``'s dtype, and the resets ``[B, C]``
    (``None`` without resets)."""
    causal = torch.ones(steps, steps, dtype=torch.bool, device=like.device).tril()
    if resets is None:
        same_segment = causal.expand(batch, steps, steps)
        from_start = torch.ones(batch, steps, dtype=torch.bool, device=like.device)
        reset_at = None
    else:
        reset_at = resets.transpose(0, 1)  # [B, C]
        segment = reset_at.long().cumsum(dim=1)
        same_segment = (segment.unsqueeze(2) == segment.unsqueeze(1)) & causal
        from_start = segment == 0
    return same_segment.to(like.dtype), from_start.to(like.dtype), reset_at


def _decay(log_g_at: Tensor, log_g_before: Tensor, same_segment: Tensor) -> Tensor:
    """Coefficient ``exp(log g_t − log g_{r-1})`` of write ``r`` in ``F_t`` ``[B, C, C]``, zero where
    ``r`` is not in ``t``'s segment. The exponent is masked before ``exp``: for ``r > t`` it is
    positive and, where the chunk's writes shrink ``F`` by more than float32's range, ``exp``
    would give ``inf`` and the mask ``inf · 0 = NaN``."""
    exponent = log_g_at.unsqueeze(2) - log_g_before.unsqueeze(1)
    return exponent.masked_fill(same_segment == 0, -math.inf).exp()


def _compiled(opts: FWMScanOptions, like: Tensor) -> bool:
    """Whether the compiled kernels run for tensors like ``like`` (:attr:`FWMScanOptions.kernel`)."""
    if opts.kernel == "eager":
        return False
    if fwm_kernel.available(like, opts.memory_size):
        return True
    if opts.kernel == "compiled":
        raise RuntimeError(
            "FWM kernel='compiled': the compiled kernels are unavailable here (CPU float32/float64 "
            "tensors and a C compiler needed); use 'auto' or 'eager'"
        )
    return False


def hop(F: Tensor, n: Tensor, e: Tensor) -> Tensor:
    """``Σ_{a,b} n[a] e[b] F[a, b, :]`` for a batch: ``F[B, m, m, m]``, ``n, e [B, m]`` → ``[B, m]``."""
    batch, m = n.shape
    t = torch.bmm(n.unsqueeze(1), F.reshape(batch, m, m * m)).view(batch, m, m)
    return torch.bmm(e.unsqueeze(1), t).squeeze(1)


def write_activations(
    write: Tensor, opts: FWMScanOptions, tanh: Callable[[Tensor], Tensor] = torch.tanh
) -> tuple[Tensor, Tensor]:
    """The write of ``write_proj``'s outputs ``write [..., 3m + 1] = (ŝ, r̂, v̂, b̂)``, as every scan
    makes it: the keys and value ``tanh([ŝ, r̂, v̂]) = [k1, k2, v]`` side by side ``[..., 3m]``
    (``.split(m, dim=-1)`` separates them) and the write rate ``λβ = λ σ(b̂ + 1) [..., 1]``
    (``λ = opts.write_scale``).

    ``tanh`` is ``torch.tanh`` or :func:`_tanh` (the same function through ``sigmoid``, faster on
    CPU). The input is split, not sliced: a split's backward is one concatenation, a slice's a
    zero-filled tensor of the whole input.
    """
    key_inputs, rate_inputs = write.split([3 * opts.memory_size, 1], dim=-1)
    return tanh(key_inputs), opts.write_scale * torch.sigmoid(rate_inputs + 1.0)


def fwm_step(F: Tensor, write: Tensor, read: Tensor, opts: FWMScanOptions) -> tuple[Tensor, Tensor]:
    """One FWM step for a batch, exactly as the equations read: write, renormalise, then read.

    Returns the last hop's result ``n⁽ᴺʳ⁾ [B, m]`` and the updated ``F``.
    """
    m = opts.memory_size
    keys, rate = write_activations(write, opts)
    k1, k2, v = keys.split(m, dim=-1)
    v_old = hop(F, k1, k2)
    u = rate * (v - v_old)
    F = F + k1[:, :, None, None] * k2[:, None, :, None] * u[:, None, None, :]
    norm = F.flatten(1).norm(dim=1).clamp(min=1.0)
    F = F / norm.view(-1, 1, 1, 1)

    n = read[:, :m]
    if opts.tanh_query:
        n = torch.tanh(n)
    for i in range(1, opts.read_hops + 1):
        e = read[:, i * m : (i + 1) * m]
        if opts.tanh_hop_keys:
            e = torch.tanh(e)
        n = functional.layer_norm(hop(F, n, e), (m,), eps=opts.layer_norm_eps)
    return n, F


def single_step_scan(
    write: Tensor, read: Tensor, F: Tensor, resets: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, Tensor]:
    """:func:`naive_scan` for a window of one step (the acting path), in fewer operations.

    The same equations as :func:`fwm_step` (tested equal). At acting sizes a step costs its
    number of tensor operations (views included), not its arithmetic, so this one keeps every
    vector as ``[B, 1, m]`` for batched products: the keys are :func:`write_activations`,
    the write is one rank-one ``baddbmm`` on ``F`` viewed as ``[B, m², m]``, each hop is two
    products and a layer norm, and a reset is one multiplication (``resets=None``: none).
    """
    m, batch, hops = opts.memory_size, F.shape[0], opts.read_hops
    if resets is not None:
        F = F * (~resets[0]).to(F.dtype).view(batch, 1, 1, 1)
    keys, rate = write_activations(write.view(batch, 1, 3 * m + 1), opts)  # λβ [B, 1, 1]
    k1, k2, v = keys.split(m, dim=-1)  # [B, 1, m] each
    v_old = torch.bmm(k2, torch.bmm(k1, F.view(batch, m, m * m)).view(batch, m, m))
    u = rate * (v - v_old)
    key = torch.bmm(k1.transpose(1, 2), k2)  # k1 ⊗ k2 [B, m, m]
    F = torch.baddbmm(F.view(batch, m * m, m), key.view(batch, m * m, 1), u)
    F = F / torch.linalg.vector_norm(F, dim=(1, 2), keepdim=True).clamp(min=1.0)
    read = read.view(batch, 1, (hops + 1) * m)
    n = read[:, :, :m]
    if opts.tanh_query:
        n = torch.tanh(n)
    hop_keys = read[:, :, m:]
    if opts.tanh_hop_keys:
        hop_keys = torch.tanh(hop_keys)
    flat = F.view(batch, m, m * m)
    for e in hop_keys.reshape(batch, hops, 1, m).unbind(1):
        value = torch.bmm(e, torch.bmm(n, flat).view(batch, m, m))
        n = torch.layer_norm(value, (m,), None, None, opts.layer_norm_eps)
    return n.view(1, batch, m), F.view(batch, m, m, m)


def naive_scan(
    write: Tensor, read: Tensor, F: Tensor, resets: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, Tensor]:
    """Step by step in eager PyTorch; autograd keeps every ``F_t`` (m³ floats per step and sequence)."""
    outputs = []
    any_reset = [False] * write.shape[0] if resets is None else resets.any(dim=1).tolist()
    for t in range(write.shape[0]):
        if any_reset[t]:
            F = F * (~resets[t]).to(F.dtype).view(-1, 1, 1, 1)
        n, F = fwm_step(F, write[t], read[t], opts)
        outputs.append(n)
    return torch.stack(outputs), F


def _scan_in_chunks(
    chunk_scan: ScanFn,
    write: Tensor,
    read: Tensor,
    F: Tensor,
    resets: Tensor | None,
    opts: FWMScanOptions,
    recompute: bool,
) -> tuple[Tensor, Tensor]:
    """Run ``chunk_scan`` over consecutive chunks of ``chunk_size`` steps, carrying ``F``; with
    ``recompute``, autograd keeps only each chunk's inputs and recomputes the chunk in backward."""
    outputs = []
    for start in range(0, write.shape[0], opts.chunk_size):
        end = start + opts.chunk_size
        args = (write[start:end], read[start:end], F, None if resets is None else resets[start:end])
        if recompute:
            n, F = checkpoint(chunk_scan, *args, opts, use_reentrant=False)
        else:
            n, F = chunk_scan(*args, opts)
        outputs.append(n)
    return torch.cat(outputs), F


def checkpointed_scan(
    write: Tensor, read: Tensor, F: Tensor, resets: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, Tensor]:
    """The naive scan with activation checkpointing: ``F`` is kept only every ``chunk_size`` steps
    and each chunk is recomputed during backward. Same values and gradients as :func:`naive_scan`."""
    if not torch.is_grad_enabled() or not (write.requires_grad or read.requires_grad):
        return naive_scan(write, read, F, resets, opts)
    return _scan_in_chunks(naive_scan, write, read, F, resets, opts, recompute=True)


def hop_many(F: Tensor, n: Tensor, e: Tensor) -> Tensor:
    """:func:`hop` for ``C`` queries per sequence in one pass over ``F``: ``n, e [B, C, m]`` → ``[B, C, m]``."""
    batch, chunk, m = n.shape
    t = torch.bmm(n, F.reshape(batch, m, m * m)).view(batch, chunk, m, m)
    if torch.is_grad_enabled() and (e.requires_grad or t.requires_grad):
        return _RowTimesMatrix.apply(e, t)
    return (e.unsqueeze(2) @ t).squeeze(2)


class _RowTimesMatrix(torch.autograd.Function):
    """``(e.unsqueeze(2) @ t).squeeze(2)`` for ``e [B, C, m]``, ``t [B, C, m, m]`` with the
    gradient of ``t`` as a broadcast product ``e ⊗ grad`` instead of autograd's ``B·C`` batched
    ``m × 1 × m`` matrix products (0.6 ms a call for 4 × 64 queries, m = 16: a PPO minibatch's
    forward and backward 1.07x faster, same process).
    The same values and gradients bit for bit: an inner dimension of one is a single product."""

    @staticmethod
    def forward(ctx, e, t):  # noqa: ANN001, ANN205
        ctx.save_for_backward(e, t)
        return (e.unsqueeze(2) @ t).squeeze(2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        e, t = ctx.saved_tensors
        m = t.shape[-1]
        grad_e = grad_t = None
        if ctx.needs_input_grad[0]:  # what autograd's bmm backward computes
            rows = grad.reshape(-1, 1, m)
            grad_e = torch.bmm(rows, t.reshape(-1, m, m).transpose(1, 2)).view_as(e)
        if ctx.needs_input_grad[1]:
            grad_t = e.unsqueeze(3) * grad.unsqueeze(2)
        return grad_e, grad_t


def _scale(norm_sq: Tensor) -> Tensor:
    """``1 / max(1, sqrt(norm_sq))`` with finite gradients everywhere (also at ``norm_sq = 0``)."""
    above = norm_sq > 1.0
    return torch.where(above, norm_sq.clamp(min=1.0).rsqrt(), torch.ones_like(norm_sq))


class _DeltaRecurrence(torch.autograd.Function):
    """The sequential core of a chunk: delta-rule values and norm scales, with a hand-written backward.

    Within a chunk ``F_t = g_t F_0 + Σ_{r≤t} (g_t / g_{r-1}) k_r u_rᵀ`` with ``g_t = Π_{r≤t} c_r``,
    kept as ``log g`` so no ratio overflows. For ``t = 0 … C-1`` (batched over ``B``)::

        ν     = ν · keep_t                                   (‖F‖², zeroed at a reset)
        a_r   = exp(log g_{t-1} − log g_{r-1}) W_{t,r},  r < t
        v_old = g_{t-1} A_t + Σ_{r<t} a_r u_r
        u_t   = ρ_t (v_t − v_old)
        ν'    = ν + 2 v_oldᵀ u_t + D_t ‖u_t‖²                 (‖F_{t-1} + k_t u_tᵀ‖²)
        c_t   = 1 / max(1, √ν'),  ν = ν' c_t²,  log g_t = log g_{t-1} + log c_t

    Inputs: ``A [B, C, m]`` old values read from ``F_0`` (zero after a reset), ``W [B, C, C]`` key
    products ``k_tᵀ k_r`` (zero across resets), ``D [B, C]`` their diagonal, ``ρ [B, C]`` the write
    rates ``λβ``, ``v [B, C, m]`` the new values, ``keep [B, C]`` (or ``None``) and ``ν₀ [B]``.
    Outputs: ``U [B, C, m]``, ``log g_{t-1} [B, C]`` and ``log g_{C-1} [B]``.

    Autograd through the step-by-step loop records about 60 small operations per step; this
    forward runs a dozen without recording and the backward replays the steps in reverse with the
    saved per-step quantities.
    """

    @staticmethod
    def forward(ctx, A, W, D, rate, v, keep, norm_sq):  # noqa: ANN001, ANN205
        batch, steps, m = v.shape
        U = v.new_zeros(batch, steps, m)
        v_old = v.new_empty(batch, steps, m)
        weights = v.new_zeros(batch, steps, steps)  # a_r of every step
        grown = v.new_empty(batch, steps)
        log_g_before = v.new_empty(batch, steps)
        log_g = v.new_zeros(batch)
        for t in range(steps):
            if keep is not None:
                norm_sq = norm_sq * keep[:, t]
            log_g_before[:, t] = log_g
            vo = torch.exp(log_g).unsqueeze(1) * A[:, t]
            if t > 0:
                a = torch.exp(log_g.unsqueeze(1) - log_g_before[:, :t]) * W[:, t, :t]
                weights[:, t, :t] = a
                vo = vo + (a.unsqueeze(2) * U[:, :t]).sum(1)  # elementwise: tiny matrices
            v_old[:, t] = vo
            u = rate[:, t, None] * (v[:, t] - vo)
            U[:, t] = u
            g = norm_sq + 2 * (vo * u).sum(-1) + D[:, t] * u.square().sum(-1)
            grown[:, t] = g
            scale = _scale(g)
            norm_sq = g * scale.square()
            log_g = log_g + torch.log(scale)
        ctx.save_for_backward(A, W, D, rate, v, keep, U, v_old, weights, grown, log_g_before)
        return U, log_g_before, log_g

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_U, grad_log_g_before, grad_log_g):  # noqa: ANN001, ANN205
        A, W, D, rate, v, keep, U, v_old, weights, grown, log_g_before = ctx.saved_tensors
        batch, steps, m = v.shape
        grad_U = grad_U.clone()  # accumulates the later steps' use of each u_r
        grad_lgb = grad_log_g_before.clone()
        grad_A = torch.empty_like(A)
        grad_W = torch.zeros_like(W)
        grad_D = torch.empty_like(D)
        grad_rate = torch.empty_like(rate)
        grad_v = torch.empty_like(v)
        bar_log_g = grad_log_g.clone()  # adjoint of log g_t (after step t)
        bar_norm = torch.zeros_like(grad_log_g)  # adjoint of ν after step t
        for t in range(steps - 1, -1, -1):
            g = grown[:, t]
            above = g > 1.0
            scale = torch.where(above, g.clamp(min=1.0).rsqrt(), torch.ones_like(g))
            # log g_t = log g_{t-1} + log c, ν = g c²; c = g^{-1/2} above 1, else 1.
            bar_scale = bar_log_g / scale + bar_norm * 2 * g * scale
            bar_g = bar_norm * scale.square() + torch.where(
                above, -0.5 * scale.pow(3) * bar_scale, torch.zeros_like(g)
            )
            vo, u = v_old[:, t], U[:, t]
            bar_u = grad_U[:, t] + bar_g.unsqueeze(1) * (2 * vo + 2 * D[:, t, None] * u)
            bar_vo = 2 * bar_g.unsqueeze(1) * u
            grad_D[:, t] = bar_g * u.square().sum(-1)
            diff = v[:, t] - vo
            grad_rate[:, t] = (bar_u * diff).sum(-1)
            grad_v[:, t] = rate[:, t, None] * bar_u
            bar_vo = bar_vo - grad_v[:, t]
            g_prev = torch.exp(log_g_before[:, t])
            grad_A[:, t] = g_prev.unsqueeze(1) * bar_vo
            bar_lgb = bar_log_g + grad_lgb[:, t] + (bar_vo * A[:, t]).sum(-1) * g_prev
            if t > 0:
                a = weights[:, t, :t]
                bar_a = (U[:, :t] * bar_vo.unsqueeze(1)).sum(2)  # [B, t]
                grad_U[:, :t] += a.unsqueeze(2) * bar_vo.unsqueeze(1)
                exponent = torch.exp(log_g_before[:, t, None] - log_g_before[:, :t])
                grad_W[:, t, :t] = bar_a * exponent
                bar_x = bar_a * a  # adjoint of log g_{t-1} − log g_{r-1}
                bar_lgb = bar_lgb + bar_x.sum(-1)
                grad_lgb[:, :t] -= bar_x
            bar_log_g = bar_lgb  # log g_{t-1} is the previous step's log g
            bar_norm = bar_g if keep is None else bar_g * keep[:, t]
        return grad_A, grad_W, grad_D, grad_rate, grad_v, None, bar_norm


class _ScaledDeltaRecurrence(torch.autograd.Function):
    """:class:`_DeltaRecurrence` in the frame of the unnormalised memory: the same inputs, outputs
    and gradients in about a fifth of the operations per step.

    With ``s_t = 1 / g_{t-1}`` (``s_0 = 1``) the chunk's memory before step ``t`` is
    ``F_{t-1} = (F_0 + Σ_{r<t} k_r ũ_rᵀ) / s_t`` with ``ũ_r = s_r u_r``, and the norm bound becomes
    a running maximum. For ``t = 0 … C-1`` (batched over ``B``)::

        ν   = ν · keep_t                      (‖F_0 + Σ k_r ũ_rᵀ‖², zeroed at a reset)
        ṽ_t = A_t + Σ_{r<t} W_{t,r} ũ_r       (v_old s_t: one batched product)
        ũ_t = ρ_t (s_t v_t − ṽ_t)
        ν   = ν + 2 ṽ_tᵀ ũ_t + D_t ‖ũ_t‖²
        s_{t+1} = max(s_t, √ν)

    and ``U_t = ũ_t / s_t``, ``log g_{t-1} = −log s_t``. ``s`` only grows (by at most the write's
    size per step), so where it would overflow the dtype (never in the tests' or the benchmarks'
    windows) the call falls back to :class:`_DeltaRecurrence`'s log-domain steps. The backward is
    hand-written: the adjoints of ``ũ`` and ``s`` stepped in reverse (a dozen operations per step),
    then the inputs' gradients in a few batched operations.
    """

    @staticmethod
    def forward(ctx, A, W, D, rate, v, keep, norm_sq, compiled=False):  # noqa: ANN001, ANN205
        batch, steps, m = v.shape
        ctx.compiled = compiled
        if compiled:  # the same loop per sequence in C (fwmrl.memory.fwm_kernel)
            scaled_u, scaled_v, S = fwm_kernel.delta_forward(A, W, D, rate, v, keep, norm_sq)
            return _ScaledDeltaRecurrence._finish(
                ctx, A, W, D, rate, v, keep, norm_sq, scaled_u, scaled_v, S
            )
        scaled_u = v.new_zeros(batch, steps, m)  # ũ (zero where not yet computed)
        scaled_v = v.new_empty(batch, steps, m)  # ṽ
        S = v.new_empty(batch, steps + 1)  # s_t
        u_rows = scaled_u.unsqueeze(2).unbind(1)  # [B, 1, m] views that write into scaled_u
        v_rows = scaled_v.unsqueeze(2).unbind(1)
        s_rows = S.view(batch, steps + 1, 1, 1).unbind(1)
        A_rows = A.unsqueeze(2).unbind(1)
        W_rows = W.unsqueeze(2).unbind(1)  # [B, 1, C]
        rate_rows = rate.view(batch, steps, 1, 1).unbind(1)
        rv_rows = (rate.unsqueeze(2) * v).unsqueeze(2).unbind(1)
        half_D_rows = (0.5 * D).view(batch, steps, 1, 1).unbind(1)
        resets_at = [False] * steps if keep is None else (keep != 1).any(0).tolist()
        keep_rows = None if keep is None else keep.view(batch, steps, 1, 1).unbind(1)
        s = v.new_ones(batch, 1, 1)
        s_rows[0].copy_(s)
        nu = norm_sq.reshape(batch, 1, 1)
        for t in range(steps):
            if resets_at[t]:
                nu = nu * keep_rows[t]  # type: ignore[index]
            vt = torch.baddbmm(A_rows[t], W_rows[t], scaled_u)  # rows >= t of ũ are still zero
            u = torch.addcmul(rv_rows[t] * s, rate_rows[t], vt, value=-1.0)
            u_rows[t].copy_(u)
            v_rows[t].copy_(vt)
            nu = torch.baddbmm(
                nu, torch.addcmul(vt, half_D_rows[t], u), u.transpose(1, 2), alpha=2.0
            )
            s = torch.fmax(s, nu.sqrt())  # fmax: a (rounded) negative ν leaves s as it is
            s_rows[t + 1].copy_(s)
        return _ScaledDeltaRecurrence._finish(
            ctx, A, W, D, rate, v, keep, norm_sq, scaled_u, scaled_v, S
        )

    @staticmethod
    def _finish(ctx, A, W, D, rate, v, keep, norm_sq, scaled_u, scaled_v, S):  # noqa: ANN001, ANN205
        """The outputs from the stepped ``ũ, ṽ, s`` (or the log-domain fallback)."""
        steps = v.shape[1]
        if not bool(torch.isfinite(S[:, -1]).all()):
            ctx.log_domain = True
            return _DeltaRecurrence.forward(ctx, A, W, D, rate, v, keep, norm_sq)
        ctx.log_domain = False
        U = scaled_u / S[:, :steps, None]
        log_S = torch.log(S)
        ctx.save_for_backward(W, D, rate, v, keep, scaled_u, scaled_v, S)
        return U, -log_S[:, :steps], -log_S[:, steps]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_U, grad_log_g_before, grad_log_g):  # noqa: ANN001, ANN205
        if ctx.log_domain:
            return (*_DeltaRecurrence.backward(ctx, grad_U, grad_log_g_before, grad_log_g), None)
        W, D, rate, v, keep, scaled_u, scaled_v, S = ctx.saved_tensors
        batch, steps, m = v.shape
        s_before, s_after = S[:, :steps], S[:, 1:]
        inv_s = 1.0 / s_before
        # Adjoints the outputs give directly: U_t = ũ_t / s_t, log g_{t-1} = −log s_t.
        direct_u = grad_U * inv_s.unsqueeze(2)
        direct_s = -((grad_U * scaled_u).sum(-1) * inv_s + grad_log_g_before) * inv_s
        # s_{t+1} = max(s_t, √ν_t): the adjoint goes to ν_t (as 1 / (2 s_{t+1})) or on to s_t.
        grew = s_after > s_before
        to_norm = grew.to(v.dtype) * (0.5 / s_after)
        passes = (~grew).to(v.dtype)
        norm_weight = 2.0 * (scaled_v + D.unsqueeze(2) * scaled_u)  # ∂ν_t / ∂ũ_t
        strictly_lower = torch.ones(steps, steps, dtype=torch.bool, device=v.device).tril(-1)
        if ctx.compiled:
            bar_v, bar_u, bar_norm, carry = fwm_kernel.delta_backward(
                direct_u,
                direct_s,
                to_norm,
                passes,
                norm_weight,
                scaled_u,
                rate,
                rate.unsqueeze(2) * v,
                W,
                keep,
                -grad_log_g / S[:, steps],
            )
            grad_W = (bar_v @ scaled_u.transpose(1, 2)) * strictly_lower
            grad_D = bar_norm * scaled_u.square().sum(-1)
            grad_rate = (bar_u * (s_before.unsqueeze(2) * v - scaled_v)).sum(-1)
            grad_v = (rate * s_before).unsqueeze(2) * bar_u
            return bar_v, grad_W, grad_D, grad_rate, grad_v, None, carry, None
        rows = {
            "direct_u": direct_u.unsqueeze(2).unbind(1),
            "direct_s": direct_s.view(batch, steps, 1, 1).unbind(1),
            "to_norm": to_norm.view(batch, steps, 1, 1).unbind(1),
            "passes": passes.view(batch, steps, 1, 1).unbind(1),
            "norm_weight": norm_weight.unsqueeze(2).unbind(1),
            "twice_u": (2.0 * scaled_u).unsqueeze(2).unbind(1),
            "rate": rate.view(batch, steps, 1, 1).unbind(1),
            "rv": (rate.unsqueeze(2) * v).unsqueeze(3).unbind(1),  # [B, m, 1]
            # W[:, :, t] as [B, 1, C], contiguous rows: a strided left operand sends baddbmm to a
            # per-matrix loop of addmm (30x slower at B = 600)
            "W_cols": W.transpose(1, 2).contiguous().unsqueeze(2).unbind(1),
        }
        bar_v = v.new_zeros(batch, steps, m)  # adjoint of ṽ (zero where not yet computed)
        bar_u = v.new_empty(batch, steps, m)
        bar_norm = v.new_empty(batch, steps)  # adjoint of ν_t
        bar_v_rows = bar_v.unsqueeze(2).unbind(1)
        bar_u_rows = bar_u.unsqueeze(2).unbind(1)
        bar_norm_rows = bar_norm.view(batch, steps, 1, 1).unbind(1)
        resets_at = [False] * steps if keep is None else (keep != 1).any(0).tolist()
        keep_rows = None if keep is None else keep.view(batch, steps, 1, 1).unbind(1)
        bar_s = (-grad_log_g / S[:, steps]).view(batch, 1, 1)
        carry = v.new_zeros(batch, 1, 1)  # adjoint of ν_t from step t + 1
        for t in range(steps - 1, -1, -1):
            nb = torch.addcmul(carry, rows["to_norm"][t], bar_s)
            # ũ_t is read by later steps' ṽ (through W[:, :, t]), by ν_t and by U_t
            ub = torch.baddbmm(rows["direct_u"][t], rows["W_cols"][t], bar_v)
            ub = torch.addcmul(ub, nb, rows["norm_weight"][t])
            vb = torch.addcmul(nb * rows["twice_u"][t], rows["rate"][t], ub, value=-1.0)
            bar_v_rows[t].copy_(vb)
            bar_u_rows[t].copy_(ub)
            bar_norm_rows[t].copy_(nb)
            bar_s = torch.addcmul(
                torch.baddbmm(rows["direct_s"][t], ub, rows["rv"][t]), rows["passes"][t], bar_s
            )
            carry = nb * keep_rows[t] if resets_at[t] else nb  # type: ignore[index]
        grad_W = (bar_v @ scaled_u.transpose(1, 2)) * strictly_lower
        grad_D = bar_norm * scaled_u.square().sum(-1)
        grad_rate = (bar_u * (s_before.unsqueeze(2) * v - scaled_v)).sum(-1)
        grad_v = (rate * s_before).unsqueeze(2) * bar_u
        return bar_v, grad_W, grad_D, grad_rate, grad_v, None, carry.view(batch), None


def _chunk_scan(
    write: Tensor, read: Tensor, F: Tensor, resets: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, Tensor]:
    """FWM over one chunk of ``C`` steps with ``F`` read and written once (see :func:`chunked_scan`)."""
    m, steps, batch = opts.memory_size, write.shape[0], write.shape[1]
    write, read = write.transpose(0, 1), read.transpose(0, 1)  # [B, C, ...]
    keys, rate = write_activations(write, opts)  # λβ [B, C, 1]
    k1, k2, v = keys.split(m, dim=-1)

    same_segment, from_start, reset_at = _segment_masks(resets, batch, steps, F)

    # Old values under each key from the chunk's initial memory, and the keys' Gram matrix.
    v_old_initial = hop_many(F, k1, k2)  # [B, C, m]
    gram = (k1 @ k1.transpose(1, 2)) * (k2 @ k2.transpose(1, 2))  # k_tᵀ k_r, [B, C, C]
    norm_sq = F.flatten(1).square().sum(dim=1)  # ‖F‖², [B]

    # Sequential part, on vectors only: the delta rule's values u_t and the renormalisation scales
    # (see :class:`_DeltaRecurrence`).
    initial_values = v_old_initial * from_start.unsqueeze(2)
    weights = gram * same_segment
    keep = None if reset_at is None else (~reset_at).to(F.dtype)
    U, log_g_before, log_g = _ScaledDeltaRecurrence.apply(
        initial_values,
        weights,
        torch.diagonal(gram, dim1=1, dim2=2),
        rate.squeeze(2),
        v,
        keep,
        norm_sq,
        _compiled(opts, v),
    )
    log_g_at = torch.cat([log_g_before[:, 1:], log_g.unsqueeze(1)], dim=1)  # log g_t

    # Coefficient of write r in F_t, and of F_0 in F_t.
    decay = _decay(log_g_at, log_g_before, same_segment)
    initial = torch.exp(log_g_at) * from_start  # [B, C]

    n = read[..., :m]
    if opts.tanh_query:
        n = torch.tanh(n)
    for i in range(1, opts.read_hops + 1):
        e = read[..., i * m : (i + 1) * m]
        if opts.tanh_hop_keys:
            e = torch.tanh(e)
        match = (n @ k1.transpose(1, 2)) * (e @ k2.transpose(1, 2))  # (n_t ⊗ e_t)ᵀ k_r
        value = initial.unsqueeze(2) * hop_many(F, n, e) + (match * decay) @ U
        n = functional.layer_norm(value, (m,), eps=opts.layer_norm_eps)

    keys = (k1.unsqueeze(3) * k2.unsqueeze(2)).reshape(batch, steps, m * m)
    last = decay[:, -1].unsqueeze(2)  # [B, C, 1]
    F_end = initial[:, -1].view(batch, 1, 1) * F.reshape(batch, m * m, m) + (
        (keys * last).transpose(1, 2) @ U
    )
    return n.transpose(0, 1), F_end.view(batch, m, m, m)


def chunked_scan(
    write: Tensor, read: Tensor, F: Tensor, resets: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, Tensor]:
    """Chunk-parallel FWM: per chunk of ``chunk_size`` steps, ``F`` is read ``N_r + 1`` times and
    written once instead of ``≈ 2N_r + 3`` passes per step.

    Every write is rank one, ``F_t = c_t (F_{t-1} + k_t u_tᵀ)``, so inside a chunk ``F_t`` is ``F_0``
    plus the chunk's writes with known scalar weights. The delta rule's values ``u_t`` and the norm
    scales ``c_t`` (from ``‖F'‖² = ‖F‖² + 2 v_oldᵀu + ‖k‖²‖u‖²``) need only ``C × C`` key products and
    ``m``-vectors, stepped in order; every read of a chunk is then one batched contraction with
    ``F_0`` plus a ``C × C`` correction. Resets inside a chunk cut the sums per sequence. Autograd
    stores ``F`` once per chunk. A single step (the acting path) runs :func:`single_step_scan`,
    which needs fewer operations there.
    """
    if write.shape[0] == 1:
        return single_step_scan(write, read, F, resets, opts)
    return _scan_in_chunks(_chunk_scan, write, read, F, resets, opts, recompute=False)


def chunked_checkpointed_scan(
    write: Tensor, read: Tensor, F: Tensor, resets: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, Tensor]:
    """:func:`chunked_scan` that recomputes each chunk during backward: autograd keeps only the
    chunk boundaries' ``F`` (less memory, about one more forward pass)."""
    if not torch.is_grad_enabled():
        return chunked_scan(write, read, F, resets, opts)
    return _scan_in_chunks(_chunk_scan, write, read, F, resets, opts, recompute=True)


FWM_SCANS: dict[str, ScanFn] = {
    "naive": naive_scan,
    "checkpoint": checkpointed_scan,
    "chunked": chunked_scan,
    "chunked_checkpoint": chunked_checkpointed_scan,
}
"""Scan implementations by name. All must give ``naive``'s outputs and gradients."""


# ---------------------------------------------------------------------------------- low-rank form
class LowRankMemory(NamedTuple):
    """Fast weights kept as their writes: ``F = Σ_r weight_r (k1_r ⊗ k2_r) ⊗ u_r``.

    A window that starts from a reset (a zero ``F``) holds at most one write per step, so for
    ``R`` writes with ``R·m`` well below ``m³`` every read and the norm are cheaper from these
    factors than from the dense tensor. Writes are shared slots across the batch: write ``r`` is the
    ``r``-th step since the factors were started, and a sequence that resets zeroes its weights.

    Attributes
    ----------
    k1, k2, u:
        ``[B, R, m]``: the two key factors and the delta-rule value of every write.
    weight:
        ``[B, R]``: the coefficient of each write in ``F`` (the product of the norm scales since).
    norm_sq:
        ``[B]``: ``‖F‖²``.
    """

    k1: Tensor
    k2: Tensor
    u: Tensor
    weight: Tensor
    norm_sq: Tensor

    @property
    def writes(self) -> int:
        """Writes held (``R``)."""
        return self.k1.shape[1]

    @staticmethod
    def empty(batch: int, m: int, like: Tensor) -> LowRankMemory:
        """No writes: ``F = 0`` for ``batch`` sequences (dtype and device of ``like``)."""
        factors = like.new_zeros(batch, 0, m)
        return LowRankMemory(
            factors, factors, factors, like.new_zeros(batch, 0), like.new_zeros(batch)
        )

    def to_dense(self) -> Tensor:
        """``F [B, m, m, m]``."""
        batch, _, m = self.k1.shape
        keys = (self.k1.unsqueeze(3) * self.k2.unsqueeze(2)).flatten(2)  # [B, R, m²]
        F = (keys * self.weight.unsqueeze(2)).transpose(1, 2) @ self.u
        return F.view(batch, m, m, m)


def lowrank_hop_many(memory: LowRankMemory, n: Tensor, e: Tensor) -> Tensor:
    """:func:`hop_many` from the factors: ``Σ_r w_r (n·k1_r)(e·k2_r) u_r`` for ``n, e [B, C, m]``."""
    if memory.writes == 0:
        return torch.zeros_like(n)
    match = (n @ memory.k1.transpose(1, 2)) * (e @ memory.k2.transpose(1, 2))  # [B, C, R]
    return (match * memory.weight.unsqueeze(1)) @ memory.u


def _tanh(x: Tensor) -> Tensor:
    """``tanh(x) = 2σ(2x) − 1``: the same function and derivative, computed through ``sigmoid``,
    which the CPU kernels of this torch build run about twice as fast as ``tanh`` (an absolute
    rounding difference of about one float epsilon)."""
    return torch.sigmoid(2 * x) * 2 - 1


def _lowrank_step(
    write: Tensor, read: Tensor, memory: LowRankMemory, reset: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, LowRankMemory]:
    """One step (``write[B, 3m + 1]``, ``read[B, m + N_r m]``, ``reset[B]``) on the factors: the
    old value and the reads are ``R``-term sums, the norm follows
    ``‖F + k uᵀ‖² = ‖F‖² + 2 v_oldᵀu + ‖k1‖²‖k2‖²‖u‖²``, and the write appends one slot.

    At these sizes (hundreds of ``m × R`` matrices) batched matrix products cost mostly their
    per-matrix overhead, so the step batches the queries of each side into one product and forms
    the weighted sums over ``u_r`` elementwise; ``tanh`` is :func:`_tanh`.
    """
    m, hops = opts.memory_size, opts.read_hops
    weight, norm_sq = memory.weight, memory.norm_sq
    if reset is not None and bool(reset.any()):
        keep = (~reset).to(weight.dtype)
        weight, norm_sq = weight * keep.unsqueeze(1), norm_sq * keep
    writes = memory.writes
    keys, rate = write_activations(write, opts, _tanh)  # rate [B, 1]
    key1, key2, v = keys.split(m, dim=-1)
    n = read[:, :m]
    if opts.tanh_query:
        n = torch.tanh(n)
    hop_keys = read[:, m:]
    if opts.tanh_hop_keys:
        hop_keys = _tanh(hop_keys)
    k1 = torch.cat([memory.k1, key1.unsqueeze(1)], dim=1)  # [B, R + 1, m]
    k2 = torch.cat([memory.k2, key2.unsqueeze(1)], dim=1)
    # k1 and the first query against every k1_r; k2 and all hop keys against every k2_r
    # (contiguous [B, m, R + 1] right operands: far faster batched products than strided ones)
    k1_t = k1.transpose(1, 2).contiguous()
    first = torch.bmm(torch.stack([key1, n], dim=1), k1_t)  # [B, 2, R + 1]
    queries2 = torch.cat([key2.unsqueeze(1), hop_keys.view(-1, hops, m)], dim=1)
    second = torch.bmm(queries2, k2.transpose(1, 2).contiguous())  # [B, 1 + N_r, R + 1]
    if writes:
        coef = first[:, 0, :writes] * second[:, 0, :writes] * weight
        v_old = (coef.unsqueeze(2) * memory.u).sum(1)
        u = rate * (v - v_old)
        cross = (v_old * u).sum(-1)
    else:
        u = rate * v
        cross = torch.zeros_like(norm_sq)
    key_sq = first[:, 0, writes] * second[:, 0, writes]  # ‖k1‖²‖k2‖²
    grown = norm_sq + 2 * cross + key_sq * u.square().sum(-1)
    scale = _scale(grown)
    weight = torch.cat([weight, torch.ones_like(scale).unsqueeze(1)], dim=1) * scale.unsqueeze(1)
    memory = LowRankMemory(
        k1, k2, torch.cat([memory.u, u.unsqueeze(1)], dim=1), weight, grown * scale.square()
    )
    # reads on the updated F: n⁽ⁱ⁾ = LN(Σ_r w_r (n⁽ⁱ⁻¹⁾·k1_r)(e_i·k2_r) u_r)
    weighted = second[:, 1:] * weight.unsqueeze(1)  # [B, N_r, R + 1]
    match1 = first[:, 1]
    for i in range(hops):
        if i:
            match1 = torch.bmm(n.unsqueeze(1), k1_t).squeeze(1)
        value = ((match1 * weighted[:, i]).unsqueeze(2) * memory.u).sum(1)
        n = functional.layer_norm(value, (m,), eps=opts.layer_norm_eps)
    return n, memory


def _lowrank_step_compiled(
    write: Tensor, read: Tensor, memory: LowRankMemory, reset: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, LowRankMemory]:
    """:func:`_lowrank_step` without autograd in the compiled kernel
    (:func:`fwmrl.memory.fwm_kernel.lowrank_step`): the activations and resets here, the factor
    sums, the write, the norm and the hops per sequence in one C loop."""
    m = opts.memory_size
    weight, norm_sq = memory.weight, memory.norm_sq
    if reset is not None and bool(reset.any()):
        keep = (~reset).to(weight.dtype)
        weight, norm_sq = weight * keep.unsqueeze(1), norm_sq * keep
    keys, rate = write_activations(write, opts, _tanh)
    query = torch.tanh(read[:, :m]) if opts.tanh_query else read[:, :m]
    hop_keys = _tanh(read[:, m:]) if opts.tanh_hop_keys else read[:, m:]
    n, factors = fwm_kernel.lowrank_step(
        keys, rate.squeeze(-1), query, hop_keys, (*memory[:3], weight, norm_sq), opts.layer_norm_eps
    )
    return n, LowRankMemory(*factors)


def _lowrank_chunk_scan(
    write: Tensor, read: Tensor, memory: LowRankMemory, resets: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, LowRankMemory]:
    """:func:`_chunk_scan` with the initial memory in factor form: its reads are ``R``-term sums
    (none for a window that starts from a reset), the chunk's writes are appended to the factors
    and the end norm is ``‖F_end‖²`` in closed form from ``‖F_0‖²``, the old values and the keys'
    and values' Gram matrices. No ``m³`` tensor is formed."""
    m, steps, batch, hops = opts.memory_size, write.shape[0], write.shape[1], opts.read_hops
    keys, rate = write_activations(write.transpose(0, 1), opts, _tanh)  # rate [B, C, 1]
    k1, k2, v = keys.split(m, dim=-1)  # [B, C, m] each
    # splits, not slices: a split's backward is one concatenation
    n, hop_keys = read.transpose(0, 1).split([m, hops * m], dim=-1)
    if opts.tanh_hop_keys:
        hop_keys = _tanh(hop_keys)
    hop_keys = hop_keys.reshape(batch, steps, hops, m)

    same_segment, from_start, reset_at = _segment_masks(resets, batch, steps, write)

    v_old_initial = lowrank_hop_many(memory, k1, k2)  # [B, C, m]
    k1_t = k1.transpose(1, 2).contiguous()  # [B, m, C], the right operand of every k1 product
    k2_t = k2.transpose(1, 2).contiguous()
    gram = (k1 @ k1_t) * (k2 @ k2_t)  # k_tᵀ k_r, [B, C, C]
    # every hop key against every k2_r in one product: [B, C, N_r, C]
    hop_match = (hop_keys.reshape(batch, steps * hops, m) @ k2_t).view(batch, steps, hops, steps)
    hop_match, hop_keys = hop_match.unbind(2), hop_keys.unbind(2)  # per hop (unbind, not index)
    keep = None if reset_at is None else (~reset_at).to(write.dtype)
    U, log_g_before, log_g = _ScaledDeltaRecurrence.apply(
        v_old_initial * from_start.unsqueeze(2),
        gram * same_segment,
        torch.diagonal(gram, dim1=1, dim2=2),
        rate.squeeze(2),
        v,
        keep,
        memory.norm_sq,
        _compiled(opts, v),
    )
    log_g_at = torch.cat([log_g_before[:, 1:], log_g.unsqueeze(1)], dim=1)  # log g_t
    decay = _decay(log_g_at, log_g_before, same_segment)
    initial = torch.exp(log_g_at) * from_start  # [B, C]

    if opts.tanh_query:
        n = torch.tanh(n)
    for i in range(hops):
        match = (n @ k1_t) * hop_match[i]  # (n_t ⊗ e_t)ᵀ k_r
        value = (match * decay) @ U
        if memory.writes:
            value = value + initial.unsqueeze(2) * lowrank_hop_many(memory, n, hop_keys[i])
        n = functional.layer_norm(value, (m,), eps=opts.layer_norm_eps)

    # F_end = g F_0 + Σ_r w_r k_r u_rᵀ, and its squared norm
    # ‖F_end‖² = g²‖F_0‖² + 2g Σ_r w_r v0_rᵀu_r + Σ_{r,s} w_r w_s (k_rᵀk_s)(u_rᵀu_s).
    g, w = initial[:, -1], decay[:, -1]  # [B], [B, C]
    new_sq = ((gram * (U @ U.transpose(1, 2))) @ w.unsqueeze(2)).squeeze(2)
    norm_sq = (w * new_sq).sum(-1)
    if memory.writes:
        norm_sq = norm_sq + g.square() * memory.norm_sq
        norm_sq = norm_sq + 2 * g * (w * (v_old_initial * U).sum(-1)).sum(-1)
    if not memory.writes:  # the chunk's writes alone (no copies of them)
        return n.transpose(0, 1), LowRankMemory(k1, k2, U, w, norm_sq)
    end = LowRankMemory(
        torch.cat([memory.k1, k1], dim=1),
        torch.cat([memory.k2, k2], dim=1),
        torch.cat([memory.u, U], dim=1),
        torch.cat([memory.weight * g.unsqueeze(1), w], dim=1),
        norm_sq,
    )
    return n.transpose(0, 1), end


def _drop_before_full_reset(
    memory: LowRankMemory, resets: Tensor | None, start: int = 0
) -> tuple[LowRankMemory, int]:
    """Forget the writes that every sequence has reset since: returns the factors from the last
    step at which all sequences reset (or unchanged) and how many slots were dropped."""
    if resets is None:
        return memory, 0
    full = torch.nonzero(resets.all(dim=1)).flatten()
    if not len(full):
        return memory, 0
    cut = start + int(full[-1])
    if cut == 0:
        return memory, 0
    return LowRankMemory(*(t[:, cut:] for t in memory[:4]), memory.norm_sq), cut


def lowrank_scan(
    write: Tensor, read: Tensor, memory: LowRankMemory, resets: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, LowRankMemory]:
    """FWM over ``write, read [T, B, ...]`` with the fast weights in factor form.

    The same values and gradients as :data:`FWM_SCANS` from ``F = memory.to_dense()`` (tested),
    at a cost that grows with the number of writes ``R`` instead of ``m³``: a single step is
    :func:`_lowrank_step`, longer windows run :func:`_lowrank_chunk_scan` per ``chunk_size``
    steps. Writes that every sequence has reset since (a step where all reset) are dropped, so an
    episodic batch never holds more writes than its longest episode. Returns ``n [T, B, m]`` and
    the factors after the last step (``R + T`` writes, fewer after a full reset).
    """
    steps = write.shape[0]
    if resets is not None and bool(resets[0].all()):
        memory = LowRankMemory.empty(write.shape[1], opts.memory_size, write)
    if steps == 1:
        recorded = torch.is_grad_enabled() and (
            write.requires_grad or read.requires_grad or any(t.requires_grad for t in memory)
        )
        step = _lowrank_step if recorded or not _compiled(opts, write) else _lowrank_step_compiled
        n, memory = step(write[0], read[0], memory, None if resets is None else resets[0], opts)
        return n.unsqueeze(0), memory
    offset = memory.writes
    if resets is not None and not offset and not bool(resets[1:].any()):
        # From no writes with resets at the first step only (an episode-mode window), the resets
        # change nothing: the chunk scans run without their masks (the same values and gradients).
        resets = None
    outputs = []
    for start in range(0, steps, opts.chunk_size):
        end = start + opts.chunk_size
        chunk_resets = None if resets is None else resets[start:end]
        n, memory = _lowrank_chunk_scan(
            write[start:end], read[start:end], memory, chunk_resets, opts
        )
        outputs.append(n)
    if resets is not None and steps > 1:
        memory, _ = _drop_before_full_reset(memory, resets[1:], start=offset + 1)
    return (outputs[0] if len(outputs) == 1 else torch.cat(outputs)), memory
