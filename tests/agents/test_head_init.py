"""``policy.head_init``: the policy head's initialisation (small orthogonal or PyTorch's default)."""

from __future__ import annotations

import pytest
import torch
from gymnasium import spaces

from fwmrl.agents.job import build_agent
from fwmrl.agents.policy import MemoryActorCritic
from fwmrl.config import config_from_dict
from fwmrl.errors import ConfigError

OBS, ACT = spaces.Box(-1.0, 1.0, (6,)), spaces.Discrete(3)


def test_small_head_gives_near_uniform_logits_and_default_does_not():
    torch.manual_seed(0)
    small = MemoryActorCritic(OBS, ACT, core="lstm", core_kwargs={"hidden_size": 32})
    torch.manual_seed(0)
    default = MemoryActorCritic(
        OBS, ACT, core="lstm", core_kwargs={"hidden_size": 32}, head_init="default"
    )
    assert torch.count_nonzero(small.policy_head.bias) == 0
    assert small.policy_head.weight.abs().max() < 0.01
    bound = 1 / 32**0.5  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert default.policy_head.weight.abs().max() <= bound
    assert default.policy_head.weight.std() > 10 * small.policy_head.weight.std()
    assert torch.count_nonzero(default.policy_head.bias) == 3
    # everything but the policy head is drawn identically
    for (name, a), (_, b) in zip(small.named_parameters(), default.named_parameters(), strict=True):
        if not name.startswith("policy_head"):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_unknown_head_init_is_refused():
    with pytest.raises(ValueError, match="head_init: one of small, default"):
        MemoryActorCritic(OBS, ACT, core="none", head_init="zeros")
    with pytest.raises(ConfigError, match="head_init"):
        config_from_dict({"env": {"id": "FWM-GraphNav-v0"}, "policy": {"head_init": "zeros"}})


def test_config_key_reaches_the_trainer():
    config = config_from_dict(
        {
            "env": {"id": "FWM-GraphNav-v0", "num_envs": 4},
            "core": {"name": "lstm", "hidden_size": 16},
            "policy": {"encoder_sizes": [], "head_init": "default"},
            "train": {"seed": 0},
        }
    )
    trainer = build_agent(config)
    assert (
        torch.count_nonzero(trainer.policy.policy_head.bias)
        == trainer.policy.action_dist.param_size
    )
    trainer.close()
