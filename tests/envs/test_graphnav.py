"""FWM-GraphNav-v0: graph generator, fixed banks, observation and dynamics."""

import hashlib
from math import gcd

import numpy as np
import pytest
from gymnasium.vector import SyncVectorEnv

from fwmrl.envs import GraphNavEnv, GraphNavVectorEnv, graph_banks, sample_graphs
from fwmrl.envs.graphnav import BANK_SIZE, N_ACTIONS, N_NODES

BANK_DIGEST = "a8554450bbd2df57"  # changes only if the bank generator changes


def _edges(graph):
    return [
        (i, a, int(graph[i, a]))
        for i in range(N_NODES)
        for a in range(N_ACTIONS)
        if graph[i, a] >= 0
    ]


def _strongly_connected_and_aperiodic(graph):
    succ = {i: {j for (k, _, j) in _edges(graph) if k == i} for i in range(N_NODES)}
    level = {0: 0}
    frontier = [0]
    while frontier:
        nxt = []
        for u in frontier:
            for v in succ[u]:
                if v not in level:
                    level[v] = level[u] + 1
                    nxt.append(v)
        frontier = nxt
    if len(level) < N_NODES:
        return False
    pred = {i: {k for (k, _, j) in _edges(graph) if j == i} for i in range(N_NODES)}
    seen, stack = {0}, [0]
    while stack:
        for v in pred[stack.pop()]:
            if v not in seen:
                seen.add(v)
                stack.append(v)
    if len(seen) < N_NODES:
        return False
    period = 0
    for u, _, v in _edges(graph):
        period = gcd(period, level[u] + 1 - level[v])
    return period == 1


def _check_graph(graph):
    edges = _edges(graph)
    assert len(edges) == 10
    assert all(i != j for i, _, j in edges), "self-loop"
    assert {i for i, _, _ in edges} == set(range(N_NODES))
    assert {j for _, _, j in edges} == set(range(N_NODES))
    assert _strongly_connected_and_aperiodic(graph)


def test_banks_600_plus_600_distinct_disjoint_valid():
    banks = graph_banks()
    train, test = banks["train"], banks["test"]
    assert train.shape == test.shape == (BANK_SIZE, N_NODES, N_ACTIONS)
    train_keys = {g.tobytes() for g in train}
    test_keys = {g.tobytes() for g in test}
    assert len(train_keys) == len(test_keys) == BANK_SIZE
    assert not train_keys & test_keys
    for g in np.concatenate([train, test]):
        _check_graph(g)
    assert not train.flags.writeable


def test_banks_are_reproducible():
    banks = graph_banks()
    graph_banks.cache_clear()
    again = graph_banks()
    for name in ("train", "test"):
        np.testing.assert_array_equal(banks[name], again[name])
    digest = hashlib.sha256(again["train"].tobytes() + again["test"].tobytes()).hexdigest()
    assert digest[:16] == BANK_DIGEST


def test_sample_graphs_same_alone_or_batched():
    streams = [np.random.default_rng(s).random(10_000) for s in range(8)]
    pos = np.zeros(8, dtype=int)

    def draw(sel):
        u = np.array([streams[k][pos[k]] for k in sel])
        pos[sel] += 1
        return u

    batched = sample_graphs(draw, 8)
    for k in range(8):
        p = iter(streams[k])
        alone = sample_graphs(lambda sel, p=p: np.array([next(p) for _ in sel]), 1)[0]
        np.testing.assert_array_equal(alone, batched[k])
        _check_graph(alone)


def test_random_graphs_vary_and_are_valid():
    env = GraphNavEnv(graphs="random")
    env.reset(seed=0)
    seen = set()
    for _ in range(50):
        env.reset()
        _check_graph(env.graph)
        seen.add(env.graph.tobytes())
    assert len(seen) >= 45


def test_observation_layout():
    env = GraphNavEnv(max_steps=30)
    obs, _ = env.reset(seed=5)
    assert obs.shape == (16,)
    assert obs[env._goal] == 1 and obs[:5].sum() == 1
    assert obs[5 + env._node] == 1 and obs[5:10].sum() == 1
    assert obs[13] == 1 and obs[10:14].sum() == 1, "'none' slot on the first step"
    assert obs[14] == 0 and obs[15] == 0
    invalid = [a for a in range(3) if env.graph[env._node, a] < 0]
    valid = [a for a in range(3) if env.graph[env._node, a] >= 0]
    a = (invalid or valid)[0]
    obs, reward, *_ = env.step(a)
    assert obs[10 + a] == 1 and obs[10:14].sum() == 1
    assert obs[14] == np.float32(reward)
    assert obs[15] == np.float32(1 / 30)


