"""Gymnasium spaces for fwmrl's own trainers: flat float features from any supported observation,
and one action distribution per supported action space.

Observations (:class:`ObservationFlattener`), as float32 features ``[..., size]``:

- ``Box`` of any shape: flattened; a ``uint8`` Box with bounds 0 and 255 (an image) is scaled to
  ``[0, 1]``, other Boxes are passed as they are.
- ``Discrete(n, start)``: one-hot of ``obs - start`` (``n`` features).
- ``MultiDiscrete(nvec)``: one one-hot per component, concatenated (``sum(nvec)`` features).
- ``MultiBinary``: flattened 0/1 values.
- ``Dict`` and ``Tuple``: each part flattened as above and concatenated, ``Dict`` in the sorted key
  order (Gymnasium's own ``Dict`` order), ``Tuple`` in its order; nesting is allowed.

Actions (:func:`action_distribution`), from the policy head's ``param_size`` outputs:

- ``Discrete(n, start)``: a categorical over ``n`` logits; the env receives ``a + start``.
- ``MultiDiscrete(nvec)`` (one-dimensional): independent categoricals, ``sum(nvec)`` logits.
- ``MultiBinary(n)`` (one-dimensional): independent Bernoullis, ``n`` logits.
- ``Box`` (float, finite or infinite bounds, any shape): a diagonal Gaussian whose mean is the head's
  output and whose log standard deviation is a learned, state-independent parameter of the policy
  (as in SB3's and CleanRL's PPO). The *unclipped* sample is what is stored and scored
  (``log_prob``), so the distribution the loss sees is the one that was sampled; the env receives
  the sample clipped to the space's bounds (:meth:`ActionDistribution.to_env`).

Anything else raises :class:`UnsupportedSpaceError`, naming the space and the supported ones.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor
from typing_extensions import override

OBSERVATION_SPACES = "Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"
ACTION_SPACES = "Discrete, MultiDiscrete, MultiBinary, Box"


class UnsupportedSpaceError(ValueError):
    """A space that fwmrl's trainers cannot take; the message names it and the supported ones."""


# ------------------------------------------------------------------------------- observations
class ObservationFlattener:
    """Maps a batch of observations of ``space`` to float32 features ``[*batch, size]``.

    Parameters
    ----------
    space:
        A single env's observation space (see the module docstring for what is supported).

    Attributes
    ----------
    size:
        Features per observation.
    """

    def __init__(self, space: spaces.Space) -> None:
        self.space = space
        self._parts = _flatteners(space, "observation space")
        self.size = sum(part.size for part in self._parts)

    def __call__(self, obs: object, batch_dims: int = 1) -> Tensor:
        """Features of ``obs``: a tensor or array ``[*batch, *shape]`` (or, for Dict/Tuple spaces,
        a dict/tuple of them) with ``batch_dims`` leading batch dimensions."""
        pieces = [part(obs, batch_dims) for part in self._parts]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)


class _Leaf:
    """One non-composite part of an observation space, and how to reach it inside the sample."""

    def __init__(self, space: spaces.Space, path: tuple) -> None:
        self.space, self.path = space, path
        self.scale: float | None = None
        if isinstance(space, spaces.Box):
            self.size = int(np.prod(space.shape))
            self.scale = (
                1.0 / 255.0
                if space.dtype == np.uint8 and np.all(space.low == 0) and np.all(space.high == 255)
                else None
            )
        elif isinstance(space, spaces.Discrete):
            self.size = int(space.n)
        elif isinstance(space, spaces.MultiDiscrete):
            self.size = int(np.sum(space.nvec))
        elif isinstance(space, spaces.MultiBinary):
            self.size = int(np.prod(space.shape))
        else:  # pragma: no cover - _flatteners only builds the four kinds above
            raise AssertionError(space)

    def __call__(self, obs: object, batch_dims: int) -> Tensor:
        for key in self.path:
            obs = obs[key]  # type: ignore[index]
        x = torch.as_tensor(obs)
        lead = x.shape[:batch_dims]
        space = self.space
        if isinstance(space, spaces.Discrete):
            index = (x.long() - int(space.start)).reshape(*lead)
            return torch.nn.functional.one_hot(index, self.size).float()
        if isinstance(space, spaces.MultiDiscrete):
            index = (x.long() - torch.as_tensor(space.start, dtype=torch.long)).reshape(*lead, -1)
            sizes = [int(n) for n in np.asarray(space.nvec).reshape(-1)]
            hots = [
                torch.nn.functional.one_hot(index[..., i], n).float() for i, n in enumerate(sizes)
            ]
            return torch.cat(hots, dim=-1)
        x = x.reshape(*lead, self.size).float()
        if self.scale is not None:
            x = x * self.scale
        return x


