"""Learning checks of issue 16 (the learning runs are ``slow``): each trains a shipped config from
configs/ at its own budget (``train.total_steps``) and scores the policy with
:func:`fwmrl.agents.job.evaluate_from_config` (32 episodes; sampled actions, as the run job evaluates,
except where said). The measured numbers, seeds and wall times are in README ("Native PPO:
results"). Also the linear learning-rate schedule (``algo.lr_decay_steps``) the CartPole config
uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from fwmrl.agents.job import build_agent, evaluate_from_config
from fwmrl.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["logging.tensorboard=false", "train.progress=false"]


def _train_and_evaluate(
    name: str, *overrides: str, deterministic: bool = False, episodes: int = 32
) -> dict[str, float]:
    config = load_config(ROOT / "configs" / name, [*QUIET, *overrides])
    agent = build_agent(config)
    try:
        agent.learn(config.train.total_steps)
        return evaluate_from_config(
            agent.policy, config, episodes=episodes, deterministic=deterministic
        )
    finally:
        agent.close()


SMALL_PPO = [
    *QUIET,
    "algo.name=ppo",
    "env.id=CartPole-v1",
    "env.num_envs=4",
    "algo.n_steps=8",
    "algo.num_minibatches=2",
    "algo.n_epochs=2",
    "core.name=lstm",
    "core.hidden_size=8",
    "policy.encoder_sizes=[8]",
    "algo.lr=0.001",
    "algo.lr_decay_steps=100",
]


def test_lr_decay_steps_is_linear_in_env_steps_and_survives_a_checkpoint() -> None:
    """Each update runs at ``lr * (1 - env steps before it / lr_decay_steps)``, 0 past the end; a
    trainer restored from a checkpoint continues on the schedule (it depends on env steps only)."""
    config = load_config(None, SMALL_PPO)
    agent = build_agent(config)
    seen = []
    try:
        for _ in range(4):  # 32 env steps per update: before them 0, 32, 64, 96
            assert agent.scheduled_lr() == pytest.approx(1e-3 * max(0.0, 1 - agent.env_steps / 100))
            agent.learn_update()
            seen.append(agent.optimizer.param_groups[0]["lr"])
        state = agent.state_dict()
    finally:
        agent.close()
    assert seen == pytest.approx([1e-3, 1e-3 * 0.68, 1e-3 * 0.36, 1e-3 * 0.04])
    restored = build_agent(config)
    try:
        restored.load_state_dict(state)
        assert restored.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # until an update
        restored.learn_update()  # 128 env steps done: past the schedule's end
        assert restored.optimizer.param_groups[0]["lr"] == 0.0
    finally:
        restored.close()
    constant = build_agent(load_config(None, [*SMALL_PPO, "algo.lr_decay_steps=null"]))
    try:
        constant.learn_update()
        assert constant.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    finally:
        constant.close()


def test_lr_decay_steps_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="algo.lr_decay_steps"):
        load_config(None, [*SMALL_PPO, "algo.lr_decay_steps=0"])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_ppo_lstm_solves_cartpole(seed: int) -> None:
    """120,064 steps, lr falling linearly to 0 (about 25-30 CPU-s per seed). Measured with the same
    training and score (docs/results/cartpole/seeds.csv, ``seeds.py``): 500.0 on seeds 0 and 1,
    >= 450 on every seed of 0-14 (docs/ppo.md, "CartPole: seeds")."""
    result = _train_and_evaluate("cartpole_lstm_ppo.yaml", f"train.seed={seed}")
    assert result["return_mean"] >= 450.0, result  # 500 is the cap; random play scores about 22


@pytest.mark.slow
def test_ppo_fwm_recalls_a_continuous_cue_that_an_mlp_cannot() -> None:
    """FWM-CueRecall-v0: the best memoryless policy scores about -0.77 (the mean cue). Scored with
    the policy's mean action (the Gaussian's exploration noise alone costs about its spread): the
    FWM agent recalls the cue closely, the same PPO settings without a core stay at the bound."""
    fwm = _train_and_evaluate("cue_recall_fwm_ppo.yaml", deterministic=True)
    mlp = _train_and_evaluate("cue_recall_mlp_ppo.yaml", deterministic=True)
    assert fwm["return_mean"] >= -0.25, fwm
    assert mlp["return_mean"] <= -0.65, mlp
    assert fwm["length_mean"] == mlp["length_mean"] == 4.0  # delay 3: 4 steps per episode


@pytest.mark.slow
def test_a2c_fwm_swings_up_pendulum() -> None:
    """A2C + FWM on Pendulum-v1, 400,128 steps with lr 5e-4 falling linearly to 0 (about 40-60
    CPU-s), scored with the policy's mean action over 128 episodes: -272.7, -273.9 and -251.0 for
    seeds 0, 1, 2 with the library code of 2237ada (episode returns spread by about 160, so the mean's standard error is
    about 14; over the first 32 episodes alone seeds 0 and 1 read -306.1 and -304.1,
    docs/results/pendulum/README.md). Random play -1200; a policy that swings up from every start
    about -150."""
    result = _train_and_evaluate("pendulum_fwm_a2c.yaml", deterministic=True, episodes=128)
    assert result["return_mean"] >= -300.0, result


@pytest.mark.slow
def test_ppo_fwm_swings_up_pendulum() -> None:
    """PPO + FWM on Pendulum-v1, 80,896 steps with lr falling linearly to 0 (about 25 CPU-s a
    seed), scored with the policy's mean action over 128 episodes, averaged over seeds 0-2. On an
    AVX2 machine seeds 0 and 1 scored -182.4 and -213.1 over 32 episodes (README "Native PPO:
    results"); on an AVX-512 one (torch's kernels round differently) seeds 0-3 scored -324.0,
    -225.5, -226.3 and -270.4 over 128: one seed alone is not the algorithm's result. Random play:
    -1200."""
    results = [
        _train_and_evaluate(
            "pendulum_fwm_ppo.yaml", f"train.seed={seed}", deterministic=True, episodes=128
        )
        for seed in range(3)
    ]
    mean = sum(r["return_mean"] for r in results) / len(results)
    assert mean >= -300.0, results
