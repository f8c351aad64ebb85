"""``policy.critic: separate`` (the value head on a critic MLP of its own over the observation and
the detached core output) and PPO's fused LSTM windows (``memory.lstm.fused_lstm_windows``): the
critic's gradient never reaches the encoder or the core, the shared default keeps its modules, the
key is checked, both critics train under A2C and PPO; fused windows give the cells' values and
gradients, fall back to the cells when resets cut a window into many pieces, and PPO's epochs use
them."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

import fwmrl.agents.ppo as ppo_module
from fwmrl.agents.job import build_agent
from fwmrl.agents.policy import MemoryActorCritic
from fwmrl.config import ConfigError, load_config
from fwmrl.memory import lstm as lstm_module
from fwmrl.memory.fwm import FWMCore
from fwmrl.memory.lstm import fused_lstm_windows, run_lstm_with_resets

OBS = spaces.Box(-1.0, 1.0, (3,))
ACTIONS = spaces.Box(-2.0, 2.0, (1,))
BASE = [
    "env.id=Pendulum-v1",
    "env.kwargs={max_episode_steps: 7}",
    "env.num_envs=4",
    "core.name=fwm",
    "core.hidden_size=8",
    "core.memory_size=4",
    "policy.encoder_sizes=[8]",
    "algo.n_steps=6",
    "algo.normalize_value=true",
    "logging.tensorboard=false",
    "train.progress=false",
]


def _policy(critic: str, core: str = "fwm") -> MemoryActorCritic:
    torch.manual_seed(0)
    kwargs = {"hidden_size": 8, "memory_size": 4} if core == "fwm" else {"hidden_size": 8}
    return MemoryActorCritic(OBS, ACTIONS, core, kwargs, encoder_sizes=[8], critic=critic)


def _run(policy: MemoryActorCritic) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    obs = torch.randn(5, 3, 3, generator=gen)
    resets = torch.zeros(5, 3, dtype=torch.bool)
    resets[0] = resets[3, 1] = True
    params, values, _, _ = policy(obs, policy.initial_state(3), resets)
    return params, values


@pytest.mark.parametrize("core", ["fwm", "lstm"])
def test_separate_critic_gradient_never_reaches_the_encoder_or_the_core(core: str) -> None:
    policy = _policy("separate", core)
    params, values = _run(policy)
    values.sum().backward()
    actor = [*policy.encoder.parameters(), *policy.core.parameters(), policy.policy_head.weight]
    assert all(p.grad is None for p in actor)
    assert policy.log_std.grad is None
    critic = [*policy.critic_encoder.parameters(), *policy.value_head.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic)
    policy.zero_grad(set_to_none=True)
    params, values = _run(policy)
    params.sum().backward()  # the policy loss trains the actor and leaves the critic alone
    assert all(p.grad is None for p in critic)
    assert policy.encoder[0].weight.grad.abs().sum() > 0


def test_separate_critic_reads_the_observation_and_the_memory() -> None:
    """The critic MLP sees [flat observation, core output]: its values change when only the core's
    state changes (the memory reaches the critic) and with the observation."""
    policy = _policy("separate")
    assert policy.critic_encoder[0].in_features == 3 + policy.core.output_size
    obs = torch.randn(1, 2, 3)
    no_reset = torch.zeros(1, 2, dtype=torch.bool)
    state = policy.initial_state(2)
    _, fresh, _, _ = policy(obs, state, no_reset)
    _, _, later = policy(torch.randn(4, 2, 3), state, torch.zeros(4, 2, dtype=torch.bool))[:3]
    _, carried, _, _ = policy(obs, later, no_reset)
    assert not torch.allclose(fresh, carried)


def test_shared_critic_is_the_default_and_unchanged() -> None:
    """The default keeps the modules (and so the seeded initialisation) of the shared trunk."""
    torch.manual_seed(0)
    default = MemoryActorCritic(OBS, ACTIONS, "fwm", {"hidden_size": 8, "memory_size": 4})
    shared = _policy("shared")
    assert default.critic == "shared" and default.critic_encoder is None
    names = [name for name, _ in default.named_parameters()]
    assert not any(name.startswith("critic_encoder") for name in names)
    assert default.value_head.in_features == default.core.output_size
    torch.manual_seed(0)
    again = MemoryActorCritic(
        OBS, ACTIONS, "fwm", {"hidden_size": 8, "memory_size": 4}, encoder_sizes=[8]
    )
    for a, b in zip(again.parameters(), shared.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="critic: one of shared, separate"):
        MemoryActorCritic(OBS, ACTIONS, "fwm", critic="own")


def test_critic_config_key() -> None:
    assert load_config(None, []).policy.critic == "shared"
    with pytest.raises(ConfigError, match="policy.critic"):
        load_config(None, ["policy.critic=own"])


@pytest.mark.parametrize("algo", ["a2c", "ppo"])
def test_separate_critic_trains_under_both_algorithms(algo: str) -> None:
    extra = ["algo.n_epochs=2", "algo.num_minibatches=2"] if algo == "ppo" else []
    agent = build_agent(
        load_config(None, [*BASE, f"algo.name={algo}", *extra, "policy.critic=separate"])
    )
    assert agent.policy.critic_encoder is not None
    before = {name: p.detach().clone() for name, p in agent.policy.named_parameters()}
    for _ in range(2):
        metrics = agent.learn_update()
        assert all(np.isfinite(v) for v in metrics.values()), metrics
    for name, p in agent.policy.named_parameters():
        assert not torch.equal(before[name], p), name
    agent.close()


def _lstm_grads(cut_into: int, fused: bool, dtype: torch.dtype = torch.float64):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 6).to(dtype)
    steps, batch = 16, 3
    x = torch.randn(steps, batch, 5, dtype=dtype, requires_grad=True)
    h, c = (torch.randn(batch, 1, 6, dtype=dtype) for _ in range(2))
    resets = torch.zeros(steps, batch, dtype=torch.bool)
    for t in range(1, cut_into):  # pieces: one per step where some sequence resets, plus one
        resets[t * steps // cut_into, t % batch] = True
    if fused:
        with fused_lstm_windows():
            y, h_end, c_end = run_lstm_with_resets(lstm, x, h, c, resets)
    else:
        y, h_end, c_end = run_lstm_with_resets(lstm, x, h, c, resets)
    (y.sin().sum() + h_end.sum() + c_end.sum()).backward()
    return [y, h_end, c_end, x.grad, *(p.grad for p in lstm.parameters())]


@pytest.mark.parametrize("cut_into", [1, 2, 8])
def test_fused_windows_match_the_cells(cut_into: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With gradients, fused windows (two pieces here: 16 steps allow 2) give the cells' outputs
    and gradients; a window cut into more pieces runs as cells."""
    cells = _lstm_grads(cut_into, fused=False)
    calls = []
    real = lstm_module._run_cells
    monkeypatch.setattr(
        lstm_module, "_run_cells", lambda *a: calls.append(1) or real(*a)
    )  # counts the windows run as cells
    fused = _lstm_grads(cut_into, fused=True)
    assert len(calls) == (0 if cut_into <= 2 else 1)
    for a, b in zip(cells, fused, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert not lstm_module._fused_windows  # the block restores the default
    calls.clear()
    _lstm_grads(1, fused=False)
    assert len(calls) == 1  # outside the block a window with gradients runs as cells


def test_ppo_epochs_run_fused_lstm_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pendulum's envs reset together, so PPO's minibatch windows run as fused LSTM calls (no
    window goes through the cells), and the updates give what the cells give, up to rounding."""
    overrides = [
        *BASE,
        "env.kwargs={max_episode_steps: 20}",
        "algo.n_steps=16",
        "algo.name=ppo",
        "algo.n_epochs=2",
        "algo.num_minibatches=2",
    ]

    def two_updates(context: object) -> tuple[list[dict[str, float]], list[torch.Tensor], list]:
        monkeypatch.setattr(ppo_module, "fused_lstm_windows", context)
        windows_by_cells: list[int] = []
        monkeypatch.setattr(
            lstm_module,
            "_run_cells",
            lambda lstm, x, *rest: windows_by_cells.append(x.shape[0]) or cells(lstm, x, *rest),
        )
        monkeypatch.setattr(  # FWM's controller steps its cells in its own window loop
            FWMCore,
            "_controller_window",
            lambda core, x, *rest: windows_by_cells.append(x.shape[0]) or window(core, x, *rest),
        )
        agent = build_agent(load_config(None, overrides))
        metrics = [agent.learn_update() for _ in range(2)]  # the second window has a reset
        params = [p.detach().clone() for p in agent.policy.parameters()]
        agent.close()
        return metrics, params, windows_by_cells

    cells, window = lstm_module._run_cells, FWMCore._controller_window
    expected, expected_params, by_cells = two_updates(contextlib.nullcontext)
    assert len(by_cells) == 2 * 2 * 2  # without the block: every minibatch window as cells
    metrics, params, by_cells = two_updates(fused_lstm_windows)
    assert by_cells == []
    for got, want in zip(metrics, expected, strict=True):
        for key in ("loss", "value_loss", "approx_kl", "grad_norm"):
            assert got[key] == pytest.approx(want[key], rel=1e-3, abs=1e-6), key
    for a, b in zip(params, expected_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_ppo_epochs_run_the_lstm_core_fused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The LSTM core's epoch windows run as fused nn.LSTM calls too (no window with gradients
    goes through the lstm_cell steps), while its one-step acting windows stay cells."""
    overrides = [*BASE, "algo.name=ppo", "algo.n_epochs=2", "algo.num_minibatches=2"]
    lstm_overrides = [o for o in overrides if not o.startswith("core.")]
    agent = build_agent(
        load_config(None, [*lstm_overrides, "core.name=lstm", "core.hidden_size=8"])
    )
    cells = lstm_module._run_cells
    windows: list[tuple[int, bool]] = []
    monkeypatch.setattr(
        lstm_module,
        "_run_cells",
        lambda lstm, x, *rest: (
            windows.append((x.shape[0], torch.is_grad_enabled())) or cells(lstm, x, *rest)
        ),
    )
    try:
        with agent._epoch_windows():
            assert lstm_module._fused_windows
        assert not lstm_module._fused_windows
        metrics = agent.learn_update()
    finally:
        agent.close()
    assert metrics["ppo_steps"] == 2 * 2
    assert windows  # the collection's steps
    assert all(steps == 1 for steps, _ in windows)  # no epoch window as cells
