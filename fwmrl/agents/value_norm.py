"""Running return statistics for value normalisation (``algo.normalize_value``, A2C and PPO)."""

from __future__ import annotations

import torch
from torch import Tensor


class ValueNormalizer:
    """Running mean and variance of the returns (all valid steps of all updates so far).

    ``normalize(x) = (x - mean) / std`` and ``denormalize`` its inverse, with
    ``std = sqrt(var + eps)``; :meth:`update` merges a batch given by its count, mean and sum of
    squared deviations (Chan et al.'s parallel formula, exact in any split), so every rank, given
    the globally reduced batch moments, holds the same statistics. Kept in float64.

    Parameters
    ----------
    eps
        added to the variance before the square root (a constant return has std ``sqrt(eps)``).
    """

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = eps
        self.count = torch.zeros((), dtype=torch.float64)
        self.mean = torch.zeros((), dtype=torch.float64)
        self.var = torch.ones((), dtype=torch.float64)

    @property
    def std(self) -> Tensor:
        """The running standard deviation (with ``eps`` added to the variance)."""
        return (self.var + self.eps).sqrt()

    def update(self, count: Tensor, mean: Tensor, squared_deviations: Tensor) -> None:
        """Merge a batch of ``count`` values with mean ``mean`` and ``sum((x - mean)^2)``."""
        count, mean, m2 = (
            torch.as_tensor(x, dtype=torch.float64).cpu() for x in (count, mean, squared_deviations)
        )
        if float(count) <= 0:
            return
        total = self.count + count
        delta = mean - self.mean
        old_m2 = self.var * self.count
        self.mean = self.mean + delta * count / total
        self.var = (old_m2 + m2 + delta**2 * self.count * count / total) / total
        self.count = total

    def normalize(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` in ``x``'s dtype and device."""
        return ((x - self.mean.to(x.device)) / self.std.to(x.device)).to(x.dtype)

    def denormalize(self, x: Tensor) -> Tensor:
        """The inverse of :meth:`normalize`."""
        return (x * self.std.to(x.device) + self.mean.to(x.device)).to(x.dtype)

    def state_dict(self) -> dict[str, Tensor]:
        """The statistics as plain tensors, for checkpoints."""
        return {"count": self.count, "mean": self.mean, "var": self.var}

    def load_state_dict(self, data: dict[str, Tensor]) -> None:
        """Restore the statistics :meth:`state_dict` saved."""
        self.count, self.mean, self.var = (
            torch.as_tensor(data[k], dtype=torch.float64).clone() for k in ("count", "mean", "var")
        )
