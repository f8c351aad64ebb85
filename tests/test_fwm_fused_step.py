"""FWMCore's fused acting step (``FWMCore._fused_step``: batched products around the compiled
LSTM-cell and memory kernels) against the eager step, and when it must not run."""

from __future__ import annotations

import pytest
import torch

from fwmrl.memory import fwm_kernel
from fwmrl.memory.fwm import FWMCore, FWMLowRankState, FWMState

pytestmark = pytest.mark.skipif(
    not fwm_kernel.available(torch.zeros(1), 16), reason="no C compiler for the kernel"
)


def _pair(dtype: torch.dtype, **kwargs: object) -> tuple[FWMCore, FWMCore]:
    torch.manual_seed(0)
    options = {"input_size": 6, "hidden_size": 12, "memory_size": 8, "read_hops": 2, **kwargs}
    fused = FWMCore(**options).to(dtype)
    eager = FWMCore(**options, kernel="eager").to(dtype)
    eager.load_state_dict(fused.state_dict())
    return fused, eager


def _count_fused(monkeypatch: pytest.MonkeyPatch, kernel: str = "acting_memory") -> list[int]:
    calls = [0]
    original = getattr(fwm_kernel, kernel)

    def counted(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(fwm_kernel, kernel, counted)
    return calls


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"residual": False, "tanh_query": True, "tanh_hop_keys": False, "write_scale": 1.0},
        {"memory_size": 16, "read_hops": 3, "hidden_size": 32, "input_size": 16},
    ],
)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_fused_steps_equal_eager_with_resets(
    options: dict, dtype: torch.dtype, tol: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    fused, eager = _pair(dtype, **options)
    calls = _count_fused(monkeypatch)
    steps, batch = 24, 7
    gen = torch.Generator().manual_seed(1)
    x = 2 * torch.randn(steps, 1, batch, fused.input_size, generator=gen, dtype=dtype)
    resets = torch.rand(steps, 1, batch, generator=gen) < 0.2
    resets[0] = True
    resets[11] = True  # every sequence: the factors start again
    resets[3] = resets[5] = False  # resets given, none of them set; at step 5 none given
    states = [core.initial_episode_state(batch) for core in (fused, eager)]
    with torch.no_grad():
        for t in range(steps):
            step_resets = None if t == 5 else resets[t]
            got, states[0], _ = fused(x[t], states[0], step_resets)
            want, states[1], _ = eager(x[t], states[1], step_resets)
            torch.testing.assert_close(got, want, rtol=0, atol=tol)
    assert calls[0] == steps
    assert isinstance(states[0], FWMLowRankState)
    assert states[0].k1.shape == states[1].k1.shape == (batch, steps - 11, fused.memory_size)
    for (_, got), (_, want) in zip(states[0].tensors(), states[1].tensors(), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=tol)
    if options.get("write_scale") == 1.0:
        assert (states[1].weight < 1).any()  # the norm bound acted


@pytest.mark.parametrize(
    "options",
    [{}, {"residual": False, "tanh_query": True, "tanh_hop_keys": False, "write_scale": 1.0}],
)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
@pytest.mark.parametrize("start", ["factors", "dense"])
def test_dense_fused_steps_equal_eager_with_resets(
    options: dict, dtype: torch.dtype, tol: float, start: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``lowrank_max_writes`` (or from a dense state) the step runs ``acting_dense``: the
    eager step's outputs and states, with resets of some and of all sequences."""
    fused, eager = _pair(dtype, lowrank_max_writes=5, **options)
    calls = _count_fused(monkeypatch, "acting_dense")
    steps, batch = 20, 6
    gen = torch.Generator().manual_seed(2)
    x = 2 * torch.randn(steps, 1, batch, fused.input_size, generator=gen, dtype=dtype)
    resets = torch.rand(steps, 1, batch, generator=gen) < 0.15
    resets[0] = start == "factors"
    resets[13] = True  # every sequence: F starts again (dense: zeroed by the kernel)
    initial = {"factors": "initial_episode_state", "dense": "initial_state"}[start]
    states = [getattr(core, initial)(batch).to(dtype=dtype) for core in (fused, eager)]
    bounded: list[float] = []
    with torch.no_grad():
        for t in range(steps):
            got, states[0], _ = fused(x[t], states[0], resets[t])
            want, states[1], _ = eager(x[t], states[1], resets[t])
            torch.testing.assert_close(got, want, rtol=0, atol=tol)
            assert type(states[0]) is type(states[1])
            if isinstance(states[0], FWMState):
                bounded.append(float(states[0].F.flatten(1).norm(dim=1).max()))
    assert calls[0] > 0
    assert isinstance(states[0], FWMState)
    for (_, got), (_, want) in zip(states[0].tensors(), states[1].tensors(), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=tol)
    if options.get("write_scale") == 1.0:
        assert max(bounded) > 1 - 1e-6  # the norm bound acted at some step


def test_fused_weights_follow_parameter_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    fused, eager = _pair(torch.float64)
    calls = _count_fused(monkeypatch)
    x = torch.randn(1, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        fused(x, fused.initial_episode_state(5))
        for core in (fused, eager):  # an optimizer step changes the parameters in place
            core.controller.weight_hh_l0.mul_(1.5)
            core.read_proj.bias.add_(0.25)
            core.out_proj.weight.mul_(-1.0)
        got = fused(x, fused.initial_episode_state(5)).output
        want = eager(x, eager.initial_episode_state(5)).output
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert calls[0] == 2


def test_fused_step_not_taken_with_gradients_or_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    fused, _ = _pair(torch.float32)
    calls = _count_fused(monkeypatch)
    x = torch.randn(1, 4, 6)
    y = fused(x, fused.initial_episode_state(4)).output  # gradients needed: the PyTorch step
    y.sum().backward()
    assert fused.controller.weight_ih_l0.grad is not None and calls[0] == 0
    seen = []
    handle = fused.write_proj.register_forward_hook(lambda module, args, out: seen.append(out))
    with torch.no_grad():
        fused(x, fused.initial_episode_state(4))
    handle.remove()
    assert len(seen) == 1 and calls[0] == 0  # the hook saw the write (the memory plot's)
    with torch.no_grad():
        fused(x, fused.initial_episode_state(4))
        fused(x, fused.initial_state(4))  # a dense state: the dense kernel (acting_dense)
    assert calls[0] == 1


def test_writes_appended_in_place_keep_every_state(monkeypatch: pytest.MonkeyPatch) -> None:
    fused, eager = _pair(torch.float64)
    calls = _count_fused(monkeypatch)
    x = torch.randn(6, 1, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        state = fused.initial_episode_state(5)
        for t in range(4):
            state = fused(x[t], state).state
        first = fused(x[4], state).state  # appended in place into the episode's buffer
        second = fused(x[5], state).state  # the slot is taken: copied, first keeps its values
        again = fused(x[5], first).state  # in place on first's buffer
        want = eager.initial_episode_state(5)
        for t in range(4):
            want = eager(x[t], want).state
        want_first = eager(x[4], want).state
        want_second = eager(x[5], want).state
        want_again = eager(x[5], want_first).state
    assert calls[0] == 7
    assert first.k1._base is state.k1._base is again.k1._base  # one buffer
    assert second.k1._base is not first.k1._base
    for got, expected in ((first, want_first), (second, want_second), (again, want_again)):
        for (_, a), (_, b) in zip(got.tensors(), expected.tensors(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    saved = first.state_dict()  # compact tensors, not the buffer
    assert saved["k1"].is_contiguous() and saved["k1"].untyped_storage().nbytes() == 5 * 5 * 8 * 8


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_episode_window_without_masks_is_bit_identical(dtype: torch.dtype) -> None:
    """An episode-mode window (no writes, resets at the first step only) runs the chunk scan
    without its reset masks: the very same values and gradients as with them."""
    from fwmrl.memory.fwm_scan import (
        FWMScanOptions,
        LowRankMemory,
        _lowrank_chunk_scan,
        lowrank_scan,
    )

    torch.manual_seed(0)
    steps, batch, m, hops = 30, 20, 16, 3
    opts = FWMScanOptions(memory_size=m, read_hops=hops, write_scale=1.0, chunk_size=64)
    write = torch.randn(steps, batch, 3 * m + 1, dtype=dtype, requires_grad=True)
    read = torch.randn(steps, batch, (hops + 1) * m, dtype=dtype, requires_grad=True)
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[0] = True
    weights = torch.randn(steps, batch, m, dtype=dtype)
    results = []
    for scan in (lowrank_scan, _lowrank_chunk_scan):
        n, memory = scan(write, read, LowRankMemory.empty(batch, m, write), resets, opts)
        grads = torch.autograd.grad((n * weights).sum(), (write, read))
        results.append((n, *memory, *grads))
    for got, want in zip(*results, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_controller_window_equals_lstm_cells(dtype: torch.dtype, tol: float) -> None:
    """The learning pass's controller (one input product, the cells in the compiled kernels)
    gives run_lstm_with_resets' outputs, final state and gradients, with resets inside."""
    from fwmrl.memory.lstm import run_lstm_with_resets

    torch.manual_seed(0)
    core = FWMCore(input_size=6, hidden_size=12, memory_size=8).to(dtype)
    steps, batch = 20, 5
    x = torch.randn(steps, batch, 6, dtype=dtype, requires_grad=True)
    h = torch.randn(batch, 1, 12, dtype=dtype, requires_grad=True)
    c = torch.randn(batch, 1, 12, dtype=dtype, requires_grad=True)
    state = core.initial_state(batch).to(dtype=dtype)
    state.h, state.c = h, c
    resets = torch.rand(steps, batch) < 0.2
    weights = [torch.randn(steps, batch, 12, dtype=dtype), *torch.randn(2, batch, 1, 12)]
    results = []
    for window in (True, False):
        if window:
            outputs = core._controller_window(x, state, resets)
        else:
            outputs = run_lstm_with_resets(core.controller, x, h, c, resets)
        loss = sum((out * w.to(dtype)).sum() for out, w in zip(outputs, weights, strict=True))
        grads = torch.autograd.grad(loss, [x, h, c, *core.controller.parameters()])
        results.append((*outputs, *grads))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=tol)
    assert results[0][3].abs().sum() > 0
