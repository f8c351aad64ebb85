"""The rollout buffer stores core states only at sequence starts: memory stays proportional to
n_envs * (n_steps / sequence_length) * state size, not to n_steps * state size."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from sb3_helpers import gridworld_vec, tiny_policy_kwargs

from fwmrl.sb3 import MemoryRecurrentPPO, MemoryRolloutBuffer

MIB = 2**20


def test_fwm_m32_buffer_stays_under_bound() -> None:
    """FWM with m = 32 (32,768 fast weights per env), 16 envs x 128 steps, separate critic.

    sb3-contrib's buffer would hold 4 state arrays per step: >= 16*128*2*32,768*4 B = 512 MiB for
    the fast weights alone. Ours holds one actor and one critic state per env: about 4 MiB.
    """
    env = gridworld_vec(n_envs=16)
    core_kwargs = {"hidden_size": 32, "memory_size": 32, "read_hops": 1}
    model = MemoryRecurrentPPO(
        "MemoryPolicy",
        env,
        n_steps=128,
        policy_kwargs={"core": "fwm", "core_kwargs": core_kwargs, "net_arch": [8]},
        device="cpu",
        _init_setup_model=True,
    )
    policy = model.policy
    assert policy.state_numel == 2 * (32**3 + 2 * 32)
    buffer = model.rollout_buffer
    assert isinstance(buffer, MemoryRolloutBuffer)
    states = policy.initial_state(16)
    obs = env.reset()
    for _ in range(128):  # fill the buffer without running the (large) core
        buffer.add(
            obs,
            np.zeros((16, 1)),
            np.zeros(16),
            np.zeros(16),
            th.zeros(16),
            th.zeros(16),
            states=states,
        )
    assert buffer.full
    assert buffer.state_nbytes == 16 * policy.state_numel * 4
    assert buffer.state_nbytes < 4.5 * MIB
    assert buffer.nbytes < 5 * MIB  # everything: observations, actions, advantages ... and states


@pytest.mark.parametrize("sequence_length", [None, 4])
def test_state_bytes_follow_the_formula_after_a_rollout(sequence_length) -> None:
    model = MemoryRecurrentPPO(
        "MemoryPolicy",
        gridworld_vec(n_envs=2),
        n_steps=16,
        batch_size=8,
        n_epochs=1,
        sequence_length=sequence_length,
        policy_kwargs=tiny_policy_kwargs("fwm"),
        device="cpu",
    )
    model.learn(32)
    buffer = model.rollout_buffer
    n_chunks = 16 // (sequence_length or 16)
    assert len(buffer.sequence_states) == n_chunks
    assert buffer.state_nbytes == 2 * n_chunks * model.policy.state_numel * 4
    batches = list(buffer.get(batch_size=8))
    # batch_size 8 -> max(1, 8 // L) sequences of L steps each
    length = sequence_length or 16
    assert all(b.episode_starts.shape == (length, max(1, 8 // length)) for b in batches)
    assert sum(b.episode_starts.shape[1] for b in batches) == buffer.n_sequences


def test_buffer_validates_arguments() -> None:
    env = gridworld_vec()
    with pytest.raises(ValueError, match="'sequence_length' must be None or a positive divisor"):
        MemoryRolloutBuffer(8, env.observation_space, env.action_space, sequence_length=3)
    buffer = MemoryRolloutBuffer(8, env.observation_space, env.action_space, n_envs=2)
    with pytest.raises(ValueError, match="'states' is required"):
        buffer.add(
            env.reset(), np.zeros((2, 1)), np.zeros(2), np.zeros(2), th.zeros(2), th.zeros(2)
        )
    with pytest.raises(RuntimeError, match="not complete"):
        next(buffer.get())