def _flatteners(space: spaces.Space, what: str, path: tuple = ()) -> list[_Leaf]:
    if isinstance(space, spaces.Dict):
        return [
            leaf
            for key in sorted(space.spaces)
            for leaf in _flatteners(space.spaces[key], what, (*path, key))
        ]
    if isinstance(space, spaces.Tuple):
        return [
            leaf
            for i, part in enumerate(space.spaces)
            for leaf in _flatteners(part, what, (*path, i))
        ]
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        return [_Leaf(space, path)]
    where = f" (at {'/'.join(map(str, path))})" if path else ""
    raise UnsupportedSpaceError(
        f"{what} {space}{where} is not supported; supported: {OBSERVATION_SPACES}"
    )


# ------------------------------------------------------------------------------------ actions
class ActionDistribution:
    """The policy's distribution over one action space, from ``param_size`` head outputs.

    Subclasses implement :meth:`sample`, :meth:`log_prob`, :meth:`entropy` and :meth:`mode` on
    ``params [..., param_size]`` (for :class:`DiagGaussian`, the means, with the learned log-std
    passed separately) and :meth:`to_env`, which turns sampled actions into what ``env.step``
    takes. :meth:`sample` is a deterministic function of uniform draws ``[..., noise_size]``, so
    that a caller owns the random stream (e.g. draws the uniforms of every rank under ``torchrun``
    and keeps its own rows); :meth:`draw` draws them from a generator.

    Attributes
    ----------
    param_size:
        Outputs of the policy head.
    noise_size:
        Uniform draws per action.
    action_shape:
        Shape of one stored action (``()`` for Discrete).
    action_dtype:
        dtype of stored actions.
    """

    param_size: int
    noise_size: int
    action_shape: tuple[int, ...]
    action_dtype: torch.dtype

    def sample(self, params: Tensor, uniforms: Tensor, log_std: Tensor | None = None) -> Tensor:
        """Actions ``[..., *action_shape]`` from uniforms ``[..., noise_size]`` in ``[0, 1)``."""
        raise NotImplementedError

    def draw(
        self,
        params: Tensor,
        generator: torch.Generator | None = None,
        log_std: Tensor | None = None,
    ) -> Tensor:
        """:meth:`sample` with uniforms drawn from ``generator`` (on the CPU)."""
        uniforms = torch.rand((*params.shape[:-1], self.noise_size), generator=generator)
        return self.sample(params, uniforms.to(params.device), log_std)

    def log_prob(self, params: Tensor, actions: Tensor, log_std: Tensor | None = None) -> Tensor:
        """Log-probability ``[...]`` of stored ``actions`` under the parameters ``params [..., P]``."""
        raise NotImplementedError

    def entropy(self, params: Tensor, log_std: Tensor | None = None) -> Tensor:
        """Entropy ``[...]`` of the distribution the parameters ``params [..., P]`` describe."""
        raise NotImplementedError

    def mode(self, params: Tensor) -> Tensor:
        """The most likely action of each row (greedy evaluation)."""
        raise NotImplementedError

    def to_env(self, actions: Tensor) -> np.ndarray:
        """Actions as ``env.step`` takes them (a batch: ``[B, *action_shape]``)."""
        return actions.cpu().numpy()


