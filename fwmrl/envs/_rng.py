"""Buffered uniform random streams shared by the single and the batched environments.

Every random decision an environment takes inside an episode (a new goal, a teleport) consumes uniform
numbers in ``[0, 1)`` from a stream that is refilled in blocks of :data:`BLOCK` numbers from the
environment's own ``np_random`` generator. The single env reads one number at a time; the batched env
reads one number for many sub-environments at once with array indexing. Both read the same numbers in
the same order, so a batched env reproduces single envs exactly while drawing in vectorised form.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium.utils import seeding

BLOCK = 128
"""How many uniforms a stream draws from its generator at a time."""


def randint_below(u: float, n: int) -> int:
    """Map a uniform ``u`` in ``[0, 1)`` to an integer in ``[0, n)``."""
    return int(u * n)


class UniformStream:
    """The uniform stream of one environment, read one number at a time.

    Args:
        rng: the generator the blocks are drawn from (the env's ``np_random``).
    """

    __slots__ = ("rng", "_buf", "_pos")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._buf = np.empty(BLOCK)
        self._pos = BLOCK

    def next(self) -> float:
        """Return the next uniform number."""
        if self._pos == BLOCK:
            self._buf = self.rng.random(BLOCK)
            self._pos = 0
        u = self._buf[self._pos]
        self._pos += 1
        return float(u)

    def take(self, k: int) -> np.ndarray:
        """Return the next ``k`` uniform numbers as a float64 array."""
        return np.array([self.next() for _ in range(k)])


class UniformStreams:
    """The uniform streams of ``num_envs`` environments, read for many environments at once.

    Args:
        num_envs: number of streams.
    """

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.rngs: list[np.random.Generator | None] = [None] * num_envs
        self._buf = np.zeros((num_envs, BLOCK))
        self._pos = np.full(num_envs, BLOCK, dtype=np.int64)

    def seed(self, seeds: Sequence[int | None], idx: np.ndarray) -> None:
        """Seed the streams ``idx`` as ``Env.reset(seed=...)`` seeds an env's ``np_random``.

        A ``None`` seed keeps an existing generator running and creates an unseeded one otherwise.
        """
        for i, s in zip(idx.tolist(), seeds, strict=True):
            if s is not None or self.rngs[i] is None:
                self.rngs[i], _ = seeding.np_random(s)
                self._pos[i] = BLOCK

    def next(self, idx: np.ndarray) -> np.ndarray:
        """Return the next uniform number of each stream in ``idx`` (distinct integer indices)."""
        pos = self._pos[idx]
        empty = pos == BLOCK
        if empty.any():
            for i in idx[empty].tolist():
                self._buf[i] = self.rngs[i].random(BLOCK)
            pos[empty] = 0
        u = self._buf[idx, pos]
        self._pos[idx] = pos + 1
        return u

    def take(self, idx: np.ndarray, k: int) -> np.ndarray:
        """Return the next ``k`` numbers of each stream in ``idx`` as an array ``[len(idx), k]``."""
        return np.stack([self.next(idx) for _ in range(k)], axis=1)


def vector_seeds(seed: int | Sequence[int | None] | None, num_envs: int) -> list[int | None]:
    """Expand a vector-env seed as ``SyncVectorEnv`` does: ``seed + i`` for sub-env ``i``."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(
            f"seed: a list of seeds must have num_envs={num_envs} entries, got {len(seeds)}"
        )
    return seeds
