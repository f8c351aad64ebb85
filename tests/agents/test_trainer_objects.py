"""The trainers take objects, never a config: ``A2C(policy, env, **hyperparameters)``, and
:func:`fwmrl.agents.job.build_agent` (the config layer) builds exactly the same trainer."""

from __future__ import annotations

import ast
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import fwmrl
from fwmrl.agents import A2C, PPO, MemoryActorCritic
from fwmrl.agents.job import build_agent
from fwmrl.config import load_config
from fwmrl.errors import ConfigError

PACKAGE = Path(fwmrl.__file__).parent


@pytest.mark.parametrize(
    "module",
    [
        "agents/a2c.py",
        "agents/ppo.py",
        "agents/evaluation.py",
        "agents/trial_eval.py",
        "tasks/trainer.py",
        "tasks/model.py",
    ],
)
def test_the_trainer_modules_never_name_a_config(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {
        a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names
    }
    assert "Config" not in names
    assert "load_config" not in names and "config_from_dict" not in names


@pytest.mark.parametrize("algo", ["a2c", "ppo"])
def test_objects_and_config_build_the_same_trainer(algo: str) -> None:
    """Two updates from the constructor's arguments and from the config that says the same:
    the same parameters to the bit (seeding, env, policy and hyperparameters all agree)."""
    ppo = ["algo.name=ppo", "algo.n_epochs=2", "algo.num_minibatches=2"] if algo == "ppo" else []
    config = load_config(
        None,
        [
            "env.id=FWM-Gridworld-v0",
            "env.num_envs=4",
            "env.kwargs={size: 5, max_steps: 12}",
            "core.name=mnm_p",
            "core.hidden_size=8",
            "policy.encoder_sizes=[16]",
            "algo.n_steps=6",
            "algo.lr=0.003",
            "train.seed=7",
            *ppo,
        ],
    )
    trainer = PPO if algo == "ppo" else A2C
    extra = {"n_epochs": 2, "num_minibatches": 2} if algo == "ppo" else {}
    direct = trainer(
        "mnm_p",
        "FWM-Gridworld-v0",
        n_envs=4,
        env_kwargs={"size": 5, "max_steps": 12},
        core_kwargs={"hidden_size": 8},
        policy_kwargs={"encoder_sizes": [16]},
        seed=7,
        n_steps=6,
        lr=0.003,
        **extra,
    )
    built = build_agent(config)
    assert type(built) is trainer and built.algo == direct.algo
    for agent in (direct, built):
        agent.learn_update()
        agent.learn_update()
    for a, b in zip(direct.policy.parameters(), built.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    direct.close()
    built.close()


def test_env_instances_and_a_policy_object() -> None:
    env = gym.make("CartPole-v1")
    agent = A2C("lstm", env, core_kwargs={"hidden_size": 8}, n_steps=4, seed=1)
    assert agent.num_envs == agent.global_num_envs == 1
    agent.learn(8)
    vector = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    policy = MemoryActorCritic(env.observation_space, env.action_space, core="none")
    agent = PPO(policy, vector, n_steps=4, num_minibatches=2)
    assert agent.policy is policy and agent.env is vector
    assert agent.learn_update()["ppo_steps"] == 2 * 4  # num_minibatches x n_epochs (default 4)
    agent.close()


def test_bad_arguments_name_their_key() -> None:
    cases = [
        ({"gamma": 1.5}, "algo.gamma: Input should be less than or equal to 1"),
        ({"name": "ppo"}, "algo.name: A2C is algo.name a2c"),
        ({"seed": -1}, "train.seed: Input should be greater than or equal to 0"),
        ({"device": "tpu"}, "train.device: unknown device 'tpu'"),
        ({"n_envs": 0}, "env.num_envs: Input should be greater than or equal to 1"),
        ({"vectorization": "threads"}, "env.vectorization: Input should be"),
        ({"policy_kwargs": {"activation": "gelu"}}, "policy.activation: Input should be"),
        ({"core_kwargs": {"hidden": 4}}, r"core: core 'lstm' has no argument\(s\) \['hidden'\]"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            A2C("lstm", "FWM-Gridworld-v0", **kwargs)
    env = gym.make("CartPole-v1")
    policy = MemoryActorCritic(env.observation_space, env.action_space, core="lstm")
    with pytest.raises(ConfigError, match="core_kwargs, policy_kwargs: only for a policy given"):
        A2C(policy, env, core_kwargs={"hidden_size": 4})
    with pytest.raises(ConfigError, match="env_kwargs, vectorization: only for an env given"):
        A2C("lstm", env, env_kwargs={"size": 5})
    with pytest.raises(ConfigError, match="policy: give a core name or a MemoryActorCritic"):
        A2C(load_config(None), "FWM-Gridworld-v0")  # type: ignore[arg-type]


def test_ppo_signature_lists_its_own_keys_at_the_config_defaults() -> None:
    """PPO's own ``algo.*`` keys are explicit keywords whose defaults are the config's; a bad one
    names its key, and A2C's keys still pass through."""
    import inspect

    from fwmrl.config import PPO_KEYS, AlgoConfig

    params = inspect.signature(PPO.__init__).parameters
    a2c_params = inspect.signature(A2C.__init__).parameters
    for key in PPO_KEYS:
        assert params[key].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[key].default == AlgoConfig.model_fields[key].default, key
    for name, param in a2c_params.items():  # A2C's parameters, in A2C's order, with its defaults
        assert params[name].default == param.default and params[name].kind == param.kind
    cases = [
        ({"n_epochs": 0}, "algo.n_epochs: Input should be greater than or equal to 1"),
        ({"clip_range": -0.1}, "algo.clip_range: Input should be greater than 0"),
        ({"target_kl": 0.0}, "algo.target_kl: Input should be greater than 0"),
        ({"num_minibatches": 3}, "num_minibatches"),
        ({"gamma": 1.5}, "algo.gamma: Input should be less than or equal to 1"),
        ({"name": "a2c"}, "algo.name: PPO is algo.name ppo"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError, match=message):
            PPO("lstm", "FWM-Gridworld-v0", n_envs=4, **kwargs)
    agent = PPO("lstm", "FWM-Gridworld-v0", n_envs=4, n_epochs=2, clip_range=0.1, gamma=0.9)
    assert (agent.algo.n_epochs, agent.algo.clip_range, agent.algo.gamma) == (2, 0.1, 0.9)
    agent.close()
