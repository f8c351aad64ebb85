"""Observation flattening and action distributions for every supported Gymnasium space."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import distributions as D

from fwmrl.agents.spaces import (
    ObservationFlattener,
    UnsupportedSpaceError,
    action_distribution,
)


def test_image_box_is_scaled_and_flattened() -> None:
    space = spaces.Box(0, 255, (2, 3, 3), dtype=np.uint8)
    obs = np.full((4, 2, 3, 3), 255, dtype=np.uint8)
    x = ObservationFlattener(space)(obs)
    assert x.shape == (4, 18) and x.dtype == torch.float32 and torch.all(x == 1.0)


def test_float_box_is_passed_as_is() -> None:
    space = spaces.Box(-1000, 1000, (2, 2))
    obs = np.array([[[3.0, -4.0], [500.0, 0.5]]], dtype=np.float32)
    x = ObservationFlattener(space)(obs)
    assert x.tolist() == [[3.0, -4.0, 500.0, 0.5]]


def test_discrete_and_multidiscrete_are_one_hot() -> None:
    flat = ObservationFlattener(spaces.Discrete(4, start=2))
    assert flat.size == 4 and flat(np.array([2, 5])).tolist() == [[1, 0, 0, 0], [0, 0, 0, 1]]
    multi = ObservationFlattener(spaces.MultiDiscrete([2, 3]))
    assert multi.size == 5 and multi(np.array([[1, 2]])).tolist() == [[0, 1, 0, 0, 1]]


def test_dict_and_tuple_in_a_fixed_order_with_two_batch_dims() -> None:
    space = spaces.Dict(
        {
            "z": spaces.Discrete(2),
            "a": spaces.Tuple((spaces.MultiBinary(2), spaces.Box(0, 1, (1,)))),
        }
    )
    flat = ObservationFlattener(space)
    assert flat.size == 2 + 1 + 2
    obs = {
        "z": np.array([[1, 0]]),
        "a": (np.array([[[1, 0], [0, 1]]]), np.array([[[0.25], [0.5]]], dtype=np.float32)),
    }
    x = flat(obs, batch_dims=2)
    assert x.shape == (1, 2, 5)
    # sorted keys: "a" (MultiBinary, then Box) before "z" (one-hot)
    assert x[0, 0].tolist() == [1, 0, 0.25, 0, 1] and x[0, 1].tolist() == [0, 1, 0.5, 1, 0]


@pytest.mark.parametrize(
    "space",
    [spaces.Text(5), spaces.Sequence(spaces.Discrete(2)), spaces.Graph(spaces.Discrete(2), None)],
)
def test_unsupported_observation_space_names_itself(space: spaces.Space) -> None:
    with pytest.raises(UnsupportedSpaceError, match="supported: Box, Discrete"):
        ObservationFlattener(spaces.Dict({"ok": spaces.Discrete(2), "bad": space}))


def test_unsupported_action_space_names_itself() -> None:
    with pytest.raises(UnsupportedSpaceError, match="Text.*supported: Discrete, MultiDiscrete"):
        action_distribution(spaces.Text(4))


def _reference(space: spaces.Space, params: torch.Tensor, log_std: torch.Tensor):
    if isinstance(space, spaces.Discrete):
        return D.Categorical(logits=params)
    if isinstance(space, spaces.MultiBinary):
        return D.Independent(D.Bernoulli(logits=params), 1)
    return D.Independent(D.Normal(params, log_std.exp()), 1)


@pytest.mark.parametrize(
    "space", [spaces.Discrete(5), spaces.MultiBinary(3), spaces.Box(-1, 1, (3,))]
)
def test_log_prob_and_entropy_match_torch_distributions(space: spaces.Space) -> None:
    dist = action_distribution(space)
    params = torch.randn(6, dist.param_size, dtype=torch.float64)
    log_std = torch.randn(dist.param_size, dtype=torch.float64) * 0.3
    actions = dist.draw(params, torch.Generator().manual_seed(0), log_std)
    ref = _reference(space, params, log_std)
    value = actions if isinstance(space, spaces.Discrete) else actions.to(params.dtype)
    torch.testing.assert_close(dist.log_prob(params, actions, log_std), ref.log_prob(value))
    torch.testing.assert_close(dist.entropy(params, log_std), ref.entropy())


def test_multidiscrete_is_a_product_of_categoricals() -> None:
    dist = action_distribution(spaces.MultiDiscrete([3, 2], start=[1, -1]))
    params = torch.randn(4, 5, dtype=torch.float64)
    actions = dist.draw(params, torch.Generator().manual_seed(1))
    a, b = D.Categorical(logits=params[:, :3]), D.Categorical(logits=params[:, 3:])
    expected = a.log_prob(actions[:, 0]) + b.log_prob(actions[:, 1])
    torch.testing.assert_close(dist.log_prob(params, actions), expected)
    torch.testing.assert_close(dist.entropy(params), a.entropy() + b.entropy())
    assert (dist.to_env(actions) == actions.numpy() + [1, -1]).all()


@pytest.mark.parametrize(
    "space", [spaces.Discrete(4), spaces.MultiBinary(2), spaces.Box(-9, 9, (2,))]
)
def test_samples_follow_the_distribution(space: spaces.Space) -> None:
    dist = action_distribution(space)
    params = torch.tensor([[0.5, -1.0, 2.0, 0.0][: dist.param_size]]).expand(40_000, -1)
    log_std = torch.tensor([-0.5, 0.3][: dist.param_size])
    actions = dist.draw(params, torch.Generator().manual_seed(2), log_std)
    if isinstance(space, spaces.Discrete):
        freq = torch.bincount(actions, minlength=4).float() / len(actions)
        torch.testing.assert_close(freq, torch.softmax(params[0], -1), atol=0.01, rtol=0)
    elif isinstance(space, spaces.MultiBinary):
        torch.testing.assert_close(
            actions.float().mean(0), torch.sigmoid(params[0]), atol=0.01, rtol=0
        )
    else:
        torch.testing.assert_close(actions.mean(0), params[0], atol=0.03, rtol=0)
        torch.testing.assert_close(actions.std(0), log_std.exp(), atol=0.03, rtol=0)


def test_categorical_never_picks_a_zero_probability_action() -> None:
    dist = action_distribution(spaces.Discrete(3, start=10))
    params = torch.tensor([[0.0, -1e9, 0.0]]).expand(5000, -1)
    actions = dist.draw(params, torch.Generator().manual_seed(3))
    assert not (actions == 1).any()
    assert set(dist.to_env(actions).tolist()) == {10, 12}


def test_box_actions_are_clipped_for_the_env_only() -> None:
    space = spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, 0.5]), dtype=np.float32)
    dist = action_distribution(space)
    actions = torch.tensor([[3.0, -2.0], [0.2, 0.3]])
    env_actions = dist.to_env(actions)
    assert env_actions.dtype == np.float32 and space.contains(env_actions[0])
    assert env_actions.tolist() == [[1.0, 0.0], [pytest.approx(0.2), pytest.approx(0.3)]]
    assert actions[0].tolist() == [3.0, -2.0]  # what is stored and scored stays unclipped
