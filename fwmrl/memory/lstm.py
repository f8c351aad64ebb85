"""LSTM baseline core: ``torch.nn.LSTM`` (time-major) behind the memory-core interface."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from typing_extensions import override

from fwmrl.memory import fwm_kernel
from fwmrl.memory.base import CoreOutput, CoreState, MemoryCore, check_positive_int

CELL_LIBRARY = 16
"""The ``m`` whose compiled FWM library (:mod:`fwmrl.memory.fwm_kernel`, built per ``m``) runs
the LSTM cells of :func:`compiled_lstm_cells`: the cell kernels do not depend on ``m``, and 16 is
the FWM configs' memory size, so a process that runs both builds one library."""


@dataclasses.dataclass
class LSTMState(CoreState):
    """Hidden and cell state, ``[B, num_layers, hidden_size]`` each."""

    h: Tensor
    c: Tensor


def _steps_by_cells(lstm: nn.LSTM) -> bool:
    """Whether :func:`run_lstm_with_resets` may step ``lstm`` with ``torch.lstm_cell`` (a plain
    stacked LSTM: biases, no dropout, projection, bidirectionality or batch-first layout)."""
    return (
        lstm.bias
        and not lstm.bidirectional
        and not lstm.batch_first
        and lstm.proj_size == 0
        and (lstm.dropout == 0 or not lstm.training)
        and lstm.mode == "LSTM"
    )


