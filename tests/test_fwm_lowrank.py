"""FWM's low-rank (factor) form: the same values and gradients as the dense scans, with resets."""

from __future__ import annotations

import pytest
import torch

from fwmrl.memory import FWMCore
from fwmrl.memory.fwm import FWMLowRankState, FWMState
from fwmrl.memory.fwm_scan import (
    FWM_SCANS,
    FWMScanOptions,
    LowRankMemory,
    lowrank_hop_many,
    lowrank_scan,
)

M, HOPS = 4, 3
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}
"""Absolute and relative tolerance per dtype (float32 gradients reach about 10)."""


def inputs(steps: int, batch: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    write = torch.randn(steps, batch, 3 * M + 1, generator=gen, dtype=dtype) * 1.5
    read = torch.randn(steps, batch, M + HOPS * M, generator=gen, dtype=dtype)
    return write, read


def some_resets(steps: int, batch: int) -> torch.Tensor:
    """Resets at the first step for all, inside the window for some, at one step for all."""
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[0] = True
    resets[3, 0] = True
    resets[5, 1:] = True
    resets[steps - 2] = True
    return resets


def random_memory(batch: int, writes: int, dtype: torch.dtype, seed: int = 1) -> LowRankMemory:
    """Factors of a nonzero memory reached by ``writes`` real steps (so its norm is consistent)."""
    opts = FWMScanOptions(memory_size=M, read_hops=HOPS, write_scale=1.0, chunk_size=64)
    write, read = inputs(writes, batch, dtype, seed)
    if writes == 0:
        return LowRankMemory.empty(batch, M, write)
    _, memory = lowrank_scan(write, read, LowRankMemory.empty(batch, M, write), None, opts)
    return memory


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("chunk_size", [3, 64])
@pytest.mark.parametrize("prior_writes", [0, 5])
@pytest.mark.parametrize("with_resets", [False, True])
def test_lowrank_scan_matches_naive_values_and_gradients(
    dtype: torch.dtype, chunk_size: int, prior_writes: int, with_resets: bool
) -> None:
    steps, batch = 9, 3
    opts = FWMScanOptions(memory_size=M, read_hops=HOPS, write_scale=1.0, chunk_size=chunk_size)
    write, read = inputs(steps, batch, dtype)
    resets = some_resets(steps, batch) if with_resets else None
    if with_resets and prior_writes:
        resets[0] = False  # otherwise the prior writes are discarded
        resets[0, 1] = True
    prior = random_memory(batch, prior_writes, dtype)
    F0 = prior.to_dense()
    if prior_writes:
        torch.testing.assert_close(
            prior.norm_sq,
            F0.flatten(1).square().sum(1),
            rtol=TOLERANCE[dtype],
            atol=TOLERANCE[dtype],
        )
    w1, r1 = write.clone().requires_grad_(), read.clone().requires_grad_()
    w2, r2 = write.clone().requires_grad_(), read.clone().requires_grad_()
    n_ref, F_ref = FWM_SCANS["naive"](w1, r1, F0, resets, opts)
    n_low, memory = lowrank_scan(w2, r2, prior, resets, opts)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(n_low, n_ref, rtol=tol, atol=tol)
    torch.testing.assert_close(memory.to_dense(), F_ref, rtol=tol, atol=tol)
    torch.testing.assert_close(memory.norm_sq, F_ref.flatten(1).square().sum(1), rtol=tol, atol=tol)
    gen = torch.Generator().manual_seed(7)
    probe_n = torch.randn(n_ref.shape, generator=gen, dtype=dtype)
    probe_F = torch.randn(F_ref.shape, generator=gen, dtype=dtype)
    loss_ref = (n_ref * probe_n).sum() + (F_ref * probe_F).sum()
    loss_low = (n_low * probe_n).sum() + (memory.to_dense() * probe_F).sum()
    loss_ref.backward()
    loss_low.backward()
    torch.testing.assert_close(w2.grad, w1.grad, rtol=tol, atol=tol)
    torch.testing.assert_close(r2.grad, r1.grad, rtol=tol, atol=tol)


def test_step_by_step_equals_one_window_and_drops_writes_at_full_resets() -> None:
    steps, batch = 10, 3
    opts = FWMScanOptions(memory_size=M, read_hops=HOPS, write_scale=0.5, chunk_size=4)
    write, read = inputs(steps, batch, torch.float64, seed=3)
    resets = some_resets(steps, batch)
    n_window, end = lowrank_scan(write, read, random_memory(batch, 2, torch.float64), resets, opts)
    memory = random_memory(batch, 2, torch.float64)
    outputs = []
    for t in range(steps):
        n, memory = lowrank_scan(write[t : t + 1], read[t : t + 1], memory, resets[t : t + 1], opts)
        outputs.append(n)
    torch.testing.assert_close(torch.cat(outputs), n_window, rtol=0, atol=1e-10)
    # the last full reset is at steps - 2: only its two writes remain, in both ways of running
    assert end.writes == 2
    torch.testing.assert_close(memory.to_dense(), end.to_dense(), rtol=0, atol=1e-10)


def test_lowrank_hop_is_the_dense_hop() -> None:
    memory = random_memory(2, 6, torch.float64)
    gen = torch.Generator().manual_seed(5)
    n = torch.randn(2, 4, M, generator=gen, dtype=torch.float64)
    e = torch.randn(2, 4, M, generator=gen, dtype=torch.float64)
    dense = memory.to_dense()
    expected = torch.einsum("bca,bcd,bade->bce", n, e, dense)
    torch.testing.assert_close(lowrank_hop_many(memory, n, e), expected, rtol=0, atol=1e-12)
    assert memory.norm_sq.min() > 0


def make_core(dtype: torch.dtype, **kwargs) -> FWMCore:
    torch.manual_seed(0)
    return FWMCore(5, hidden_size=6, memory_size=M, read_hops=2, **kwargs).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_core_episode_state_matches_dense_core_with_gradients(dtype: torch.dtype) -> None:
    steps, batch = 8, 4
    fast, dense = make_core(dtype), make_core(dtype, state_form="dense")
    x = torch.randn(steps, batch, 5, generator=torch.Generator().manual_seed(2), dtype=dtype)
    resets = some_resets(steps, batch)
    start = fast.initial_episode_state(batch)
    assert isinstance(start, FWMLowRankState)
    assert isinstance(dense.initial_episode_state(batch), FWMState)
    y_fast, s_fast, _ = fast(x, start, resets)
    y_dense, s_dense, _ = dense(x, dense.initial_state(batch).to(dtype=dtype), resets)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(y_fast, y_dense, rtol=tol, atol=tol)
    assert isinstance(s_fast, FWMLowRankState)
    torch.testing.assert_close(s_fast.to_dense().F, s_dense.F, rtol=tol, atol=tol)
    (y_fast.square().sum() + s_fast.to_dense().F.sum()).backward()
    (y_dense.square().sum() + s_dense.F.sum()).backward()
    for (name, p_fast), p_dense in zip(fast.named_parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(p_fast.grad, p_dense.grad, rtol=tol, atol=tol, msg=name)


def test_core_step_by_step_on_factors_equals_dense_forward_and_switches_to_dense() -> None:
    steps, batch = 12, 3
    fast = make_core(torch.float64, lowrank_max_writes=7)
    dense = make_core(torch.float64, state_form="dense")
    x = torch.randn(
        steps, batch, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[0] = True
    resets[4, 2] = True
    with torch.no_grad():
        y_dense, s_dense, _ = dense(x, dense.initial_state(batch).to(dtype=torch.float64), resets)
        state = fast.initial_episode_state(batch)
        outputs, kinds = [], []
        for t in range(steps):
            y, state = fast.step(x[t], state, resets[t])
            outputs.append(y)
            kinds.append(type(state))
    torch.testing.assert_close(torch.stack(outputs), y_dense, rtol=0, atol=1e-10)
    # seven writes fit in factor form; the eighth step continues on the dense tensor
    assert kinds[:7] == [FWMLowRankState] * 7 and kinds[7:] == [FWMState] * 5
    torch.testing.assert_close(state.F, s_dense.F, rtol=0, atol=1e-10)


def test_dense_window_that_resets_everywhere_at_start_runs_on_factors_exactly() -> None:
    steps, batch = 6, 3
    fast, dense = make_core(torch.float64), make_core(torch.float64, state_form="dense")
    x = torch.randn(
        steps, batch, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64
    )
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[0] = True
    stale = dense.initial_state(batch).to(dtype=torch.float64)
    stale.F = torch.randn(stale.F.shape, dtype=torch.float64)  # discarded by the resets
    with torch.no_grad():
        y_fast, s_fast, _ = fast(x, stale, resets)
        y_dense, s_dense, _ = dense(x, stale, resets)
    assert isinstance(s_fast, FWMState)
    torch.testing.assert_close(y_fast, y_dense, rtol=0, atol=1e-10)
    torch.testing.assert_close(s_fast.F, s_dense.F, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("with_resets", [False, True])
def test_dense_zero_memory_window_runs_on_factors_with_the_dense_gradients(
    dtype: torch.dtype, with_resets: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window from ``initial_state`` (a dense zero ``F``, no reset at its first step) runs on
    the factors: the dense scan's values, end state and parameter gradients, resets inside."""
    from fwmrl.memory import fwm as fwm_module

    steps, batch = 9, 3
    fast = make_core(dtype, lowrank_max_writes=steps)
    dense = make_core(dtype, state_form="dense")
    x = torch.randn(steps, batch, 5, generator=torch.Generator().manual_seed(8), dtype=dtype)
    resets = None
    if with_resets:
        resets = torch.zeros(steps, batch, dtype=torch.bool)
        resets[3, 0] = resets[5, 1:] = True
    calls = []
    original = fwm_module.lowrank_scan
    monkeypatch.setattr(fwm_module, "lowrank_scan", lambda *a: calls.append(1) or original(*a))
    y_fast, s_fast, _ = fast(x, fast.initial_state(batch).to(dtype=dtype), resets)
    assert calls, "the zero F ran the dense scan"
    y_dense, s_dense, _ = dense(x, dense.initial_state(batch).to(dtype=dtype), resets)
    assert isinstance(s_fast, FWMState)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(y_fast, y_dense, rtol=tol, atol=tol)
    torch.testing.assert_close(s_fast.F, s_dense.F, rtol=tol, atol=tol)
    (y_fast.square().sum() + s_fast.F.sum() + s_fast.h.sum()).backward()
    (y_dense.square().sum() + s_dense.F.sum() + s_dense.h.sum()).backward()
    for (name, p_fast), p_dense in zip(fast.named_parameters(), dense.parameters(), strict=True):
        torch.testing.assert_close(p_fast.grad, p_dense.grad, rtol=tol, atol=tol, msg=name)
    # a nonzero F, or one that needs a gradient, stays on the dense scan
    calls.clear()
    warm = fast.initial_state(batch).to(dtype=dtype)
    warm.F = s_dense.F.detach()
    fast(x, warm, resets)
    warm.F = torch.zeros_like(warm.F).requires_grad_(True)
    fast(x, warm, resets)
    assert not calls


def test_lowrank_state_round_trips_through_a_state_dict() -> None:
    core = make_core(torch.float32)
    state = core.initial_episode_state(2)
    _, state, _ = core(torch.randn(3, 2, 5), state)
    restored = FWMState.from_state_dict({k: v.clone() for k, v in state.state_dict().items()})
    assert isinstance(restored, FWMLowRankState)
    torch.testing.assert_close(restored.to_dense().F, state.to_dense().F)
    assert restored[1:].batch_size == 1 and FWMLowRankState.cat([state, state]).batch_size == 4