def test_invalid_action_stays_and_timeout_resamples_goal():
    env = GraphNavEnv()
    for seed in range(50):
        env.reset(seed=seed)
        invalid = [a for a in range(3) if env.graph[env._node, a] < 0]
        if invalid:
            break
    node, goal = env._node, env._goal
    for _ in range(5):
        _, reward, *_ = env.step(invalid[0])
        assert reward == pytest.approx(-0.05)
        assert (env._node, env._goal) == (node, goal)
    env.step(invalid[0])  # the sixth move without reaching the goal
    assert env._goal != goal
    assert env._node != env._goal


def test_goal_reward_new_goal_and_teleport():
    env = GraphNavEnv()
    hits = 0
    for seed in range(40):
        env.reset(seed=seed)
        for _ in range(30):
            old_goal = env._goal
            into_goal = [a for a in range(3) if env.graph[env._node, a] == env._goal]
            a = into_goal[0] if into_goal else 0
            _, reward, _, truncated, info = env.step(a)
            if into_goal:
                hits += 1
                assert reward == 10.0
                assert env._goal != old_goal and env._node != env._goal
                assert info["goal_hits"] >= 1
            if truncated:
                break
    assert hits > 20


def test_random_policy_return_matches_paper():
    env = GraphNavEnv(graphs="test")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    returns = []
    for _ in range(400):
        env.reset()
        total, truncated, steps = 0.0, False, 0
        while not truncated:
            _, reward, _, truncated, _ = env.step(int(rng.integers(3)))
            total, steps = total + reward, steps + 1
        assert steps == 30
        returns.append(total)
    assert 40 < np.mean(returns) < 50  # the paper reports about 45


def test_keep_task_keeps_graph():
    env = GraphNavEnv(graphs="random")
    env.reset(seed=2)
    graph = env.graph.copy()
    for _ in range(3):
        env.reset(options={"keep_task": True})
        np.testing.assert_array_equal(env.graph, graph)
    env.reset()
    assert not np.array_equal(env.graph, graph)


def test_train_and_test_envs_use_their_bank():
    banks = graph_banks()
    for name in ("train", "test"):
        env = GraphNavEnv(graphs=name)
        env.reset(seed=0)
        for _ in range(20):
            env.reset()
            np.testing.assert_array_equal(env.graph, banks[name][env.graph_index])


def _goal_then_misses(env: GraphNavEnv, seeds: range) -> tuple[int, int]:
    """Walk into a goal after two invalid moves, then keep making invalid moves; returns the number
    of invalid moves after the hit until the goal was redrawn, and the previous-action entry of the
    observation after that redraw."""
    for seed in seeds:
        env.reset(seed=seed)
        bad = [a for a in range(3) if env.graph[env._node, a] < 0]
        into = [a for a in range(3) if env.graph[env._node, a] == env._goal]
        if not (bad and into):
            continue
        env.step(bad[0])
        env.step(bad[0])
        env.step(into[0])  # the goal: a new goal and start are drawn
        for misses in range(1, 10):
            bad = [a for a in range(3) if env.graph[env._node, a] < 0]
            if not bad:
                break
            goal = env._goal
            obs, *_ = env.step(bad[0])
            if env._goal != goal or env._t >= env.max_steps:
                return misses, int(obs[10:14].argmax())
    raise AssertionError("no seed gave the needed graph")


def test_paper_rules_count_moves_across_goals_and_hide_the_reward():
    ours, _ = _goal_then_misses(GraphNavEnv(max_moves=5), range(200))
    assert ours == 6  # the goal restarted the count: six misses in a row
    env = GraphNavEnv(max_moves=5, paper_rules=True)
    misses, previous_action = _goal_then_misses(env, range(200))
    assert misses == 4  # two misses before the goal and four after it make six
    assert previous_action == 3  # the redraw shows "no previous action"
    env.reset(seed=1)
    rewards = set()
    for t in range(30):
        obs, reward, *_ = env.step(t % 3)
        rewards.add(reward)
        assert obs[14] == 0.0
    assert rewards - {0.0}  # rewards were paid, only the observation hides them


