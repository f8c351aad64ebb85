"""FWM-Gridworld-v0: layout, observation, dynamics, oracle and reference returns."""

from collections import deque

import gymnasium as gym
import numpy as np
import pytest

from fwmrl.envs import GridworldEnv, normalized_score, reference_returns
from fwmrl.envs.gridworld import DOWN, LEFT, RIGHT, UP


def _bfs_distance(walls, start, goal):
    size = walls.shape[0]
    dist = {start: 0}
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        if (r, c) == goal:
            return dist[(r, c)]
        for dr, dc in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            nr, nc = r + dr, c + dc
            if 0 <= nr < size and 0 <= nc < size and not walls[nr, nc] and (nr, nc) not in dist:
                dist[(nr, nc)] = dist[(r, c)] + 1
                queue.append((nr, nc))
    raise AssertionError("goal unreachable")


def test_lattice_layout():
    env = GridworldEnv()
    walls = env.grid.walls
    assert walls.shape == (9, 9)
    assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
    for r in range(1, 8):
        for c in range(1, 8):
            assert walls[r, c] == (r % 2 == 0 and c % 2 == 0)
    assert env.grid.n_free == 49 - 9
    assert GridworldEnv(layout="open").grid.n_free == 49


def test_observation_shows_window_action_reward_time():
    env = GridworldEnv(view=3, max_steps=50)
    obs, info = env.reset(seed=4)
    assert info == {"goal_hits": 0}
    r, c = env.agent_cell
    padded = np.pad(env.grid.walls, 1, constant_values=True)
    np.testing.assert_array_equal(obs[:9], padded[r : r + 3, c : c + 3].ravel())
    np.testing.assert_array_equal(obs[9:], np.zeros(6))
    obs, reward, *_ = env.step(RIGHT)
    assert obs[9 + RIGHT] == 1 and obs[9:13].sum() == 1
    assert obs[13] == np.float32(reward)
    assert obs[14] == np.float32(1 / 50)


def test_goal_is_never_observed():
    env = GridworldEnv()
    by_cell: dict = {}
    goals_by_cell: dict = {}
    for seed in range(300):
        obs, _ = env.reset(seed=seed)
        first = by_cell.setdefault(env.agent_cell, obs)
        np.testing.assert_array_equal(obs, first)
        goals_by_cell.setdefault(env.agent_cell, set()).add(env.goal_cell)
    assert max(len(g) for g in goals_by_cell.values()) >= 3


def test_wall_bump_stays_and_is_penalised():
    env = GridworldEnv()
    for seed in range(20):
        env.reset(seed=seed)
        r, c = env.agent_cell
        for a, (dr, dc) in zip(
            (UP, RIGHT, DOWN, LEFT), ((-1, 0), (0, 1), (1, 0), (0, -1)), strict=True
        ):
            if env.grid.walls[r + dr, c + dc]:
                _, reward, *_ = env.step(a)
                assert reward == pytest.approx(-0.1)
                assert env.agent_cell == (r, c)
                return
    raise AssertionError("no wall next to any start")


def test_goal_fixed_within_episode_teleport_elsewhere_truncated_never_terminated():
    env = GridworldEnv(max_steps=200)
    env.reset(seed=1)
    goal = env.goal_cell
    hits, steps = 0, 0
    truncated = False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(env.oracle_action())
        steps += 1
        assert not terminated
        assert env.goal_cell == goal
        assert env.agent_cell != goal
        if reward == 10.0:
            hits += 1
            assert obs[13] == 10.0
        assert info["goal_hits"] == hits
    assert steps == 200 and hits > 10


def test_oracle_walks_shortest_paths():
    env = GridworldEnv(size=11, max_steps=300)
    checked = 0
    for seed in range(10):
        env.reset(seed=seed)
        truncated = False
        start, steps = env.agent_cell, 0
        expected = _bfs_distance(env.grid.walls, start, env.goal_cell)
        while not truncated:
            _, reward, _, truncated, _ = env.step(env.oracle_action())
            steps += 1
            assert reward >= 0, "the oracle never bumps into walls"
            if reward > 0:
                assert steps == expected
                checked += 1
                start, steps = env.agent_cell, 0
                expected = _bfs_distance(env.grid.walls, start, env.goal_cell)
    assert checked > 100


def test_keep_task_keeps_goal_and_new_episode_moves_it():
    env = GridworldEnv()
    env.reset(seed=3)
    goal = env.goal_cell
    for _ in range(5):
        env.reset(options={"keep_task": True})
        assert env.goal_cell == goal
    goals = set()
    for _ in range(20):
        env.reset()
        goals.add(env.goal_cell)
    assert len(goals) > 3
    with pytest.raises(ValueError, match="keep_task"):
        GridworldEnv().reset(options={"keep_task": True})


def test_reference_returns_and_normalized_score():
    refs = reference_returns(seed=0, episodes=5)
    assert refs["oracle"] > 200 > 30 > refs["random"]
    assert normalized_score(refs["oracle"], refs) == pytest.approx(1.0)
    assert normalized_score(refs["random"], refs) == pytest.approx(0.0)
    assert reference_returns(seed=0, episodes=5) == refs
    env = gym.make("FWM-Gridworld-v0", max_steps=50)
    assert env.unwrapped.reference_returns(seed=0, episodes=5) == reference_returns(
        seed=0, episodes=5, max_steps=50
    )
