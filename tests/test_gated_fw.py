"""Gated fast weights (Schlag & Schmidhuber 2017): sizes, parameter count, one-step delay."""

from __future__ import annotations

import pytest
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
    y, _, _ = core(x)
    # No fast weights exist before the first update.
    assert torch.equal(y[0], torch.zeros_like(y[0]))
    assert y[1:].abs().sum() > 0

    _, state, _ = core(x[:3])
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


def _explicit_update(F, alpha, beta, gamma, delta):
    """Eq. 5-8 of the paper written out: ``H``, ``T`` and the blend as full matrices."""
    H = torch.tanh(alpha)[:, :, None] * torch.tanh(beta)[:, None, :]
    T = torch.sigmoid(gamma)[:, :, None] * torch.sigmoid(delta)[:, None, :]
    return T * H + (1 - T) * F


def test_fused_update_and_matvec_match_the_explicit_equations():
    """The rank-one fused update and the row-vector mat-vec give the values and gradients of the
    explicit formulas (float64), and pass gradcheck."""
    from fwmrl.memory.gated_fw import batched_matvec, gated_outer_update

    torch.manual_seed(0)
    B, p, q = 3, 4, 6
    F = torch.randn(B, p, q, dtype=torch.float64, requires_grad=True)
    vecs = [torch.randn(B, n, dtype=torch.float64, requires_grad=True) for n in (p, q, p, q)]
    x = torch.randn(B, q, dtype=torch.float64, requires_grad=True)
    args = (F, *vecs)
    fused, explicit = gated_outer_update(*args), _explicit_update(*args)
    torch.testing.assert_close(fused, explicit)
    weight = torch.randn_like(fused)
    g_fused = torch.autograd.grad((fused * weight).sum(), args)
    g_explicit = torch.autograd.grad((explicit * weight).sum(), args)
    for a, b in zip(g_fused, g_explicit, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(batched_matvec(F, x), torch.einsum("bij,bj->bi", F, x))
    assert torch.autograd.gradcheck(gated_outer_update, args)
    assert torch.autograd.gradcheck(batched_matvec, (F, x))


def test_glorot_init_and_gate_bias():
    """``init="glorot"``: Glorot-uniform S1/S2 weights, zero biases; ``gate_bias`` shifts exactly
    the γ and δ biases of both updates, so the first write gate is ``σ(gate_bias)²``."""
    torch.manual_seed(0)
    core = GatedFWCore(input_size=15, init="glorot", gate_bias=-2.0)
    for layer in (core.slow_in, core.slow_out):
        bound = (6 / (layer.in_features + layer.out_features)) ** 0.5
        assert layer.weight.abs().max() <= bound
        assert layer.weight.abs().max() > 0.9 * bound  # uniform over the whole range
    bias = core.slow_out.bias.detach()
    gates = torch.zeros_like(bias, dtype=torch.bool)
    for start, size in core.gate_slices():
        gates[start : start + size] = True
    assert int(gates.sum()) == 40 + 55 + 40 + 40  # γ1 (f), δ1 (f + input), γ2, δ2
    assert torch.all(bias[gates] == -2.0) and torch.all(bias[~gates] == 0.0)
    # With S2's weights zeroed and α1 = 0.5, β1 = 0.3, the first update writes σ(-2)² · H into
    # the zero fast weights.
    with torch.no_grad():
        core.slow_out.weight.zero_()
        core.slow_out.bias[40:80] = 0.5
        core.slow_out.bias[80:135] = 0.3
    _, state = core.step(torch.randn(2, 15), core.initial_state(2))
    expected = torch.sigmoid(torch.tensor(-2.0)) ** 2 * torch.tanh(torch.tensor(0.5))
    expected = expected * torch.tanh(torch.tensor(0.3))
    torch.testing.assert_close(state.F1, torch.full((2, 40, 55), expected.item()))

    default = GatedFWCore(input_size=15)
    assert default.slow_out.bias.abs().max() > 0  # PyTorch's default init keeps random biases


def test_bad_init_options_are_refused():
    with pytest.raises(ValueError, match=r"'init' must be one of \['torch', 'glorot'\]"):
        GatedFWCore(input_size=3, init="xavier")
    with pytest.raises(ValueError, match="'gate_bias' must be a number"):
        GatedFWCore(input_size=3, gate_bias="low")
