"""The RL^2 Trial wrapper."""

import gymnasium as gym
import numpy as np
import pytest

from fwmrl.envs import GraphNavEnv, GridworldEnv, KeyValueEnv, Trial, make_env


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
