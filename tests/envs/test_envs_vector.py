"""The batched NumPy envs reproduce N single envs exactly (SyncVectorEnv as the reference)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from fwmrl.envs import ENV_IDS, GraphNavVectorEnv, GridworldVectorEnv, KeyValueVectorEnv

# Short episodes so that every run crosses several autoresets.
CASES = [
    ("FWM-Gridworld-v0", {"max_steps": 17}),
    ("FWM-Gridworld-v0", {"size": 11, "view": 5, "layout": "open", "max_steps": 40}),
    ("FWM-GraphNav-v0", {"max_steps": 13}),
    ("FWM-GraphNav-v0", {"graphs": "random", "max_steps": 9, "max_moves": 2}),
    ("FWM-GraphNav-v0", {"max_steps": 30, "max_moves": 2, "paper_rules": True}),
    ("FWM-KeyValue-v0", {"n_queries": 2, "max_items": 3}),
    ("FWM-Recall-v0", {"max_steps": 11}),
    ("FWM-Recall-v0", {"task": "first", "symbols": 3, "max_steps": 7}),
    ("FWM-Recall-v0", {"task": "count", "symbols": 2, "max_steps": 9}),
]


def _pair(env_id, kwargs, n):
    sync = SyncVectorEnv([lambda: gym.make(env_id, **kwargs) for _ in range(n)])
    native = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    return sync, native


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, dict):
            assert x.keys() == y.keys()
            for k in x:
                np.testing.assert_array_equal(x[k], y[k], err_msg=k)
        else:
            assert np.asarray(x).dtype == np.asarray(y).dtype
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_native_vector_env_equals_sync_vector_env(env_id, kwargs):
    n = 6
    sync, native = _pair(env_id, kwargs, n)
    assert native.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert native.single_observation_space == sync.single_observation_space
    assert native.single_action_space == sync.single_action_space
    _assert_same(sync.reset(seed=11), native.reset(seed=11))
    rng = np.random.default_rng(0)
    n_actions = native.single_action_space.n
    resets, rewards = 0, 0.0
    for t in range(150):
        actions = rng.integers(n_actions, size=n)
        out_sync, out_native = sync.step(actions), native.step(actions)
        _assert_same(out_sync, out_native)
        resets += int((out_native[2] | out_native[3]).sum())
        rewards += float(np.abs(out_native[1]).sum())
        if t == 70:
            # a seedless reset in the middle continues every sub-env's random stream
            _assert_same(sync.reset(), native.reset())
    assert resets >= 2 * n
    assert rewards > 0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_list_seeds_and_reset_mask(env_id):
    sync, native = _pair(env_id, {}, 4)
    seeds = [5, None, 123, 7]
    _assert_same(sync.reset(seed=[5, 6, 123, 7]), native.reset(seed=[5, 6, 123, 7]))
    rng = np.random.default_rng(1)
    for _ in range(5):
        actions = rng.integers(native.single_action_space.n, size=4)
        _assert_same(sync.step(actions), native.step(actions))
    mask = np.array([True, False, True, False])
    _assert_same(
        sync.reset(seed=seeds, options={"reset_mask": mask.copy()}),
        native.reset(seed=seeds, options={"reset_mask": mask.copy()}),
    )
    for _ in range(5):
        actions = rng.integers(native.single_action_space.n, size=4)
        _assert_same(sync.step(actions), native.step(actions))


@pytest.mark.parametrize(
    ("env_id", "attr"), [("FWM-Gridworld-v0", "_goal"), ("FWM-GraphNav-v0", "graph")]
)
def test_keep_task_option_matches_single_envs(env_id, attr):
    sync, native = _pair(env_id, {}, 3)
    _assert_same(sync.reset(seed=2), native.reset(seed=2))
    before = getattr(native, attr).copy()
    _assert_same(sync.reset(options={"keep_task": True}), native.reset(options={"keep_task": True}))
    np.testing.assert_array_equal(getattr(native, attr), before)
    native.reset()
    assert not np.array_equal(getattr(native, attr), before)


def test_vector_env_constructors_validate_num_envs():
    for cls in (GridworldVectorEnv, GraphNavVectorEnv, KeyValueVectorEnv):
        with pytest.raises(ValueError, match="num_envs"):
            cls(num_envs=0)


def test_step_before_reset_raises():
    env = GridworldVectorEnv(num_envs=2)
    with pytest.raises(RuntimeError):
        env.step(np.zeros(2, dtype=np.int64))
