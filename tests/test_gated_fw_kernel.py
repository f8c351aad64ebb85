"""Gated fast weights in the compiled kernels (``GatedFWCore(kernel="auto")``: the fast net and
both updates of every step of a window in one C loop per sequence forward and one backward,
``fwmrl.memory.fwm_kernel.gated_fw_window``) give the PyTorch step's outputs, states and gradients
(float64 to 1e-9, float32 to 1e-4) with resets inside the window, with and without gradients; an
A2C update with them (collecting without a graph and re-running the window) equals one without."""

from __future__ import annotations

import pytest
import torch
from a2c_lockstep import assert_updates_agree

from fwmrl.agents.job import build_agent
from fwmrl.config import load_config
from fwmrl.memory import fwm_kernel
from fwmrl.memory.gated_fw import GatedFWCore, GatedFWState

TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}

pytestmark = pytest.mark.skipif(
    not fwm_kernel.available(torch.zeros(1), fwm_kernel._GATED_KERNEL_SIZE),
    reason="no C compiler for the compiled kernels",
)


def run(core: GatedFWCore, x, state, resets, grad: bool):  # noqa: ANN001, ANN201
    """Outputs and final state of ``core`` over the window and, with ``grad``, the gradients of
    a random weighting of them w.r.t. the inputs, the initial state and the parameters."""
    core.zero_grad()
    x = x.clone().requires_grad_(grad)
    start = GatedFWState(**{k: v.clone().requires_grad_(grad) for k, v in state.tensors()})
    with torch.set_grad_enabled(grad):
        y, end, _ = core(x, start, resets)
    values = [y, *(v for _, v in end.tensors())]
    if not grad:
        return values, []
    gen = torch.Generator().manual_seed(5)
    weights = [torch.randn(t.shape, generator=gen, dtype=torch.float64) for t in values]
    loss = sum((t * w.to(t.dtype)).sum() for t, w in zip(values, weights, strict=True))
    loss.backward()
    grads = [x.grad, *(v.grad for _, v in start.tensors())]
    return values, grads + [p.grad.clone() for p in core.parameters()]


def cores(dtype: torch.dtype, **kwargs):  # noqa: ANN003, ANN201
    torch.manual_seed(0)
    sizes = {"fast_size": 5, "slow_size": 4, "slow_hidden_size": 9, "gate_bias": 0.5}
    compiled = GatedFWCore(6, **sizes, **kwargs).to(dtype)
    eager = GatedFWCore(6, **sizes, **kwargs, kernel="eager").to(dtype)
    eager.load_state_dict(compiled.state_dict())
    return compiled, eager


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("steps", [1, 7])
@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("recompute_chunk", [None, 3])
def test_compiled_step_matches_the_pytorch_step(
    dtype: torch.dtype, steps: int, grad: bool, recompute_chunk: int | None
) -> None:
    compiled, eager = cores(dtype, recompute_chunk=recompute_chunk)
    batch = 4
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(steps, batch, 6, generator=gen, dtype=dtype)
    state = GatedFWState(
        **{
            k: torch.randn(v.shape, generator=gen, dtype=dtype)
            for k, v in compiled.initial_state(batch).tensors()
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
        # to the tensor's scale: float32's gradients of size ~50 differ from float64's by ~2e-4
        # in the PyTorch step itself
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, float(b.abs().max())))
    # the kernels ran (the PyTorch step's values would be bit-equal)
    assert any(not torch.equal(a, b) for a, b in zip(values, reference, strict=True))
    if grad:  # the comparison is not between zeros; the reset rows' state got no gradient
        assert all(g.abs().sum() > 0 for g in reference_grads)
        if steps == 1:
            assert all(float(g[2].abs().sum()) == 0 for g in value_grads[1:5])


def test_a_zero_state_after_a_reset_and_layer_norm_gain_runs_eager() -> None:
    """A reset row's state is read as zeros (whatever it held) and ``layer_norm_affine`` keeps
    the PyTorch step (its layer norms have parameters the kernel does not apply)."""
    compiled, eager = cores(torch.float64)
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    fresh = compiled.initial_state(3).to(dtype=torch.float64)
    noisy = GatedFWState(**{k: torch.randn_like(v) for k, v in fresh.tensors()})
    resets = torch.zeros(2, 3, dtype=torch.bool)
    resets[0] = True
    with torch.no_grad():
        a = compiled(x, noisy, resets).output
        b = compiled(x, fresh, None).output
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    affine, affine_eager = cores(torch.float64, layer_norm_affine=True)
    with torch.no_grad():
        assert torch.equal(affine(x, noisy, resets).output, affine_eager(x, noisy, resets).output)
    with pytest.raises(ValueError, match="kernel 'compiled'"):
        GatedFWCore(6, layer_norm_affine=True, kernel="compiled")
    with pytest.raises(ValueError, match="'kernel' must be one of"):
        GatedFWCore(6, kernel="fast")


def test_a2c_update_with_the_kernels_equals_the_pytorch_step() -> None:
    """Two A2C + gated FW agents seeded alike, one with ``core.kernel=eager``: the same actions,
    losses and parameters to float tolerance (float32) over three updates, episodes starting
    inside the 6-step windows."""
    overrides = [
        "env.id=FWM-Gridworld-v0",
        "env.num_envs=4",
        "env.kwargs={size: 5, view: 3, max_steps: 8}",
        "core.name=gated_fw",
        "core.fast_size=6",
        "core.slow_size=5",
        "core.slow_hidden_size=8",
        "algo.n_steps=6",
        "logging.wandb=disabled",
    ]
    compiled = build_agent(load_config(None, overrides))
    reference = build_agent(load_config(None, [*overrides, "core.kernel=eager"]))
    inside = assert_updates_agree(compiled, reference)
    assert any(inside)
    assert compiled.episodes > 0
    # the kernels ran (float rounding differs)
    pairs = zip(compiled.policy.parameters(), reference.policy.parameters(), strict=True)
    assert any(not torch.equal(p_c, p_r) for p_c, p_r in pairs)


def test_a2c_re_runs_the_window_with_the_kernels_and_records_steps_without() -> None:
    """With the kernels the window's backward beats recorded steps': A2C collects without a
    graph (``step_graph_is_cheap`` is False) and re-runs the window; ``kernel: eager`` records."""
    overrides = ["core.name=gated_fw", "core.fast_size=4", "env.num_envs=2", "algo.n_steps=3"]
    compiled = build_agent(load_config(None, [*overrides, "logging.wandb=disabled"]))
    eager = build_agent(load_config(None, [*overrides, "core.kernel=eager"]))
    assert compiled.policy.core.step_graph_is_cheap is False
    assert eager.policy.core.step_graph_is_cheap is True
    assert compiled.collect_rollout().outputs is None
    assert eager.collect_rollout().outputs is not None
