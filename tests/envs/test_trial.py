"""The RL^2 Trial wrapper."""

import gymnasium as gym
import numpy as np
import pytest

from fwmrl.envs import (
    GraphNavEnv,
    GridworldEnv,
    GridworldVectorEnv,
    KeyValueEnv,
    Trial,
    VectorTrial,
    make_env,
)


def test_trial_keeps_goal_flags_inner_ends_and_ends_after_k_episodes():
    env = Trial(GridworldEnv(max_steps=10), episodes=3)
    assert env.observation_space.shape == (16,)
    obs, info = env.reset(seed=0)
    assert obs[-1] == 0 and info["inner_episode"] == 0
    goal = env.unwrapped.goal_cell
    flags, steps, done = [], 0, False
    while not done:
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert env.unwrapped.goal_cell == goal
        flags.append(obs[-1])
        steps, done = steps + 1, terminated or truncated
    assert steps == 30 and truncated and not terminated
    assert np.flatnonzero(flags).tolist() == [9, 19]
    assert info["inner_episode"] == 2
    goals = set()
    for _ in range(10):
        env.reset()
        goals.add(env.unwrapped.goal_cell)
    assert len(goals) >= 3


def test_trial_keeps_graph_and_new_trial_changes_it():
    env = Trial(GraphNavEnv(graphs="random", max_steps=5), episodes=4)
    env.reset(seed=1)
    graph = env.unwrapped.graph.copy()
    for _ in range(19):
        env.step(0)
        np.testing.assert_array_equal(env.unwrapped.graph, graph)
    *_, terminated, truncated, _ = env.step(0)
    assert truncated
    env.reset()
    assert not np.array_equal(env.unwrapped.graph, graph)


def test_trial_is_seeded_and_passes_terminated_through():
    a = Trial(KeyValueEnv(n_queries=1, max_items=1), episodes=2)
    b = Trial(KeyValueEnv(n_queries=1, max_items=1), episodes=2)
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    np.testing.assert_array_equal(oa, ob)
    lengths = [len(a.unwrapped.sequence)]
    n, terminated = 0, False
    while not terminated:
        obs, _, terminated, truncated, info = a.step(0)
        n += 1
        if obs[-1] == 1:
            lengths.append(len(a.unwrapped.sequence))
    assert len(lengths) == 2 and n == sum(lengths)
    assert info["inner_episode"] == 1 and not truncated


def test_trial_with_seed_mode_repeats_minigrid_layout():
    env = Trial(make_env("MiniGrid-MemoryS7-v0"), episodes=2, task="seed")
    first, _ = env.reset(seed=3)
    grid = env.unwrapped.grid.encode().copy()
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(2)
        if obs[-1] == 1:
            np.testing.assert_array_equal(obs[:-1], first[:-1])
            np.testing.assert_array_equal(env.unwrapped.grid.encode(), grid)
            break
        done = terminated or truncated
    assert obs[-1] == 1


def test_trial_rejects_bad_arguments():
    with pytest.raises(ValueError, match="episodes"):
        Trial(GridworldEnv(), episodes=0)
    with pytest.raises(ValueError, match="keep_task"):
        Trial(gym.make("CartPole-v1"), episodes=2)
    with pytest.raises(ValueError, match="task"):
        Trial(GridworldEnv(), task="other")


def test_seed_mode_trials_differ_and_are_reproducible():
    env = Trial(make_env("MiniGrid-MemoryS7-v0"), episodes=2, task="seed")
    env.reset(seed=0)
    seeds = [env._task_seed]
    for _ in range(3):
        env.reset()
        seeds.append(env._task_seed)
    assert len(set(seeds)) == 4
    env.reset(seed=0)
    assert env._task_seed == seeds[0]


# ------------------------------------------------------------------ previous action and reward
def test_trial_adds_previous_action_reward_and_flag_in_that_order():
    env = Trial(GridworldEnv(max_steps=3), episodes=2, prev_action=True, prev_reward=True)
    assert env.observation_space.shape == (15 + 4 + 1 + 1,)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[15:], np.zeros(6, np.float32))
    for t, action in enumerate([2, 1, 3, 0]):
        obs, reward, *_ = env.step(action)
        assert env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs[15:19], np.eye(4, dtype=np.float32)[action])
        assert obs[19] == np.float32(reward)
        assert obs[20] == (1.0 if t == 2 else 0.0)  # the first inner episode had 3 steps


def test_trial_prev_action_of_a_box_env_is_clipped():
    env = Trial(make_env("FWM-KeyValue-v0"), episodes=1)  # Discrete env: no previous action
    assert (
        env.observation_space.shape[0] == make_env("FWM-KeyValue-v0").observation_space.shape[0] + 1
    )
    pend = Trial(_KeepTaskPendulum(), episodes=2, prev_action=True)
    assert pend.observation_space.shape == (3 + 1 + 1,)
    pend.reset(seed=0)
    obs, *_ = pend.step(np.array([5.0], np.float32))
    assert obs[3] == 2.0  # Pendulum's torque bound


