"""Issue 18's fast paths in MemoryPolicy: one scan for actor and critic FWM memories, and steps
without episode starts (``episode_starts=None``) equal the paths they replace."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from sb3_helpers import gridworld_vec, tiny_policy_kwargs

from fwmrl.sb3 import MemoryRecurrentPPO


def _policy(core: str = "fwm"):
    model = MemoryRecurrentPPO(
        "MemoryPolicy",
        gridworld_vec(n_envs=3),
        n_steps=8,
        batch_size=8,
        n_epochs=1,
        policy_kwargs=tiny_policy_kwargs(core),
        seed=0,
        device="cpu",
    )
    with th.no_grad():  # make both memories matter
        for p in model.policy.parameters():
            p.add_(th.randn_like(p) * 0.5)
    return model.policy


def test_joint_actor_critic_scan_equals_separate_cores_with_gradients() -> None:
    policy = _policy()
    assert policy._scan_jointly(policy.initial_state(3))
    gen = th.Generator().manual_seed(0)
    steps, n_seq = 7, 3
    obs = th.randn(steps, n_seq, *policy.observation_space.shape, generator=gen)
    actions = th.randint(0, 4, (steps, n_seq, 1), generator=gen).float()
    starts = th.zeros(steps, n_seq, dtype=th.bool)
    starts[0, 0] = starts[4, 1] = True
    with th.no_grad():  # a nonzero stored state, as at a sequence start inside a rollout
        _, _, _, states = policy(obs[0], policy.initial_state(n_seq), starts[0])
    results = []
    for joint in (True, False):
        policy._joint_cores = joint
        values, log_prob, entropy, aux = policy.evaluate_sequences(obs, actions, states, starts)
        assert aux is None  # FWM cores have no auxiliary loss
        loss = values.square().sum() + log_prob.sum() + entropy.sum()
        grads = th.autograd.grad(loss, [p for p in policy.parameters() if p.requires_grad])
        results.append((values, log_prob, entropy, *grads))
    for joint, separate in zip(*results, strict=True):
        th.testing.assert_close(joint, separate, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("core", ["lstm", "fwm"])
def test_steps_without_episode_starts_equal_all_false_starts(core: str) -> None:
    policy = _policy(core)
    gen = th.Generator().manual_seed(1)
    obs = th.randn(3, *policy.observation_space.shape, generator=gen)
    with th.no_grad():
        _, _, _, states = policy(obs, policy.initial_state(3), th.ones(3, dtype=th.bool))
        with_false = policy(obs, states, th.zeros(3, dtype=th.bool), deterministic=True)
        with_none = policy(obs, states, None, deterministic=True)
        values = policy.predict_values(obs, states, None)
    for a, b in zip(with_false[:3], with_none[:3], strict=True):
        th.testing.assert_close(b, a)
    th.testing.assert_close(values, with_false[1])
    for a, b in zip(with_false[3].parts(), with_none[3].parts(), strict=True):
        for (_, x), (_, y) in zip(a.tensors(), b.tensors(), strict=True):
            th.testing.assert_close(y, x)
    # predict with no episode start anywhere takes the same path
    state = tuple(t.numpy() for _, t in states.pi.tensors())
    action_none, next_none = policy.predict(obs.numpy(), state, None, deterministic=True)
    action_false, next_false = policy.predict(obs.numpy(), state, np.zeros(3), deterministic=True)
    np.testing.assert_array_equal(action_none, action_false)
    np.testing.assert_array_equal(action_none, with_false[0].numpy())
    for a, b in zip(next_none, next_false, strict=True):
        np.testing.assert_array_equal(a, b)
