"""HalfCheetah velocity and direction tasks as RL^2 trials (FWM-HalfCheetahVel-v0, -Dir-v0).

Skipped when MuJoCo (the extra ``fwmrl[metaworld]``) is not installed, except the error message.
"""

import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import fwmrl  # noqa: F401  (registers the ids)
from fwmrl.envs import EXTRA_ENV_IDS, make_env, make_vec_env

try:
    import mujoco  # noqa: F401

    HAVE_MUJOCO = True
except ImportError:
    HAVE_MUJOCO = False
needs_mujoco = pytest.mark.skipif(
    not HAVE_MUJOCO, reason="MuJoCo is in the optional extra: pip install 'fwmrl[metaworld]'"
)
IDS = ["FWM-HalfCheetahVel-v0", "FWM-HalfCheetahDir-v0"]


def _check(env):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        # the HalfCheetah observation and the previous reward are unbounded
        warnings.filterwarnings(
            "ignore", message=".*Box observation space (minimum|maximum) value is -?infinity"
        )
        check_env(env, skip_render_check=True)


def test_missing_mujoco_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium.envs.mujoco.half_cheetah_v5", None)
    for env_id in IDS:
        assert env_id in EXTRA_ENV_IDS
        with pytest.raises(ImportError, match=r"pip install 'fwmrl\[metaworld\]'"):
            make_env(env_id)


@needs_mujoco
@pytest.mark.parametrize("env_id", IDS)
def test_trial_ids_pass_the_env_checker(env_id):
    env = make_env(env_id, max_steps=20)
    assert env.observation_space.shape == (17 + 6 + 1 + 1,)
    assert env.action_space.shape == (6,)
    _check(env)
    _check(env.unwrapped)


@needs_mujoco
def test_velocity_reward_is_minus_the_speed_error_minus_control_cost():
    from fwmrl.envs.mujoco_tasks import HalfCheetahVelEnv

    env = HalfCheetahVelEnv(velocity_low=1.0, velocity_high=2.0, max_steps=30)
    _, info = env.reset(seed=0)
    target = info["target_velocity"]
    assert 1.0 <= target <= 2.0
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = rng.uniform(-1, 1, 6)
        obs, reward, terminated, truncated, info = env.step(action)
        ctrl = 0.05 * float(np.sum(np.square(action)))
        assert reward == pytest.approx(-abs(info["x_velocity"] - target) - ctrl)
        assert info["reward_ctrl"] == pytest.approx(-ctrl)
    assert truncated and not terminated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(6))
    with pytest.raises(ValueError, match="velocity_high"):
        HalfCheetahVelEnv(velocity_low=2.0, velocity_high=1.0)


@needs_mujoco
def test_direction_reward_and_both_directions_drawn():
    from fwmrl.envs.mujoco_tasks import HalfCheetahDirEnv

    env = HalfCheetahDirEnv(max_steps=5)
    directions = set()
    for seed in range(20):
        _, info = env.reset(seed=seed)
        directions.add(info["direction"])
        _, reward, *_, step_info = env.step(np.zeros(6))
        assert reward == pytest.approx(info["direction"] * step_info["x_velocity"])
    assert directions == {-1.0, 1.0}


@needs_mujoco
@pytest.mark.parametrize(("env_id", "key"), [(IDS[0], "target_velocity"), (IDS[1], "direction")])
def test_vector_trial_keeps_the_task_over_a_trial_and_resamples_between(env_id, key):
    n, steps, episodes = 6, 5, 3
    env = make_vec_env(env_id, n, max_steps=steps, episodes=episodes)
    assert type(env).__name__ == "VectorTrial"
    obs, info = env.reset(seed=0)
    tasks = [info[key].copy()]
    for _ in range(3):
        for t in range(steps * episodes):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            np.testing.assert_array_equal(info[key], tasks[-1])
            assert (obs[:, -1] == 1).all() == (t in (steps - 1, 2 * steps - 1))
        assert truncated.all()
        obs, reward, _, _, info = env.step(env.action_space.sample())
        np.testing.assert_array_equal(reward, 0.0)
        tasks.append(info[key].copy())
    tasks = np.array(tasks)
    assert (tasks[1:] != tasks[:-1]).any(axis=0).sum() >= n // 2  # most envs drew a new task
    env.close()


@needs_mujoco
def test_vector_trial_equals_sync_vector_env_of_trials():
    kw = {"max_steps": 3, "episodes": 2}
    batched = make_vec_env("FWM-HalfCheetahVel-v0", 3, **kw)
    sync = make_vec_env("FWM-HalfCheetahVel-v0", 3, vectorization="sync", **kw)
    np.testing.assert_array_equal(batched.reset(seed=1)[0], sync.reset(seed=1)[0])
    rng = np.random.default_rng(1)
    for _ in range(16):
        a = rng.uniform(-1, 1, (3, 6)).astype(np.float32)
        for x, y in zip(batched.step(a)[:4], sync.step(a)[:4], strict=True):
            np.testing.assert_array_equal(x, y)
    assert gym.spec("FWM-HalfCheetahVel-v0").max_episode_steps is None


CONFIGS = sorted(
    p.name
    for pattern in ("ml1_*.yaml", "ml10_*.yaml", "ml45_*.yaml", "halfcheetah_*.yaml")
    for p in (Path(__file__).resolve().parents[2] / "configs").glob(pattern)
)


def test_benchmark_configs_validate_and_name_the_trial_ids():
    from fwmrl.config import load_config

    root = Path(__file__).resolve().parents[2] / "configs"
    assert len(CONFIGS) >= 11
    stems = {name.rsplit("_", 1)[0] for name in CONFIGS}
    assert {"ml1_reach", "ml1_push", "ml1_pick_place", "ml10", "ml45", "halfcheetah_vel"} <= stems
    for name in CONFIGS:
        config = load_config(root / name)
        assert config.env.id in EXTRA_ENV_IDS and config.algo.name == "ppo", name
        assert config.core.name in ("fwm", "lstm", "none"), name
        if "MetaWorld" in config.env.id:
            assert config.env.eval_kwargs == {"split": "test"}, name


@needs_mujoco
@pytest.mark.slow
def test_fwmrl_train_runs_a_halfcheetah_config(tmp_path):
    """The whole ``fwmrl train`` path (end-of-run evaluation, references, plots) on a tiny budget."""
    from fwmrl import cli

    code = cli.main(
        [
            "train",
            str(Path(__file__).resolve().parents[2] / "configs/halfcheetah_vel_fwm.yaml"),
            "--run-dir",
            str(tmp_path / "run"),
            "env.num_envs=4",
            "env.kwargs.max_steps=5",
            "algo.n_steps=10",
            "train.total_steps=80",
            "train.eval_episodes=2",
            "core.hidden_size=8",
            "core.memory_size=4",
        ]
    )
    assert code == 0
    assert (tmp_path / "run").is_dir()


def test_task_env_docstrings_have_the_sections_of_every_fwmrl_env():
    from fwmrl.envs.metaworld_tasks import MetaWorldTaskEnv
    from fwmrl.envs.mujoco_tasks import HalfCheetahDirEnv, HalfCheetahVelEnv

    for cls in (MetaWorldTaskEnv, HalfCheetahVelEnv, HalfCheetahDirEnv):
        doc = cls.__doc__
        for section in ("Observation", "Action", "Reward", "Termination", "Arguments"):
            assert f"## {section}" in doc, (cls.__name__, section)
        assert "## Registered ids" in doc and "FWM-" in doc.split("## Registered ids")[1]
