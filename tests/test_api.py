"""``from fwmrl import A2C, PPO``: the trainers in Stable-Baselines3's shape."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from fwmrl import A2C, PPO
from fwmrl.agents.policy import MemoryActorCritic
from fwmrl.errors import ConfigError, RunError

SMALL = {"core_kwargs": {"hidden_size": 8, "memory_size": 4, "read_hops": 1}, "n_steps": 8}


def test_import_fwmrl_stays_light() -> None:
    import subprocess
    import sys

    code = "import sys, fwmrl; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_learn_save_load_continues_exactly(tmp_path) -> None:
    straight = A2C("fwm", "FWM-Gridworld-v0", n_envs=4, seed=3, **SMALL).learn(96)
    straight.learn(64, reset_num_timesteps=False)
    first = A2C("fwm", "FWM-Gridworld-v0", n_envs=4, seed=3, **SMALL).learn(96)
    first.save(tmp_path / "m.pt")
    loaded = A2C.load(tmp_path / "m.pt")
    assert loaded.num_timesteps == first.num_timesteps == 96
    loaded.learn(64, reset_num_timesteps=False)
    for a, b in zip(straight.policy.parameters(), loaded.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_env_instance_vector_env_and_own_policy() -> None:
    single = A2C("lstm", gym.make("CartPole-v1"), core_kwargs={"hidden_size": 8}, n_steps=4)
    assert single.env.num_envs == 1
    single.learn(8)
    vector = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 3)
    env = gym.make("CartPole-v1")
    policy = MemoryActorCritic(env.observation_space, env.action_space, core="lstm")
    model = A2C(policy, vector, n_steps=4)
    assert model.policy is policy and model.env.num_envs == 3
    model.learn(12)
    pendulum = gym.make("Pendulum-v1")
    with pytest.raises(ConfigError, match="policy: its observation space"):
        A2C(policy, pendulum)
    with pytest.raises(ConfigError, match="cannot be rebuilt"):
        model.save("never.pt")


def test_bad_arguments_name_the_key() -> None:
    with pytest.raises(ConfigError, match="algo.n_stepz"):
        A2C("fwm", "FWM-Gridworld-v0", n_stepz=5)
    with pytest.raises(ConfigError, match="core 'fwm'.*memory_sise"):
        A2C("fwm", "FWM-Gridworld-v0", core_kwargs={"memory_sise": 4})
    with pytest.raises(ConfigError, match="env: give a Gymnasium id"):
        A2C("fwm", 42)
    with pytest.raises(ConfigError, match="total_timesteps"):
        A2C("lstm", "FWM-Gridworld-v0", n_envs=2).learn(1.5)  # type: ignore[arg-type]


def test_predict_follows_sb3s_recurrent_contract() -> None:
    model = A2C("fwm", "FWM-Gridworld-v0", n_envs=2, **SMALL)
    env = gym.make_vec("FWM-Gridworld-v0", num_envs=3, vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=0)
    actions, state = model.predict(obs, deterministic=True)
    assert actions.shape == (3,) and env.single_action_space.contains(int(actions[0]))
    starts = np.zeros(3, dtype=bool)
    obs, *_ = env.step(actions)
    again, state2 = model.predict(obs, state=state, episode_start=starts, deterministic=True)
    assert state2.batch_size == 3
    # the same observation with and without the memory of the first step
    fresh, _ = model.predict(obs, state=None, deterministic=True)
    flat = model.policy.preprocess(obs, batch_dims=1)
    params, _, _ = model.policy.step_flat(flat, state, torch.zeros(3, dtype=torch.bool))
    assert (again == params.argmax(-1).numpy()).all()
    with pytest.raises(ValueError, match="episode_start must have shape"):
        model.predict(obs, state=state, episode_start=np.zeros(2, dtype=bool))
    with pytest.raises(ValueError, match="state holds 3 sequences"):
        model.predict(obs[:2], state=state)
    assert fresh.shape == (3,)


def test_callback_can_stop_training() -> None:
    seen = []

    def stop_after_two(model, metrics):
        seen.append(metrics["loss"])
        return len(seen) < 2

    model = A2C("lstm", "FWM-Gridworld-v0", n_envs=2, n_steps=4, core_kwargs={"hidden_size": 8})
    model.learn(10_000, callback=stop_after_two)
    assert len(seen) == 2 and model.num_timesteps == 16


def test_ppo_on_a_box_action_space_and_wrong_class_load(tmp_path) -> None:
    model = PPO(
        "lstm",
        "Pendulum-v1",
        n_envs=2,
        n_steps=8,
        num_minibatches=2,
        core_kwargs={"hidden_size": 8},
    )
    model.learn(32)
    actions, _ = model.predict(np.zeros((2, 3), dtype=np.float32))
    assert actions.shape == (2, 1) and np.all(np.abs(actions) <= 2.0)
    model.save(tmp_path / "ppo.pt")
    assert PPO.load(tmp_path / "ppo.pt").num_timesteps == 32
    with pytest.raises(RunError, match="a ppo model; load it with that class"):
        A2C.load(tmp_path / "ppo.pt")
    torch.save({"update": 1, "config": {}}, tmp_path / "other.pt")
    with pytest.raises(RunError, match="not a model saved by"):
        A2C.load(tmp_path / "other.pt")


def test_the_model_is_the_trainer_and_its_config_rebuilds_it() -> None:
    """``fwmrl.A2C``/``PPO`` are the trainers with SB3's calls; the config that ``save`` writes
    (``config_data``) builds the same trainer again through the config layer."""
    from fwmrl import agents
    from fwmrl.agents.job import build_agent, config_data
    from fwmrl.config import config_from_dict

    model = A2C("lstm", "FWM-Gridworld-v0", n_envs=2, core_kwargs={"hidden_size": 8}, gamma=0.9)
    ppo = PPO("none", gym.make("CartPole-v1"), n_steps=4, num_minibatches=1, seed=2)
    assert isinstance(model, agents.A2C) and isinstance(ppo, agents.PPO)
    for built in (model, ppo):
        config = config_from_dict(config_data(built))
        again = build_agent(config, trainer=type(built))
        assert type(again) is type(built) and again.algo == built.algo
        assert {k: v for k, v in again.init_arguments.items() if k != "env"} == {
            k: v for k, v in built.init_arguments.items() if k != "env"
        }
        again.close()
    assert config_data(ppo)["env"]["id"] == "CartPole-v1"  # an env object: its spec's id
    with pytest.raises(
        ConfigError, match="algo.name: a2c is trained by A2C or a subclass, not PPO"
    ):
        build_agent(config_from_dict(config_data(model)), trainer=PPO)
    model.close()
    ppo.close()
