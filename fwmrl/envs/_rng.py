"""Buffered uniform random streams shared by the single and the batched environments.

Every random decision an environment takes inside an episode (a new goal, a teleport) consumes uniform
numbers in ``[0, 1)`` from a stream that is refilled in blocks of :data:`BLOCK` numbers from the
environment's own ``np_random`` generator. The single env reads one number at a time; the batched env
reads one number for many sub-environments at once with array indexing. Both read the same numbers in
the same order, so a batched env reproduces single envs exactly while drawing in vectorised form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding

from fwmrl.envs._validation import EnvStateError, state_array, state_entry

BLOCK = 128
"""How many uniforms a stream draws from its generator at a time."""

_MASK64 = (1 << 64) - 1


def generator_state(rng: np.random.Generator) -> np.ndarray:
    """The state of a PCG64 generator (Gymnasium's ``np_random``) as an int64 array of 6 words.

    The words are the 128-bit state and increment (high and low 64 bits each, stored bit for bit)
    and the buffered 32-bit half (``has_uint32``, ``uinteger``): plain data that
    :func:`generator_from_state` turns back into a generator continuing the same stream.
    """
    state = rng.bit_generator.state
    if state.get("bit_generator") != "PCG64":
        raise EnvStateError(f"only PCG64 generators can be saved, got {state.get('bit_generator')}")
    value, inc = int(state["state"]["state"]), int(state["state"]["inc"])
    words = [value >> 64, value & _MASK64, inc >> 64, inc & _MASK64]
    words += [int(state["has_uint32"]), int(state["uinteger"])]
    return np.array(words, dtype=np.uint64).view(np.int64)


def generator_from_state(words: Any, name: str = "rng") -> np.random.Generator:
    """The generator :func:`generator_state` saved (raises :class:`EnvStateError` naming ``name``)."""
    w = [int(x) for x in state_array(name, words, np.int64, (6,)).view(np.uint64)]
    if w[4] not in (0, 1) or w[5] > 0xFFFFFFFF:
        raise EnvStateError(f"{name}: not a saved PCG64 state (bad buffered half {w[4:]})")
    bit_generator = np.random.PCG64()
    try:
        bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
            "has_uint32": w[4],
            "uinteger": w[5],
        }
    except (ValueError, TypeError) as error:
        raise EnvStateError(f"{name}: not a saved PCG64 state ({error})") from None
    return np.random.Generator(bit_generator)


def randint_below(u: float, n: int) -> int:
    """Map a uniform ``u`` in ``[0, 1)`` to an integer in ``[0, n)``."""
    return int(u * n)


class UniformStream:
    """The uniform stream of one environment, read one number at a time.

    Parameters
    ----------
    rng
        the generator the blocks are drawn from (the env's ``np_random``).
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

    def state_dict(self) -> dict[str, np.ndarray]:
        """The generator's state, the buffered block and the read position, as arrays."""
        return {
            "rng": generator_state(self.rng),
            "buf": self._buf.copy(),
            "pos": np.array(self._pos, dtype=np.int64),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], prefix: str = "stream") -> UniformStream:
        """The stream :meth:`state_dict` saved (a new generator in the saved state)."""
        stream = cls(generator_from_state(state_entry(state, "rng", f"{prefix}."), f"{prefix}.rng"))
        stream._buf = state_array(
            f"{prefix}.buf", state_entry(state, "buf", f"{prefix}."), np.float64, (BLOCK,)
        )
        pos = state_array(
            f"{prefix}.pos", state_entry(state, "pos", f"{prefix}."), np.int64, (), 0, BLOCK
        )
        stream._pos = int(pos)
        return stream


class UniformStreams:
    """The uniform streams of ``num_envs`` environments, read for many environments at once.

    Parameters
    ----------
    num_envs
        number of streams.
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

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every stream's generator state (zeros where none exists yet), block and position."""
        n = self.num_envs
        words = np.zeros((n, 6), dtype=np.int64)
        for i, rng in enumerate(self.rngs):
            if rng is not None:
                words[i] = generator_state(rng)
        return {
            "rngs": words,
            "has_rng": np.array([rng is not None for rng in self.rngs], dtype=bool),
            "buf": self._buf.copy(),
            "pos": self._pos.copy(),
        }

    def load_state_dict(self, state: Mapping[str, Any], prefix: str = "streams") -> None:
        """Restore :meth:`state_dict` (raises :class:`EnvStateError` naming a bad entry)."""
        n = self.num_envs
        words = state_array(
            f"{prefix}.rngs", state_entry(state, "rngs", f"{prefix}."), np.int64, (n, 6)
        )
        has = state_array(
            f"{prefix}.has_rng", state_entry(state, "has_rng", f"{prefix}."), np.bool_, (n,)
        )
        buf = state_array(
            f"{prefix}.buf", state_entry(state, "buf", f"{prefix}."), np.float64, (n, BLOCK)
        )
        pos = state_array(
            f"{prefix}.pos", state_entry(state, "pos", f"{prefix}."), np.int64, (n,), 0, BLOCK
        )
        rngs = [
            generator_from_state(words[i], f"{prefix}.rngs[{i}]") if has[i] else None
            for i in range(n)
        ]
        self.rngs, self._buf, self._pos = rngs, buf, pos


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
