"""Run directories, metrics logging, atomic checkpoints, and the training job around :class:`A2C`.

A run directory holds::

    config.yaml        the resolved config (what ``--resume`` reads back)
    meta.json          package versions, command line, start times
    metrics.jsonl      one JSON object per logged update (env_steps, returns, losses, ...)
    tb/                TensorBoard event files (``logging.tensorboard``)
    wandb/             wandb files (``logging.wandb: offline|online``)
    checkpoint.pt      the latest checkpoint, replaced atomically (``torch.load(weights_only=True)``)
    eval.json          the final evaluation; curves.png and eval.gif when training ends
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import fwmrl
from fwmrl.config import Config, config_from_dict, read_yaml, save_config
from fwmrl.errors import RunError
from fwmrl.threads import set_threads

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"


def new_run_dir(config_path: str | Path | None, base: str | Path = "runs") -> Path:
    """``runs/<config name>-<YYYYmmdd-HHMMSS>`` (a suffix is added if it exists)."""
    return stamped_dir(Path(config_path).stem if config_path else "default", base)


def stamped_dir(name: str, base: str | Path) -> Path:
    """``base/<name>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3`` … added while it exists."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"{name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(base) / f"{name}-{stamp}-{suffix}"
    return path


def atomic_torch_save(data: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``: a crash
    leaves either the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The resolved config of a run, with optional dotted overrides."""
    from fwmrl.config import apply_overrides

    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run directory (no {CONFIG})")
    return config_from_dict(apply_overrides(read_yaml(path), list(overrides or [])))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of ``metrics.jsonl`` (an empty list when there are none)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut by a crash
            records.append(json.loads(line))
    return records


def _truncate_metrics(run_dir: Path, update: int) -> None:
    """Drop records logged after the checkpoint we resume from (they will be logged again)."""
    kept = [r for r in read_metrics(run_dir) if r.get("update", 0) <= update]
    atomic_write_text(run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in kept))


class RunLogger:
    """Writes metrics to ``metrics.jsonl``, TensorBoard and wandb (each optional but the first).

    wandb runs in ``offline`` mode unless the config asks for ``online``; it needs no account, and a
    wandb failure only warns.

    Args:
        run_dir: the run directory.
        config: the resolved config.
        resume_update: when resuming, the update of the checkpoint (later TensorBoard events are
            purged).
    """

    def __init__(self, run_dir: Path, config: Config, resume_update: int | None = None) -> None:
        self.run_dir = run_dir
        self._jsonl = open(run_dir / METRICS, "a")  # noqa: SIM115 (closed in close())
        self._tb = None
        self._wandb = None
        if config.logging.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=resume_update)
        if config.logging.wandb != "disabled":
            self._wandb = self._init_wandb(config)

    def _init_wandb(self, config: Config) -> Any:
        os.environ.setdefault("WANDB_SILENT", "true")
        id_file = self.run_dir / "wandb_id.txt"
        try:
            import wandb

            run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:8]
            id_file.write_text(run_id)
            (self.run_dir / "wandb").mkdir(exist_ok=True)
            return wandb.init(
                project=config.logging.wandb_project,
                name=self.run_dir.name,
                id=run_id,
                resume="allow",
                dir=str(self.run_dir),
                mode=config.logging.wandb,
                config=config.to_dict(),
            )
        except Exception as error:  # wandb must never stop a run
            warnings.warn(f"wandb disabled: {error}", stacklevel=2)
            return None

    def log(self, metrics: dict[str, float]) -> None:
        """Log one record (``metrics`` must contain ``env_steps``)."""
        record = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in metrics.items()
        }
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        step = int(metrics["env_steps"])
        if self._tb is not None:
            for key, value in metrics.items():
                if key not in ("env_steps",) and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            with contextlib.suppress(Exception):
                self._wandb.log(metrics, step=step)

    def close(self) -> None:
        """Flush and close every sink."""
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            with contextlib.suppress(Exception):
                self._wandb.finish()


def _write_meta(run_dir: Path, resumed: bool) -> None:
    path = run_dir / "meta.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    now = dt.datetime.now().isoformat(timespec="seconds")
    meta.setdefault("started", now)
    if resumed:
        meta.setdefault("resumed", []).append(now)
    import gymnasium

    meta.update(
        fwmrl_version=fwmrl.__version__,
        torch_version=torch.__version__,
        gymnasium_version=gymnasium.__version__,
        python_version=platform.python_version(),
        command=" ".join(sys.argv),
    )
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


def train_run(
    config: Config,
    run_dir: str | Path,
    resume: bool = False,
    on_log: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue training) the run in ``run_dir`` until ``train.total_steps``.

    A config with ``task.kind`` other than ``rl`` runs :func:`fwmrl.tasks.trainer.train_task_run`
    instead (same run directory layout; ``total_steps`` counts optimizer steps).

    Writes the config, metrics, checkpoints every ``train.checkpoint_every`` updates and at the end,
    a final evaluation (``eval.json``) and, if asked, ``curves.png`` and ``eval.gif``.

    ``on_log(record)`` is called with every record written to ``metrics.jsonl`` (e.g. to report it
    to Ray Tune; the supervised/LM trainers call it too).

    Raises:
        NonFiniteLossError: when the loss becomes NaN/inf (the last good checkpoint is kept).

    Returns:
        A summary: ``run_dir``, ``update``, ``env_steps``, training episode stats and ``eval``.
    """
    if config.task.kind != "rl":  # supervised / language-modelling trainers (fwmrl.tasks)
        from fwmrl.tasks.trainer import train_task_run

        return train_task_run(config, run_dir, resume=resume, on_log=on_log)

    from tqdm import tqdm

    from fwmrl.agents.a2c import A2C
    from fwmrl.agents.evaluation import evaluate

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    set_threads(config.train.num_threads)
    agent = A2C(config)
    resume_update = None
    if resume:
        data = load_checkpoint(run_dir / CHECKPOINT, map_location=agent.device)
        if not agent.load_state_dict(data):
            warnings.warn(
                "the env state could not be restored from the checkpoint; the envs were reset",
                stacklevel=2,
            )
        resume_update = agent.update
        _truncate_metrics(run_dir, agent.update)
    save_config(config, run_dir / CONFIG)
    _write_meta(run_dir, resumed=resume)
    logger = RunLogger(run_dir, config, resume_update)
    train, log_every = config.train, config.logging.log_every
    progress = tqdm(
        total=train.total_steps,
        initial=min(agent.env_steps, train.total_steps),
        unit="step",
        unit_scale=True,
        dynamic_ncols=True,
        disable=not train.progress,
        desc=run_dir.name,
    )
    sums: dict[str, float] = {}
    count = 0
    last_time, last_steps = time.perf_counter(), agent.env_steps
    start_time = time.perf_counter()

    def checkpoint() -> None:
        atomic_torch_save(agent.state_dict(), run_dir / CHECKPOINT)

    def run_eval() -> dict[str, float]:
        return evaluate(agent.policy, config, train.eval_episodes, seed=train.seed + 10_000)

    try:
        while agent.env_steps < train.total_steps:
            steps_before = agent.env_steps
            metrics = agent.learn_update()
            progress.update(
                min(agent.env_steps, train.total_steps) - min(steps_before, train.total_steps)
            )
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
            done = agent.env_steps >= train.total_steps
            if agent.update % log_every == 0 or done:
                now = time.perf_counter()
                record: dict[str, Any] = {
                    "update": agent.update,
                    "env_steps": agent.env_steps,
                    "time_s": round(now - start_time, 3),
                    "steps_per_s": (agent.env_steps - last_steps) / max(now - last_time, 1e-9),
                    "episodes": agent.episodes,
                    **agent.episode_stats(),
                    **{k: v / count for k, v in sums.items()},
                }
                if (train.eval_every and agent.update % train.eval_every == 0) or done:
                    record.update({f"eval_{k}": v for k, v in run_eval().items()})
                logger.log(record)
                if on_log is not None:
                    on_log(record)
                sums, count = {}, 0
                last_time, last_steps = now, agent.env_steps
                postfix = {"upd": agent.update}
                if "episode_return_mean" in record:
                    postfix["return"] = f"{record['episode_return_mean']:.2f}"
                progress.set_postfix(postfix)
            elif train.eval_every and agent.update % train.eval_every == 0:
                stats = {f"eval_{k}": v for k, v in run_eval().items()}
                record = {"update": agent.update, "env_steps": agent.env_steps, **stats}
                logger.log(record)
                if on_log is not None:
                    on_log(record)
            if agent.update % train.checkpoint_every == 0 or done:
                checkpoint()
    finally:
        progress.close()
        logger.close()
        agent.close()
    final = read_metrics(run_dir)[-1] if read_metrics(run_dir) else {}
    evaluation = {k[5:]: v for k, v in final.items() if k.startswith("eval_")}
    if not evaluation:  # resumed a finished run: nothing new was logged
        evaluation = run_eval()
    atomic_write_text(run_dir / "eval.json", json.dumps(evaluation, indent=2) + "\n")
    summary = {
        "run_dir": str(run_dir),
        "update": agent.update,
        "env_steps": agent.env_steps,
        **agent.episode_stats(),
        "eval": evaluation,
    }
    if train.plot_at_end:
        from fwmrl.plots import plot_runs

        with _warn_on_error("curves.png"):
            plot_runs([run_dir], run_dir / "curves.png")
            summary["curves"] = str(run_dir / "curves.png")
    if train.gif_at_end:
        from fwmrl.agents.evaluation import record_gif

        with _warn_on_error("eval.gif"):
            record_gif(agent.policy, config, run_dir / "eval.gif", seed=train.seed)
            summary["gif"] = str(run_dir / "eval.gif")
    return summary


@contextlib.contextmanager
def _warn_on_error(what: str):  # noqa: ANN202
    try:
        yield
    except Exception as error:  # a figure must not fail a finished run
        warnings.warn(f"could not write {what}: {error}", stacklevel=3)


def load_policy(run_dir: str | Path, config: Config | None = None) -> Any:
    """The :class:`~fwmrl.agents.policy.MemoryActorCritic` of a run's last checkpoint (CPU, eval)."""
    from fwmrl.agents.a2c import make_eval_env
    from fwmrl.agents.policy import MemoryActorCritic

    config = config or load_run_config(run_dir)
    data = load_checkpoint(Path(run_dir) / CHECKPOINT)
    in_process = config.env.model_copy(update={"vectorization": "auto"})  # no worker for spaces
    env = make_eval_env(config.model_copy(update={"env": in_process}), 1)
    try:
        policy = MemoryActorCritic(
            env.single_observation_space,
            env.single_action_space,
            core=config.core.name,
            core_kwargs=config.core.kwargs,
            encoder_sizes=config.policy.encoder_sizes,
            activation=config.policy.activation,
        )
    finally:
        env.close()
    policy.load_state_dict(data["policy"])
    return policy.eval()