def _run_cells(
    lstm: nn.LSTM, x: Tensor, h: Tensor, c: Tensor, resets: Tensor | None, compiled: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`run_lstm_with_resets` step by step with ``torch.lstm_cell`` (the same gates; the
    state is reset by the same multiplication), or with ``compiled`` in the compiled kernels."""
    layers = [
        tuple(
            getattr(lstm, f"{name}_l{k}")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )
        for k in range(lstm.num_layers)
    ]
    hs, cs = list(h.unbind(1)), list(c.unbind(1))
    any_reset = [False] * x.shape[0] if resets is None else resets.any(dim=1).tolist()
    compiled = compiled and fwm_kernel.available(x, CELL_LIBRARY)
    if compiled:  # each layer's gates as two products with the biases summed once
        layers = [(w_ih.t(), w_hh.t(), b_ih + b_hh) for w_ih, w_hh, b_ih, b_hh in layers]
    outputs = []
    for t, x_t in enumerate(x.unbind(0)):
        if any_reset[t]:
            keep = (~resets[t]).to(h.dtype).unsqueeze(1)
            hs, cs = [v * keep for v in hs], [v * keep for v in cs]
        for k, weights in enumerate(layers):
            if compiled:
                w_ih_t, w_hh_t, bias = weights
                gates = torch.addmm(torch.addmm(bias, x_t, w_ih_t), hs[k], w_hh_t)
                hs[k], cs[k] = _cell_from_gates(gates, cs[k])
            else:
                hs[k], cs[k] = torch.lstm_cell(x_t, (hs[k], cs[k]), *weights)
            x_t = hs[k]
        outputs.append(x_t)
    return torch.stack(outputs), torch.stack(hs, dim=1), torch.stack(cs, dim=1)


def _cell_from_gates(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The new ``h, c`` of an LSTM cell from its gates' pre-activations ``[B, 4H]`` and ``c
    [B, H]`` in the compiled kernel (with autograd when gradients are on)."""
    if torch.is_grad_enabled() and (gates.requires_grad or c.requires_grad):
        return _CompiledCell.apply(gates, c)
    h, c, _ = fwm_kernel.lstm_cell(gates, c, None, None, CELL_LIBRARY)
    return h, c


class _CompiledCell(torch.autograd.Function):
    """An LSTM cell's ``h, c`` from its gates' pre-activations and ``c`` (biases included in the
    gates), forward and backward in :func:`fwmrl.memory.fwm_kernel.lstm_cell` and
    :func:`~fwmrl.memory.fwm_kernel.lstm_cell_backward` (the backward recomputes the activations
    from the gates): one pass over the gates each way instead of ``torch.lstm_cell``'s dozen
    elementwise operations and their backward."""

    @staticmethod
    def forward(ctx, gates: Tensor, c_prev: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        h, c, _ = fwm_kernel.lstm_cell(gates, c_prev, None, None, CELL_LIBRARY)
        ctx.save_for_backward(gates, c_prev, c)
        return h, c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor | None, grad_c: Tensor | None) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        gates, c_prev, c = ctx.saved_tensors
        if grad_h is None:
            grad_h = torch.zeros_like(c)
        return fwm_kernel.lstm_cell_backward(gates, c_prev, c, grad_h, grad_c, CELL_LIBRARY)


_compiled_cells = False


@contextlib.contextmanager
def compiled_lstm_cells() -> Iterator[None]:
    """Within the block the steps of :class:`LSTMCore` that :func:`run_lstm_with_resets` runs as
    cells (single steps, and windows with gradients) compute each step's gates as two batched
    products and the gates to the new state, forward and backward, in the compiled C kernels of
    :mod:`fwmrl.memory.fwm_kernel` (CPU, float32 and float64; elsewhere, or without a C compiler,
    ``torch.lstm_cell`` as outside the block; other cores' LSTMs, e.g. FWM's controller with
    ``kernel: eager``, are not affected): at 600 sequences of 128 units the cell's elementwise
    part, a dozen tensor operations each way in ``torch.lstm_cell``, costs about as much as its
    products. The same values and gradients to float rounding (600 sequences, 30 steps, 128
    units, resets inside: outputs and ``W_hh``'s gradient within 4e-16 in float64, 2e-7 in
    float32). :class:`fwmrl.agents.A2C` collects and learns within it; PPO does not (its seeded
    runs keep ``torch.lstm_cell``'s rounding)."""
    global _compiled_cells
    previous, _compiled_cells = _compiled_cells, True
    try:
        yield
    finally:
        _compiled_cells = previous


_fused_windows = False


@contextlib.contextmanager
def fused_lstm_windows() -> Iterator[None]:
    """Within the block :func:`run_lstm_with_resets` runs windows *with gradients* as fused
    ``nn.LSTM`` calls too (cut at resets), not as ``torch.lstm_cell`` steps. For a few sequences
    per window (PPO's minibatches re-run in every epoch) the fused forward and backward cost
    4-13x less than the cells on CPU (2-16 sequences, 64-128 steps, 32-64 units, one thread;
    ``fwmrl.agents.PPO`` uses it); at hundreds of sequences they cost about the same, and with
    many resets the pieces get short, so a window cut into more than ``steps / 8`` pieces still
    runs as cells (64 sequences, 128 steps, a reset in about half the steps: fused 2.2x the
    cells). Single steps run as cells. The same values and gradients up to float rounding."""
    global _fused_windows
    previous, _fused_windows = _fused_windows, True
    try:
        yield
    finally:
        _fused_windows = previous


def run_lstm_with_resets(
    lstm: nn.LSTM,
    x: Tensor,
    h: Tensor,
    c: Tensor,
    resets: Tensor | None,
    compiled: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run ``lstm`` over ``x[T, B, F]`` from batch-first ``h, c [B, L, H]``, zeroing the state of
    sequence ``b`` before step ``t`` wherever ``resets[t, b]``.

    Without gradients a window is cut only at steps where some sequence resets, so each piece is
    one fused ``nn.LSTM`` call. A single step, and any window with gradients, runs
    ``torch.lstm_cell`` step by step instead: on CPU the fused call costs several times more per
    single step, and its backward over a window costs more than the cells' (measured at 600
    sequences, 32 and 128 units). The same values and gradients (tested). Within
    :func:`fused_lstm_windows` windows with gradients run fused too. ``compiled``: the cell steps
    run in the compiled kernels where they can (:func:`compiled_lstm_cells`, which sets it for
    the LSTM core).
    """
    steps = x.shape[0]
    cells = _steps_by_cells(lstm) and (steps == 1 or torch.is_grad_enabled())
    if cells and not (_fused_windows and steps > 1):
        return _run_cells(lstm, x, h, c, resets, compiled)
    if resets is None:
        cuts = [0, steps]
    else:
        any_reset = resets.any(dim=1).tolist()
        cuts = [0, *[t for t in range(1, steps) if any_reset[t]], steps]
    if cells and len(cuts) - 1 > max(1, steps // 8):  # many short pieces: the cells are cheaper
        return _run_cells(lstm, x, h, c, resets, compiled)
    h = h.transpose(0, 1).contiguous()
    c = c.transpose(0, 1).contiguous()
    outputs = []
    for start, end in zip(cuts[:-1], cuts[1:], strict=True):
        if resets is not None and any_reset[start]:
            keep = (~resets[start]).to(h.dtype).view(1, -1, 1)
            h, c = h * keep, c * keep
        y, (h, c) = lstm(x[start:end], (h, c))
        outputs.append(y)
    y = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
    return y, h.transpose(0, 1), c.transpose(0, 1)


class LSTMCore(MemoryCore):
    """A standard (stacked) LSTM.

    Parameters
    ----------
    input_size:
        Features per input step.
    hidden_size:
        LSTM units per layer; also the output size.
    num_layers:
        Stacked LSTM layers.
    """

    def __init__(self, input_size: int, hidden_size: int = 128, num_layers: int = 1) -> None:
        super().__init__()
        owner = "LSTMCore"
        self.input_size = check_positive_int(owner, "input_size", input_size)
        self.hidden_size = check_positive_int(owner, "hidden_size", hidden_size)
        self.num_layers = check_positive_int(owner, "num_layers", num_layers)
        self.output_size = hidden_size
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers)

    @override
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> LSTMState:
        shape = (batch_size, self.num_layers, self.hidden_size)
        dtype = self.lstm.weight_hh_l0.dtype
        return LSTMState(
            h=torch.zeros(shape, device=device, dtype=dtype),
            c=torch.zeros(shape, device=device, dtype=dtype),
        )

    @override
    def forward(
        self, x: Tensor, state: LSTMState | None = None, resets: Tensor | None = None
    ) -> CoreOutput:
        x, state, resets = self._check_inputs(x, state, resets)
        y, h, c = run_lstm_with_resets(self.lstm, x, state.h, state.c, resets, _compiled_cells)
        return CoreOutput(y, LSTMState(h=h, c=c), None)
