"""The LSTM core's cells in the compiled kernels (``fwmrl.memory.lstm.compiled_lstm_cells``, A2C's
collection and learning) give ``torch.lstm_cell``'s outputs, states and gradients, with resets
inside the window, with and without gradients; an A2C update with them equals one without."""

from __future__ import annotations

import contextlib

import pytest
import torch
from a2c_lockstep import assert_updates_agree
from torch import nn

from fwmrl.agents.job import build_agent
from fwmrl.config import load_config
from fwmrl.memory import fwm_kernel
from fwmrl.memory import lstm as lstm_module
from fwmrl.memory.fwm import FWMCore
from fwmrl.memory.lstm import LSTMCore, compiled_lstm_cells, run_lstm_with_resets

TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}

pytestmark = pytest.mark.skipif(
    not fwm_kernel.available(torch.zeros(1), lstm_module.CELL_LIBRARY),
    reason="no C compiler for the compiled kernels",
)


def run(lstm: nn.LSTM, x, h, c, resets, compiled: bool, grad: bool = True):  # noqa: ANN001, ANN201
    lstm.zero_grad()
    inputs = [t.clone().requires_grad_(grad) for t in (x, h, c)]
    with torch.set_grad_enabled(grad):
        y, h_end, c_end = run_lstm_with_resets(lstm, *inputs, resets, compiled=compiled)
    if not grad:
        return [y, h_end, c_end], []
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
@pytest.mark.parametrize("grad", [True, False])
def test_compiled_cells_match_torch_lstm_cell(
    dtype: torch.dtype, layers: int, steps: int, grad: bool
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
    reference, reference_grads = run(lstm, x, h, c, resets, False, grad)
    compiled, compiled_grads = run(lstm, x, h, c, resets, True, grad)
    tol = TOLERANCE[dtype]
    for a, b in zip(compiled + compiled_grads, reference + reference_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    if grad or steps == 1:  # cells (a window without gradients runs the fused nn.LSTM)
        # the kernels ran (torch.lstm_cell's values would be bit-equal)
        assert any(not torch.equal(a, b) for a, b in zip(compiled, reference, strict=True))
    if grad:
        assert reference_grads[0].abs().sum() > 0  # the comparison is not between zeros


def test_compiled_cells_only_within_the_block_and_for_the_lstm_core() -> None:
    torch.manual_seed(1)
    core = LSTMCore(3, 4)
    x = torch.randn(1, 5, 3)  # one step: cells
    with torch.no_grad():
        outside = core(x).output
        with compiled_lstm_cells():
            inside = core(x).output
        after = core(x).output
    assert torch.equal(outside, after) and not torch.equal(outside, inside)
    # FWM's controller without its kernels (kernel: eager) keeps torch.lstm_cell in the block
    fwm = FWMCore(3, hidden_size=4, memory_size=4, kernel="eager")
    x = torch.randn(5, 2, 3)
    reference = fwm(x).output
    with compiled_lstm_cells():
        assert torch.equal(fwm(x).output, reference)


@pytest.mark.parametrize("mode", ["6", "episode"])
def test_a2c_update_with_compiled_cells_equals_torch_cells(mode: str) -> None:
    """Two A2C + LSTM agents seeded alike, one with the compiled cells switched off: the same
    actions and episodes, losses and parameters to float tolerance (float32), resets inside the
    rollouts (6-step truncated windows over 8-step episodes, and episode mode)."""
    overrides = [
        "env.id=FWM-Gridworld-v0",
        "env.num_envs=4",
        "env.kwargs={size: 5, view: 3, max_steps: 8}",
        "core.name=lstm",
        "core.hidden_size=8",
        f"algo.n_steps={mode}",
        "logging.wandb=disabled",
    ]
    compiled, reference = (build_agent(load_config(None, overrides)) for _ in range(2))
    reference._cells = contextlib.nullcontext
    inside = assert_updates_agree(compiled, reference)
    assert any(inside) == (mode != "episode")  # truncated windows: episodes start inside them
    assert compiled.episodes > 0


def test_ppo_keeps_torch_lstm_cell() -> None:
    from fwmrl.agents.ppo import PPO

    agent = PPO("lstm", "FWM-Gridworld-v0", n_envs=4, core_kwargs={"hidden_size": 4}, n_steps=4)
    assert isinstance(agent._cells(), contextlib.nullcontext)