def test_paper_rules_must_be_a_bool():
    with pytest.raises(ValueError, match="paper_rules"):
        GraphNavEnv(paper_rules="yes")


def test_fixed_graph_order_keeps_one_bank_graph_per_env():
    banks = graph_banks()
    env = GraphNavEnv(graphs="test", graph_order="fixed", graph_offset=601)
    for seed in range(5):
        env.reset(seed=seed)
        assert env.graph_index == 1  # 601 % 600
        np.testing.assert_array_equal(env.graph, banks["test"][1])
    vec = GraphNavVectorEnv(600, graphs="train", graph_order="fixed")
    vec.reset(seed=3)
    np.testing.assert_array_equal(vec.graph_index, np.arange(600))
    np.testing.assert_array_equal(vec.graph, banks["train"])  # the whole bank once per batch
    vec.reset()
    np.testing.assert_array_equal(vec.graph_index, np.arange(600))


def test_fixed_graph_order_vector_env_equals_single_envs_with_offsets():
    n, offset, kwargs = 5, 598, {"max_steps": 7, "max_moves": 2, "graph_order": "fixed"}
    single = SyncVectorEnv(
        [lambda k=k: GraphNavEnv(**kwargs, graph_offset=offset + k) for k in range(n)]
    )
    native = GraphNavVectorEnv(n, **kwargs, graph_offset=offset)
    obs_a, _ = single.reset(seed=4)
    obs_b, _ = native.reset(seed=4)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(native.graph_index, [598, 599, 0, 1, 2])
    rng = np.random.default_rng(0)
    for _ in range(40):  # several autoresets: the graph stays, goals and starts are redrawn
        actions = rng.integers(3, size=n)
        for a, b in zip(single.step(actions)[:4], native.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(native.graph_index, [598, 599, 0, 1, 2])


def test_uniform_graph_order_is_the_default_and_unchanged():
    a, b = GraphNavEnv(graphs="train"), GraphNavEnv(graphs="train", graph_order="uniform")
    for seed in range(10):
        obs_a, _ = a.reset(seed=seed)
        obs_b, _ = b.reset(seed=seed)
        np.testing.assert_array_equal(obs_a, obs_b)
        assert a.graph_index == b.graph_index
    indices = set()
    for _ in range(20):
        a.reset()
        indices.add(a.graph_index)
    assert len(indices) > 10  # a uniform draw per episode


def test_graph_order_arguments_are_checked():
    with pytest.raises(ValueError, match="graph_order must be one of"):
        GraphNavEnv(graph_order="sorted")
    with pytest.raises(ValueError, match="graph_order='fixed' needs a fixed bank"):
        GraphNavVectorEnv(2, graphs="random", graph_order="fixed")
    with pytest.raises(ValueError, match="graph_offset must be an integer"):
        GraphNavEnv(graph_order="fixed", graph_offset=-1)


def test_show_reward_false_only_hides_the_reward():
    shown, hidden = GraphNavEnv(), GraphNavEnv(show_reward=False)
    rng = np.random.default_rng(1)
    paid = set()
    for seed in range(5):
        obs_a, _ = shown.reset(seed=seed)
        obs_b, _ = hidden.reset(seed=seed)
        for _ in range(30):
            a = int(rng.integers(3))
            obs_a, reward_a, *_ = shown.step(a)
            obs_b, reward_b, *_ = hidden.step(a)
            assert reward_a == reward_b and obs_b[14] == 0.0 and obs_a[14] == np.float32(reward_a)
            np.testing.assert_array_equal(np.delete(obs_a, 14), np.delete(obs_b, 14))
            paid.add(reward_a)
    assert {10.0, -0.05} <= paid
    assert not GraphNavEnv(paper_rules=True, show_reward=True).show_reward  # paper rules hide it


def test_show_reward_false_vector_env_equals_single_envs():
    kwargs = {"max_steps": 9, "show_reward": False, "graphs": "test"}
    single = SyncVectorEnv([lambda: GraphNavEnv(**kwargs) for _ in range(4)])
    native = GraphNavVectorEnv(4, **kwargs)
    np.testing.assert_array_equal(single.reset(seed=2)[0], native.reset(seed=2)[0])
    rng = np.random.default_rng(3)
    for _ in range(30):
        actions = rng.integers(3, size=4)
        for a, b in zip(single.step(actions)[:4], native.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="show_reward must be True or False"):
        GraphNavVectorEnv(2, show_reward=1)
