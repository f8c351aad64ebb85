"""MNM — Metalearned Neural Memory (Munkhdalai, Sordoni, Wang, Trischler, NeurIPS 2019).

The memory is the weights φ = (W1, W2, W3) of a small bias-free MLP ``f_φ``, one copy per
sequence. An LSTM controller writes by changing φ so that ``f_φ`` maps write keys to target values,
and reads by passing read keys through ``f_φ``. Two write rules:

* **MNM-g** (``rule="gradient"``): one differentiable gradient step on the reconstruction loss, with
  a hand-written, exact closed-form backward through the three layers (it stays in the autograd
  graph, so second-order terms reach the controller).
* **MNM-p** (``rule="perceptron"``): a learned local rule. Backward feedback prediction functions
  (BFPF, linear maps of the target value) predict every layer's activation; each layer moves its
  output towards the prediction with a perceptron-style outer-product update.

The equations are documented in ``docs/memory-cores.md`` (section 5); the notation below follows it.

Step ``t`` for a batch of ``B`` sequences with ``H`` heads (shapes in brackets)::

    h, c       = LSTMCell([x_t ; v^r_{t-1}], (h, c))                       h, c [B, d_h]
    u          = tanh(W_u h + b_u)                                         u [B, d_k + 3 H d_k]
    β', (k^w_i, v^w_i, k^r_i)_i = split(u)                                 each [B, d_k] per head
    β          = σ(w_β · β' + b_β)                                         β [B]
    z⁰ = k^w, z¹ = tanh(W1 z⁰), z² = tanh(W2 z¹), z³ = W3 z²               z^l [B, H, d_l]
    MNM-g:  φ_t = φ_{t-1} − β ∇_φ L^up,  L^up = mean_{i,j} (z³_i − v^w_i)²_j
    MNM-p:  W^l_t = W^l_{t-1} − β (2 / (H d_l)) Σ_i (z^l_i − ẑ^l_i)(z^{l-1}_i)ᵀ,  ẑ^l = q_l(v^w)
    L^meta_t   = mean_{i,j} (f_{φ_t}(k^w_i) − v^w_i)²_j                     per sample [B]
    v^r_t      = (1/H) Σ_i f_{φ_t}(k^r_i)                                  v^r [B, d_k]
    o_t        = W_o [h ; v^r_t] + b_o                                     o [B, output_size]

with W1 [B, d_m, d_k], W2 [B, d_m, d_m], W3 [B, d_k, d_m]; layer widths d_1 = d_2 = d_m, d_3 = d_k.

Cost per sequence and step (P = 2 d_k d_m + d_m² fast weights): about 3·H·P multiply-adds for the
three memory passes (write keys before the update; write and read keys after it) plus ≈ H·P for the
update; MNM-g's closed-form backward adds ≈ 2·H·P more (roughly 2–3× MNM-p's write). State
floats per sequence: 2 d_h + d_k + 2 d_k d_m + d_m² (49,536 at d = 128). Naive autograd keeps every
φ_t, i.e. T·B·P floats over a window; the default ``implementation="lowrank"``
(:mod:`fwmrl.memory.mnm_lowrank`) keeps φ only once per chunk plus the writes' rank-H factors, and
``recompute_chunk=k`` keeps the state only every k steps and recomputes the steps in between during
backward.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

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
from fwmrl.memory.mnm_lowrank import lowrank_scan, perceptron_kernel_scan

RULES = ("gradient", "perceptron")
IMPLEMENTATIONS = ("lowrank", "naive")
KERNELS = ("auto", "compiled", "eager")

Weights = tuple[Tensor, Tensor, Tensor]


@dataclasses.dataclass
class MNMState(CoreState):
    """State of an MNM core (batch first).

    Fields: controller ``h, c [B, d_h]``; previous read ``read [B, d_k]``; memory weights
    ``w1 [B, d_m, d_k]``, ``w2 [B, d_m, d_m]``, ``w3 [B, d_k, d_m]``.
    """

    h: Tensor
    c: Tensor
    read: Tensor
    w1: Tensor
    w2: Tensor
    w3: Tensor


# --------------------------------------------------------------------------- memory functions
def memory_forward(weights: Weights, keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The memory MLP on ``keys [B, N, d_k]`` with per-sample ``weights`` (W1, W2, W3).

    Returns the activations ``(z¹ [B, N, d_m], z² [B, N, d_m], z³ [B, N, d_k])``
    (tanh, tanh, linear).
    """
    w1, w2, w3 = weights
    z1 = torch.tanh(keys @ w1.transpose(1, 2))
    z2 = torch.tanh(z1 @ w2.transpose(1, 2))
    z3 = z2 @ w3.transpose(1, 2)
    return z1, z2, z3


