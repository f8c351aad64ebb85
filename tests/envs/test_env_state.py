"""Env states saved as plain arrays continue exactly; malformed states and bad actions are clear
errors; stepping after an episode ended raises."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from fwmrl.envs import (
    EnvStateError,
    GraphNavEnv,
    GridworldEnv,
    KeyValueEnv,
    RecallEnv,
    load_vector_env_state,
    make_vec_env,
    vector_env_state,
)

CASES = [
    ("FWM-Gridworld-v0", {"size": 5, "max_steps": 7}),
    ("FWM-GraphNav-v0", {"max_steps": 6}),
    ("FWM-GraphNav-v0", {"graphs": "random", "max_steps": 5, "max_moves": 2}),
    ("FWM-KeyValue-v0", {"n_queries": 2, "max_items": 3}),
    ("FWM-Recall-v0", {"task": "count", "symbols": 3, "max_steps": 6}),
]
SINGLE = {"FWM-Gridworld-v0": GridworldEnv, "FWM-GraphNav-v0": GraphNavEnv}
SINGLE["FWM-KeyValue-v0"] = KeyValueEnv
SINGLE["FWM-Recall-v0"] = RecallEnv


def _plain(value) -> bool:
    """Only arrays, strings, numbers and containers of them (nothing that needs unpickling)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    return isinstance(value, (str, int, float, bool))


def _steps(env, rng, n):
    out = []
    for _ in range(n):
        actions = rng.integers(env.single_action_space.n, size=env.num_envs)
        out.append([np.asarray(x).copy() for x in env.step(actions)[:4]])
    return out


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
@pytest.mark.parametrize("vectorization", ["auto", "sync"])
def test_vector_env_state_continues_exactly(env_id, kwargs, vectorization):
    rng = np.random.default_rng(1)
    env = make_vec_env(env_id, 3, vectorization=vectorization, **kwargs)
    env.reset(seed=4)
    _steps(env, rng, 11)  # mid-episode, after autoresets
    saved = vector_env_state(env)
    assert saved is not None and _plain(saved)
    copy = make_vec_env(env_id, 3, vectorization=vectorization, **kwargs)
    copy.reset(seed=999)  # another state, overwritten by the load
    load_vector_env_state(copy, saved)
    actions = np.random.default_rng(2)
    a, b = _steps(env, actions, 30), _steps(copy, np.random.default_rng(2), 30)
    for x, y in zip(a, b, strict=True):
        for p, q in zip(x, y, strict=True):
            np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_single_env_state_continues_exactly(env_id, kwargs):
    env = SINGLE[env_id](**kwargs)
    env.reset(seed=3)
    env.step(1)
    copy = SINGLE[env_id](**kwargs)
    copy.load_state_dict(env.state_dict())
    for t in range(200):
        x, y = env.step(t % 3), copy.step(t % 3)
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:4] == y[1:4]
        if x[2] or x[3]:  # both ended: the next episodes come from the same generator state
            np.testing.assert_array_equal(env.reset()[0], copy.reset()[0])


def test_envs_without_a_saveable_state_say_so():
    env = make_vec_env("CartPole-v1", 2)
    assert vector_env_state(env) is None
    native = make_vec_env("FWM-Gridworld-v0", 2, size=5)
    native.reset(seed=0)
    with pytest.raises(EnvStateError, match="kind: saved from a 'batched' env"):
        load_vector_env_state(env, vector_env_state(native))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cell", np.full(3, 10_000), r"cell: values must lie in \[0, 24\]"),
        ("cell", np.zeros(2, dtype=np.int64), r"cell: expected shape \(3\), got \(2,\)"),
        ("t", np.zeros(3, dtype=np.float32), "t: expected int64 values, got float32"),
        ("obs", None, "obs: expected shape"),
        ("streams.rngs", np.full((3, 6), 5), r"streams.rngs\[0\]: not a saved PCG64 state"),
        ("streams.pos", np.full(3, 500), r"streams.pos: values must lie in \[0, 128\]"),
        ("prev_reward", np.full(3, np.nan), "prev_reward: holds NaN"),
    ],
)
def test_malformed_states_name_the_entry(key, value, message):
    env = make_vec_env("FWM-Gridworld-v0", 3, size=5)
    env.reset(seed=0)
    saved = vector_env_state(env)
    before = vector_env_state(env)["state"]
    saved["state"][key] = value
    with pytest.raises(EnvStateError, match=message):
        load_vector_env_state(env, saved)
    after = vector_env_state(env)["state"]  # a refused state changes nothing
    assert all(np.array_equal(before[k], after[k]) for k in before)
    del saved["state"][key]
    with pytest.raises(EnvStateError, match=f"{key}: missing"):
        load_vector_env_state(env, saved)


def test_a_wall_cell_is_refused():
    env = make_vec_env("FWM-Gridworld-v0", 1, size=5)
    env.reset(seed=0)
    saved = vector_env_state(env)
    saved["state"]["cell"] = np.array([0])  # the corner is a wall
    with pytest.raises(EnvStateError, match="not a free cell"):
        load_vector_env_state(env, saved)


@pytest.mark.parametrize("env_id", list(SINGLE))
def test_fuzz_actions_and_seeds(env_id):
    """Valid actions of any integer type step; floats, strings, bools and out-of-range values
    raise a ValueError naming the range; episodes end and stepping past the end raises."""
    rng = np.random.default_rng(0)
    env = SINGLE[env_id](**dict(CASES[[c[0] for c in CASES].index(env_id)][1]))
    n = env.action_space.n
    bad = [0.0, -0.5, 1.5, "1", True, False, None, [0], np.float32(1), n, -1, np.int64(n)]
    for seed in rng.integers(0, 2**31, size=5).tolist():
        env.reset(seed=seed)
        for value in bad:
            with pytest.raises(ValueError, match=rf"action must be an integer in \[0, {n - 1}\]"):
                env.step(value)
        kinds = [int, np.int64, np.int32, np.uint8, lambda a: np.array(a)]
        ended = False
        for t in range(1000):
            action = kinds[t % len(kinds)](int(rng.integers(n)))
            obs, _, terminated, truncated, _ = env.step(action)
            assert env.observation_space.contains(obs)
            if terminated or truncated:
                ended = True
                break
        assert ended
        with pytest.raises(RuntimeError, match="after the episode ended; call reset"):
            env.step(0)


def test_sync_vector_env_of_fwmrl_envs_autoresets_as_before():
    env = gym.vector.SyncVectorEnv([lambda: GridworldEnv(size=5, max_steps=2)])
    env.reset(seed=0)
    flags = [bool(env.step(np.array([0]))[3][0]) for _ in range(6)]
    assert flags == [False, True, False, False, True, False]  # the step after the end resets
