"""FWM: Fast Weight Memory (Schlag, Munkhdalai, Schmidhuber, ICLR 2021).

An LSTM controller writes associations into a third-order fast-weight tensor ``F ∈ R^{m×m×m}`` with a
delta rule and reads them back with ``N_r`` chained hops. The memory never feeds back into the LSTM,
so the controller runs over the whole sequence in one fused call and the memory is a separate scan
(:mod:`fwmrl.memory.fwm_scan`) over the controller outputs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from typing_extensions import override

from fwmrl.memory import fwm_kernel
from fwmrl.memory import lstm as lstm_module
from fwmrl.memory.base import (
    CoreOutput,
    CoreState,
    MemoryCore,
    check_choice,
    check_positive_int,
)
from fwmrl.memory.fwm_scan import (
    FWM_SCANS,
    FWMScanOptions,
    LowRankMemory,
    _compiled,
    lowrank_scan,
    write_activations,
)
from fwmrl.memory.lstm import run_lstm_with_resets


def _parameter(module: nn.Module, name: str) -> Tensor:
    """``module.name`` by a dict lookup (``Module.__getattr__`` costs microseconds per acting
    step), or as an attribute where a parametrization computes it (the LM's weight drop)."""
    found = module._parameters.get(name)  # noqa: SLF001
    return found if found is not None else getattr(module, name)


@dataclasses.dataclass
class FWMState(CoreState):
    """Controller state ``h, c [B, 1, d]`` and fast weights ``F [B, m, m, m]``."""

    h: Tensor
    c: Tensor
    F: Tensor

    @classmethod
    def from_state_dict(cls, data: dict[str, Tensor]) -> CoreState:
        """Also restores a saved :class:`FWMLowRankState` (the form an FWM state may take)."""
        if cls is FWMState and "F" not in data and "weight" in data:
            return FWMLowRankState.from_state_dict(data)
        return super().from_state_dict(data)


@dataclasses.dataclass
class FWMLowRankState(CoreState):
    """The FWM state with the fast weights as their writes (see
    :class:`fwmrl.memory.fwm_scan.LowRankMemory`): ``F = Σ_r weight_r (k1_r ⊗ k2_r) ⊗ u_r``.

    Controller ``h, c [B, 1, d]``; ``k1, k2, u [B, R, m]``; ``weight [B, R]``; ``norm_sq [B]``
    (``‖F‖²``). ``R`` grows by one per step and drops back at a step where every sequence resets.
    """

    h: Tensor
    c: Tensor
    k1: Tensor
    k2: Tensor
    u: Tensor
    weight: Tensor
    norm_sq: Tensor

    @property
    def memory(self) -> LowRankMemory:
        """The factors as a :class:`LowRankMemory` (the scan's form)."""
        return LowRankMemory(self.k1, self.k2, self.u, self.weight, self.norm_sq)

    def to_dense(self) -> FWMState:
        """The same state with ``F [B, m, m, m]`` formed."""
        return FWMState(h=self.h, c=self.c, F=self.memory.to_dense())

    def state_dict(self) -> dict[str, Tensor]:
        """Plain ``{field: tensor}`` dict with compact tensors (the acting step's factors are
        views of a larger buffer, which ``torch.save`` would store whole)."""
        return {name: t.contiguous() for name, t in self.tensors()}


class FWMCore(MemoryCore):
    """LSTM + Fast Weight Memory.

    Step ``t``: ``z = LSTM(x)``; write ``k1 = tanh(ŝ)``, ``k2 = tanh(r̂)``, ``v = tanh(v̂)``,
    ``β = σ(b̂ + 1)``, ``F ← F + (k1 ⊗ k2) ⊗ λβ(v − v_old)`` then ``F ← F / max(1, ‖F‖)``; read
    ``n⁽ⁱ⁾ = LN(F · (n⁽ⁱ⁻¹⁾ ⊗ e_i))`` for ``N_r`` hops on the updated ``F``; output
    ``y = z + W_o n⁽ᴺʳ⁾ + b_o`` (or without ``z`` when ``residual=False``).

    Parameters
    ----------
    input_size:
        Features per input step.
    hidden_size:
        Controller LSTM size ``d``; also the output size.
    memory_size:
        FWM size ``m`` (``F`` holds ``m³`` floats per sequence).
    read_hops:
        Number of chained reads ``N_r``.
    write_scale:
        ``λ`` of the delta rule; ``None`` means ``1/m`` (the paper); the authors' LM code used 1.
    residual:
        Add the controller output to the memory output.
    tanh_query:
        ``tanh`` on the first query ``n⁽⁰⁾`` (authors' LM code); off by default.
    tanh_hop_keys:
        ``tanh`` on the hop keys ``e_i``; on by default (the authors' RL code had it off).
    implementation:
        Name of the scan in :data:`fwmrl.memory.fwm_scan.FWM_SCANS`: ``"chunked"`` (default;
        chunk-parallel, ``F`` read ``N_r + 1`` times and written once per chunk), ``"naive"`` (the
        step-by-step reference), ``"checkpoint"`` (naive with recomputation) or
        ``"chunked_checkpoint"`` (chunked with recomputation: least memory). All give the same
        values and gradients (tested). They run on the dense ``F`` of an :class:`FWMState`.
    state_form:
        ``"auto"`` (default): a window that starts from a zero ``F`` (an
        :class:`FWMLowRankState` from :meth:`initial_episode_state`, a dense state that every
        sequence resets at the first step, or a dense ``F`` of zeros without a gradient in a window
        of two or more steps, e.g. :meth:`initial_state`'s) keeps ``F`` as its writes' factors while ``R`` writes
        cost less than the dense tensor (``R ≤ lowrank_max_writes``), then continues dense.
        ``"dense"``: always the dense tensor (the implementation before the factor form). Same
        values and gradients (tested).
    lowrank_max_writes:
        Most writes kept in factor form; ``None``: ``m² / 3`` (a read costs about ``3Rm`` from the
        factors against ``m³`` from ``F``).
    zero_init_output:
        Start the output projection ``W_o`` (and ``b_o``) at zero, so that the core starts as its LSTM controller
        and the memory read enters the output as it is learned. Off by default (the paper's
        initialisation). The read is layer-normalised to unit size whatever ``F`` holds, so at the
        default initialisation it starts as the larger part of the output. Zero init made supervised
        3-back recall learn as fast as the LSTM alone, but in RL on ``FWM-Recall-v0`` it stayed at
        random where the default initialisation learned (docs/results.md §3, 3 seeds each).
    kernel:
        Small C kernels (:mod:`fwmrl.memory.fwm_kernel`, built on first use with the system
        compiler, about a second) for a step without gradients on the factor form (collecting,
        evaluating; with the controller's cell and the activations as one fused step) and for
        the chunk scans' delta-rule recurrence (forward and backward).
        ``"auto"`` (default): where they build (CPU, float32/float64), else PyTorch operations;
        ``"compiled"``: insist on them; ``"eager"``: never (the PyTorch code they replace). Same
        values and gradients to float rounding (tested).
    chunk_size:
        Steps per chunk for the implementations that use one; ``None``: 64 for ``"chunked"``
        (longer chunks make the contractions with ``F`` larger matrix products; its memory does not
        grow with the chunk) and 16 for the recomputing ones (whose memory does).
    """

    step_graph_is_cheap = False  # the chunk scan's backward beats T recorded steps' (measured)

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 32,
        memory_size: int = 16,
        read_hops: int = 3,
        write_scale: float | None = None,
        residual: bool = True,
        tanh_query: bool = False,
        tanh_hop_keys: bool = True,
        implementation: str = "chunked",
        chunk_size: int | None = None,
        state_form: str = "auto",
        lowrank_max_writes: int | None = None,
        zero_init_output: bool = False,
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        owner = "FWMCore"
        self.input_size = check_positive_int(owner, "input_size", input_size)
        self.hidden_size = check_positive_int(owner, "hidden_size", hidden_size)
        self.memory_size = check_positive_int(owner, "memory_size", memory_size)
        self.read_hops = check_positive_int(owner, "read_hops", read_hops)
        self.implementation = check_choice(owner, "implementation", implementation, list(FWM_SCANS))
        if chunk_size is None:
            chunk_size = 64 if self.implementation == "chunked" else 16
        check_positive_int(owner, "chunk_size", chunk_size)
        if write_scale is None:
            write_scale = 1.0 / memory_size
        if not isinstance(write_scale, (int, float)) or not write_scale > 0:
            raise ValueError(
                f"{owner}: 'write_scale' must be a positive number, got {write_scale!r}"
            )
        self.state_form = check_choice(owner, "state_form", state_form, ["auto", "dense"])
        if lowrank_max_writes is None:
            lowrank_max_writes = max(1, memory_size * memory_size // 3)
        self.lowrank_max_writes = check_positive_int(
            owner, "lowrank_max_writes", lowrank_max_writes
        )
        self.residual = bool(residual)
        self.output_size = hidden_size
        self.scan_options = FWMScanOptions(
            memory_size=memory_size,
            read_hops=read_hops,
            write_scale=float(write_scale),
            tanh_query=bool(tanh_query),
            tanh_hop_keys=bool(tanh_hop_keys),
            chunk_size=chunk_size,
            kernel=check_choice(owner, "kernel", kernel, ["auto", "compiled", "eager"]),
        )

        d, m = hidden_size, memory_size
        self.controller = nn.LSTM(input_size, d)
        self.write_proj = nn.Linear(d, 3 * m + 1)
        self.read_proj = nn.Linear(d, m + read_hops * m)
        self.out_proj = nn.Linear(m, d)
        if not isinstance(zero_init_output, bool):
            raise ValueError(
                f"{owner}: 'zero_init_output' must be True or False, got {zero_init_output!r}"
            )
        self.zero_init_output = zero_init_output
        if zero_init_output:
            nn.init.zeros_(self.out_proj.weight)
            nn.init.zeros_(self.out_proj.bias)
        bound = math.sqrt(6.0 / (d + m))
        nn.init.uniform_(self.write_proj.weight, -bound, bound)
        nn.init.uniform_(self.read_proj.weight, -bound, bound)

    @override
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> FWMState:
        d, m = self.hidden_size, self.memory_size
        dtype = self.out_proj.weight.dtype
        return FWMState(
            h=torch.zeros(batch_size, 1, d, device=device, dtype=dtype),
            c=torch.zeros(batch_size, 1, d, device=device, dtype=dtype),
            F=torch.zeros(batch_size, m, m, m, device=device, dtype=dtype),
        )

    def initial_episode_state(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> FWMState | FWMLowRankState:
        """The state of ``batch_size`` fresh sequences in the form that is cheapest for windows
        that start from it: factors without writes (``state_form="auto"``) or the dense zeros."""
        if self.state_form == "dense":
            return self.initial_state(batch_size, device)
        d, m = self.hidden_size, self.memory_size
        dtype = self.out_proj.weight.dtype

        def zeros(*shape: int) -> Tensor:
            return torch.zeros(batch_size, *shape, device=device, dtype=dtype)

        return FWMLowRankState(
            h=zeros(1, d),
            c=zeros(1, d),
            k1=zeros(0, m),
            k2=zeros(0, m),
            u=zeros(0, m),
            weight=zeros(0),
            norm_sq=zeros(),
        )

    @override
    def forward(
        self,
        x: Tensor,
        state: FWMState | FWMLowRankState | None = None,
        resets: Tensor | None = None,
    ) -> CoreOutput:
        x, state, resets = self._check_inputs(x, state, resets)
        if x.shape[0] == 1 and self._fused(x, state):
            if isinstance(state, FWMLowRankState) and not self._lowrank_fits(
                state.memory, resets, 1
            ):
                state = state.to_dense()
            return self._fused_step(x, state, resets)
        z, h, c, write, read = self._controller(x, state, resets)
        n, memory = self._memory(write, read, state, resets)
        return CoreOutput(self._output(n, z), self._new_state(h, c, memory), None)

    def _fused(self, x: Tensor, state: FWMState | FWMLowRankState) -> bool:
        """Whether a one-step window runs in the compiled kernels (:meth:`_fused_step`, on factors
        within ``lowrank_max_writes`` or on a dense ``F``): no autograd
        (grad mode off, or nothing that needs a gradient), the compiled kernels on, one dtype,
        and no forward hooks on the submodules (which the kernels would not call, e.g. the memory
        plot's on ``write_proj``)."""
        tensors = state.memory if isinstance(state, FWMLowRankState) else (state.F,)
        if torch.is_grad_enabled() and (
            x.requires_grad
            or state.h.requires_grad
            or any(t.requires_grad for t in tensors)
            or any(p.requires_grad for p in self.parameters())
        ):
            return False
        if self.state_form == "dense" or not _compiled(self.scan_options, x):
            return False
        submodules = self._modules  # (plain dict lookups: Module.__getattr__ costs per step)
        if (
            x.dtype != _parameter(submodules["out_proj"], "weight").dtype
            or tensors[0].dtype != x.dtype
        ):
            return False
        modules = [
            submodules[name] for name in ("controller", "write_proj", "read_proj", "out_proj")
        ]
        global_hooks = nn.modules.module._global_forward_hooks  # noqa: SLF001
        global_pre = nn.modules.module._global_forward_pre_hooks  # noqa: SLF001
        return not (
            global_hooks
            or global_pre
            or any(m._forward_hooks or m._forward_pre_hooks for m in modules)  # noqa: SLF001
        )

    def _acting_weights(self) -> tuple[Tensor, ...]:
        """The parameters as :meth:`_fused_step` takes them: ``(W_ihᵀ, W_hhᵀ, b_ih + b_hh,
        [W_write; W_read]ᵀ, [b_write; b_read], W_outᵀ, b_out)``, contiguous, made again whenever
        a parameter changed (its version counter: an optimizer step, a load) or moved."""
        modules = self._modules  # (plain dict lookups: Module.__getattr__ costs per step)
        lstm, write, read, out = (
            modules[name] for name in ("controller", "write_proj", "read_proj", "out_proj")
        )
        params = (
            _parameter(lstm, "weight_ih_l0"),
            _parameter(lstm, "weight_hh_l0"),
            _parameter(lstm, "bias_ih_l0"),
            _parameter(lstm, "bias_hh_l0"),
            _parameter(write, "weight"),
            _parameter(write, "bias"),
            _parameter(read, "weight"),
            _parameter(read, "bias"),
            _parameter(out, "weight"),
            _parameter(out, "bias"),
        )
        key = tuple([(p.data_ptr(), p._version, p.dtype) for p in params])  # noqa: SLF001
        cached = self.__dict__.get("_acting_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.no_grad():
            w_ih, w_hh, b_ih, b_hh, w_write, b_write, w_read, b_read, w_out, b_out = params
            weights = (
                w_ih.t().contiguous(),
                w_hh.t().contiguous(),
                b_ih + b_hh,
                torch.cat([w_write, w_read]).t().contiguous(),
                torch.cat([b_write, b_read]),
                w_out.t().contiguous(),
                b_out.detach().clone(),
            )
        self._acting_cache = (key, weights)
        return weights

    def _fused_step(
        self, x: Tensor, state: FWMState | FWMLowRankState, resets: Tensor | None
    ) -> CoreOutput:
        """:meth:`forward` for one step without autograd (see :meth:`_fused`): the four matrix
        products (input and recurrent gates, the write and read projections together, the
        output) as batched products, the LSTM cell's gates to its state and the whole memory step
        (activations, reset, write, norm, hops) in the compiled kernels
        (:func:`fwmrl.memory.fwm_kernel.lstm_cell`; on factors
        :func:`~fwmrl.memory.fwm_kernel.acting_memory`, on a dense ``F`` — an episode past
        ``lowrank_max_writes``, or a dense state — :func:`~fwmrl.memory.fwm_kernel.acting_dense`).
        The same values to float rounding, and the same state shapes (a step where every
        sequence resets starts the factors again)."""
        batch, d, m = x.shape[1], self.hidden_size, self.memory_size
        w_ih, w_hh, b_lstm, w_proj, b_proj, w_out, b_out = self._acting_weights()
        keep, h = None, state.h.reshape(batch, d)
        gates = torch.addmm(b_lstm, x.view(batch, -1), w_ih)
        every = False
        if resets is not None and bool(resets[0].any()):
            keep = (~resets[0]).to(x.dtype)
            every = bool(resets[0].all())  # h is zero (and the factors start again)
            if not every:
                h = h * keep.unsqueeze(1)
        if not every:
            gates = gates.addmm_(h, w_hh)
        h, c, base = fwm_kernel.lstm_cell(
            gates, state.c.reshape(batch, d), keep, b_out if self.residual else None, m
        )
        opts = self.scan_options
        proj = torch.addmm(b_proj, h, w_proj)
        flags = opts.tanh_query * 1 + opts.tanh_hop_keys * 2
        options = (opts.read_hops, flags, opts.layer_norm_eps, opts.write_scale)
        h, c = h.view(batch, 1, d), c.view(batch, 1, d)
        if isinstance(state, FWMLowRankState):
            memory = LowRankMemory.empty(batch, m, x) if every else state.memory
            n, factors = fwm_kernel.acting_memory(proj, keep, tuple(memory), *options)
            new_state: CoreState = FWMLowRankState(h, c, *factors)
        else:
            n, F = fwm_kernel.acting_dense(proj, keep, state.F, *options)  # noqa: N806
            new_state = FWMState(h, c, F)
        y = torch.addmm(b_out if base is None else base, n, w_out)
        return CoreOutput(y.view(1, batch, d), new_state, None)

    def _controller(
        self, x: Tensor, state: FWMState | FWMLowRankState, resets: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The LSTM over the window and the memory's projections: ``z, h, c, write, read``.

        A single step calls ``torch.lstm_cell`` directly (what :func:`run_lstm_with_resets` runs
        for it, without its checks and host synchronisation: the reset is one multiplication)."""
        if x.shape[0] == 1:
            batch, d = x.shape[1], self.hidden_size
            h, c = state.h.reshape(batch, d), state.c.reshape(batch, d)
            if resets is not None:
                keep = (~resets).to(h.dtype).view(batch, 1)
                h, c = h * keep, c * keep
            lstm = self.controller
            h, c = torch.lstm_cell(
                x.view(batch, -1),
                (h, c),
                lstm.weight_ih_l0,
                lstm.weight_hh_l0,
                lstm.bias_ih_l0,
                lstm.bias_hh_l0,
            )
            z = h.view(1, batch, d)
            h, c = h.view(batch, 1, d), c.view(batch, 1, d)
        elif (
            torch.is_grad_enabled()
            and not lstm_module._fused_windows
            and _compiled(self.scan_options, x)
        ):  # (within fused_lstm_windows, PPO's few-sequence windows run fused nn.LSTM calls)
            z, h, c = self._controller_window(x, state, resets)
        else:
            z, h, c = run_lstm_with_resets(self.controller, x, state.h, state.c, resets)
        return z, h, c, self.write_proj(z), self.read_proj(z)

    def _controller_window(
        self, x: Tensor, state: FWMState | FWMLowRankState, resets: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:func:`run_lstm_with_resets`'s cells for a window with gradients: every step's input
        gates in one product (``x W_ihᵀ + b [T, B, 4D]``), then :class:`_LSTMWindow` steps the
        recurrent product and the compiled cell (:mod:`fwmrl.memory.fwm_kernel`) forward and
        backward, and forms ``W_hh``'s gradient as one product over the window (per-step weight
        gradients, ``[4D, B] × [B, D]`` products accumulated step by step, were 40 % of the
        reference-size training step). The same values and gradients to float rounding."""
        steps, batch, d = x.shape[0], x.shape[1], self.hidden_size
        lstm = self.controller
        bias = lstm.bias_ih_l0 + lstm.bias_hh_l0
        gates = torch.addmm(bias, x.reshape(steps * batch, -1), lstm.weight_ih_l0.t())
        keep = None
        if resets is not None and bool(resets.any()):
            keep = (~resets).to(x.dtype)
        hs, c = _LSTMWindow.apply(
            gates.view(steps, batch, 4 * d),
            state.h.reshape(batch, d),
            state.c.reshape(batch, d),
            lstm.weight_hh_l0,
            keep,
            self.memory_size,
        )
        return hs, hs[-1].view(batch, 1, d), c.view(batch, 1, d)

    def _memory(
        self,
        write: Tensor,
        read: Tensor,
        state: FWMState | FWMLowRankState,
        resets: Tensor | None,
    ) -> tuple[Tensor, Tensor | LowRankMemory]:
        """The fast-weight scan over ``write, read [T, B, ...]`` from ``state``'s memory: the last
        hop's reads ``n [T, B, m]`` and the memory after the window (dense ``F`` or factors)."""
        steps, opts = write.shape[0], self.scan_options
        if isinstance(state, FWMLowRankState) and self._lowrank_fits(state.memory, resets, steps):
            return lowrank_scan(write, read, state.memory, resets, opts)
        scan = FWM_SCANS[self.implementation]
        if isinstance(state, FWMLowRankState):
            return scan(write, read, state.memory.to_dense(), resets, opts)
        if self._starts_fresh(state, resets, steps):
            # F_0 is zero (or every sequence resets at the first step): the window runs on factors
            empty = LowRankMemory.empty(write.shape[1], self.memory_size, write)
            n, memory = lowrank_scan(write, read, empty, resets, opts)
            return n, memory.to_dense()
        return scan(write, read, state.F, resets, opts)

    def _output(self, n: Tensor, z: Tensor) -> Tensor:
        y = self.out_proj(n)
        return y + z if self.residual else y

    @property
    def write_trace_source(self) -> nn.Module:
        """The module whose outputs :meth:`write_trace` reads (a forward hook's place)."""
        return self.write_proj

    def write_trace(self, write: Tensor) -> tuple[Tensor, Tensor]:
        """The write keys and written values of ``write_proj``'s outputs ``write [..., 3m + 1]``
        (``ŝ, r̂, v̂, b̂``), as the scans write them: the key ``tanh(ŝ) ⊗ tanh(r̂)`` flattened
        ``[..., m²]`` (the address of the write in ``F``) and the value ``tanh(v̂) [..., m]``."""
        k1, k2, v = write_activations(write, self.scan_options)[0].split(self.memory_size, dim=-1)
        return (k1.unsqueeze(-1) * k2.unsqueeze(-2)).flatten(-2), v

    @staticmethod
    def _new_state(
        h: Tensor, c: Tensor, memory: Tensor | LowRankMemory
    ) -> FWMState | FWMLowRankState:
        if isinstance(memory, LowRankMemory):
            return FWMLowRankState(h, c, *memory)
        return FWMState(h=h, c=c, F=memory)

    def _scan_signature(self) -> tuple[object, ...]:
        """What decides how :meth:`_memory` runs a window (equal for cores that can share one)."""
        return (self.scan_options, self.implementation, self.state_form, self.lowrank_max_writes)

    def _lowrank_fits(self, memory: LowRankMemory, resets: Tensor | None, steps: int) -> bool:
        """Whether the factors stay within ``lowrank_max_writes`` over a window of ``steps``."""
        if self.state_form == "dense":
            return False
        writes = memory.writes
        if resets is not None and writes + steps > self.lowrank_max_writes:
            full = torch.nonzero(resets.all(dim=1)).flatten()
            if len(full):  # the writes before the last full reset are dropped
                return steps - int(full[-1]) <= self.lowrank_max_writes
        return writes + steps <= self.lowrank_max_writes

    def _starts_fresh(self, state: FWMState, resets: Tensor | None, steps: int) -> bool:
        """Whether a dense window starts from zero everywhere and is cheaper on factors: every
        sequence resets at the first step, or (windows of two or more steps) ``F`` is zero, as in
        :meth:`initial_state` (one pass over ``F`` to check). Its ``F`` input then needs no
        gradient (the reset discards it; a zero ``F`` must not require one)."""
        if self.state_form == "dense" or steps > self.lowrank_max_writes:
            return False
        if torch.is_grad_enabled() and state.F.requires_grad:
            return False
        if resets is not None and bool(resets[0].all()):
            return True
        return steps > 1 and not bool(state.F.any())


class _LSTMCellFromGates(torch.autograd.Function):
    """An LSTM cell's new ``h, c [B, D]`` from its gates' pre-activations ``[B, 4D]`` (both
    products and biases added) and ``c [B, D]``, forward and backward in the compiled kernels
    (:func:`fwmrl.memory.fwm_kernel.lstm_cell`, :func:`~fwmrl.memory.fwm_kernel.lstm_cell_backward`;
    the backward recomputes the activations)."""

    @staticmethod
    def forward(ctx, gates, c_prev, memory_size):  # noqa: ANN001, ANN205
        h, c, _ = fwm_kernel.lstm_cell(gates, c_prev, None, None, memory_size)
        ctx.save_for_backward(gates, c_prev, c)
        ctx.memory_size = memory_size
        return h, c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h, grad_c):  # noqa: ANN001, ANN205
        gates, c_prev, c = ctx.saved_tensors
        if grad_h is None:
            grad_h = torch.zeros_like(c)
        grad_gates, grad_c_prev = fwm_kernel.lstm_cell_backward(
            gates, c_prev, c, grad_h, grad_c, ctx.memory_size
        )
        return grad_gates, grad_c_prev, None


class _LSTMWindow(torch.autograd.Function):
    """An LSTM over a window from its input gates ``[T, B, 4D]`` (``x W_ihᵀ + b_ih + b_hh``),
    ``h_0, c_0 [B, D]``, ``W_hh [4D, D]`` and ``keep [T, B]`` (0 where a sequence resets before
    the step, ``None``: no resets): ``h_t`` for every step ``[T, B, D]`` and the last ``c``.

    Forward: per step one ``addmm`` and the compiled cell; backward: per step the cell's
    backward and one product with ``W_hh``, then ``W_hh``'s gradient as one ``[4D, TB] × [TB, D]``
    product (the input gates' gradient is returned whole, so ``W_ih``'s is one product too)."""

    @staticmethod
    def forward(ctx, gates_x, h, c, w_hh, keep, memory_size):  # noqa: ANN001, ANN205
        steps, batch, width = gates_x.shape
        gates = torch.empty_like(gates_x)
        hs = gates_x.new_empty(steps, batch, width // 4)
        cs = torch.empty_like(hs)
        resets_at = [False] * steps if keep is None else (keep != 1).any(1).tolist()
        w_hh_t = w_hh.t()
        h0, c0 = h, c
        for t in range(steps):
            if resets_at[t]:
                column = keep[t].unsqueeze(1)
                h, c = h * column, c * column
            torch.addmm(gates_x[t], h, w_hh_t, out=gates[t])
            h, c, _ = fwm_kernel.lstm_cell(gates[t], c, None, None, memory_size)
            hs[t], cs[t] = h, c
        ctx.save_for_backward(gates, h0, c0, hs, cs, w_hh, keep)
        ctx.memory_size, ctx.resets_at = memory_size, resets_at
        return hs, cs[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_hs, grad_c):  # noqa: ANN001, ANN205
        gates, h0, c0, hs, cs, w_hh, keep = ctx.saved_tensors
        steps, memory_size, resets_at = gates.shape[0], ctx.memory_size, ctx.resets_at
        grad_gates = torch.empty_like(gates)
        grad_h = torch.zeros_like(h0)  # from step t + 1 into h_t
        if grad_hs is None:
            grad_hs = torch.zeros_like(hs)
        for t in range(steps - 1, -1, -1):
            c_prev = cs[t - 1] if t else c0
            if resets_at[t]:
                c_prev = c_prev * keep[t].unsqueeze(1)
            grad_gates[t], grad_c = fwm_kernel.lstm_cell_backward(
                gates[t], c_prev, cs[t], grad_hs[t] + grad_h, grad_c, memory_size
            )
            grad_h = grad_gates[t] @ w_hh
            if resets_at[t]:
                column = keep[t].unsqueeze(1)
                grad_h, grad_c = grad_h * column, grad_c * column
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])  # the h each step's gates used
        if keep is not None:
            h_prev = h_prev * keep.unsqueeze(2)
        width = gates.shape[2]
        grad_w_hh = grad_gates.view(-1, width).t() @ h_prev.view(-1, h_prev.shape[2])
        return grad_gates, grad_h, grad_c, grad_w_hh, None, None


def can_run_jointly(
    cores: Sequence[MemoryCore], states: Sequence[CoreState | None] | None = None
) -> bool:
    """Whether :func:`run_jointly` applies: two or more :class:`FWMCore` with the same memory
    options (and, when given, states of one form with the same number of factor writes)."""
    if len(cores) < 2 or not all(type(core) is FWMCore for core in cores):
        return False
    signature = cores[0]._scan_signature()  # type: ignore[attr-defined]
    if any(core._scan_signature() != signature for core in cores[1:]):  # type: ignore[attr-defined]
        return False
    if states is None:
        return True
    if any(state is None for state in states):
        return all(state is None for state in states)
    kinds = {type(state) for state in states}
    if len(kinds) != 1:
        return False
    if kinds == {FWMLowRankState}:
        return len({state.k1.shape[1] for state in states}) == 1  # type: ignore[union-attr]
    return True


def run_jointly(
    cores: Sequence[FWMCore],
    inputs: Sequence[Tensor],
    states: Sequence[FWMState | FWMLowRankState | None],
    resets: Tensor | None = None,
) -> list[CoreOutput]:
    """``[core(x, state, resets) for core, x, state in zip(cores, inputs, states)]`` with one
    fast-weight scan for all of them.

    The scan has no parameters and treats every sequence on its own, so the cores' windows (same
    ``T``, same ``resets``) are stacked along the batch and scanned once: the same values and
    gradients, with the scan's per-step operations paid once instead of once per core (an actor and
    a critic memory over the same observations). Each controller runs on its own. A one-step
    window without autograd that every core can run in its compiled acting step
    (:meth:`FWMCore._fused`) runs core by core instead. Needs :func:`can_run_jointly`; raises a
    ``ValueError`` otherwise.
    """
    if not can_run_jointly(cores, states) or len(inputs) != len(cores):
        raise ValueError(
            "run_jointly: 'cores' must be two or more FWMCore with the same memory options, with "
            "one input and one state (of one form) per core"
        )
    steps = {x.shape[0] for x in inputs}
    if steps == {1} and all(
        state is not None and core._fused(x, state)  # noqa: SLF001
        for core, x, state in zip(cores, inputs, states, strict=True)
    ):  # acting without autograd: each core's compiled step beats one eager scan of all
        return [
            core(x, state, resets) for core, x, state in zip(cores, inputs, states, strict=True)
        ]
    controlled = []
    checked_resets = resets
    for core, x, state in zip(cores, inputs, states, strict=True):
        x, state, checked_resets = core._check_inputs(x, state, resets)
        controlled.append((state, *core._controller(x, state, checked_resets)))
    batches = [x.shape[1] for x in inputs]
    joint_resets = None if checked_resets is None else checked_resets.repeat(1, len(cores))
    joint_state = type(controlled[0][0]).cat([item[0] for item in controlled])
    n, memory = cores[0]._memory(
        torch.cat([item[4] for item in controlled], dim=1),
        torch.cat([item[5] for item in controlled], dim=1),
        joint_state,
        joint_resets,
    )
    outputs = []
    parts_n = n.split(batches, dim=1)
    if isinstance(memory, LowRankMemory):
        pieces = [
            LowRankMemory(*fields)
            for fields in zip(*(t.split(batches) for t in memory), strict=True)
        ]
    else:
        pieces = list(memory.split(batches))
    for core, item, part_n, part_memory in zip(cores, controlled, parts_n, pieces, strict=True):
        _, z, h, c, _, _ = item
        outputs.append(
            CoreOutput(core._output(part_n, z), core._new_state(h, c, part_memory), None)
        )
    return outputs
