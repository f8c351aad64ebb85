"""Run directories: file layout, the one-writer lock, metrics, CRC-verified checkpoints, resume checks.

A service below the trainers: it imports only the config layer, torch and the standard library, and
knows nothing of what a run trains (:mod:`fwmrl.jobloop` drives the trainers; :mod:`fwmrl.jobs`
picks the job of a config). A run directory holds::

    config.yaml        the resolved config, written atomically (the checkpoint's copy is the truth)
    meta.json          package versions and command line of the first start, one record per resume
    metrics.jsonl      one JSON object per logged update (env_steps, returns, losses, ...)
    tb/                TensorBoard event files (``logging.tensorboard``)
    wandb/             wandb files (``logging.wandb: offline|online``)
    checkpoint.pt      the latest checkpoint, replaced atomically (``torch.load(weights_only=True)``)
    best.pt            supervised/LM runs: the checkpoint of the best validation metric so far
    data.json          supervised/LM runs: the data the run read (paths, digests)
    eval.json          the final evaluation; curves.png and eval.gif when training ends
    .lock              held (``fcntl.flock``) by the one process writing the run

What a run directory guarantees (README, "Reliability"): one writer at a time (a second one is
refused in one line); nothing is written before the config, the envs (train and eval) and, on
resume, the checkpoint were validated; a checkpoint's zip CRCs are verified before it is loaded, and
it is loaded with ``weights_only=True`` and holds tensors and plain data only (no pickled objects);
on resume the checkpoint's config is the truth: config.yaml must agree with it, and an override is
applied (:data:`RESUME_OVERRIDES`) or refused naming the key; a damaged file is one line naming it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import math
import os
import platform
import sys
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from fwmrl.atomic import atomic_file, atomic_write_text
from fwmrl.config import Config, apply_overrides, config_from_dict, read_yaml
from fwmrl.errors import ConfigError, RunError
from fwmrl.version import __version__

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
META = "meta.json"
LOCK = ".lock"
TB = "tb"
EVAL = "eval.json"
BEST_CHECKPOINT = "best.pt"
"""The checkpoint of the best validation headline metric so far (format of ``checkpoint.pt``)."""

RESUME_OVERRIDES: dict[str, str] = {
    "train.total_steps": "the new budget",
    "train.checkpoint_every": "from the next update on",
    "train.eval_every": "from the next update on",
    "train.eval_episodes": "from the next evaluation on",
    "train.progress": "",
    "train.plot_at_end": "",
    "train.gif_at_end": "",
    "train.num_threads": "",
    "train.device": "the checkpoint is mapped onto it",
    "logging.log_every": "from the next update on",
    "logging.tensorboard": "",
    "logging.wandb": "",
    "logging.wandb_project": "",
    "algo.lr": "set in the restored optimizer's parameter groups",
    "algo.eps": "set in the restored optimizer's parameter groups",
    "algo.ent_coef": "from the next update on",
    "algo.vf_coef": "from the next update on",
    "algo.max_grad_norm": "from the next update on",
    "algo.gamma": "from the next update on",
    "algo.gae_lambda": "from the next update on",
    "algo.normalize_advantage": "from the next update on",
    "algo.bootstrap_truncated": "from the next update on",
    "algo.max_episode_steps": "from the next rollout on",
    "algo.n_epochs": "from the next update on",
    "algo.clip_range": "from the next update on",
    "algo.clip_range_vf": "from the next update on",
    "algo.target_kl": "from the next update on",
}
"""Config keys a resume may change, and how each takes effect; any other change is refused. For
supervised/LM runs (``task.kind`` other than ``rl``) only the ``train.*`` and ``logging.*`` keys
apply."""

TRUSTED_ENV_MODULES = "FWMRL_TRUSTED_ENV_MODULES"
"""Environment variable: comma-separated modules an ``env.id`` of the form ``module:Env-v0`` read
from a run directory may import (``fwmrl`` and its submodules always may)."""


class RunNote(UserWarning):
    """A one-line note about a run: a resume that is not bit-identical, nothing left to train, an
    evaluation episode cut at its step cap."""


def note(message: str) -> None:
    """Warn with a :class:`RunNote` (the CLI prints it as one ``fwmrl: note:`` line)."""
    warnings.warn(message, RunNote, stacklevel=3)


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


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
    """``torch.save`` that replaces ``path`` whole or not at all (:func:`fwmrl.atomic.atomic_file`)."""
    with atomic_file(path, "wb") as f:
        torch.save(data, f)


def verify_checkpoint(path: str | Path) -> None:
    """Check that ``path`` is a complete, undamaged torch checkpoint before anything reads it: a
    non-empty zip archive whose every member matches its CRC-32 (flipped bytes inside a tensor are
    caught here; ``torch.load`` itself never checks them).

    Raises
    ------
    RunError:
        one line naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise RunError(f"{path}: empty file, not a checkpoint (an interrupted copy?)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        raise RunError(
            f"{path}: not a torch checkpoint (no complete zip archive: truncated, damaged or "
            "a foreign file)"
        ) from None
    except Exception as error:  # noqa: BLE001 (zlib/struct errors of a damaged member)
        raise RunError(f"{path}: damaged checkpoint ({first_line(error)})") from None
    if bad is not None:
        raise RunError(f"{path}: damaged checkpoint: member {bad} fails its CRC check")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify (:func:`verify_checkpoint`) and load a checkpoint with ``torch.load(weights_only=True)``.

    Raises
    ------
    RunError:
        one line naming the file: missing, empty, truncated, damaged, not loadable
        without unpickling objects, or not a dict with the entries every fwmrl checkpoint has.
    """
    path = Path(path)
    verify_checkpoint(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 (UnpicklingError, RuntimeError, ...)
        raise RunError(f"{path}: cannot be loaded as a checkpoint: {first_line(error)}") from None
    if not isinstance(data, dict):
        raise RunError(f"{path}: not an fwmrl checkpoint (holds a {type(data).__name__})")
    missing = [k for k in ("update", "config") if k not in data]
    if missing or not isinstance(data["config"], dict):
        raise RunError(f"{path}: not an fwmrl checkpoint (no {' or '.join(missing or ['config'])})")
    return data


def checkpoint_config(data: dict[str, Any], path: str | Path) -> Config:
    """The config stored in a loaded checkpoint (:class:`RunError` naming the file if invalid)."""
    try:
        return config_from_dict(data["config"])
    except ConfigError as error:
        raise RunError(f"{path}: the checkpoint's config is not valid: {error}") from None


def save_progress(path: str | Path, state: dict[str, Any], config: Config, progress: dict) -> None:
    """A benchmark script's resumable run in one file (replaced whole or not at all): a trainer's
    ``state_dict()``, the run's ``config`` and the script's own ``progress`` (plain data: clocks,
    the next evaluation, the curve so far). :func:`load_progress` reads it back."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({**state, "config": config.to_dict(), "progress": progress}, path)