def gradient_write_grads(
    weights: Weights, keys: Tensor, values: Tensor, acts: tuple[Tensor, Tensor, Tensor]
) -> Weights:
    """Exact closed-form ``∇_φ L^up`` per sample, ``L^up = mean_{i,j} (f_φ(k_i) − v_i)²_j``.

    ``keys, values [B, H, d_k]``; ``acts``: the activations of :func:`memory_forward` at ``keys``.
    Built from differentiable ops, so the result stays in the autograd graph (second order).
    """
    _, w2, w3 = weights
    z1, z2, z3 = acts
    heads, d_k = values.shape[1], values.shape[2]
    g3 = (z3 - values) * (2.0 / (heads * d_k))  # dL/dz³          [B, H, d_k]
    g2 = (g3 @ w3) * (1.0 - z2 * z2)  # dL/d(pre-act 2)       [B, H, d_m]
    g1 = (g2 @ w2) * (1.0 - z1 * z1)  # dL/d(pre-act 1)       [B, H, d_m]
    return (
        g1.transpose(1, 2) @ keys,  # [B, d_m, d_k]
        g2.transpose(1, 2) @ z1,  # [B, d_m, d_m]
        g3.transpose(1, 2) @ z2,  # [B, d_k, d_m]
    )


def perceptron_write_grads(
    keys: Tensor, acts: tuple[Tensor, Tensor, Tensor], targets: tuple[Tensor, Tensor, Tensor]
) -> Weights:
    """The local MNM-p update directions ``(2 / (H d_l)) Σ_i (z^l_i − ẑ^l_i)(z^{l−1}_i)ᵀ``.

    ``keys [B, H, d_k]`` (z⁰), ``acts`` the pre-update activations (z¹, z², z³), ``targets`` the
    BFPF predictions (ẑ¹, ẑ², ẑ³) of the same shapes. No nonlinearity derivative is used.
    """
    heads = keys.shape[1]
    inputs = (keys, acts[0], acts[1])
    out = []
    for z_prev, z, z_hat in zip(inputs, acts, targets, strict=True):
        err = (z - z_hat) * (2.0 / (heads * z.shape[-1]))
        out.append(err.transpose(1, 2) @ z_prev)
    return out[0], out[1], out[2]


def _glorot(rows: int, cols: int) -> Tensor:
    bound = math.sqrt(6.0 / (rows + cols))
    return torch.empty(rows, cols).uniform_(-bound, bound)


