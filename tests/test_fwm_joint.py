"""FWM fast paths of issue 18: the scaled delta recurrence and several cores scanned as one."""

from __future__ import annotations

import pytest
import torch

from fwmrl.memory import FWMCore, LSTMCore
from fwmrl.memory.fwm import FWMLowRankState, FWMState, can_run_jointly, run_jointly
from fwmrl.memory.fwm_scan import (
    FWMScanOptions,
    _DeltaRecurrence,
    _ScaledDeltaRecurrence,
    naive_scan,
    single_step_scan,
)

F64 = {"dtype": torch.float64}


def recurrence_inputs(batch: int, steps: int, m: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, steps, m, generator=gen, **F64),  # old values read from F_0
        2 * torch.randn(batch, steps, steps, generator=gen, **F64),  # key products
        3 * torch.rand(batch, steps, generator=gen, **F64),  # their diagonal
        torch.rand(batch, steps, generator=gen, **F64),  # write rates
        2 * torch.randn(batch, steps, m, generator=gen, **F64),  # new values
        1.5 * torch.rand(batch, generator=gen, **F64),  # ‖F_0‖²
    )


@pytest.mark.parametrize("with_resets", [False, True])
def test_scaled_recurrence_equals_the_log_domain_one_and_finite_differences(with_resets):
    inputs = tuple(x.requires_grad_(True) for x in recurrence_inputs(3, 7, 4, seed=3))
    keep = None
    if with_resets:
        keep = torch.ones(3, 7, **F64)
        keep[1, 3] = keep[2, 0] = 0.0
    weights = [torch.randn(3, 7, 4, **F64), torch.randn(3, 7, **F64), torch.randn(3, **F64)]
    results = []
    for fn in (_DeltaRecurrence, _ScaledDeltaRecurrence):
        outputs = fn.apply(*inputs[:5], keep, inputs[5])
        loss = sum((o * w).sum() for o, w in zip(outputs, weights, strict=True))
        results.append((*outputs, *torch.autograd.grad(loss, inputs)))
    assert (results[0][2] < 0).any()  # the norm bound was active
    for reference, scaled in zip(*results, strict=True):
        torch.testing.assert_close(scaled, reference, rtol=1e-10, atol=1e-12)

    def run(A, W, D, rate, v, norm_sq):  # noqa: ANN001, ANN202
        return _ScaledDeltaRecurrence.apply(A, W, D, rate, v, keep, norm_sq)

    assert torch.autograd.gradcheck(run, inputs)


def test_scaled_recurrence_falls_back_to_the_log_domain_where_the_scale_overflows():
    # float32 writes that grow the norm by ~10^3 per step: the running scale overflows float32
    batch, steps, m = 2, 20, 4
    A, W, D, rate, v, norm_sq = (x.float() for x in recurrence_inputs(batch, steps, m, seed=4))
    W = torch.full_like(W, 0.0)
    D = torch.full_like(D, 1e6)
    v = 1e3 * torch.ones_like(v)
    rate = torch.ones_like(rate)
    args = [t.requires_grad_(True) for t in (A, W, D, rate, v)]
    reference = _DeltaRecurrence.apply(*args, None, norm_sq)
    scaled = _ScaledDeltaRecurrence.apply(*args, None, norm_sq)
    assert reference[2].min() < -80  # g below float32's 1e-38 range as 1 / s
    for a, b in zip(reference, scaled, strict=True):
        assert torch.isfinite(b).all()
        torch.testing.assert_close(b, a)
    grads = torch.autograd.grad(sum(o.sum() for o in scaled), args)
    reference_grads = torch.autograd.grad(sum(o.sum() for o in reference), args)
    for a, b in zip(reference_grads, grads, strict=True):
        torch.testing.assert_close(b, a)


def make_cores(dtype: torch.dtype, **kwargs) -> list[FWMCore]:
    torch.manual_seed(0)
    return [
        FWMCore(5, hidden_size=6, memory_size=4, read_hops=2, chunk_size=4, **kwargs).to(dtype)
        for _ in range(2)
    ]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("start", ["dense", "zero", "factors"])
