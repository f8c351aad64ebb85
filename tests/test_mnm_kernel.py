"""MNM-p's memory in the compiled kernels (``MNMPCore(kernel="auto")`` with one head: the memory
MLP at the write key, the three perceptron updates and the new weights' outputs at both keys as
one C loop per sequence forward and one backward, ``fwmrl.memory.fwm_kernel.mnm_p_step``) gives
the PyTorch scans' outputs, states, meta losses and gradients (float64 to 1e-9, float32 to 1e-4)
with resets inside the window, with and without gradients; an A2C update with it equals one
without."""

from __future__ import annotations

import pytest
import torch
from a2c_lockstep import TRAINING_METRICS, assert_updates_agree

from fwmrl.agents.job import build_agent
from fwmrl.config import load_config
from fwmrl.memory import fwm_kernel
from fwmrl.memory.mnm import MNMGCore, MNMPCore, MNMState

TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}
SIZES = {"hidden_size": 6, "key_size": 5, "memory_size": 7}

pytestmark = pytest.mark.skipif(
    not fwm_kernel.available(torch.zeros(1), fwm_kernel._GATED_KERNEL_SIZE),
    reason="no C compiler for the compiled kernels",
)


def run(core: MNMPCore, x, state, resets, grad: bool):  # noqa: ANN001, ANN201
    """Outputs, meta losses and final state of ``core`` over the window and, with ``grad``, the
    gradients of a random weighting of them w.r.t. the inputs, the initial state and the
    parameters."""
    core.zero_grad()
    x = x.clone().requires_grad_(grad)
    start = MNMState(**{k: v.clone().requires_grad_(grad) for k, v in state.tensors()})
    with torch.set_grad_enabled(grad):
        y, end, meta = core(x, start, resets)
    values = [y, meta, *(v for _, v in end.tensors())]
    if not grad:
        return values, []
    gen = torch.Generator().manual_seed(5)
    weights = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in values]
    loss = sum((t * w.to(t.dtype)).sum() for t, w in zip(values, weights, strict=True))
    loss.backward()
    grads = [x.grad, *(v.grad for _, v in start.tensors())]
    return values, grads + [p.grad.clone() for p in core.parameters()]


def cores(dtype: torch.dtype, sizes: dict | None = None, **kwargs):  # noqa: ANN003, ANN201
    torch.manual_seed(0)
    sizes = SIZES if sizes is None else sizes
    compiled = MNMPCore(4, **sizes, **kwargs).to(dtype)
    eager = MNMPCore(4, **sizes, **kwargs, kernel="eager").to(dtype)
    eager.load_state_dict(compiled.state_dict())
    with torch.no_grad():
        for core in (compiled, eager):
            core.beta.bias.fill_(1.0)  # sizeable writes
    return compiled, eager


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("steps", [1, 7])
@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("implementation", ["lowrank", "naive"])
@pytest.mark.parametrize("square", [False, True])
def test_compiled_memory_matches_the_pytorch_scans(
    dtype: torch.dtype, steps: int, grad: bool, implementation: str, square: bool
) -> None:
    """``square``: d_k = d_m, the kernel's sizes are compile-time constants."""
    sizes = {**SIZES, "memory_size": SIZES["key_size"]} if square else SIZES
    compiled, eager = cores(dtype, sizes, implementation=implementation, chunk_size=3)
    batch = 4
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(steps, batch, 4, generator=gen, dtype=torch.float64).to(dtype)
    with torch.no_grad():
        fresh = compiled.initial_state(batch)
    state = MNMState(
        **{
            k: (v.double() + 0.3 * torch.randn(v.shape, generator=gen, dtype=torch.float64)).to(
                dtype
            )
            for k, v in fresh.tensors()
        }
    )
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[0, 2] = True
    if steps > 1:
        resets[3, 0] = resets[5] = True
    reference, reference_grads = run(eager, x, state, resets, grad)
    values, value_grads = run(compiled, x, state, resets, grad)
    tol = TOLERANCE[dtype]
    for a, b in zip(values + value_grads, reference + reference_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, float(b.abs().max())))
    # the kernels ran (the PyTorch scans' values would be bit-equal)
    assert any(not torch.equal(a, b) for a, b in zip(values, reference, strict=True))
    if grad:  # the comparison is not between zeros
        assert all(g.abs().sum() > 0 for g in reference_grads)


def test_gradcheck_through_the_kernel() -> None:
    compiled, _ = cores(torch.float64)
    x = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        init = compiled.initial_state(2).to(dtype=torch.float64)
    w1 = (init.w1 + 0.1 * torch.randn_like(init.w1)).requires_grad_()
    resets = torch.zeros(3, 2, dtype=torch.bool)
    resets[1, 0] = True

    def fn(x, w1):  # noqa: ANN001, ANN202
        state = MNMState(h=init.h, c=init.c, read=init.read, w1=w1, w2=init.w2, w3=init.w3)
        y, final, meta = compiled(x, state, resets)
        return y, final.w3, meta

    assert torch.autograd.gradcheck(fn, (x, w1), eps=1e-6, atol=1e-6)


def test_the_kernel_is_for_mnm_p_with_one_head() -> None:
    x = torch.randn(3, 2, 4)
    for kind, kwargs in ((MNMPCore, {"num_heads": 2}), (MNMGCore, {})):
        torch.manual_seed(0)
        auto = kind(4, **SIZES, **kwargs)
        torch.manual_seed(0)
        eager = kind(4, **SIZES, **kwargs, kernel="eager")
        with torch.no_grad():
            assert torch.equal(auto(x).output, eager(x).output)
        with pytest.raises(ValueError, match="kernel 'compiled' is for MNM-p"):
            kind(4, **SIZES, **kwargs, kernel="compiled")
    with pytest.raises(ValueError, match="'kernel' must be one of"):
        MNMPCore(4, kernel="fast")


def test_a2c_update_with_the_kernel_equals_the_pytorch_scan() -> None:
    """Two A2C + MNM-p agents seeded alike, one with ``core.kernel=eager``: the same actions,
    losses and parameters to float tolerance (float32) over three updates, episodes starting
    inside the 6-step windows."""
    overrides = [
        "env.id=FWM-Gridworld-v0",
        "env.num_envs=4",
        "env.kwargs={size: 5, view: 3, max_steps: 8}",
        "core.name=mnm_p",
        *(f"core.{k}={v}" for k, v in SIZES.items()),
        "algo.n_steps=6",
        "logging.wandb=disabled",
    ]
    compiled = build_agent(load_config(None, overrides))
    reference = build_agent(load_config(None, [*overrides, "core.kernel=eager"]))
    inside = assert_updates_agree(compiled, reference, (*TRAINING_METRICS, "aux_loss"))
    assert any(inside)
    assert compiled.episodes > 0
    pairs = zip(compiled.policy.parameters(), reference.policy.parameters(), strict=True)
    assert any(not torch.equal(p_c, p_r) for p_c, p_r in pairs)  # the kernel ran
