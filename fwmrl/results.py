"""A run's evaluation history as a small CSV for the repository (``docs/results/``).

``fwmrl export RUN_DIR -o docs/results/<experiment>/<run>.csv`` writes one row per evaluation with
the columns :data:`COLUMNS` and copies the run's ``config.yaml`` beside it (``<run>.yaml``), so that
results survive the machine: run directories (checkpoints, TensorBoard files) stay out of git.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

from fwmrl.errors import RunError

COLUMNS = (
    "update",
    "env_steps",
    "eval_return_mean",
    "eval_return_std",
    "train_return_mean",
    "time_s",
    "cpu_time_s",
)
"""CSV columns; ``train_return_mean`` is the training episodes' mean return logged nearest before the
evaluation (empty when none was logged), ``time_s``/``cpu_time_s`` the run's wall and CPU seconds."""


def evaluation_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per record that holds an evaluation, in :data:`COLUMNS` order."""
    rows = []
    train_return = None
    for record in records:
        if record.get("episode_return_mean") is not None:
            train_return = record["episode_return_mean"]
        if record.get("eval_return_mean") is None:
            continue
        rows.append(
            {
                "update": record.get("update"),
                "env_steps": record.get("env_steps"),
                "eval_return_mean": record["eval_return_mean"],
                "eval_return_std": record.get("eval_return_std"),
                "train_return_mean": train_return,
                "time_s": record.get("time_s"),
                "cpu_time_s": record.get("cpu_time_s"),
            }
        )
    return rows


def export_run(run_dir: str | Path, out: str | Path) -> Path:
    """Write ``out`` (CSV of the run's evaluations) and ``out`` with suffix ``.yaml`` (the run's
    config). Returns the CSV path.

    Raises
    ------
    RunError:
        the folder is not a run, or the run logged no evaluation yet.
    """
    from fwmrl.rundir import CONFIG, read_metrics

    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / CONFIG).is_file():
        raise RunError(f"{run_dir} is not a run directory (no {CONFIG})")
    rows = evaluation_rows(read_metrics(run_dir))
    if not rows:
        raise RunError(f"{run_dir}: no evaluation logged yet (train.eval_every sets how often)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    shutil.copyfile(run_dir / CONFIG, out.with_suffix(".yaml"))
    return out
