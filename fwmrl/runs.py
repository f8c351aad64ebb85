"""The old import path of the run-directory services and the training job.

``fwmrl.runs`` was split (issue 14): the services (run directories, the lock, metrics, checkpoints,
resume checks) are :mod:`fwmrl.rundir`, the one job loop is :mod:`fwmrl.jobloop`, ``train_run`` is
:func:`fwmrl.jobs.train_run` and ``load_policy`` is :func:`fwmrl.agents.job.load_policy`. This
module re-exports their public names for scripts written against the old path; nothing in the
package imports it (it sits on top, beside the CLI).
"""

from __future__ import annotations

from fwmrl.agents.job import check_eval_env, load_policy
from fwmrl.jobs import train_run
from fwmrl.rundir import (
    CHECKPOINT,
    CONFIG,
    LOCK,
    META,
    METRICS,
    RESUME_OVERRIDES,
    TB,
    TRUSTED_ENV_MODULES,
    RunLock,
    RunLogger,
    RunNote,
    atomic_torch_save,
    check_env_id_trusted,
    checkpoint_config,
    config_diff,
    load_checkpoint,
    load_run_config,
    new_run_dir,
    read_metrics,
    resume_config,
    stamped_dir,
    verify_checkpoint,
)

__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "LOCK",
    "META",
    "METRICS",
    "RESUME_OVERRIDES",
    "TB",
    "TRUSTED_ENV_MODULES",
    "RunLock",
    "RunLogger",
    "RunNote",
    "atomic_torch_save",
    "check_env_id_trusted",
    "check_eval_env",
    "checkpoint_config",
    "config_diff",
    "load_checkpoint",
    "load_policy",
    "load_run_config",
    "new_run_dir",
    "read_metrics",
    "resume_config",
    "stamped_dir",
    "train_run",
    "verify_checkpoint",
]