# --------------------------------------------------------------------------- the core
class MNMCore(MemoryCore):
    """Metalearned Neural Memory core with an LSTM controller (see the module docstring): the
    base of :class:`MNMGCore` and :class:`MNMPCore`, which fix the write rule :attr:`rule`.

    Parameters
    ----------
    input_size:
        Features per input step ``F``.
    hidden_size:
        Controller LSTM units ``d_h``.
    key_size:
        Key/value/read size ``d_k`` (the memory MLP's input and output width).
    memory_size:
        Hidden width ``d_m`` of the memory MLP.
    num_heads:
        Write/read key pairs per step ``H``.
    output_size:
        Features per output step; ``None`` means ``hidden_size``.
    learn_initial_memory:
        True (default): the initial memory weights φ0 are learned parameters. False: fixed random
        weights, kept as a buffer (so they are still saved in ``state_dict``).
    meta_loss_weight:
        Weight of the meta loss in the auxiliary loss that :meth:`forward` returns (≥ 0).
    recompute_chunk:
        ``None``: no recomputation. ``k``: keep the state every ``k`` steps and recompute in
        between during backward (same gradients, less memory, more time).
    implementation:
        ``"lowrank"`` (default): φ is formed once per ``chunk_size`` steps and the writes in between
        are kept as their rank-H factors (:mod:`fwmrl.memory.mnm_lowrank`). ``"naive"``: every
        step forms and autograd keeps the full φ_t (the reference). Same values and gradients.
    chunk_size:
        Steps per chunk of the ``"lowrank"`` implementation.
    kernel:
        MNM-p with one head: each step's memory (the MLP at the write key, the three perceptron
        updates, the new weights' outputs at both keys) as one C loop per sequence forward and
        one backward (:func:`fwmrl.memory.fwm_kernel.mnm_p_step`, built on first use with the
        system compiler). ``"auto"`` (default): for MNM-p with one head where the kernels build
        (CPU, float32/float64), else ``implementation``; ``"compiled"``: insist on them;
        ``"eager"``: never. Same values and gradients to float rounding (tested).

    Attributes
    ----------
    rule:
        The write rule, a class attribute: ``"gradient"`` (:class:`MNMGCore`, MNM-g) or
        ``"perceptron"`` (:class:`MNMPCore`, MNM-p).

    Notes
    -----
    :meth:`forward` returns the weighted meta losses ``meta_loss_weight · L^meta_t[b]`` as the
    auxiliary loss of its :class:`~fwmrl.memory.base.CoreOutput` (``[T, B]``); a trainer adds their
    mean (or their mean over the valid steps) to the task loss.
    """

    rule: ClassVar[str]

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 128,
        key_size: int = 128,
        memory_size: int = 128,
        num_heads: int = 1,
        output_size: int | None = None,
        learn_initial_memory: bool = True,
        meta_loss_weight: float = 1.0,
        recompute_chunk: int | None = None,
        implementation: str = "lowrank",
        chunk_size: int = 16,
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        rule = getattr(type(self), "rule", None)
        if rule not in RULES:
            raise TypeError(
                f"{owner}: no write rule (rule={rule!r}); build MNMGCore (rule 'gradient') or "
                "MNMPCore (rule 'perceptron'), or a subclass with rule one of "
                f"{', '.join(map(repr, RULES))}"
            )
        self.input_size = check_positive_int(owner, "input_size", input_size)
        self.hidden_size = check_positive_int(owner, "hidden_size", hidden_size)
        self.key_size = check_positive_int(owner, "key_size", key_size)
        self.memory_size = check_positive_int(owner, "memory_size", memory_size)
        self.num_heads = check_positive_int(owner, "num_heads", num_heads)
        if output_size is None:
            output_size = hidden_size
        self.output_size = check_positive_int(owner, "output_size", output_size)
        if not isinstance(learn_initial_memory, bool):
            got = learn_initial_memory
            raise ValueError(f"{owner}: 'learn_initial_memory' must be True or False, got {got!r}")
        self.learn_initial_memory = learn_initial_memory
        self.meta_loss_weight = _check_weight(owner, meta_loss_weight)

        d_h, d_k, d_m, heads = hidden_size, key_size, memory_size, num_heads
        self.controller = nn.LSTMCell(input_size + d_k, d_h)
        self.interaction = nn.Linear(d_h, d_k + 3 * heads * d_k)  # W_u, b_u
        self.beta = nn.Linear(d_k, 1)  # w_β, b_β
        self.output = nn.Linear(d_h + d_k, self.output_size)  # W_o, b_o
        if rule == "perceptron":
            # BFPF q_l: v^w → ẑ^l. ẑ³ starts as the identity, so the output layer's update starts as
            # a delta-rule step towards v^w (a learned map; only its initialisation is chosen).
            self.bfpf = nn.ModuleList(
                [nn.Linear(d_k, d_m), nn.Linear(d_k, d_m), nn.Linear(d_k, d_k)]
            )
            with torch.no_grad():
                self.bfpf[2].weight.copy_(torch.eye(d_k))
                self.bfpf[2].bias.zero_()
        else:
            self.bfpf = None

        init = {"w1": _glorot(d_m, d_k), "w2": _glorot(d_m, d_m), "w3": _glorot(d_k, d_m)}
        for name, value in init.items():
            if learn_initial_memory:
                self.register_parameter(f"phi0_{name}", nn.Parameter(value))
            else:
                self.register_buffer(f"phi0_{name}", value)

        self.recompute_chunk = check_recompute_chunk(owner, recompute_chunk)
        self.implementation = check_choice(owner, "implementation", implementation, IMPLEMENTATIONS)
        self.chunk_size = check_positive_int(owner, "chunk_size", chunk_size)
        self.kernel = check_choice(owner, "kernel", kernel, KERNELS)
        if kernel == "compiled" and (rule != "perceptron" or num_heads != 1):
            raise ValueError(
                f"{owner}: kernel 'compiled' is for MNM-p with one head (num_heads=1); use "
                "kernel 'auto' or 'eager'"
            )

    # ------------------------------------------------------------------ state
    @override
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> MNMState:
        batch_size = check_positive_int(type(self).__name__, "batch_size", batch_size)
        dtype = self.output.weight.dtype
        if device is None:
            device = self.output.weight.device

        def zeros(size: int) -> Tensor:
            return torch.zeros(batch_size, size, device=device, dtype=dtype)

        def expand(w: Tensor) -> Tensor:
            w = w.to(device=device, dtype=dtype)
            return w.unsqueeze(0).expand(batch_size, *w.shape).contiguous()

        return MNMState(
            h=zeros(self.hidden_size),
            c=zeros(self.hidden_size),
            read=zeros(self.key_size),
            w1=expand(self.phi0_w1),
            w2=expand(self.phi0_w2),
            w3=expand(self.phi0_w3),
        )

    # ------------------------------------------------------------ computation
    def _write_grads(
        self, weights: Weights, keys: Tensor, values: Tensor, acts: tuple[Tensor, Tensor, Tensor]
    ) -> Weights:
        """Per-sample update directions of the write rule (the step is ``φ − β · direction``)."""
        if self.rule == "gradient":
            return gradient_write_grads(weights, keys, values, acts)
        assert self.bfpf is not None
        targets = (self.bfpf[0](values), self.bfpf[1](values), self.bfpf[2](values))
        return perceptron_write_grads(keys, acts, targets)

    def _scan(
        self, x: Tensor, state: CoreState, resets: Tensor | None
    ) -> tuple[Tensor, CoreState, Tensor | None]:
        if self._compiled(x):
            return perceptron_kernel_scan(self, x, state, resets)  # type: ignore[arg-type]
        if self.implementation == "naive":
            return super()._scan(x, state, resets)
        return lowrank_scan(self, x, state, resets)  # type: ignore[arg-type]

    def _compiled(self, x: Tensor) -> bool:
        """Whether :meth:`_scan` runs MNM-p's compiled memory step (see ``kernel``)."""
        if self.kernel == "eager" or self.rule != "perceptron" or self.num_heads != 1:
            return False
        if self.kernel == "compiled":
            if not fwm_kernel.available(x, self.memory_size):
                raise RuntimeError(
                    f"{type(self).__name__}: kernel 'compiled', but the compiled kernels are "
                    f"unavailable for {x.dtype} on {x.device}"
                )
            return True
        return fwm_kernel.available(x, self.memory_size)  # (built per d_m: constant sizes)

    def interface(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The controller's interface vector ``u = tanh(W_u h + b_u)`` split into the write keys,
        written values and read keys ``[B, H, d_k]`` and the write strength ``β [B, 1, 1]``."""
        batch, d_k, heads = h.shape[0], self.key_size, self.num_heads
        u = torch.tanh(self.interaction(h))
        beta_in, kvr = u.split([d_k, 3 * heads * d_k], dim=-1)
        k_w, v_w, k_r = kvr.reshape(batch, heads, 3, d_k).unbind(dim=2)
        beta = torch.sigmoid(self.beta(beta_in)).view(batch, 1, 1)
        return k_w, v_w, k_r, beta

    @property
    def write_trace_source(self) -> nn.Module:
        """The module whose outputs :meth:`write_trace` reads (a forward hook's place): the
        controller, whose output is ``(h, c)``."""
        return self.controller

    def write_trace(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """The write keys and written values of the controller states ``h [N, d_h]``
        (:meth:`interface`), all heads concatenated: ``([N, H·d_k], [N, H·d_k])``."""
        k_w, v_w, _, _ = self.interface(h)
        return k_w.flatten(1), v_w.flatten(1)

    def controller_step(
        self, x: Tensor, read: Tensor, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """One controller step on ``[x_t, previous read]``: ``(h, c, k_w, v_w, k_r, β)`` (both
        scans and the memory plot use it)."""
        h, c = self.controller(torch.cat([x, read], dim=-1), (h, c))
        return (h, c, *self.interface(h))

    def _step(self, x: Tensor, state: MNMState) -> tuple[Tensor, MNMState, Tensor]:  # type: ignore[override]
        heads = self.num_heads
        h, c, k_w, v_w, k_r, beta = self.controller_step(x, state.read, state.h, state.c)

        old = (state.w1, state.w2, state.w3)
        acts = memory_forward(old, k_w)
        grads = self._write_grads(old, k_w, v_w, acts)
        new = tuple(w - beta * g for w, g in zip(old, grads, strict=True))
        w1, w2, w3 = new

        out = memory_forward((w1, w2, w3), torch.cat([k_w, k_r], dim=1))[2]
        recon, read_all = out.split([heads, heads], dim=1)
        meta = (recon - v_w).pow(2).mean(dim=(1, 2)) * self.meta_loss_weight  # [B]
        read = read_all.mean(dim=1)
        y = self.output(torch.cat([h, read], dim=-1))

        new_state = MNMState(h=h, c=c, read=read, w1=w1, w2=w2, w3=w3)
        return y, new_state, meta

    @override
    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, output_size={self.output_size}, "
            f"hidden_size={self.hidden_size}, key_size={self.key_size}, "
            f"memory_size={self.memory_size}, num_heads={self.num_heads}, rule={self.rule!r}, "
            f"learn_initial_memory={self.learn_initial_memory}, "
            f"meta_loss_weight={self.meta_loss_weight}, implementation={self.implementation!r}"
        )


class MNMGCore(MNMCore):
    """MNM-g: :class:`MNMCore` with the gradient write rule (registry name ``mnm_g``)."""

    rule = "gradient"


class MNMPCore(MNMCore):
    """MNM-p: :class:`MNMCore` with the learned local (perceptron) rule (registry ``mnm_p``)."""

    rule = "perceptron"


def _check_weight(owner: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}: 'meta_loss_weight' must be a finite number >= 0, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{owner}: 'meta_loss_weight' must be a finite number >= 0, got {value!r}")
    return float(value)
