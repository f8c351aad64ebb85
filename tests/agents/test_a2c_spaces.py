"""fwmrl's A2C and PPO on every supported space: Dict/Tuple/image/Discrete observations and
Discrete, MultiDiscrete, MultiBinary and Box actions, for every core and both algorithms; a Gaussian
policy learns a target."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from target_env import TARGET_ENV_ID

from fwmrl.agents import A2C, PPO
from fwmrl.agents.job import build_agent
from fwmrl.config import load_config
from fwmrl.runs import atomic_torch_save, load_checkpoint

ACTION_SPACES = {
    "discrete": gym.spaces.Discrete(3, start=1),
    "multidiscrete": gym.spaces.MultiDiscrete([2, 3]),
    "multibinary": gym.spaces.MultiBinary(3),
    "box": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
}
OBS_SPACE = gym.spaces.Dict(
    {
        "image": gym.spaces.Box(0, 255, (3, 3, 2), np.uint8),
        "cue": gym.spaces.Discrete(4),
        "pair": gym.spaces.Tuple((gym.spaces.MultiBinary(2), gym.spaces.Box(-1, 1, (1,)))),
    }
)


class SpacesEnv(gym.Env):
    """Random observations of OBS_SPACE; the step checks that the action is in the space."""

    def __init__(self, action: str = "discrete", length: int = 5) -> None:
        self.observation_space = OBS_SPACE
        self.action_space = ACTION_SPACES[action]
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(1 << 30)))
        self.t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)), action
        self.t += 1
        reward = float(np.sum(np.asarray(action, dtype=np.float64)))
        return self.observation_space.sample(), reward, False, self.t >= self.length, {}


gym.register("FWMTest-Spaces-v0", entry_point=SpacesEnv)


def _config(action: str, core: str, *extra: str):
    return load_config(
        None,
        [
            "env.id=FWMTest-Spaces-v0",
            "env.num_envs=3",
            f"env.kwargs={{action: {action}}}",
            f"core.name={core}",
            "policy.encoder_sizes=[8]",
            "algo.n_steps=4",
            "logging.tensorboard=false",
            "train.progress=false",
            *extra,
        ],
    )


CORE_ARGS = {
    "fwm": ["core.hidden_size=8", "core.memory_size=4", "core.read_hops=1"],
    "lstm": ["core.hidden_size=8"],
    "gated_fw": ["core.fast_size=4", "core.slow_size=4", "core.slow_hidden_size=8"],
    "mnm_g": ["core.hidden_size=8", "core.key_size=4", "core.memory_size=4"],
    "mnm_p": ["core.hidden_size=8", "core.key_size=4", "core.memory_size=4"],
    "none": [],
}


ALGOS = {
    "a2c": (A2C, []),
    "ppo": (PPO, ["algo.name=ppo", "algo.n_epochs=2", "algo.num_minibatches=3"]),
}


@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize("core", list(CORE_ARGS))
@pytest.mark.parametrize("action", list(ACTION_SPACES))
def test_every_core_trains_on_every_space(action: str, core: str, algo: str) -> None:
    """Every action space x every core x both algorithms, on Dict observations (image, one-hot,
    Tuple): shapes and dtypes of the stored actions, scaled features, a finite step that moves
    the parameters; PPO's stored log-probabilities are those of the stored actions."""
    trainer, algo_args = ALGOS[algo]
    agent = build_agent(_config(action, core, *CORE_ARGS[core], *algo_args))
    assert type(agent) is trainer
    assert agent.policy.obs_size == 3 * 3 * 2 + 4 + 2 + 1
    before = [p.detach().clone() for p in agent.policy.parameters()]
    rollout = agent.collect_rollout()
    dist = agent.policy.action_dist
    assert rollout.actions.shape == (4, 3, *dist.action_shape)
    assert rollout.actions.dtype == dist.action_dtype
    assert rollout.obs.shape == (4, 3, agent.policy.obs_size)
    assert float(rollout.obs.max()) <= 1.0  # the uint8 image is scaled, one-hots are 0/1
    if algo == "ppo":  # the first epoch starts at ratio 1: the stored log-probs are recomputed
        assert rollout.log_probs is not None and rollout.log_probs.shape == (4, 3)
        with torch.no_grad():
            params, _, _, _ = agent.policy.forward_flat(
                rollout.obs, rollout.initial_state, rollout.starts
            )
            log_probs = dist.log_prob(params, rollout.actions, agent.policy.log_std)
        torch.testing.assert_close(log_probs, rollout.log_probs, rtol=0, atol=1e-5)
    metrics = agent.train_on_rollout(rollout)
    assert all(np.isfinite(v) for v in metrics.values())
    if algo == "ppo":
        assert metrics["ppo_steps"] == 2 * 3 and metrics["approx_kl"] >= 0.0
    changed = [
        not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True)
    ]
    assert any(changed)
    if action == "box":
        assert agent.policy.log_std is not None and agent.policy.log_std.grad is not None
    agent.close()


def test_box_policy_round_trips_through_a_checkpoint(tmp_path) -> None:
    """log_std is saved and restored with the policy (the env, not an fwmrl one, is reset)."""
    config = _config("box", "lstm", "core.hidden_size=8")
    first = build_agent(config)
    for _ in range(2):
        first.learn_update()
    assert not torch.equal(first.policy.log_std, torch.zeros(2))
    atomic_torch_save({**first.state_dict(), "config": config.to_dict()}, tmp_path / "c.pt")
    resumed = build_agent(config)
    resumed.load_state_dict(load_checkpoint(tmp_path / "c.pt"))
    for a, b in zip(first.policy.parameters(), resumed.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed.update == 2
    resumed.learn_update()  # and it trains on


def test_gaussian_policy_learns_a_target_action() -> None:
    config = load_config(
        None,
        [
            f"env.id={TARGET_ENV_ID}",
            "env.num_envs=32",
            "core.name=none",
            "policy.encoder_sizes=[]",
            "algo.n_steps=2",
            "algo.lr=0.02",
            "algo.ent_coef=0.0",
            "algo.normalize_advantage=true",
            "logging.tensorboard=false",
            "train.progress=false",
        ],
    )
    agent = build_agent(config)
    for _ in range(300):
        agent.learn_update()
    obs = torch.ones(1, 1)
    with torch.no_grad():
        start = torch.ones(1, dtype=torch.bool)
        mean, _, _ = agent.policy.step_flat(obs, agent.policy.initial_state(1), start)
        assert abs(mean.item() - 0.6) < 0.15, mean.item()
        assert agent.policy.log_std.exp().item() < 1.0  # the spread shrank from its initial 1.0
