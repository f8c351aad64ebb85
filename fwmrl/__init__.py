"""fwmrl: meta-reinforcement learning with fast-weight memory.

``from fwmrl import A2C, PPO`` gives the trainers in Stable-Baselines3's shape (:mod:`fwmrl.api`);
they are imported on first use, so ``import fwmrl`` (which registers the ``FWM-*`` Gymnasium ids)
does not load torch.
"""

from typing import Any

from fwmrl import envs as envs  # noqa: E402, F401  (registers the FWM-* Gymnasium ids)
from fwmrl.version import __version__ as __version__

_LAZY = {"A2C", "PPO"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from fwmrl import api

        return getattr(api, name)
    raise AttributeError(f"module 'fwmrl' has no attribute {name!r}")
