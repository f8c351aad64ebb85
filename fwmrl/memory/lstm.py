"""LSTM baseline core: ``torch.nn.LSTM`` (time-major) behind the memory-core interface."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from fwmrl.memory.base import CoreState, MemoryCore, check_positive_int


@dataclasses.dataclass
class LSTMState(CoreState):
    """Hidden and cell state, ``[B, num_layers, hidden_size]`` each."""

    h: Tensor
    c: Tensor


def run_lstm_with_resets(
    lstm: nn.LSTM, x: Tensor, h: Tensor, c: Tensor, resets: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Run ``lstm`` over ``x[T, B, F]`` from batch-first ``h, c [B, L, H]``, zeroing the state of
    sequence ``b`` before step ``t`` wherever ``resets[t, b]``.

    The sequence is cut only at steps where some sequence resets, so each piece is one fused call.
    """
    h = h.transpose(0, 1).contiguous()
    c = c.transpose(0, 1).contiguous()
    steps = x.shape[0]
    if resets is None:
        cuts = [0, steps]
    else:
        any_reset = resets.any(dim=1).tolist()
        cuts = [0, *[t for t in range(1, steps) if any_reset[t]], steps]
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

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> LSTMState:
        shape = (batch_size, self.num_layers, self.hidden_size)
        dtype = self.lstm.weight_hh_l0.dtype
        return LSTMState(
            h=torch.zeros(shape, device=device, dtype=dtype),
            c=torch.zeros(shape, device=device, dtype=dtype),
        )

    def forward(
        self, x: Tensor, state: LSTMState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]:
        x, state, resets = self._check_inputs(x, state, resets)
        y, h, c = run_lstm_with_resets(self.lstm, x, state.h, state.c, resets)
        self.aux_loss = self.aux_loss_per_step = None
        return y, LSTMState(h=h, c=c)
