"""``run_lstm_with_resets`` stepping ``torch.lstm_cell`` gives the fused ``nn.LSTM`` path's outputs,
final states and gradients, with resets inside the window."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fwmrl.memory import lstm as lstm_module
from fwmrl.memory.lstm import run_lstm_with_resets

TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}


def run(lstm: nn.LSTM, x, h, c, resets, cells: bool, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    monkeypatch.setattr(lstm_module, "_steps_by_cells", lambda _: cells)
    lstm.zero_grad()
    inputs = [t.clone().requires_grad_() for t in (x, h, c)]
    y, h_end, c_end = run_lstm_with_resets(lstm, *inputs, resets)
    gen = torch.Generator().manual_seed(5)
    loss = sum(
        (t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in (y, h_end, c_end)
    )
    loss.backward()
    grads = [t.grad for t in inputs] + [p.grad.clone() for p in lstm.parameters()]
    return [y, h_end, c_end], grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("steps", [1, 7])
def test_cells_match_the_fused_lstm(
    dtype: torch.dtype, layers: int, steps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 6, layers).to(dtype)
    batch = 4
    x = torch.randn(steps, batch, 5, dtype=dtype)
    h, c = (torch.randn(batch, layers, 6, dtype=dtype) for _ in range(2))
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[0, 2] = True
    if steps > 1:
        resets[3, 0] = resets[5] = True
    fused_out, fused_grads = run(lstm, x, h, c, resets, False, monkeypatch)
    cell_out, cell_grads = run(lstm, x, h, c, resets, True, monkeypatch)
    tol = TOLERANCE[dtype]
    for a, b in zip(cell_out + cell_grads, fused_out + fused_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    assert fused_grads[0].abs().sum() > 0  # the comparison is not between zeros


def test_cells_are_used_for_plain_lstms_only() -> None:
    assert lstm_module._steps_by_cells(nn.LSTM(3, 4, 2))
    assert not lstm_module._steps_by_cells(nn.LSTM(3, 4, bidirectional=True))
    assert not lstm_module._steps_by_cells(nn.LSTM(3, 4, proj_size=2))
    assert not lstm_module._steps_by_cells(nn.LSTM(3, 4, bias=False))
    assert not lstm_module._steps_by_cells(nn.LSTM(3, 4, 2, dropout=0.5))