def load_progress(path: str | Path, config: Config) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, progress)`` of :func:`save_progress`'s file (verified, never unpickled).

    Raises
    ------
    RunError
        one line naming the file: damaged, not written by :func:`save_progress`, or written by a
        run of another config (the differing keys named).
    """
    data = load_checkpoint(path)
    if "progress" not in data:
        raise RunError(f"{path}: not a benchmark checkpoint (no progress entry)")
    diff = config_diff(checkpoint_config(data, path), config)
    if diff:
        raise RunError(
            f"{path}: written by a run with other settings: "
            f"{_describe_diff(diff, ('saved', 'now'))}; give the same config and overrides, or "
            "another checkpoint directory"
        )
    return data, data["progress"]


def check_env_id_trusted(config: Config, source: str | Path) -> None:
    """Refuse an ``env.id`` of the form ``module:Env-v0`` read from a run directory (``source``)
    unless the module is fwmrl's or listed in ``$FWMRL_TRUSTED_ENV_MODULES``: Gymnasium imports that
    module, so a crafted run directory could run code through it."""
    env_id = config.env.id
    if ":" not in env_id:
        return
    module = env_id.split(":", 1)[0]
    trusted = {m.strip() for m in os.environ.get(TRUSTED_ENV_MODULES, "").split(",") if m.strip()}
    if module == "fwmrl" or module.startswith("fwmrl.") or module in trusted:
        return
    raise RunError(
        f"{source}: env.id {env_id!r} would import the module {module!r}; a run directory is data, "
        f"not code: set {TRUSTED_ENV_MODULES}={module} if you trust it"
    )


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


_UNSET = "<unset>"


def config_diff(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two configs -> ``(old value, new value)``."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    keys = sorted(set(a) | set(b))
    return {
        k: (a.get(k, _UNSET), b.get(k, _UNSET))
        for k in keys
        if a.get(k, _UNSET) != b.get(k, _UNSET)
    }


def _describe_diff(
    diff: dict[str, tuple[Any, Any]], labels: tuple[str, str], limit: int = 4
) -> str:
    items = [f"{k} ({labels[0]} {a!r}, {labels[1]} {b!r})" for k, (a, b) in diff.items()]
    more = f" and {len(items) - limit} more keys" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _resumable(key: str, config: Config) -> bool:
    if config.task.kind != "rl":
        return key in RESUME_OVERRIDES and key.startswith(("train.", "logging."))
    return key in RESUME_OVERRIDES


def _read_config_file(path: Path) -> Config:
    """config.yaml as a Config, or a :class:`RunError` saying it is damaged."""
    try:
        if not path.read_text().strip():
            raise ConfigError("the file is empty")
        return config_from_dict(read_yaml(path))
    except ConfigError as error:
        raise RunError(
            f"{path} is damaged ({error}); the checkpoint's config is the truth: delete "
            f"{path} to have it rewritten from the checkpoint"
        ) from None


def _check_config_file(run_dir: Path, saved: Config, requested: Config | None = None) -> None:
    """config.yaml, where present, must resolve to the checkpoint's config (or to the config this
    resume asks for, which an interrupted earlier resume may already have written)."""
    path = run_dir / CONFIG
    if not path.exists() and not path.is_symlink():
        return
    on_disk = _read_config_file(path)
    if not config_diff(saved, on_disk) or (requested and not config_diff(requested, on_disk)):
        return
    diff = config_diff(saved, on_disk)
    raise RunError(
        f"{path} differs from the checkpoint's config in {_describe_diff(diff, ('checkpoint', 'file'))}; "
        "the checkpoint is the truth: pass changes as KEY=VALUE overrides when resuming, or delete "
        f"{path} to have it rewritten from the checkpoint"
    )


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The config ``fwmrl train --resume RUN_DIR [KEY=VALUE ...]`` continues with: the checkpoint's
    config (the truth) with the overrides applied. Nothing is written.

    Raises
    ------
    RunError:
        no or a damaged checkpoint, a config.yaml that disagrees with it, an ``env.id``
        that would import an untrusted module, or an override of a key a resume cannot change
        (:data:`RESUME_OVERRIDES`).
    ConfigError:
        a bad override.
    """
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise RunError(f"cannot resume {run_dir}: no {CHECKPOINT} in it")
    data = load_checkpoint(path)
    saved = checkpoint_config(data, path)
    check_env_id_trusted(saved, path)
    config = config_from_dict(apply_overrides(saved.to_dict(), list(overrides or [])))
    check_resume(run_dir, saved, config)
    return config


