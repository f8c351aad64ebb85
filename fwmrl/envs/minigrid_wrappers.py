"""Observation wrappers that turn MiniGrid's Dict observations into flat float vectors."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fwmrl.envs._validation import check_bool

N_DIRECTIONS = 4


class FlatMiniGridObs(gym.ObservationWrapper[np.ndarray, Any, dict[str, Any]]):
    """Flatten a MiniGrid observation into a float32 vector a policy can take.

    The ``image`` (``view x view x 3``: object, colour and state indices) is either scaled to
    ``[0, 1]`` channel by channel (divided by the largest index of each channel), or one-hot encoded
    per channel with ``one_hot=True``; the agent's ``direction`` is appended one-hot. The
    ``mission`` string is dropped (it is constant in the ``MiniGrid-Memory*`` envs).

    Works with any env whose observation is a Dict with an ``image`` Box and a ``direction``, such as
    ``MiniGrid-MemoryS7-v0`` ... ``MiniGrid-MemoryS17Random-v0``.

    Parameters
    ----------
    env
        a MiniGrid env.
    one_hot
        one-hot encode the image channels instead of scaling them.
    """

    def __init__(self, env: gym.Env, one_hot: bool = False) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or "image" not in space.spaces:
            raise ValueError(f"env must have a Dict observation space with an 'image', got {space}")
        self.one_hot = check_bool("one_hot", one_hot)
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

        self._sizes = np.array(
            [max(OBJECT_TO_IDX.values()), max(COLOR_TO_IDX.values()), max(STATE_TO_IDX.values())]
        )
        self._image_shape = space["image"].shape
        n_cells = self._image_shape[0] * self._image_shape[1]
        size = n_cells * (int((self._sizes + 1).sum()) if one_hot else 3) + N_DIRECTIONS
        self.observation_space = spaces.Box(0.0, 1.0, shape=(size,), dtype=np.float32)
        self._offsets = np.concatenate([[0], np.cumsum(self._sizes + 1)[:-1]])
        self._scale = (1.0 / self._sizes).astype(np.float32)

    def observation(self, observation: dict[str, Any]) -> np.ndarray:
        """Flatten one MiniGrid observation."""
        image = np.asarray(observation["image"])
        if self.one_hot:
            cells = image.reshape(-1, 3)
            width = int((self._sizes + 1).sum())
            flat = np.zeros((cells.shape[0], width), dtype=np.float32)
            flat[np.arange(cells.shape[0])[:, None], cells + self._offsets] = 1.0
            flat = flat.ravel()
        else:
            flat = (image.astype(np.float32) * self._scale).ravel()
        direction = np.zeros(N_DIRECTIONS, dtype=np.float32)
        direction[int(observation["direction"])] = 1.0
        return np.concatenate([flat, direction])
