"""fwmrl: meta-reinforcement learning with fast-weight memory."""

__version__ = "0.1.0"
from fwmrl import envs as envs  # noqa: E402, F401  (registers the FWM-* Gymnasium ids)
