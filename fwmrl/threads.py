"""The torch thread count that fwmrl chooses when it builds a model.

fwmrl's models are small (10k–600k parameters, batches of tens to hundreds): torch's intra-op
threads cost more in synchronisation than they gain on such products, and on a busy machine the
second thread waits for a core. One thread was 10–20× faster than torch's default on the 2-core
development machine for the examples (README, "Threads"). So every model fwmrl builds
(:class:`~fwmrl.agents.policy.MemoryActorCritic`, the SB3 ``MemoryPolicy``, the supervised
``SequenceModel``) calls :func:`apply_default_threads`, which

- sets ``FWMRL_NUM_THREADS`` threads when that variable holds a positive integer
  (``FWMRL_NUM_THREADS=0`` leaves torch's own choice alone);
- otherwise leaves torch alone if ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set, the program
  already changed the count with ``torch.set_num_threads``, or it called :func:`set_threads`;
- otherwise sets one thread.

The ``fwmrl`` command calls :func:`set_threads` with ``train.num_threads`` (default 1; ``null``
keeps torch's own count).
"""

from __future__ import annotations

import os

import torch

ENV_VAR = "FWMRL_NUM_THREADS"
DEFAULT_THREADS = 1
_chosen = False  # set_threads was called: the count is the caller's


def set_threads(threads: int | None) -> None:
    """Use ``threads`` torch threads (``None``: torch's own count) for the rest of the process;
    :func:`apply_default_threads` changes nothing afterwards."""
    global _chosen
    _chosen = True
    if threads is not None:
        torch.set_num_threads(threads)


def _torch_default() -> int:
    """The count torch starts with: one thread per CPU this process may run on (OpenMP's rule).
    Where torch starts with fewer, fwmrl leaves that count alone."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int | None:
    """The thread count :func:`apply_default_threads` would set (``None``: leave torch alone).

    Raises
    ------
    ValueError
        when ``FWMRL_NUM_THREADS`` is not a non-negative integer.
    """
    if _chosen:
        return None
    value = os.environ.get(ENV_VAR, "").strip()
    if value:
        if not value.isdigit():
            raise ValueError(f"{ENV_VAR}={value!r}: give a number of threads, or 0 for torch's own")
        return int(value) or None
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return None
    if torch.get_num_threads() != _torch_default():  # the program chose a count
        return None
    return DEFAULT_THREADS


def apply_default_threads() -> int:
    """Set torch's intra-op thread count as described in this module; returns the count in use."""
    threads = default_threads()
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