@pytest.mark.parametrize("steps", [1, 9])
def test_joint_scan_equals_each_core_alone(dtype: torch.dtype, start: str, steps: int) -> None:
    batch = 3
    cores = make_cores(dtype)
    gen = torch.Generator().manual_seed(5)
    xs = [torch.randn(steps, batch, 5, generator=gen, dtype=dtype) for _ in cores]
    resets = torch.rand(steps, batch, generator=gen) < 0.3
    if steps > 1:
        resets[2, 1] = resets[5, 0] = True  # inside the window and inside a chunk
    states: list[FWMState | FWMLowRankState | None]
    if start == "dense":
        states = []
        for core in cores:
            with torch.no_grad():
                _, state, _ = core(torch.randn(4, batch, 5, generator=gen, dtype=dtype))
            states.append(state)
    elif start == "zero":
        states = [None, None]
    else:
        states = [core.initial_episode_state(batch) for core in cores]
    assert can_run_jointly(cores, states)
    separate = [core(x, state, resets) for core, x, state in zip(cores, xs, states, strict=True)]
    joint = run_jointly(cores, xs, states, resets)
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    losses = []
    for (y_alone, s_alone, aux_alone), (y_joint, s_joint, aux_joint) in zip(
        separate, joint, strict=True
    ):
        assert type(s_joint) is type(s_alone) and aux_alone is None and aux_joint is None
        torch.testing.assert_close(y_joint, y_alone, **tol)
        for (name, a), (_, b) in zip(s_alone.tensors(), s_joint.tensors(), strict=True):
            torch.testing.assert_close(b, a, msg=name, **tol)
        losses.append((y_alone.square().sum(), y_joint.square().sum()))
    for core, (alone, together) in zip(cores, losses, strict=True):
        grads_alone = torch.autograd.grad(alone, list(core.parameters()))
        grads_joint = torch.autograd.grad(together, list(core.parameters()), retain_graph=True)
        for a, b in zip(grads_alone, grads_joint, strict=True):
            torch.testing.assert_close(b, a, **tol)


def test_joint_scan_needs_fwm_cores_of_one_configuration() -> None:
    a, b = make_cores(torch.float32)
    assert can_run_jointly([a, b])
    assert not can_run_jointly([a])
    assert not can_run_jointly([a, FWMCore(5, hidden_size=6, memory_size=4, read_hops=1)])
    assert not can_run_jointly([a, LSTMCore(5, 6)])
    mixed = [a.initial_state(2), b.initial_episode_state(2)]
    assert not can_run_jointly([a, b], mixed)
    with pytest.raises(ValueError, match="run_jointly: 'cores' must be two or more FWMCore"):
        run_jointly([a, b], [torch.zeros(1, 2, 5)] * 2, mixed)


@pytest.mark.parametrize("tanh_query", [False, True])
@pytest.mark.parametrize("with_resets", [False, True])
def test_single_step_scan_equals_the_reference_step(tanh_query: bool, with_resets: bool) -> None:
    m, hops, batch = 4, 3, 5
    opts = FWMScanOptions(memory_size=m, read_hops=hops, write_scale=0.5, tanh_query=tanh_query)
    gen = torch.Generator().manual_seed(7)
    write = 1.5 * torch.randn(1, batch, 3 * m + 1, generator=gen, **F64)
    read = torch.randn(1, batch, m + hops * m, generator=gen, **F64)
    F0 = 0.3 * torch.randn(batch, m, m, m, generator=gen, **F64)
    resets = torch.tensor([[True, False, False, True, False]]) if with_resets else None
    inputs = [t.requires_grad_(True) for t in (write, read, F0)]
    n_ref, F_ref = naive_scan(*inputs, resets, opts)
    n_one, F_one = single_step_scan(*inputs, resets, opts)
    assert (F_ref.flatten(1).norm(dim=1) > 1 - 1e-9).any()  # the norm bound was active
    torch.testing.assert_close(n_one, n_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(F_one, F_ref, rtol=1e-12, atol=1e-12)
    weights = torch.randn(n_ref.shape, generator=gen, **F64)
    grads_ref = torch.autograd.grad((n_ref * weights).sum() + F_ref.sum(), inputs)
    grads_one = torch.autograd.grad((n_one * weights).sum() + F_one.sum(), inputs)
    for a, b in zip(grads_ref, grads_one, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
