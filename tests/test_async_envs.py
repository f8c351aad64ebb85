"""Envs stepped in worker processes (``env.vectorization: async``) give the transitions of the
in-process vector envs; the A2C trainer and run directories work on them unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

from fwmrl.agents.job import build_agent
from fwmrl.config import ConfigError, load_config
from fwmrl.envs import GridworldVectorEnv, make_vec_env
from fwmrl.jobs import train_run
from fwmrl.rundir import load_checkpoint, read_metrics


def _rollout(env, steps: int, seed: int = 3) -> list[tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=seed)
    out = [(np.asarray(obs).copy(),)]
    for _ in range(steps):
        actions = rng.integers(0, env.single_action_space.n, size=env.num_envs)
        obs, reward, terminated, truncated, _ = env.step(actions)
        out.append(tuple(np.asarray(x).copy() for x in (obs, reward, terminated, truncated)))
    return out


def _assert_same(a, b) -> None:
    assert len(a) == len(b)
    for step_a, step_b in zip(a, b, strict=True):
        for x, y in zip(step_a, step_b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_minigrid_async_matches_sync():
    sync = make_vec_env("MiniGrid-MemoryS7-v0", 3, vectorization="sync", max_steps=12)
    workers = make_vec_env("MiniGrid-MemoryS7-v0", 3, vectorization="async", max_steps=12)
    try:
        assert isinstance(sync, SyncVectorEnv) and isinstance(workers, AsyncVectorEnv)
        a, b = _rollout(sync, 30), _rollout(workers, 30)
        _assert_same(a, b)
        # the rollout crossed episode boundaries (truncation at 12 steps, then autoreset)
        assert any(step[3].any() for step in a[1:])
    finally:
        sync.close()
        workers.close()


def test_fwmrl_env_async_matches_batched_numpy():
    native = make_vec_env("FWM-Gridworld-v0", 2, size=5, max_steps=5)
    workers = make_vec_env("FWM-Gridworld-v0", 2, vectorization="async", size=5, max_steps=5)
    try:
        assert isinstance(native.unwrapped, GridworldVectorEnv)  # auto: the batched NumPy env
        assert isinstance(workers, AsyncVectorEnv)
        _assert_same(_rollout(native, 14), _rollout(workers, 14))
    finally:
        native.close()
        workers.close()


def test_bad_vectorization_is_a_clean_config_error():
    with pytest.raises(ConfigError, match=r"env\.vectorization.*'auto', 'sync' or 'async'"):
        load_config(None, ["env.vectorization=threads"])
    with pytest.raises(ValueError, match="unknown vectorization"):
        make_vec_env("CartPole-v1", 2, vectorization="threads")


TINY = [
    "env.id=MiniGrid-MemoryS7-v0",
    "env.num_envs=2",
    "env.kwargs={max_steps: 10}",
    "core.name=lstm",
    "core.hidden_size=8",
    "policy.encoder_sizes=[8]",
    "algo.n_steps=5",
    "train.progress=false",
    "train.plot_at_end=false",
    "train.gif_at_end=false",
    "train.eval_episodes=2",
    "train.checkpoint_every=1",
    "logging.log_every=1",
    "logging.wandb=disabled",
    "logging.tensorboard=false",
]


def test_a2c_on_async_envs_learns_exactly_as_on_sync_envs():
    params = {}
    for mode in ("sync", "async"):
        agent = build_agent(load_config(None, [*TINY, f"env.vectorization={mode}"]))
        try:
            agent.learn(30)
            params[mode] = [p.detach().clone() for p in agent.policy.parameters()]
            assert agent.env_steps == 30
        finally:
            agent.close()
    for p, q in zip(params["sync"], params["async"], strict=True):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, q) for p, q in zip(params["sync"], _fresh_params(), strict=True))


def _fresh_params() -> list[torch.Tensor]:
    agent = build_agent(load_config(None, TINY))
    try:
        return [p.detach().clone() for p in agent.policy.parameters()]
    finally:
        agent.close()


def test_run_directory_and_resume_with_async_envs(tmp_path):
    config = load_config(None, [*TINY, "env.vectorization=async", "train.total_steps=20"])
    summary = train_run(config, tmp_path / "run")
    assert summary["env_steps"] == 20 and summary["eval"]["episodes"] == 2.0
    data = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert data["env_state"] is None  # the state of worker processes cannot be saved
    longer = load_config(None, [*TINY, "env.vectorization=async", "train.total_steps=30"])
    with pytest.warns(UserWarning, match="envs were reset"):
        summary = train_run(longer, tmp_path / "run", resume=True)
    assert summary["env_steps"] == 30
    assert [r["update"] for r in read_metrics(tmp_path / "run")] == [1, 2, 3]


def test_sb3_subproc_vec_env_matches_dummy():
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from fwmrl.sb3 import make_sb3_vec_env

    dummy = make_sb3_vec_env("MiniGrid-MemoryS7-v0", 2, seed=5)
    subproc = make_sb3_vec_env("MiniGrid-MemoryS7-v0", 2, seed=5, subproc=True, start_method="fork")
    try:
        assert isinstance(dummy, DummyVecEnv) and isinstance(subproc, SubprocVecEnv)
        np.testing.assert_array_equal(dummy.reset(), subproc.reset())
        for action in ([0, 1], [2, 2], [1, 0]):
            a, b = dummy.step(np.array(action)), subproc.step(np.array(action))
            for x, y in zip(a[:3], b[:3], strict=True):
                np.testing.assert_array_equal(x, y)
    finally:
        dummy.close()
        subproc.close()
