"""API conformance of every registered fwmrl id: checkers, registration, seeding, pickling, kwargs."""

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import fwmrl
from fwmrl.envs import ENV_IDS

VARIANTS = [
    ("FWM-Gridworld-v0", {}),
    ("FWM-Gridworld-v0", {"layout": "open", "size": 7, "view": 5, "max_steps": 30}),
    ("FWM-GraphNav-v0", {}),
    ("FWM-GraphNav-v0", {"graphs": "test"}),
    ("FWM-GraphNav-v0", {"graphs": "random"}),
    ("FWM-KeyValue-v0", {}),
    ("FWM-KeyValue-v0", {"n_queries": 2, "max_items": 3}),
    ("FWM-Recall-v0", {}),
    ("FWM-Recall-v0", {"task": "first", "symbols": 3, "max_steps": 6}),
    ("FWM-Recall-v0", {"task": "count", "symbols": 2, "max_steps": 9}),
]


def test_all_three_ids_registered():
    assert set(ENV_IDS) == {
        "FWM-Gridworld-v0",
        "FWM-GraphNav-v0",
        "FWM-KeyValue-v0",
        "FWM-Recall-v0",
    }
    for env_id in ENV_IDS:
        spec = gym.spec(env_id)
        assert spec.vector_entry_point is not None
        assert spec.max_episode_steps is None


@pytest.mark.parametrize(("env_id", "kwargs"), VARIANTS)
def test_gymnasium_and_sb3_checkers_pass_without_warnings(env_id, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(env_id, **kwargs).unwrapped)
        sb3_check_env(gym.make(env_id, **kwargs).unwrapped, warn=True)


