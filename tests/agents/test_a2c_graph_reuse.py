"""A2C's reuse of the collection graph: back-propagating through the recorded collection steps gives
the updates of re-running the policy over the rollout, for every core, with resets inside windows."""

from __future__ import annotations

import pytest
import torch

from fwmrl.agents import A2C
from fwmrl.agents.job import build_agent
from fwmrl.agents.policy import MemoryActorCritic
from fwmrl.config import load_config
from fwmrl.memory.fwm import FWMCore
from fwmrl.memory.gated_fw import GatedFWCore

BASE = [
    "env.id=FWM-Gridworld-v0",
    "env.num_envs=4",
    "env.kwargs={size: 5, max_steps: 4}",  # episodes of 4 steps: resets inside 7-step windows
    "policy.encoder_sizes=[8]",
    "algo.n_steps=7",
    "logging.wandb=disabled",
    "logging.tensorboard=false",
    "train.progress=false",
]
CORES = {
    "lstm": ["core.hidden_size=8"],
    "fwm": ["core.hidden_size=8", "core.memory_size=4", "core.read_hops=2"],
    "gated_fw": ["core.fast_size=6", "core.slow_size=5", "core.slow_hidden_size=7"],
    "mnm_p": ["core.hidden_size=6", "core.key_size=5", "core.memory_size=7"],
    "mnm_g": ["core.hidden_size=6", "core.key_size=5", "core.memory_size=7"],
    "none": [],
}
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4}


def make(core: str, reuse: bool, *overrides: str) -> A2C:
    agent = build_agent(load_config(None, [*BASE, f"core.name={core}", *CORES[core], *overrides]))
    agent.reuse_collection_graph = reuse
    return agent


@pytest.fixture
def fwm_steps_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    """FWM and gated FW with its kernels re-run their windows by default; record their steps too,
    to test that path as well."""
    monkeypatch.setattr(FWMCore, "step_graph_is_cheap", True)
    monkeypatch.setattr(GatedFWCore, "step_graph_is_cheap", True)


@pytest.mark.parametrize("core", list(CORES))
@pytest.mark.parametrize("mode", ["7", "episode"])
def test_reused_graph_gives_the_rerun_updates(
    core: str, mode: str, fwm_steps_recorded: None
) -> None:
    fast, slow = make(core, True, f"algo.n_steps={mode}"), make(core, False, f"algo.n_steps={mode}")
    for _ in range(3):
        rollout_fast, rollout_slow = fast.collect_rollout(), slow.collect_rollout()
        assert rollout_fast.outputs is not None and rollout_slow.outputs is None
        if mode != "episode":  # (episode mode: every window starts its envs' episodes)
            assert bool(rollout_fast.starts[1:].any())  # an episode starts inside the window
        assert torch.equal(rollout_fast.actions, rollout_slow.actions)
        torch.testing.assert_close(rollout_fast.values, rollout_slow.values, rtol=1e-4, atol=1e-5)
        metrics_fast = fast.train_on_rollout(rollout_fast)
        metrics_slow = slow.train_on_rollout(rollout_slow)
        assert rollout_fast.outputs is None  # consumed
        for key in ("loss", "policy_loss", "value_loss", "entropy", "aux_loss", "grad_norm"):
            assert metrics_fast[key] == pytest.approx(metrics_slow[key], rel=1e-4, abs=1e-6), key
    for p_fast, p_slow in zip(fast.policy.parameters(), slow.policy.parameters(), strict=True):
        torch.testing.assert_close(p_fast, p_slow, rtol=1e-4, atol=1e-5)
    assert all(not t.requires_grad for _, t in fast.state.tensors())  # no graph carried over


@pytest.mark.parametrize("core", list(CORES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_recorded_steps_give_the_window_outputs_and_gradients(
    core: str, dtype: torch.dtype
) -> None:
    """The policy stepped with gradients (what collection records) against one window pass from
    the same state, resets inside the window: outputs and every parameter's gradient."""
    agent = make(core, True)
    policy: MemoryActorCritic = agent.policy.to(dtype)
    steps, batch = 9, 4
    gen = torch.Generator().manual_seed(3)
    obs = torch.rand(steps, batch, policy.obs_size, generator=gen, dtype=dtype)
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    resets[0, 1] = resets[3, 0] = resets[5, 1:] = resets[7] = True
    state = policy.initial_state(batch).to(dtype=dtype)
    weights = torch.randn(steps, batch, policy.n_actions + 1, generator=gen, dtype=dtype)

    def loss(params: torch.Tensor, values: torch.Tensor, aux: torch.Tensor | None) -> torch.Tensor:
        out = (params * weights[..., :-1]).sum() + (values * weights[..., -1]).sum()
        return out if aux is None else out + (aux * weights[..., -1]).sum()

    params, values, _, window_aux = policy.forward_flat(obs, state, resets)
    loss(params, values, window_aux).backward()
    window = [p.grad.clone() for p in policy.parameters()]
    policy.zero_grad()
    step_params, step_values, step_aux, current = [], [], [], state
    for t in range(steps):
        p, v, current, aux_t = policy.forward_flat(obs[t : t + 1], current, resets[t : t + 1])
        step_params.append(p.squeeze(0))
        step_values.append(v.squeeze(0))
        if aux_t is not None:
            step_aux.append(aux_t.squeeze(0))
    stepped = torch.stack(step_params), torch.stack(step_values)
    aux = torch.stack(step_aux) if step_aux else None
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(stepped[0], params, rtol=tol, atol=tol)
    torch.testing.assert_close(stepped[1], values, rtol=tol, atol=tol)
    loss(*stepped, aux).backward()
    for (name, p), expected in zip(policy.named_parameters(), window, strict=True):
        torch.testing.assert_close(p.grad, expected, rtol=tol, atol=tol, msg=name)


def test_outputs_of_older_parameters_are_not_used() -> None:
    agent = make("lstm", True)
    rollout = agent.collect_rollout()
    outputs = rollout.outputs
    assert outputs is not None and outputs.current(agent.policy)
    agent.learn_update()  # an optimizer step: the rollout's outputs are stale now
    assert not outputs.current(agent.policy)
    rollout.outputs = outputs
    fresh = make("lstm", False)
    fresh.policy.load_state_dict(agent.policy.state_dict())
    rerun = fresh.policy.forward_flat(rollout.obs, rollout.initial_state, rollout.starts)[0]
    assert agent.policy_outputs(rollout)[0].allclose(rerun, atol=1e-6)  # re-run, not the stale ones
    assert rollout.outputs is None


def test_ppo_records_no_graph() -> None:
    ppo = build_agent(load_config(None, [*BASE, "core.name=lstm", *CORES["lstm"], "algo.name=ppo"]))
    rollout = ppo.collect_rollout()
    assert rollout.outputs is None and rollout.log_probs is not None
    assert not rollout.obs.requires_grad
