"""Gated fast weights (Schlag & Schmidhuber 2017): sizes, parameter count, one-step delay."""

from __future__ import annotations

import torch
import torch.nn.functional as functional
from torch import nn

from fwmrl.memory import GatedFWCore


def test_paper_sizes_and_parameter_count():
    """The associative-retrieval model of the paper: 15 symbols embedded in 15 dims, the core, and
    the output projection 40 → 15.

    Embedding 225 + S1 (55 → 100) 5,600 + S2 (100 → 390) 39,390 + output 615 = 45,830. The paper
    prints S2 as 100 × 394 and 46,234 parameters: 46,234 − 45,830 = 404 = 4 · (100 + 1), exactly four
    more S2 outputs, which its own equations (z 40 + Δ1 2·(40 + 55) + Δ2 4·40 = 390) never use.
    """
    core = GatedFWCore(input_size=15)
    assert core.slow_out.out_features == 40 + 2 * (40 + 55) + 4 * 40 == 390
    model = nn.ModuleDict(
        {"embed": nn.Embedding(15, 15), "core": core, "out": nn.Linear(core.output_size, 15)}
    )
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == 45_830
    assert n_params + 4 * (100 + 1) == 46_234
    state = core.initial_state(1)
    assert state.F1.shape == (1, 40, 55) and state.F2.shape == (1, 40, 40)
    # "roughly 70 times more temporal memory than similar-sized RNNs": 40·55 + 40·40 + 80 floats.
    assert core.state_numel == 40 * 55 + 40 * 40 + 40 + 40


def test_generated_weights_are_used_from_the_next_step():
    torch.manual_seed(0)
    core = GatedFWCore(input_size=3, fast_size=4, slow_size=3, slow_hidden_size=6)
    x = torch.randn(5, 2, 3)
    y, _ = core(x)
    # No fast weights exist before the first update.
    assert torch.equal(y[0], torch.zeros_like(y[0]))
    assert y[1:].abs().sum() > 0

    _, state = core(x[:3])
    y_next, _ = core.step(x[3], state)
    fast_in = torch.cat([state.fast_h, x[3]], dim=-1)
    hidden = functional.layer_norm(torch.tanh(torch.einsum("bij,bj->bi", state.F1, fast_in)), (4,))
    expected = functional.layer_norm(torch.tanh(torch.einsum("bij,bj->bi", state.F2, hidden)), (4,))
    torch.testing.assert_close(y_next, expected)


def test_gate_blends_old_and_new_weights():
    torch.manual_seed(0)
    core = GatedFWCore(input_size=3, fast_size=4, slow_size=3, slow_hidden_size=6)
    with torch.no_grad():
        core.slow_out.bias.zero_()
        core.slow_out.weight.zero_()
        # γ, δ of Δ2 → σ = 1: T = 1, F2 is replaced by H; γ, δ of Δ1 → σ ≈ 0: F1 is kept.
        sizes = core.update_sizes
        offsets = torch.tensor([0, *sizes]).cumsum(0)
        core.slow_out.bias[offsets[3] : offsets[5]] = -30.0
        core.slow_out.bias[offsets[7] : offsets[9]] = 30.0
        core.slow_out.bias[offsets[5] : offsets[7]] = 0.5
    state = core.initial_state(1)
    state.F1.fill_(0.25)
    _, new = core.step(torch.randn(1, 3), state)
    torch.testing.assert_close(new.F1, state.F1)
    torch.testing.assert_close(new.F2, torch.full_like(new.F2, torch.tanh(torch.tensor(0.5)) ** 2))
