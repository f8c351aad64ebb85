"""FWM: Fast Weight Memory (Schlag, Munkhdalai, Schmidhuber, ICLR 2021).

An LSTM controller writes associations into a third-order fast-weight tensor ``F ∈ R^{m×m×m}`` with a
delta rule and reads them back with ``N_r`` chained hops. The memory never feeds back into the LSTM,
so the controller runs over the whole sequence in one fused call and the memory is a separate scan
(:mod:`fwmrl.memory.fwm_scan`) over the controller outputs.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from fwmrl.memory.base import CoreState, MemoryCore, check_choice, check_positive_int
from fwmrl.memory.fwm_scan import FWM_SCANS, FWMScanOptions
from fwmrl.memory.lstm import run_lstm_with_resets


@dataclasses.dataclass
class FWMState(CoreState):
    """Controller state ``h, c [B, 1, d]`` and fast weights ``F [B, m, m, m]``."""

    h: Tensor
    c: Tensor
    F: Tensor


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
        values and gradients (tested).
    chunk_size:
        Steps per chunk for the implementations that use one; ``None``: 64 for ``"chunked"``
        (longer chunks make the contractions with ``F`` larger matrix products; its memory does not
        grow with the chunk) and 16 for the recomputing ones (whose memory does).
    """

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
        self.residual = bool(residual)
        self.output_size = hidden_size
        self.scan_options = FWMScanOptions(
            memory_size=memory_size,
            read_hops=read_hops,
            write_scale=float(write_scale),
            tanh_query=bool(tanh_query),
            tanh_hop_keys=bool(tanh_hop_keys),
            chunk_size=chunk_size,
        )

        d, m = hidden_size, memory_size
        self.controller = nn.LSTM(input_size, d)
        self.write_proj = nn.Linear(d, 3 * m + 1)
        self.read_proj = nn.Linear(d, m + read_hops * m)
        self.out_proj = nn.Linear(m, d)
        bound = math.sqrt(6.0 / (d + m))
        nn.init.uniform_(self.write_proj.weight, -bound, bound)
        nn.init.uniform_(self.read_proj.weight, -bound, bound)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> FWMState:
        d, m = self.hidden_size, self.memory_size
        dtype = self.out_proj.weight.dtype
        return FWMState(
            h=torch.zeros(batch_size, 1, d, device=device, dtype=dtype),
            c=torch.zeros(batch_size, 1, d, device=device, dtype=dtype),
            F=torch.zeros(batch_size, m, m, m, device=device, dtype=dtype),
        )

    def forward(
        self, x: Tensor, state: FWMState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, FWMState]:
        x, state, resets = self._check_inputs(x, state, resets)
        z, h, c = run_lstm_with_resets(self.controller, x, state.h, state.c, resets)
        scan = FWM_SCANS[self.implementation]
        n, F = scan(self.write_proj(z), self.read_proj(z), state.F, resets, self.scan_options)
        y = self.out_proj(n)
        if self.residual:
            y = y + z
        self.aux_loss = self.aux_loss_per_step = None
        return y, FWMState(h=h, c=c, F=F)
