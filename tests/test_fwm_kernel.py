"""The compiled acting step of FWM (``fwmrl.memory.fwm_kernel``) against the eager factor step."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fwmrl.memory import fwm_kernel
from fwmrl.memory.fwm import FWMCore, FWMLowRankState
from fwmrl.memory.fwm_scan import (
    FWMScanOptions,
    LowRankMemory,
    _ScaledDeltaRecurrence,
    lowrank_scan,
)

pytestmark = pytest.mark.skipif(
    not fwm_kernel.available(torch.zeros(1), 16), reason="no C compiler for the kernel"
)


def _steps(opts: FWMScanOptions, dtype: torch.dtype, kernel: str, steps: int = 35, batch: int = 7):
    """``steps`` single steps of ``lowrank_scan`` without gradients from an empty memory, with
    resets of a few sequences inside (and one full reset); the reads and the final factors."""
    gen = torch.Generator().manual_seed(3)
    m, hops = opts.memory_size, opts.read_hops
    write = torch.randn(steps, 1, batch, 3 * m + 1, generator=gen, dtype=dtype) * 1.5
    read = torch.randn(steps, 1, batch, (hops + 1) * m, generator=gen, dtype=dtype)
    resets = torch.rand(steps, 1, batch, generator=gen) < 0.15
    resets[min(20, steps - 1)] = True  # every sequence resets: the factors start again
    memory = LowRankMemory.empty(batch, m, write)
    options = dataclasses.replace(opts, kernel=kernel)
    outputs = []
    with torch.no_grad():
        for t in range(steps):
            n, memory = lowrank_scan(write[t], read[t], memory, resets[t], options)
            outputs.append(n)
    return torch.cat(outputs), memory


@pytest.mark.parametrize(
    ("m", "hops", "tanh_query", "tanh_hop_keys"),
    [(16, 3, False, True), (8, 2, True, False), (5, 1, False, True)],
)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_compiled_step_matches_eager(
    m: int, hops: int, tanh_query: bool, tanh_hop_keys: bool, dtype: torch.dtype, tol: float
) -> None:
    opts = FWMScanOptions(
        memory_size=m,
        read_hops=hops,
        write_scale=1.0,  # λ = 1 makes the norm bound act
        tanh_query=tanh_query,
        tanh_hop_keys=tanh_hop_keys,
    )
    eager_n, eager_memory = _steps(opts, dtype, "eager")
    compiled_n, compiled_memory = _steps(opts, dtype, "compiled")
    assert compiled_n.dtype == dtype
    torch.testing.assert_close(compiled_n, eager_n, rtol=0, atol=tol)
    assert compiled_memory.writes == eager_memory.writes == 15  # since the full reset
    for got, want in zip(compiled_memory, eager_memory, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=tol)
    assert (eager_memory.weight < 1).any()  # the renormalisation was exercised


def test_core_auto_equals_eager_and_gradients_stay_eager() -> None:
    torch.manual_seed(0)
    kwargs = {"input_size": 6, "hidden_size": 12, "memory_size": 8, "read_hops": 2}
    auto = FWMCore(**kwargs).double()
    eager = FWMCore(**kwargs, kernel="eager").double()
    eager.load_state_dict(auto.state_dict())
    x = torch.randn(12, 1, 4, 6, dtype=torch.float64)
    resets = torch.zeros(12, 1, 4, dtype=torch.bool)
    resets[0] = True
    resets[5, 0, 2] = True
    states = [core.initial_episode_state(4) for core in (auto, eager)]
    with torch.no_grad():
        for t in range(12):
            y_auto, states[0], _ = auto(x[t], states[0], resets[t])
            y_eager, states[1], _ = eager(x[t], states[1], resets[t])
            torch.testing.assert_close(y_auto, y_eager, rtol=0, atol=1e-10)
    assert isinstance(states[0], FWMLowRankState)
    for (_, got), (_, want) in zip(states[0].tensors(), states[1].tensors(), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    # with gradients the step runs in PyTorch and back-propagates
    y, _, _ = auto(x[0], auto.initial_episode_state(4), resets[0])
    y.sum().backward()
    assert auto.write_proj.weight.grad is not None
    assert auto.write_proj.weight.grad.abs().sum() > 0


def test_unbuildable_kernel_falls_back_or_raises(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(fwm_kernel, "_libraries", {})
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("FWMRL_KERNEL_CACHE", str(tmp_path / "cache"))
    opts = FWMScanOptions(memory_size=4, read_hops=1)
    with pytest.warns(UserWarning, match="compiled FWM kernels are unavailable"):
        auto_n, _ = _steps(opts, torch.float64, "auto", steps=3)
    eager_n, _ = _steps(opts, torch.float64, "eager", steps=3)
    torch.testing.assert_close(auto_n, eager_n, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="kernel='compiled'"):
        _steps(opts, torch.float64, "compiled", steps=1)


def test_bad_kernel_names_the_field() -> None:
    with pytest.raises(ValueError, match="kernel"):
        FWMCore(input_size=3, kernel="fast")


@pytest.mark.parametrize("with_resets", [False, True])
def test_compiled_delta_recurrence_matches_eager(with_resets: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    batch, steps, m = 5, 9, 4
    dtype = torch.float64
    k = torch.tanh(torch.randn(batch, steps, m, generator=gen, dtype=dtype))
    W = (k @ k.transpose(1, 2) * 2.0).tril(-1)
    keep = None
    if with_resets:
        keep = (torch.rand(batch, steps, generator=gen) > 0.25).to(dtype)
        W = W * keep.unsqueeze(1)  # a toy mask: only the recurrence's arithmetic is compared
    inputs = [
        torch.randn(batch, steps, m, generator=gen, dtype=dtype),  # A
        W,
        (k * k).sum(-1) * 2.0,  # D
        torch.rand(batch, steps, generator=gen, dtype=dtype),  # rate (λ = 1 scale)
        torch.randn(batch, steps, m, generator=gen, dtype=dtype) * 2,  # v
    ]
    norm_sq = torch.rand(batch, generator=gen, dtype=dtype) * 3
    weights = [torch.randn(batch, steps, m, generator=gen, dtype=dtype)]
    weights += [
        torch.randn(batch, steps, generator=gen, dtype=dtype),
        torch.randn(batch, dtype=dtype),
    ]
    results = []
    for compiled in (False, True):
        leaves = [t.clone().requires_grad_() for t in [*inputs, norm_sq]]
        outputs = _ScaledDeltaRecurrence.apply(*leaves[:5], keep, leaves[5], compiled)
        loss = sum((o * w).sum() for o, w in zip(outputs, weights, strict=True))
        grads = torch.autograd.grad(loss, leaves)
        results.append((outputs, grads))
    (eager_out, eager_grads), (compiled_out, compiled_grads) = results
    assert eager_out[1].min() < -0.1  # the norm bound acted (log g < 0)
    for got, want in zip([*compiled_out, *compiled_grads], [*eager_out, *eager_grads], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("start", ["episode", "dense"])
def test_core_window_gradients_compiled_equal_eager(start: str) -> None:
    """A learning window (chunk scan with gradients) through the compiled recurrence: the same
    outputs and parameter gradients as eager PyTorch, with resets inside the window."""
    torch.manual_seed(2)
    kwargs = {"input_size": 5, "hidden_size": 10, "memory_size": 6, "read_hops": 2}
    cores = [FWMCore(**kwargs).double(), FWMCore(**kwargs, kernel="eager").double()]
    cores[1].load_state_dict(cores[0].state_dict())
    x = torch.randn(14, 3, 5, dtype=torch.float64)
    resets = torch.zeros(14, 3, dtype=torch.bool)
    resets[0] = True
    resets[6, 1] = resets[9, 0] = True
    if start == "dense":
        resets[0] = False
    F = torch.randn(3, 6, 6, 6, dtype=torch.float64) * 0.1
    results = []
    for core in cores:
        state = core.initial_episode_state(3) if start == "episode" else core.initial_state(3)
        if start == "dense":
            state.F = F
        y, _, _ = core(x, state, resets)
        grads = torch.autograd.grad(
            (y * torch.linspace(-1, 1, 10, dtype=y.dtype)).sum(), list(core.parameters())
        )
        results.append((y, grads))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-10)
    for got, want in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
