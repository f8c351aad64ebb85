"""fwmrl: meta-reinforcement learning with fast-weight memory."""

__version__ = "0.1.0"
