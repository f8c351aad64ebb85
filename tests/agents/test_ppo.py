"""Native recurrent PPO: every core on Discrete and Box actions, states recomputed from the stored
start states, the one-epoch one-minibatch step is A2C's, target-KL early stop, config checks,
bit-identical resume through the run job, value normalisation (exact running statistics, GAE in
reward units, standardised targets, resumed statistics), and learning on a small task."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from target_env import TARGET_ENV_ID
from test_a2c_normalize_value import set_prior

from fwmrl.agents import A2C, PPO
from fwmrl.agents.job import build_agent
from fwmrl.agents.value_norm import ValueNormalizer
from fwmrl.config import ConfigError, load_config
from fwmrl.runs import atomic_torch_save, load_checkpoint, read_metrics, train_run

ROOT = Path(__file__).resolve().parents[2]
ENVS = {  # Discrete and Box actions
    "gridworld": ["env.id=FWM-Gridworld-v0", "env.kwargs={size: 5, max_steps: 5}"],
    "pendulum": ["env.id=Pendulum-v1", "env.kwargs={max_episode_steps: 7}"],
}
CORE_ARGS = {
    "fwm": ["core.hidden_size=8", "core.memory_size=4", "core.read_hops=1"],
    "lstm": ["core.hidden_size=8"],
    "gated_fw": ["core.fast_size=4", "core.slow_size=4", "core.slow_hidden_size=8"],
    "mnm_g": ["core.hidden_size=8", "core.key_size=4", "core.memory_size=4"],
    "mnm_p": ["core.hidden_size=8", "core.key_size=4", "core.memory_size=4"],
    "none": [],
}
BASE = [
    "env.num_envs=4",
    "policy.encoder_sizes=[8]",
    "algo.n_steps=6",
    "logging.tensorboard=false",
    "train.progress=false",
]
PPO_ARGS = ["algo.name=ppo", "algo.n_epochs=2", "algo.num_minibatches=2"]


def config(env: str = "gridworld", core: str = "fwm", *extra: str):
    return load_config(None, [*BASE, *ENVS[env], f"core.name={core}", *CORE_ARGS[core], *extra])


@pytest.mark.parametrize("core", list(CORE_ARGS))
@pytest.mark.parametrize("env", list(ENVS))
def test_every_core_trains_on_discrete_and_box_actions(env: str, core: str) -> None:
    agent = build_agent(config(env, core, *PPO_ARGS, "algo.clip_range_vf=1.0", "algo.lr=0.01"))
    before = [p.detach().clone() for p in agent.policy.parameters()]
    for _ in range(2):
        metrics = agent.learn_update()
        assert all(np.isfinite(v) for v in metrics.values()), metrics
        assert metrics["ppo_steps"] == 4.0 and metrics["stopped_early"] == 0.0
    assert agent.update == 2 and agent.env_steps == 2 * 6 * 4
    changed = [
        not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True)
    ]
    assert sum(changed) >= len(changed) - 1  # (the core 'none' has an untrained placeholder)
    if env == "pendulum":
        assert not torch.equal(agent.policy.log_std, torch.zeros(1))
    if core.startswith("mnm"):  # MNM's meta loss is part of the PPO loss
        assert metrics["aux_loss"] > 0.0
    agent.close()


def test_loss_terms_add_up_with_the_meta_loss() -> None:
    agent = build_agent(config("gridworld", "mnm_p", "algo.name=ppo", "algo.num_minibatches=1"))
    m = agent.learn_update()
    expected = m["policy_loss"] + 0.5 * m["value_loss"] - 0.01 * m["entropy"] + m["aux_loss"]
    assert m["aux_loss"] > 0.0
    assert m["loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("core", ["fwm", "lstm", "mnm_p", "gated_fw"])
def test_states_are_recomputed_from_the_stored_start_states(core: str) -> None:
    """Re-running a subset of the envs from ``rollout.initial_state[idx]`` gives back the collection
    pass's log-probabilities and values (the first PPO epoch starts at ratio 1), also for a rollout
    whose start state was carried from the previous one."""
    agent = build_agent(config("gridworld", core, *PPO_ARGS, "env.kwargs={size: 5, max_steps: 9}"))
    agent.learn_update()  # the next rollout starts from a carried, non-fresh state
    rollout = agent.collect_rollout()
    assert not rollout.starts[0].all()  # some envs are mid-episode at step 0
    envs = torch.tensor([3, 1])
    with torch.no_grad():
        params, values, _, _ = agent.policy.forward_flat(
            rollout.obs[:, envs], rollout.initial_state[envs], rollout.starts[:, envs]
        )
    dist = agent.policy.action_dist
    log_probs = dist.log_prob(params, rollout.actions[:, envs], agent.policy.log_std)
    torch.testing.assert_close(log_probs, rollout.log_probs[:, envs], rtol=0, atol=1e-5)
    torch.testing.assert_close(values, rollout.values[:-1, envs], rtol=0, atol=1e-5)
    agent.close()


@pytest.mark.parametrize("env", list(ENVS))
def test_one_epoch_one_minibatch_step_is_the_a2c_step(env: str) -> None:
    """At ratio 1 the gradient of ``r·A`` is that of ``A·log π``: the same rollout gives the same
    clipped gradient and the same new parameters as A2C's step (value, entropy, aux identical)."""
    a2c = build_agent(config(env, "lstm", "algo.normalize_advantage=true"))
    one_step = ["algo.name=ppo", "algo.n_epochs=1", "algo.num_minibatches=1"]
    ppo = build_agent(config(env, "lstm", "algo.normalize_advantage=true", *one_step))
    first, second = a2c.collect_rollout(), ppo.collect_rollout()
    assert torch.equal(first.actions, second.actions) and torch.equal(first.obs, second.obs)
    assert first.log_probs is None and second.log_probs is not None  # A2C records none
    m_a2c, m_ppo = a2c.train_on_rollout(first), ppo.train_on_rollout(second)
    assert m_ppo["ppo_steps"] == 1.0
    assert m_ppo["approx_kl"] < 1e-9 and m_ppo["clip_fraction"] == 0.0
    for key in ("value_loss", "entropy", "grad_norm", "explained_variance"):
        assert m_ppo[key] == pytest.approx(m_a2c[key], rel=1e-5, abs=1e-7), key
    named = dict(a2c.policy.named_parameters())
    for name, p in ppo.policy.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
        torch.testing.assert_close(p.grad, named[name].grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(p, named[name], rtol=1e-5, atol=1e-6)


def _steps_taken(target_kl: str) -> list[tuple[int, float, float, float]]:
    """Per update of two (the second starts mid-episode, from a carried state): optimizer steps
    counted by a hook, and the metrics ``ppo_steps``, ``stopped_early`` and ``approx_kl``."""
    agent = build_agent(
        config(
            "gridworld",
            "lstm",
            "env.kwargs={size: 5, max_steps: 9}",
            "algo.name=ppo",
            "algo.n_epochs=4",
            "algo.num_minibatches=2",
            "algo.lr=0.01",
            f"algo.target_kl={target_kl}",
        )
    )
    calls: list[int] = []
    agent.optimizer.register_step_post_hook(lambda *_: calls.append(1))
    out = []
    for _ in range(2):
        calls.clear()
        metrics = agent.learn_update()
        out.append((len(calls), *(metrics[k] for k in ("ppo_steps", "stopped_early", "approx_kl"))))
    agent.close()
    return out


def test_target_kl_stops_the_update_early() -> None:
    """A tiny ``target_kl`` lets the first minibatch step (measured at ratio 1: its states are
    recomputed from the stored start states, a carried one in the second update) and stops at
    the second; without one all 4 epochs x 2 minibatches step."""
    for steps, ppo_steps, stopped, approx_kl in _steps_taken("1.0e-9"):
        assert (steps, ppo_steps, stopped) == (1, 1.0, 1.0)
        assert approx_kl > 1e-9 / 2  # the mean of the two minibatches measured
    for steps, ppo_steps, stopped, _ in _steps_taken("null"):
        assert (steps, ppo_steps, stopped) == (8, 8.0, 0.0)


def test_ppo_config_errors() -> None:
    with pytest.raises(
        ConfigError, match=r"algo.num_minibatches: 3 .* env.num_envs=4 .*\(1, 2, 4\)"
    ):
        config("gridworld", "lstm", "algo.name=ppo", "algo.num_minibatches=3")
    with pytest.raises(ConfigError, match="algo: n_epochs is a PPO setting but name is 'a2c'"):
        config("gridworld", "lstm", "algo.n_epochs=2")
    with pytest.raises(ConfigError, match="algo.name: Input should be 'a2c' or 'ppo'"):
        config("gridworld", "lstm", "algo.name=trpo")
    with pytest.raises(ConfigError, match="algo.clip_range: Input should be greater than 0"):
        config("gridworld", "lstm", "algo.name=ppo", "algo.clip_range=0")
    with pytest.raises(ConfigError, match="algo.name: PPO is algo.name ppo"):
        PPO("lstm", "FWM-Gridworld-v0", n_envs=4, name="a2c")
    with pytest.raises(ConfigError, match="algo: n_epochs is a PPO setting but name is 'a2c'"):
        A2C("lstm", "FWM-Gridworld-v0", n_envs=4, n_epochs=2)
    with pytest.raises(
        ConfigError, match=r"algo.num_minibatches: 3 .* env.num_envs=4 .*\(1, 2, 4\)"
    ):
        PPO("lstm", "FWM-Gridworld-v0", n_envs=4, num_minibatches=3)
    a2c = build_agent(config("gridworld", "lstm"))
    assert type(a2c) is A2C
    a2c.close()
    agent = build_agent(config("gridworld", "lstm", "algo.name=ppo"))
    with pytest.raises(ValueError, match="PPO needs a rollout with log_probs"):
        agent.train_on_rollout(dataclasses.replace(agent.collect_rollout(), log_probs=None))
    agent.close()


def test_killed_and_resumed_ppo_run_matches_uninterrupted(tmp_path, monkeypatch) -> None:
    """``fwmrl train`` of a PPO config (the run job builds PPO), killed after a checkpoint and
    resumed, ends with bit-identical parameters and metrics (the minibatch order's generator is
    in the checkpoint)."""
    overrides = [
        "env.num_envs=4",
        "env.kwargs={size: 5, max_steps: 6}",
        "core.hidden_size=8",
        "core.memory_size=4",
        "core.read_hops=1",
        "policy.encoder_sizes=[8]",
        "algo.n_steps=4",
        "algo.num_minibatches=2",
        "algo.n_epochs=2",
        "train.total_steps=96",
        "train.checkpoint_every=3",
        "train.eval_episodes=2",
        "train.progress=false",
        "train.plot_at_end=false",
        "train.gif_at_end=false",
        "logging.log_every=1",
        "logging.tensorboard=false",
    ]
    run_config = load_config(ROOT / "configs/gridworld_fwm_ppo.yaml", overrides)
    train_run(run_config, tmp_path / "full")
    original = PPO.train_on_rollout

    def crash(self, rollout):
        if self.update == 4:
            raise RuntimeError("killed")
        return original(self, rollout)

    monkeypatch.setattr(PPO, "train_on_rollout", crash)
    with pytest.raises(RuntimeError, match="killed"):
        train_run(run_config, tmp_path / "cut")
    saved = load_checkpoint(tmp_path / "cut/checkpoint.pt")
    assert saved["update"] == 3 and "minibatch_rng" in saved
    monkeypatch.setattr(PPO, "train_on_rollout", original)
    train_run(run_config, tmp_path / "cut", resume=True)
    full = load_checkpoint(tmp_path / "full/checkpoint.pt")
    cut = load_checkpoint(tmp_path / "cut/checkpoint.pt")
    assert all(torch.equal(full["policy"][k], cut["policy"][k]) for k in full["policy"])
    assert torch.equal(full["minibatch_rng"], cut["minibatch_rng"])
    strip = ("time_s", "cpu_time_s", "steps_per_s")
    rows = [
        [{k: v for k, v in r.items() if k not in strip} for r in read_metrics(tmp_path / d)]
        for d in ("full", "cut")
    ]
    assert rows[0] == rows[1]
    assert all(r["ppo_steps"] >= 1 for r in rows[0] if "ppo_steps" in r)
    assert len(rows[0]) == 96 // 16


def test_ppo_gaussian_policy_learns_a_target_action() -> None:
    agent = build_agent(
        load_config(
            None,
            [
                f"env.id={TARGET_ENV_ID}",
                "env.num_envs=32",
                "core.name=none",
                "policy.encoder_sizes=[]",
                "algo.name=ppo",
                "algo.n_steps=2",
                "algo.lr=0.01",
                "algo.ent_coef=0.0",
                "algo.normalize_advantage=true",
                "algo.n_epochs=4",
                "algo.num_minibatches=4",
                "logging.tensorboard=false",
                "train.progress=false",
            ],
        )
    )
    for _ in range(60):
        agent.learn_update()
    with torch.no_grad():
        start = torch.ones(1, dtype=torch.bool)
        mean, _, _ = agent.policy.step_flat(torch.ones(1, 1), agent.policy.initial_state(1), start)
    assert abs(mean.item() - 0.6) < 0.1, mean.item()
    assert agent.policy.log_std.exp().item() < 0.7  # the spread shrank from its initial 1.0


def _rank(rank: int, port: int, argv: list[str], log: Path) -> None:
    """One of two ranks as ``torchrun`` starts them (its environment variables), then ``fwmrl``."""
    import os
    import sys

    from fwmrl.cli import main

    with open(log / f"rank{rank}.err", "w") as err:
        os.dup2(err.fileno(), 2)
        sys.stderr = err
        os.environ.update(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        code = main(argv)
        sys.stderr.flush()
    os._exit(code)


def test_two_ranks_take_the_one_process_updates(tmp_path) -> None:
    """``fwmrl train`` of a PPO config on two ranks (forked as ``torchrun`` would start them, gloo)
    ends with the parameters of a one-process run (float tolerance) and the same metrics; some
    minibatches hold envs of one rank only, so the other rank contributes no gradient there."""
    import multiprocessing
    import socket

    args = [
        str(ROOT / "configs/gridworld_fwm_ppo.yaml"),
        "env.num_envs=8",
        "env.kwargs={size: 5, max_steps: 6}",
        "core.hidden_size=8",
        "core.memory_size=4",
        "core.read_hops=1",
        "policy.encoder_sizes=[8]",
        "algo.n_steps=4",
        "algo.num_minibatches=4",
        "algo.n_epochs=2",
        "train.total_steps=96",
        "train.eval_episodes=2",
        "train.progress=false",
        "train.plot_at_end=false",
        "train.gif_at_end=false",
        "logging.log_every=1",
        "logging.tensorboard=false",
    ]
    generator = torch.Generator().manual_seed(2)  # PPO's minibatch order: seed + 2
    orders = [torch.randperm(8, generator=generator) for _ in range(3 * 2)]
    one_rank_only = [
        bool((pair < 4).all() or (pair >= 4).all()) for o in orders for pair in o.view(4, 2)
    ]
    assert any(one_rank_only)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = multiprocessing.get_context("fork")
    argv = ["train", *args, "--run-dir", str(tmp_path / "two")]
    ranks = [context.Process(target=_rank, args=(r, port, argv, tmp_path)) for r in range(2)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=120)
    for process in ranks:
        if process.is_alive():  # a hanging rank fails the test instead of outliving it
            process.kill()
            process.join()
    codes = [process.exitcode for process in ranks]
    assert codes == [0, 0], (tmp_path / "rank0.err").read_text()[-3000:]
    train_run(load_config(args[0], args[1:]), tmp_path / "one")
    one = load_checkpoint(tmp_path / "one/checkpoint.pt")
    two = load_checkpoint(tmp_path / "two/checkpoint.pt")
    assert one["update"] == two["update"] == 3 and two["world_size"] == 2
    for key, value in one["policy"].items():
        torch.testing.assert_close(two["policy"][key], value, rtol=1e-4, atol=1e-5)
    rows = [read_metrics(tmp_path / d) for d in ("one", "two")]
    for a, b in zip(*rows, strict=True):
        assert a["ppo_steps"] == b["ppo_steps"] == 8.0
        assert a["approx_kl"] == pytest.approx(b["approx_kl"], rel=1e-3, abs=1e-7)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


@pytest.mark.slow
def test_ppo_learns_cartpole() -> None:
    agent = build_agent(
        load_config(
            None,
            [
                "env.id=CartPole-v1",
                "env.num_envs=8",
                "core.name=none",
                "algo.name=ppo",
                "algo.n_steps=32",
                "algo.gae_lambda=0.95",
                "algo.lr=0.001",
                "algo.ent_coef=0.0",
                "algo.normalize_advantage=true",
                "algo.num_minibatches=2",
                "logging.tensorboard=false",
                "train.progress=false",
            ],
        )
    )
    agent.learn(30_000)
    # measured: about 89 at seed 0; the random policy's episodes last about 22 steps
    assert agent.episode_stats()["episode_return_mean"] > 2.5 * 22.0


def test_value_normalizer_merges_batches_exactly() -> None:
    values = torch.randn(1000, generator=torch.Generator().manual_seed(0)).double() * 7.0 + 30.0
    normalizer = ValueNormalizer()
    for part in values.split([1, 99, 400, 500]):
        mean = part.mean()
        normalizer.update(torch.tensor(float(len(part))), mean, ((part - mean) ** 2).sum())
    assert float(normalizer.count) == 1000
    assert float(normalizer.mean) == pytest.approx(float(values.mean()), rel=1e-12)
    assert float(normalizer.var) == pytest.approx(float(values.var(unbiased=False)), rel=1e-10)
    x = torch.tensor([1.0, 40.0])
    torch.testing.assert_close(normalizer.denormalize(normalizer.normalize(x)), x)
    normalizer.update(torch.tensor(0.0), torch.tensor(5.0), torch.tensor(0.0))  # empty: no change
    assert float(normalizer.count) == 1000


def test_normalize_value_merges_each_rollout_before_its_epochs() -> None:
    """With ``algo.normalize_value`` PPO's update merges the rollout's returns into the running
    statistics first (GAE on the values in reward units is A2C's, tested in
    ``test_a2c_normalize_value.py``)."""
    agent = build_agent(config("pendulum", "lstm", *PPO_ARGS, "algo.normalize_value=true"))
    normalizer = agent.value_normalizer
    set_prior(normalizer)
    rollout = agent.collect_rollout()
    _, returns = agent.advantages(rollout)
    valid = returns[rollout.valid].double()
    merged = torch.cat([torch.full((100,), -30.0, dtype=torch.float64), valid])
    agent.train_on_rollout(rollout)
    assert float(normalizer.count) == 100 + int(rollout.valid.sum())
    assert float(normalizer.mean) == pytest.approx(float(merged.mean()), rel=1e-6)
    assert "value_norm" in agent.state_dict()
    agent.close()


def test_normalize_value_keeps_the_value_loss_small_on_large_returns() -> None:
    """CartPole-v1 returns reach tens: raw, the squared value error is large; standardised, it
    is O(1) from the first update (the policy gradient is no longer swamped)."""
    losses = {}
    for flag in ("false", "true"):
        agent = build_agent(
            load_config(
                None,
                [
                    "env.id=CartPole-v1",
                    "env.num_envs=4",
                    "core.name=lstm",
                    "core.hidden_size=8",
                    "policy.encoder_sizes=[8]",
                    "algo.name=ppo",
                    "algo.n_steps=64",
                    f"algo.normalize_value={flag}",
                    "logging.tensorboard=false",
                    "train.progress=false",
                ],
            )
        )
        losses[flag] = [agent.learn_update()["value_loss"] for _ in range(3)]
        agent.close()
    assert min(losses["false"]) > 20.0, losses
    assert max(losses["true"]) < 3.0, losses


def test_normalize_value_resumes_its_statistics(tmp_path) -> None:
    cfg = config("pendulum", "lstm", *PPO_ARGS, "algo.normalize_value=true")
    first = build_agent(cfg)
    for _ in range(2):
        first.learn_update()
    atomic_torch_save({**first.state_dict(), "config": cfg.to_dict()}, tmp_path / "c.pt")
    resumed = build_agent(cfg)
    resumed.load_state_dict(load_checkpoint(tmp_path / "c.pt"))
    for key in ("count", "mean", "var"):
        assert torch.equal(
            getattr(first.value_normalizer, key), getattr(resumed.value_normalizer, key)
        )
    assert torch.equal(first.policy.log_std, resumed.policy.log_std)
    plain = build_agent(config("pendulum", "lstm", *PPO_ARGS))
    with pytest.raises(KeyError, match="value_norm: the checkpoint has no return statistics"):
        resumed.load_state_dict(plain.state_dict())
    for agent in (first, resumed, plain):
        agent.close()