def test_make_with_module_prefix_works_without_prior_import():
    code = (
        "import sys, gymnasium as gym\n"
        "assert 'fwmrl' not in sys.modules\n"
        "for i in ['Gridworld', 'GraphNav', 'KeyValue']:\n"
        "    env = gym.make(f'fwmrl:FWM-{i}-v0')\n"
        "    env.reset(seed=0)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_register_envs_is_idempotent_and_warning_free():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fwmrl.envs.register_envs()
        gym.register_envs(fwmrl)


def _rollout(env, seed, n_steps, action_seed=0):
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        trace += [obs, np.float64(reward), np.bool_(terminated), np.bool_(truncated)]
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(obs)
    return trace


@pytest.mark.parametrize(("env_id", "kwargs"), VARIANTS)
def test_same_seed_same_trajectory_different_seed_different(env_id, kwargs):
    a = _rollout(gym.make(env_id, **kwargs), seed=7, n_steps=300)
    b = _rollout(gym.make(env_id, **kwargs), seed=7, n_steps=300)
    c = _rollout(gym.make(env_id, **kwargs), seed=8, n_steps=300)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len(a) != len(c) or not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize(("env_id", "kwargs"), VARIANTS)
def test_pickled_env_continues_identically(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    env.reset(seed=3)
    for _ in range(5):
        env.step(0)
    clone = pickle.loads(pickle.dumps(env))
    assert all(
        np.array_equal(x, y)
        for x, y in zip(_continue(env, 200), _continue(clone, 200), strict=True)
    )


def _continue(env, n_steps):
    rng = np.random.default_rng(1)
    trace = []
    for _ in range(n_steps):
        obs, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        trace += [obs, reward]
        if terminated or truncated:
            trace.append(env.reset()[0])
    return trace


@pytest.mark.parametrize(("env_id", "kwargs"), VARIANTS)
def test_random_actions_many_seeds_stay_in_observation_space(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    space = env.observation_space
    low, high = env.unwrapped.observation_space.low, env.unwrapped.observation_space.high
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        assert space.contains(obs)
        done, steps = False, 0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert space.contains(obs), (seed, steps, obs)
            assert obs.dtype == np.float32
            assert isinstance(reward, float)
            done, steps = terminated or truncated, steps + 1
        assert steps <= 1000
    assert (high > low).all()


BAD_KWARGS = [
    ("FWM-Gridworld-v0", "size", 3, "[5, 63]"),
    ("FWM-Gridworld-v0", "size", 9.0, "[5, 63]"),
    ("FWM-Gridworld-v0", "view", 4, "odd"),
    ("FWM-Gridworld-v0", "view", 99, "[1, 17]"),
    ("FWM-Gridworld-v0", "layout", "maze", "lattice"),
    ("FWM-Gridworld-v0", "max_steps", 0, "[1, inf]"),
    ("FWM-Gridworld-v0", "goal_reward", -1.0, "(0.0, inf]"),
    ("FWM-Gridworld-v0", "wall_penalty", 0.5, "[-inf, 0.0]"),
    ("FWM-Gridworld-v0", "goal_reward", float("nan"), "finite"),
    ("FWM-Gridworld-v0", "render_mode", "video", "rgb_array"),
    ("FWM-GraphNav-v0", "graphs", "valid", "random"),
    ("FWM-GraphNav-v0", "max_steps", -3, "[1, inf]"),
    ("FWM-GraphNav-v0", "invalid_penalty", 0.05, "[-inf, 0.0]"),
    ("FWM-GraphNav-v0", "max_moves", 0, "[1, inf]"),
    ("FWM-KeyValue-v0", "n_queries", 0, "[1, 1000]"),
    ("FWM-KeyValue-v0", "min_items", 0, "[1, 100]"),
    ("FWM-KeyValue-v0", "max_key_len", 1, "[2, 16]"),
    ("FWM-Recall-v0", "task", "repeat", "kback"),
    ("FWM-Recall-v0", "symbols", 1, "[2, 100]"),
    ("FWM-Recall-v0", "k", 32, "[1, 31]"),
    ("FWM-Recall-v0", "max_steps", 1, "[2, 100000]"),
]


@pytest.mark.parametrize(("env_id", "name", "value", "allowed"), BAD_KWARGS)
def test_bad_kwargs_raise_value_error_naming_argument_and_range(env_id, name, value, allowed):
    with pytest.raises(ValueError, match=name) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gym.make warns about unknown render modes first
        gym.make(env_id, **{name: value})
    assert allowed in str(err.value)
    with pytest.raises(ValueError, match=name):
        gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **{name: value})


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_actions_rejected(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(env.action_space.n)
    vec = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point")
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.array([0, -1]))
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.array([0, 0, 0]))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_docstring_has_all_sections(env_id):
    doc = gym.make(env_id).unwrapped.__class__.__doc__
    for section in (
        "Description",
        "Observation",
        "Action",
        "Reward",
        "Termination",
        "Arguments",
        "Registered ids",
    ):
        assert f"## {section}" in doc
    assert env_id in doc


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_modes(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert len(np.unique(first.reshape(-1, 3), axis=0)) >= 3
    for _ in range(3):
        env.step(1)
    assert env.render().shape == first.shape
    text_env = gym.make(env_id, render_mode="ansi")
    text_env.reset(seed=0)
    text = text_env.render()
    assert isinstance(text, str) and len(text.splitlines()) >= 2
    vec = gym.make_vec(
        env_id, num_envs=2, vectorization_mode="vector_entry_point", render_mode="rgb_array"
    )
    vec.reset(seed=0)
    frames = vec.render()
    assert len(frames) == 2 and np.array_equal(frames[0], first)


def test_envs_package_imports_only_numpy_and_gymnasium():
    """Every import in fwmrl/envs (module level or inside functions) is the standard library,
    NumPy, Gymnasium, fwmrl.envs itself, MiniGrid (which registers its ids on import), or Meta-World
    (the optional extra, imported only when a Meta-World id is made)."""
    import ast
    import sys

    allowed = {"numpy", "gymnasium", "minigrid", "metaworld", "fwmrl"} | set(
        sys.stdlib_module_names
    )
    package = Path(fwmrl.envs.__file__).parent
    sources = {p.name: p.read_text() for p in package.glob("*.py")}
    assert "gridworld.py" in sources and "graphnav.py" in sources
    seen = set()
    for name, src in sources.items():
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                seen.add(module)
                assert module.split(".")[0] in allowed, f"{name} imports {module}"
                if module.startswith("fwmrl"):
                    assert module.startswith("fwmrl.envs"), f"{name} imports {module}"
    assert {"numpy", "gymnasium"} <= seen


def test_example_pictures_round_trip_as_png(tmp_path):
    import sys

    import matplotlib.image

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        from env_pictures import example_frames, main
    finally:
        sys.path.pop(0)

    frames = example_frames()
    assert set(frames) == {"gridworld", "graphnav", "keyvalue"}
    main([str(tmp_path)])
    for name, frame in frames.items():
        decoded = matplotlib.image.imread(tmp_path / f"{name}.png")
        np.testing.assert_array_equal(np.round(decoded[..., :3] * 255).astype(np.uint8), frame)
