"""Which job runs a config: one :class:`fwmrl.jobloop.Job` adapter per ``task.kind``.

The layer above the trainers (below :mod:`fwmrl.sweep`, :mod:`fwmrl.api` and :mod:`fwmrl.cli`):
``train_run(config, run_dir)`` builds the adapter of ``config.task.kind`` and runs it through the
one job loop (:func:`fwmrl.jobloop.run_job`). The adapters are imported when a run starts, so
importing this module stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fwmrl.config import Config
from fwmrl.jobloop import Job, run_job


def _rl_job(config: Config) -> Job:
    from fwmrl.agents.job import RLJob

    return RLJob(config)


def _task_job(config: Config) -> Job:
    from fwmrl.tasks.job import TaskJob

    return TaskJob(config)


JOBS: dict[str, Callable[[Config], Job]] = {
    "rl": _rl_job,
    "retrieval": _task_job,
    "catbabi": _task_job,
    "lm": _task_job,
}
"""``task.kind`` -> the factory of its job: A2C/PPO (``rl``) or the supervised/LM trainer."""


def train_run(
    config: Config,
    run_dir: str | Path,
    resume: bool = False,
    on_log: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue training) the run in ``run_dir`` until ``train.total_steps``.

    ``task.kind: rl`` trains A2C or PPO (``algo.name``; ``total_steps`` counts env steps); the
    other kinds train the supervised/LM trainer (``total_steps`` counts optimizer steps). What is
    checked, written and returned is :func:`fwmrl.jobloop.run_job`'s; ``on_log(record)`` is called
    with every record written to ``metrics.jsonl`` (e.g. to report it to Ray Tune).

    Under ``torchrun`` (:mod:`fwmrl.distributed`) every rank trains its share of ``env.num_envs``
    (RL) or of the batch (supervised/LM); rank 0 alone checks the run directory, holds the lock,
    writes, logs, evaluates and calls ``on_log``.

    Raises
    ------
    NonFiniteLossError:
        when the loss, the parameters or the policy's outputs become NaN/inf
        (the last checkpoint, whose weights are finite and act, is kept).
    RunError:
        a second writer, a damaged or mismatching checkpoint or run file (one line).
    ConfigError:
        a config that cannot run here (env, eval env, data, device).

    Returns
    -------
    A summary: ``run_dir``, ``update``, ``eval`` and the job's fields (RL: ``env_steps`` and
    the training episode stats).
    """
    return run_job(JOBS[config.task.kind], config, run_dir, resume=resume, on_log=on_log)