def _categorical_sample(logits: Tensor, uniform: Tensor) -> Tensor:
    """One index per row of ``logits [..., n]`` by inverting the CDF at ``uniform [..., 1]``:
    index ``k`` where ``cdf_{k-1} <= u < cdf_k``, exactly the categorical distribution."""
    probs = torch.softmax(logits.float(), dim=-1)
    index = (probs.cumsum(dim=-1) <= uniform.to(probs.dtype)).sum(dim=-1)
    return index.clamp_(max=probs.shape[-1] - 1)  # a draw above a rounded-down last cdf


def _categorical_log_prob(logits: Tensor, index: Tensor) -> Tensor:
    return torch.log_softmax(logits, dim=-1).gather(-1, index.unsqueeze(-1)).squeeze(-1)


def _categorical_entropy(logits: Tensor) -> Tensor:
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


class Categorical(ActionDistribution):
    """``Discrete(n, start)``: ``n`` logits; stored actions are ``0 … n-1``, the env gets ``+ start``."""

    def __init__(self, space: spaces.Discrete) -> None:
        self.param_size, self.start = int(space.n), int(space.start)
        self.noise_size, self.action_shape, self.action_dtype = 1, (), torch.int64

    @override
    def sample(self, params, uniforms, log_std=None):  # noqa: ANN001, ANN201
        return _categorical_sample(params, uniforms)

    @override
    def log_prob(self, params, actions, log_std=None):  # noqa: ANN001, ANN201
        return _categorical_log_prob(params, actions.long())

    @override
    def entropy(self, params, log_std=None):  # noqa: ANN001, ANN201
        return _categorical_entropy(params)

    @override
    def mode(self, params):  # noqa: ANN001, ANN201
        return params.argmax(dim=-1)

    @override
    def to_env(self, actions: Tensor) -> np.ndarray:
        return (actions + self.start).cpu().numpy() if self.start else actions.cpu().numpy()


class MultiCategorical(ActionDistribution):
    """One-dimensional ``MultiDiscrete(nvec, start)``: one categorical per component."""

    def __init__(self, space: spaces.MultiDiscrete) -> None:
        if len(space.nvec.shape) != 1:
            raise UnsupportedSpaceError(
                f"action space {space}: only one-dimensional MultiDiscrete spaces are supported"
            )
        self.sizes = [int(n) for n in space.nvec]
        self.start = np.asarray(space.start, dtype=np.int64)
        self.param_size, self.noise_size = sum(self.sizes), len(self.sizes)
        self.action_shape, self.action_dtype = (len(self.sizes),), torch.int64

    def _split(self, params: Tensor) -> tuple[Tensor, ...]:
        return params.split(self.sizes, dim=-1)

    @override
    def sample(self, params, uniforms, log_std=None):  # noqa: ANN001, ANN201
        parts = self._split(params)
        return torch.stack(
            [_categorical_sample(p, uniforms[..., i : i + 1]) for i, p in enumerate(parts)], -1
        )

    @override
    def log_prob(self, params, actions, log_std=None):  # noqa: ANN001, ANN201
        parts = self._split(params)
        return sum(_categorical_log_prob(p, actions[..., i].long()) for i, p in enumerate(parts))

    @override
    def entropy(self, params, log_std=None):  # noqa: ANN001, ANN201
        return sum(_categorical_entropy(p) for p in self._split(params))

    @override
    def mode(self, params):  # noqa: ANN001, ANN201
        return torch.stack([p.argmax(dim=-1) for p in self._split(params)], dim=-1)

    @override
    def to_env(self, actions: Tensor) -> np.ndarray:
        return actions.cpu().numpy() + self.start