def check_resume(run_dir: Path, saved: Config, config: Config) -> dict[str, tuple[Any, Any]]:
    """The overrides of a resume (checkpoint config -> ``config``), after checking that each is one
    a resume applies and that config.yaml agrees with the checkpoint."""
    diff = config_diff(saved, config)
    refused = {k: v for k, v in diff.items() if not _resumable(k, config)}
    if refused:
        allowed = sorted(k for k in RESUME_OVERRIDES if _resumable(k, config))
        raise RunError(
            f"cannot change {_describe_diff(refused, ('checkpoint', 'requested'))} when resuming "
            f"{run_dir}; a resume can change {', '.join(allowed)}; start a new run for anything else"
        )
    _check_config_file(run_dir, saved, config)
    return diff


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The resolved config of a run, with optional dotted overrides.

    The checkpoint's config is the truth: config.yaml must agree with it (a damaged or differing
    config.yaml is a :class:`RunError`), and a run without config.yaml uses the checkpoint's. An
    ``env.id`` that would import a module outside fwmrl is refused (:func:`check_env_id_trusted`).
    """
    run_dir = Path(run_dir)
    path, checkpoint = run_dir / CONFIG, run_dir / CHECKPOINT
    if checkpoint.is_file():
        data = load_checkpoint(checkpoint)
        config = checkpoint_config(data, checkpoint)
        _check_config_file(run_dir, config)
    elif path.is_file():
        config = _read_config_file(path)
    else:
        raise RunError(f"{run_dir} is not a run directory (no {CONFIG})")
    check_env_id_trusted(config, path if path.is_file() else checkpoint)
    return config_from_dict(apply_overrides(config.to_dict(), list(overrides or [])))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of ``metrics.jsonl`` (an empty list when there are none).

    A last line cut by a crash is skipped; any other line that is not a JSON object is a
    :class:`RunError` naming the file and the line.
    """
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a line cut by a crash
                continue
            raise RunError(f"{path}: line {number} is not valid JSON") from None
        if not isinstance(record, dict):
            raise RunError(f"{path}: line {number} is not a JSON object")
        records.append(record)
    return records


def truncate_metrics(run_dir: Path, update: int) -> None:
    """Drop records logged after the checkpoint we resume from (they will be logged again)."""
    kept = [r for r in read_metrics(run_dir) if r.get("update", 0) <= update]
    atomic_write_text(run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in kept))