class _KeepTaskPendulum(gym.Wrapper):
    """Pendulum-v1 that accepts options={'keep_task': True} (it has no task to keep)."""

    supports_keep_task = True

    def __init__(self):
        super().__init__(gym.make("Pendulum-v1", max_episode_steps=5))

    @property
    def unwrapped(self):
        return self

    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=seed)


# ------------------------------------------------------------------ VectorTrial
def _run_pair(batched, reference, actions_fn, steps, seed):
    ob, _ = batched.reset(seed=seed)
    orf, _ = reference.reset(seed=seed)
    np.testing.assert_array_equal(ob, orf)
    for t in range(steps):
        actions = actions_fn(t)
        b = batched.step(actions)
        r = reference.step(actions)
        for x, y in zip(b[:4], r[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(b[4]["inner_episode"], r[4]["inner_episode"])


def test_vector_trial_equals_sync_vector_env_of_trials_on_a_batched_env():
    n, episodes, max_steps = 3, 3, 4
    batched = VectorTrial(
        GridworldVectorEnv(n, max_steps=max_steps), episodes, prev_action=True, prev_reward=True
    )
    reference = gym.vector.SyncVectorEnv(
        [
            lambda: Trial(
                GridworldEnv(max_steps=max_steps), episodes, prev_action=True, prev_reward=True
            )
            for _ in range(n)
        ]
    )
    assert batched.single_observation_space == reference.single_observation_space
    rng = np.random.default_rng(0)
    _run_pair(
        batched, reference, lambda t: rng.integers(0, 4, n), 3 * (episodes * max_steps + 1), 7
    )


def test_vector_trial_keeps_the_goal_within_a_trial_and_draws_a_new_one_between():
    n, episodes, max_steps = 4, 3, 5
    env = VectorTrial(GridworldVectorEnv(n, max_steps=max_steps), episodes)
    obs, info = env.reset(seed=1)
    base = env.unwrapped
    goals, trial_goals = base._goal.copy(), []
    flags = []
    for _ in range(episodes * max_steps):
        obs, _, terminated, truncated, info = env.step(np.zeros(n, np.int64))
        np.testing.assert_array_equal(base._goal, goals)  # same task in all inner episodes
        flags.append(obs[:, -1].copy())
    assert truncated.all() and not terminated.any()
    assert np.flatnonzero(np.array(flags)[:, 0]).tolist() == [4, 9]
    np.testing.assert_array_equal(info["inner_episode"], np.full(n, 2))
    trial_goals.append(goals)
    for _ in range(6):  # the autoreset step starts new trials, then run each trial to its end
        obs, reward, terminated, truncated, info = env.step(np.zeros(n, np.int64))
        np.testing.assert_array_equal(reward, np.zeros(n))
        np.testing.assert_array_equal(obs[:, -1], np.zeros(n))
        np.testing.assert_array_equal(info["inner_episode"], np.zeros(n))
        trial_goals.append(base._goal.copy())
        for _ in range(episodes * max_steps):
            env.step(np.zeros(n, np.int64))
    assert len({tuple(g) for g in trial_goals}) > 1


def test_vector_trial_rejects_envs_it_cannot_run():
    same_step = gym.vector.SyncVectorEnv(
        [lambda: GridworldEnv()], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    with pytest.raises(ValueError, match="NEXT_STEP"):
        VectorTrial(same_step)
    with pytest.raises(ValueError, match="keep_task"):
        VectorTrial(gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")]))
    with pytest.raises(ValueError, match="episodes"):
        VectorTrial(GridworldVectorEnv(2), episodes=0)


def test_evaluate_trials_scores_every_inner_episode():
    import torch

    from fwmrl.agents.policy import MemoryActorCritic
    from fwmrl.agents.trial_eval import evaluate_trials

    n, episodes, max_steps = 3, 2, 6
    env = VectorTrial(GridworldVectorEnv(n, max_steps=max_steps), episodes)
    policy = MemoryActorCritic(
        env.single_observation_space, env.single_action_space, "lstm", {"hidden_size": 8}, [16]
    )
    out = evaluate_trials(policy, env, trials=3, episodes=episodes, seed=3)
    assert out["returns"].shape == (3, episodes) and out["success"].shape == (3, episodes)
    assert (out["success"] == 0).all()  # the gridworld has no success info
    # the same round by hand: per-step rewards split at the ended flag
    generator = torch.Generator().manual_seed(3)
    obs, _ = env.reset(seed=3)
    state, starts = policy.initial_state(n), torch.ones(n, dtype=torch.bool)
    split = np.zeros((n, episodes))
    k = np.zeros(n, dtype=np.int64)
    with torch.no_grad():
        for _ in range(episodes * max_steps):
            params, _, state = policy.step(obs, state, starts)
            action = policy.sample(params, generator, False)
            obs, reward, *_ = env.step(policy.action_dist.to_env(action))
            split[np.arange(n), k] += reward
            k += obs[:, -1] == 1
            starts = torch.zeros(n, dtype=torch.bool)
    np.testing.assert_allclose(out["returns"], split)
