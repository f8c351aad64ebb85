"""The errors that the ``fwmrl`` command reports as one line (exit status 2, or 1 for a stopped run).

They live in this dependency-free module so that the command line can name them without importing
torch (``fwmrl --help`` stays fast); :mod:`fwmrl.config`, :mod:`fwmrl.rundir` and :mod:`fwmrl.sweep`
re-export them, and both trainers (A2C, the supervised trainer) raise :class:`NonFiniteLossError`.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and what is allowed."""


class RunError(RuntimeError):
    """A run directory that cannot be used (missing files, nothing to resume)."""


class SweepError(RuntimeError):
    """A sweep that cannot run (Ray missing, every trial failed)."""


class NonFiniteLossError(RuntimeError):
    """Training stopped: the loss, the gradient norm, the parameters or the policy's outputs became
    NaN or infinite (the last good checkpoint is kept; the command exits with status 1)."""
