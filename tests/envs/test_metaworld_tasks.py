"""Meta-World ML1/ML10 as RL^2 trials (FWM-MetaWorld-ML1-v0, FWM-MetaWorld-ML10-v0).

The tests that need Meta-World skip when the extra ``fwmrl[metaworld]`` is not installed; the
error-message tests run either way.
"""

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import fwmrl  # noqa: F401  (registers the ids)
from fwmrl.envs import EXTRA_ENV_IDS, make_env, make_vec_env

try:
    import metaworld  # noqa: F401

    HAVE_METAWORLD = True
except ImportError:
    HAVE_METAWORLD = False
needs_metaworld = pytest.mark.skipif(
    not HAVE_METAWORLD, reason="Meta-World is an optional extra: pip install 'fwmrl[metaworld]'"
)
SHORT = {"max_steps": 10, "episodes": 3}


def _check(env):
    """Gymnasium's checker without the note that the trial is a wrapper."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        # Meta-World's observation bounds and the previous reward are unbounded on purpose
        warnings.filterwarnings(
            "ignore", message=".*Box observation space (minimum|maximum) value is -?infinity"
        )
        check_env(env, skip_render_check=True)


def test_ids_are_registered_without_importing_metaworld():
    for env_id in ("FWM-MetaWorld-ML1-v0", "FWM-MetaWorld-ML10-v0", "FWM-MetaWorld-ML45-v0"):
        assert env_id in EXTRA_ENV_IDS
        assert gym.spec(env_id).vector_entry_point is not None


def test_missing_extra_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)  # import metaworld raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'fwmrl\[metaworld\]'"):
        make_env("FWM-MetaWorld-ML1-v0")
    with pytest.raises(ImportError, match="FWM-MetaWorld-ML10-v0"):
        make_vec_env("FWM-MetaWorld-ML10-v0", 2)


def test_fwmrl_imports_and_trains_nothing_metaworld_without_the_extra():
    code = (
        "import sys\n"
        "sys.modules['metaworld'] = None; sys.modules['mujoco'] = None\n"
        "import fwmrl, fwmrl.envs\n"
        "from fwmrl.envs import make_env\n"
        "make_env('FWM-Gridworld-v0').reset(seed=0)\n"
        "try:\n"
        "    make_env('FWM-MetaWorld-ML1-v0')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'fwmrl[metaworld]'" in out.stdout


@needs_metaworld
def test_ml1_trial_passes_the_env_checker():
    env = make_env("FWM-MetaWorld-ML1-v0", **SHORT)
    assert env.observation_space.shape == (36 + 4 + 1 + 1,)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    _check(env)
    _check(env.unwrapped)


@needs_metaworld
@pytest.mark.parametrize("env_name", ["reach", "push-v3", "pick-place-v3"])
def test_ml1_train_and_test_tasks_are_metaworlds_and_disjoint(env_name):
    from fwmrl.envs.metaworld_tasks import MetaWorldTaskEnv

    train = MetaWorldTaskEnv("ML1", env_name, split="train", max_steps=5)
    test = MetaWorldTaskEnv("ML1", env_name, split="test", max_steps=5)
    assert len(train.tasks) == len(test.tasks) == 50
    assert train.class_names == test.class_names == [train.env_name]

    def vecs(env):
        return {tuple(np.round(env_vec(t), 6)) for t in env.tasks}

    def env_vec(task):  # the task's object and goal positions, as Meta-World sets them
        train._sim(task.env_name).set_task(task)
        return train._sim(task.env_name)._last_rand_vec

    assert len(vecs(train)) == 50 and len(vecs(test)) == 50
    assert not vecs(train) & vecs(test)
    train.close()
    test.close()


@needs_metaworld
def test_ml1_trial_keeps_the_task_across_episodes_and_resamples_between_trials():
    env = make_vec_env("FWM-MetaWorld-ML1-v0", 3, **SHORT)
    obs, info = env.reset(seed=0)
    trial_tasks = [info["task_index"].copy()]
    first_obs = obs[:, :36].copy()
    for _ in range(4):
        for t in range(30):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            np.testing.assert_array_equal(info["task_index"], trial_tasks[-1])
            if t in (9, 19):  # next inner episode of the same task: the same start
                assert (obs[:, -1] == 1).all()
                np.testing.assert_allclose(obs[:, :36], first_obs, atol=1e-6)
        assert truncated.all()
        obs, reward, _, _, info = env.step(env.action_space.sample())  # autoreset: a new trial
        np.testing.assert_array_equal(reward, 0.0)
        trial_tasks.append(info["task_index"].copy())
        first_obs = obs[:, :36].copy()
    tasks = np.array(trial_tasks)
    assert len(np.unique(tasks)) > 3  # drawn from the 50 train tasks
    env.close()


@needs_metaworld
def test_ml1_vector_trial_equals_sync_vector_env_of_trials():
    kw = {"max_steps": 4, "episodes": 2}
    batched = make_vec_env("FWM-MetaWorld-ML1-v0", 2, **kw)
    sync = make_vec_env("FWM-MetaWorld-ML1-v0", 2, vectorization="sync", **kw)
    assert type(batched).__name__ == "VectorTrial"
    ob, _ = batched.reset(seed=4)
    os_, _ = sync.reset(seed=4)
    np.testing.assert_array_equal(ob, os_)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
        b, s = batched.step(a), sync.step(a)
        for x, y in zip(b[:4], s[:4], strict=True):
            np.testing.assert_array_equal(x, y)
    batched.close()
    sync.close()


@needs_metaworld
def test_reaching_the_goal_reports_success():
    from fwmrl.envs.metaworld_tasks import MetaWorldTaskEnv

    env = MetaWorldTaskEnv("ML1", "reach-v3", split="test", max_steps=200)
    obs, info = env.reset(seed=2)
    assert info["success"] == 0.0
    goal = env._current._target_pos  # hidden from the agent; a scripted reacher may use it
    successes = []
    for _ in range(200):
        action = np.append(np.clip(20 * (goal - obs[:3]), -1, 1), 0.0)
        obs, reward, terminated, truncated, info = env.step(action)
        successes.append(info["success"])
    assert max(successes) == 1.0 and truncated and not terminated
    done = MetaWorldTaskEnv("ML1", "reach-v3", split="test", terminate_on_success=True)
    obs, _ = done.reset(seed=2)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        action = np.append(np.clip(20 * (goal - obs[:3]), -1, 1), 0.0)
        obs, reward, terminated, truncated, info = done.step(action)
        steps += 1
    assert terminated and info["success"] == 1.0 and steps < 200
    with pytest.raises(RuntimeError, match="reset"):
        done.step(np.zeros(4))


@needs_metaworld
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "val"}, "split"),
        ({"env_name": "fly-v3"}, "env_name"),
        ({"max_steps": 501}, "max_steps"),
        ({"reward_scale": 0.0}, "reward_scale"),
        ({"benchmark": "ML3"}, "benchmark"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    from fwmrl.envs.metaworld_tasks import MetaWorldTaskEnv

    with pytest.raises(ValueError, match=match):
        MetaWorldTaskEnv(**kwargs)
    if "benchmark" not in kwargs:
        with pytest.raises(Exception, match=match):
            make_vec_env("FWM-MetaWorld-ML1-v0", 2, **kwargs)


@needs_metaworld
@pytest.mark.slow
@pytest.mark.parametrize("name, train_envs", [("ML10", 10), ("ML45", 45)])
def test_ml10_and_ml45_hold_out_five_test_environments(name, train_envs):
    """Building the task sets resets each environment 50 times per set (ML10 ~30 s loaded, ML45
    about a CPU minute)."""
    from metaworld.env_dict import ML10_V3, ML45_V3

    from fwmrl.envs.metaworld_tasks import MetaWorldTaskEnv

    published = {"ML10": ML10_V3, "ML45": ML45_V3}[name]
    train = MetaWorldTaskEnv(name, split="train", max_steps=3)
    test = MetaWorldTaskEnv(name, split="test", max_steps=3)
    assert len(train.class_names) == train_envs and len(test.class_names) == 5
    assert set(test.class_names) == set(published["test"])
    assert not set(train.class_names) & set(test.class_names)
    assert len(train.tasks) == train_envs * 50 and len(test.tasks) == 5 * 50
    assert {t.env_name for t in test.tasks} == set(test.class_names)
    for env in (train, test):  # every class has the same observation space
        for class_name in env.class_names:
            low = env._sim(class_name).observation_space.low[:36].astype(np.float32)
            np.testing.assert_array_equal(low, env.observation_space.low)
        env.close()
    trial = make_env(f"FWM-MetaWorld-{name}-v0", split="test", max_steps=3, episodes=2)
    _check(trial)
    names = set()
    for seed in range(12):
        trial.reset(seed=seed)
        names.add(trial.unwrapped.task_name)
    assert names <= set(test.class_names) and len(names) >= 3
    trial.close()
    with pytest.raises(ValueError, match="env_name"):
        MetaWorldTaskEnv(name, "reach-v3")


@needs_metaworld
def test_short_ppo_fwm_run_on_ml1_reach_and_test_task_evaluation():
    import torch

    from fwmrl.agents.trial_eval import evaluate_trials

    kw = {"env_name": "reach-v3", "max_steps": 10, "episodes": 2, "reward_scale": 0.1}
    model = fwmrl.PPO(
        "fwm",
        "FWM-MetaWorld-ML1-v0",
        n_envs=2,
        env_kwargs=kw,
        core_kwargs={"hidden_size": 16, "memory_size": 8},
        policy_kwargs={"encoder_sizes": [32]},
        n_steps=10,
        n_epochs=2,
        num_minibatches=2,
        normalize_advantage=True,
        normalize_value=True,
        seed=0,
    )
    assert type(model.env).__name__ == "VectorTrial"
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(40)
    assert model.num_timesteps >= 40
    after = list(model.policy.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    test_env = make_vec_env("FWM-MetaWorld-ML1-v0", 3, **{**kw, "split": "test"})
    out = evaluate_trials(model.policy, test_env, trials=4, episodes=2, seed=0)
    assert out["success"].shape == (4, 2) and set(np.unique(out["success"])) <= {0.0, 1.0}
    assert np.isfinite(out["returns"]).all() and (out["returns"] > 0).all()  # rewards are >= 0
    test_env.close()
