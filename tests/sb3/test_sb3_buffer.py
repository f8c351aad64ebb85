"""The rollout buffer stores core states only at sequence starts: memory stays proportional to
n_envs * (n_steps / sequence_length) * state size, not to n_steps * state size."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from sb3_helpers import gridworld_vec, tiny_policy_kwargs

from fwmrl.memory.lstm import LSTMState
from fwmrl.sb3 import MemoryRecurrentPPO, MemoryRolloutBuffer, MemoryStates

MIB = 2**20


@pytest.mark.parametrize(("sequence_length", "bound_mib"), [(128, 4.5), (None, 33)])
def test_fwm_m32_buffer_stays_under_bound(sequence_length: int | None, bound_mib: float) -> None:
    """FWM with m = 32 (32,768 fast weights per env), 16 envs x 128 steps, separate critic.

    sb3-contrib's buffer would hold 4 state arrays per step: >= 16*128*2*32,768*4 B = 512 MiB for
    the fast weights alone. Ours holds one actor and one critic state per env and sequence: about
    4 MiB with sequence_length = n_steps, 32 MiB with the default (8 sequences of 16 steps).
    """
    env = gridworld_vec(n_envs=16)
    core_kwargs = {"hidden_size": 32, "memory_size": 32, "read_hops": 1}
    model = MemoryRecurrentPPO(
        "MemoryPolicy",
        env,
        n_steps=128,
        sequence_length=sequence_length,
        policy_kwargs={"core": "fwm", "core_kwargs": core_kwargs, "net_arch": [8]},
        device="cpu",
        _init_setup_model=True,
    )
    per_env = 128 // model.sequence_length
    assert per_env == (1 if sequence_length else 8)
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
    assert buffer.state_nbytes == per_env * 16 * policy.state_numel * 4
    assert buffer.state_nbytes < bound_mib * MIB
    # everything: observations, actions, advantages ... and states
    assert buffer.nbytes < buffer.state_nbytes + 0.5 * MIB


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
    length = model.sequence_length
    assert length == (sequence_length or 1)  # default: 8 sequences in a minibatch of 8 steps
    n_chunks = 16 // length
    assert len(buffer.sequence_states) == n_chunks
    assert buffer.state_nbytes == 2 * n_chunks * model.policy.state_numel * 4
    batches = list(buffer.get(batch_size=8))
    # batch_size 8 -> 8 // L sequences of L steps each
    assert all(b.episode_starts.shape == (length, 8 // length) for b in batches)
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
    full = MemoryRolloutBuffer(
        8, env.observation_space, env.action_space, n_envs=2, sequence_length=4
    )
    for _ in range(8):
        full.add(
            env.reset(),
            np.zeros((2, 1)),
            np.zeros(2),
            np.zeros(2),
            th.zeros(2),
            th.zeros(2),
            states=MemoryStates(LSTMState(th.zeros(2, 1, 3), th.zeros(2, 1, 3))),
        )
    for bad in (6, 2, 0, -4, 4.0, True):
        with pytest.raises(ValueError, match="'batch_size' .* multiple of sequence_length=4"):
            next(full.get(batch_size=bad))
    assert [b.episode_starts.shape for b in full.get(batch_size=12)] == [(4, 3), (4, 1)]
