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
from collections.abc import Callable

import torch
import torch.nn.functional as functional
from torch import Tensor
from torch.utils.checkpoint import checkpoint


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
    """

    memory_size: int
    read_hops: int = 3
    write_scale: float = 1.0
    tanh_query: bool = False
    tanh_hop_keys: bool = True
    layer_norm_eps: float = 1e-5
    chunk_size: int = 16


ScanFn = Callable[[Tensor, Tensor, Tensor, "Tensor | None", FWMScanOptions], tuple[Tensor, Tensor]]


def hop(F: Tensor, n: Tensor, e: Tensor) -> Tensor:
    """``Σ_{a,b} n[a] e[b] F[a, b, :]`` for a batch: ``F[B, m, m, m]``, ``n, e [B, m]`` → ``[B, m]``."""
    batch, m = n.shape
    t = torch.bmm(n.unsqueeze(1), F.reshape(batch, m, m * m)).view(batch, m, m)
    return torch.bmm(e.unsqueeze(1), t).squeeze(1)


def fwm_step(F: Tensor, write: Tensor, read: Tensor, opts: FWMScanOptions) -> tuple[Tensor, Tensor]:
    """One FWM step for a batch, exactly as the equations read: write, renormalise, then read.

    Returns the last hop's result ``n⁽ᴺʳ⁾ [B, m]`` and the updated ``F``.
    """
    m = opts.memory_size
    s_hat, r_hat, v_hat, b_hat = write.split([m, m, m, 1], dim=-1)
    k1, k2, v = torch.tanh(s_hat), torch.tanh(r_hat), torch.tanh(v_hat)
    beta = torch.sigmoid(b_hat + 1.0)
    v_old = hop(F, k1, k2)
    u = opts.write_scale * beta * (v - v_old)
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


def naive_scan(
    write: Tensor, read: Tensor, F: Tensor, resets: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, Tensor]:
    """Step by step in eager PyTorch; autograd keeps every ``F_t`` (m³ floats per step and sequence)."""
    outputs = []
    for t in range(write.shape[0]):
        if resets is not None:
            F = F * (~resets[t]).to(F.dtype).view(-1, 1, 1, 1)
        n, F = fwm_step(F, write[t], read[t], opts)
        outputs.append(n)
    return torch.stack(outputs), F


def checkpointed_scan(
    write: Tensor, read: Tensor, F: Tensor, resets: Tensor | None, opts: FWMScanOptions
) -> tuple[Tensor, Tensor]:
    """The naive scan with activation checkpointing: ``F`` is kept only every ``chunk_size`` steps
    and each chunk is recomputed during backward. Same values and gradients as :func:`naive_scan`."""
    if not torch.is_grad_enabled() or not (write.requires_grad or read.requires_grad):
        return naive_scan(write, read, F, resets, opts)

    def chunk(w: Tensor, r: Tensor, f: Tensor, res: Tensor | None) -> tuple[Tensor, Tensor]:
        return naive_scan(w, r, f, res, opts)

    outputs = []
    for start in range(0, write.shape[0], opts.chunk_size):
        end = start + opts.chunk_size
        res = None if resets is None else resets[start:end]
        n, F = checkpoint(chunk, write[start:end], read[start:end], F, res, use_reentrant=False)
        outputs.append(n)
    return torch.cat(outputs), F


FWM_SCANS: dict[str, ScanFn] = {"naive": naive_scan, "checkpoint": checkpointed_scan}
"""Scan implementations by name. All must give ``naive``'s outputs and gradients."""