class Bernoulli(ActionDistribution):
    """One-dimensional ``MultiBinary(n)``: ``n`` independent Bernoullis from ``n`` logits."""

    def __init__(self, space: spaces.MultiBinary) -> None:
        if len(space.shape) != 1:
            raise UnsupportedSpaceError(
                f"action space {space}: only one-dimensional MultiBinary spaces are supported"
            )
        self.param_size = self.noise_size = int(space.shape[0])
        self.action_shape, self.action_dtype = (self.param_size,), torch.int64

    @override
    def sample(self, params, uniforms, log_std=None):  # noqa: ANN001, ANN201
        return (uniforms < torch.sigmoid(params.float())).long()

    @override
    def log_prob(self, params, actions, log_std=None):  # noqa: ANN001, ANN201
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        return -bce(params, actions.to(params.dtype), reduction="none").sum(-1)

    @override
    def entropy(self, params, log_std=None):  # noqa: ANN001, ANN201
        p = torch.sigmoid(params)
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        return bce(params, p, reduction="none").sum(-1)

    @override
    def mode(self, params):  # noqa: ANN001, ANN201
        return (params > 0).long()

    @override
    def to_env(self, actions: Tensor) -> np.ndarray:
        return actions.cpu().numpy().astype(np.int8)


class DiagGaussian(ActionDistribution):
    """``Box`` actions: a diagonal Gaussian with a state-independent learned log-std.

    The head gives the means ``[..., d]`` (``d = prod(shape)``); ``log_std [d]`` is a parameter of
    the policy. Samples are stored and scored unclipped; :meth:`to_env` clips them to the bounds.
    """

    def __init__(self, space: spaces.Box) -> None:
        if not np.issubdtype(space.dtype, np.floating):
            raise UnsupportedSpaceError(f"action space {space}: a Box of actions must be float")
        self.shape = tuple(space.shape)
        self.param_size = int(np.prod(self.shape))
        self.low = space.low.reshape(-1).astype(np.float64)
        self.high = space.high.reshape(-1).astype(np.float64)
        self.dtype = space.dtype
        self.noise_size = self.param_size
        self.action_shape, self.action_dtype = (self.param_size,), torch.float32

    @override
    def sample(self, params, uniforms, log_std=None):  # noqa: ANN001, ANN201
        assert log_std is not None, "DiagGaussian needs the policy's log_std"
        eps = torch.finfo(torch.float32).eps  # keep erfinv finite at the ends
        u = uniforms.to(params.dtype).clamp(eps, 1 - eps)
        normal = math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)  # the normal quantile of u
        return params + normal * log_std.exp()

    @override
    def log_prob(self, params, actions, log_std=None):  # noqa: ANN001, ANN201
        assert log_std is not None, "DiagGaussian needs the policy's log_std"
        z = (actions - params) * torch.exp(-log_std)
        per_dim = -0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        return per_dim.sum(-1)

    @override
    def entropy(self, params, log_std=None):  # noqa: ANN001, ANN201
        assert log_std is not None, "DiagGaussian needs the policy's log_std"
        per_dim = 0.5 + 0.5 * math.log(2 * math.pi) + log_std
        return per_dim.sum(-1).expand(params.shape[:-1])

    @override
    def mode(self, params):  # noqa: ANN001, ANN201
        return params

    @override
    def to_env(self, actions: Tensor) -> np.ndarray:
        clipped = np.clip(actions.detach().cpu().numpy(), self.low, self.high)
        return clipped.reshape(*clipped.shape[:-1], *self.shape).astype(self.dtype)


def action_distribution(space: spaces.Space) -> ActionDistribution:
    """The :class:`ActionDistribution` for a single env's action space.

    Raises
    ------
    UnsupportedSpaceError
        For any other space; the message names it and the supported ones.
    """
    if isinstance(space, spaces.Discrete):
        return Categorical(space)
    if isinstance(space, spaces.MultiDiscrete):
        return MultiCategorical(space)
    if isinstance(space, spaces.MultiBinary):
        return Bernoulli(space)
    if isinstance(space, spaces.Box):
        return DiagGaussian(space)
    raise UnsupportedSpaceError(
        f"action space {space} is not supported; supported: {ACTION_SPACES}"
    )