class RunLogger:
    """Writes metrics to ``metrics.jsonl``, TensorBoard and wandb (each optional but the first).

    wandb runs in ``offline`` mode unless the config asks for ``online``; it needs no account, and a
    wandb failure only warns.

    Parameters
    ----------
    run_dir:
        the run directory.
    config:
        the resolved config.
    resume_update:
        when resuming, the update of the checkpoint (later TensorBoard events are
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


def read_meta(run_dir: Path) -> dict[str, Any]:
    """meta.json as a dict (empty when there is none); a damaged one is a :class:`RunError`."""
    path = run_dir / META
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: not valid JSON ({first_line(error)})") from None
    if not isinstance(meta, dict):
        raise RunError(f"{path}: not a JSON object")
    return meta


def code_revision() -> dict[str, Any]:
    """Where the running ``fwmrl`` package was imported from and, when that is a git checkout, its
    commit and whether ``fwmrl/`` had uncommitted changes (``None`` where git cannot tell): the
    version number alone does not say which code trained a run."""
    import subprocess

    package = Path(__file__).resolve().parent
    found: dict[str, Any] = {"fwmrl_path": str(package), "fwmrl_commit": None}

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(package.parent), *args],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if (package.parent / ".git").exists():
        found["fwmrl_commit"] = git("rev-parse", "HEAD")
        if found["fwmrl_commit"] is not None:
            status = git("status", "--porcelain", "--", str(package))
            found["fwmrl_uncommitted_changes"] = None if status is None else bool(status)
    return found


def _versions() -> dict[str, Any]:
    import gymnasium

    return {
        "fwmrl_version": __version__,
        **code_revision(),
        "torch_version": torch.__version__,
        "gymnasium_version": gymnasium.__version__,
        "python_version": platform.python_version(),
    }


def write_meta(run_dir: Path, resumed: bool, record: dict[str, Any] | None = None) -> None:
    """Write meta.json: the first start's versions and command line stay as they are; a resume
    appends ``{"at", "command", versions, **record}`` to ``resumes``."""
    meta = read_meta(run_dir) if resumed else {}
    now = dt.datetime.now().isoformat(timespec="seconds")
    command = " ".join(sys.argv)
    if resumed and meta:
        meta.setdefault("resumes", []).append(
            {"at": now, "command": command, **_versions(), **(record or {})}
        )
    else:
        meta = {**meta, "started": now, **_versions(), "command": command}
    atomic_write_text(run_dir / META, json.dumps(meta, indent=2) + "\n")


class RunLock:
    """The one-writer lock of a run directory: ``fcntl.flock`` on ``<run>/.lock`` (which holds the
    owner's pid), released when the process exits, however it exits.

    Raises
    ------
    RunError:
        from :meth:`acquire` when another process holds the lock.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (creating the folder and the lock file) or refuse in one line."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / LOCK
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as error:
            raise RunError(f"{path}: cannot open the run's lock file ({error.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunError(
                f"{self.run_dir} is in use by another fwmrl process (pid {owner}); a run directory "
                "has one writer: wait for it to finish or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (the lock file stays; removing it would race with a new owner)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        """Acquire the lock for the ``with`` block."""
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        """Release the lock, however the block ends."""
        self.release()


_WRITTEN = (CHECKPOINT, BEST_CHECKPOINT, CONFIG, META, METRICS, EVAL)


def remove_temp_files(run_dir: Path) -> None:
    """Remove the temporary files of atomic writes a killed process left behind (under the lock)."""
    for name in _WRITTEN:
        for tmp in run_dir.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def check_device(config: Config) -> None:
    """Refuse a ``train.device`` this machine does not have (:class:`ConfigError` naming it)."""
    device = torch.device(config.train.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"train.device: {config.train.device!r} but CUDA is not available; use cpu"
        )
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise ConfigError(
            f"train.device: {config.train.device!r} but there are {torch.cuda.device_count()} "
            "CUDA devices"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"train.device: {config.train.device!r} but MPS is not available; use cpu"
        )


def check_start(config: Config, run_dir: Path, resume: bool) -> tuple[dict[str, Any], dict]:
    """Everything a start checks before writing: returns the checkpoint (``{}`` for a fresh start)
    and the resume's overrides."""
    if not resume:
        if (run_dir / CHECKPOINT).exists():
            raise RunError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it")
        return {}, {}
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise RunError(f"cannot resume {run_dir}: no {CHECKPOINT} in it")
    data = load_checkpoint(path, map_location="cpu")
    diff = check_resume(run_dir, checkpoint_config(data, path), config)
    read_meta(run_dir)
    read_metrics(run_dir)
    return data, diff


def claim(lock: RunLock, run_dir: Path, resume: bool) -> None:
    """Hold the lock (if not yet), then tidy what a killed earlier writer left behind."""
    if not lock.held:
        lock.acquire()
        if not resume and (run_dir / CHECKPOINT).exists():  # another start won the race
            raise RunError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it")
    remove_temp_files(run_dir)
    if not resume and (run_dir / METRICS).exists():  # an earlier start died before its checkpoint
        atomic_write_text(run_dir / METRICS, "")
