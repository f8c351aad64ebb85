"""Learning curves of one or several runs on one figure, with the env's reference returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fwmrl.errors import ConfigError  # noqa: E402
from fwmrl.rundir import load_run_config, read_metrics  # noqa: E402

FEW_POINTS = 30
"""Curves with at most this many points get a marker on each, so that one point still shows."""


def save_figure(fig: Any, out: str | Path) -> Path:
    """Lay out ``fig``, write it to ``out`` (creating the folder) and close it."""
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


REFERENCES = "references.json"
"""The env's reference returns of a run, written by :func:`fwmrl.agents.evaluation.run_references`
(the end of a run, ``fwmrl plot`` and ``fwmrl eval``); this module only reads them."""


def read_references(run_dir: str | Path) -> dict[str, float]:
    """``<run>/references.json`` (``random`` and, where the env has one, ``oracle``), or ``{}``."""
    path = Path(run_dir) / REFERENCES
    return json.loads(path.read_text()) if path.is_file() else {}


def point_markers(xs: Any) -> dict[str, Any]:
    """Plot arguments that mark every point of a short curve (one point is invisible otherwise)."""
    return {"marker": "o", "ms": 3} if len(xs) <= FEW_POINTS else {}


def _check_one_kind(run_dirs: list[str | Path]) -> str:
    """The ``task.kind`` shared by all runs; mixing RL and supervised runs is an error."""
    kinds = {str(run_dir): load_run_config(run_dir).task.kind for run_dir in run_dirs}
    rl = [r for r, k in kinds.items() if k == "rl"]
    other = [r for r, k in kinds.items() if k != "rl"]
    if rl and other:
        raise ConfigError(
            f"plot: RL runs ({', '.join(rl)}) and supervised/LM runs ({', '.join(other)}) have "
            "different axes; plot them in separate commands"
        )
    return "rl" if rl else (next(iter(kinds.values())) if kinds else "rl")


X_AXES = {
    "env_steps": ("env_steps", "environment steps"),
    "updates": ("update", "updates (optimizer steps)"),
    "wall_time": ("time_s", "wall-clock time (s)"),
    "cpu_time": ("cpu_time_s", "process CPU time (s)"),
}
"""``plot --x`` choices: the metrics key each reads and its axis label."""


def x_values(records: list[dict[str, Any]], x: str) -> list[float | None]:
    """The x value of every record (``None`` where the record lacks it). ``wall_time`` and
    ``cpu_time`` add up over resumes: the job loop continues a resumed run's times, but in runs
    written before it did each process counted from its own start, so where the value falls back,
    the value before the fall is added to the rest."""
    if x not in X_AXES:
        raise ConfigError(f"plot --x: one of {', '.join(X_AXES)}, got {x!r}")
    key = X_AXES[x][0]
    if x not in ("wall_time", "cpu_time"):
        return [r.get(key) for r in records]
    out: list[float | None] = []
    offset, last = 0.0, None
    for r in records:
        value = r.get(key)
        if value is None:
            out.append(None)
            continue
        if last is not None and value < last:
            offset += last
        last = value
        out.append(offset + value)
    return out


def _run_records(run_dir: str | Path, x: str) -> tuple[list[dict[str, Any]], list[Any]]:
    """A run's metrics and their x values; a run that never logged the x key is an error."""
    records = read_metrics(run_dir)
    xs = x_values(records, x)
    if records and all(v is None for v in xs):
        raise ConfigError(
            f"plot --x {x}: {run_dir} logged no {X_AXES[x][0]} (a run from before it was "
            "recorded); choose another --x"
        )
    return records, xs


def _series(
    records: list[dict[str, Any]], key: str, xs_all: list[Any] | None = None
) -> tuple[list[float], list[float]]:
    xs_all = xs_all if xs_all is not None else [r.get("env_steps") for r in records]
    xs, ys = [], []
    for r, x in zip(records, xs_all, strict=True):
        if r.get(key) is not None and x is not None:
            xs.append(x)
            ys.append(r[key])
    return xs, ys


def plot_runs(
    run_dirs: list[str | Path],
    out: str | Path,
    references: bool = True,
    title: str | None = None,
    x: str | None = None,
) -> Path:
    """Plot the training return (solid) and eval return (dashed, when logged) of each run against
    ``x`` (:data:`X_AXES`; default env steps), with horizontal random/oracle references of each
    distinct env (id and kwargs).

    Runs of the supervised/LM trainers (``task.kind`` other than ``rl``) are drawn by
    :func:`plot_task_runs` instead (default x: updates); mixing both kinds raises
    :class:`ConfigError`.

    Returns
    -------
    The path of the written figure.
    """
    if _check_one_kind(run_dirs) != "rl":
        return plot_task_runs(run_dirs, out, title=title, x=x or "updates")
    x = x or "env_steps"
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    env_ids = set()
    envs: dict[str, str | Path] = {}  # one run per distinct env, for its references
    for i, run_dir in enumerate(run_dirs):
        records, x_all = _run_records(run_dir, x)
        config = load_run_config(run_dir)
        env_ids.add(config.env.id)
        envs.setdefault(json.dumps([config.env.id, config.env.kwargs], sort_keys=True), run_dir)
        label = Path(run_dir).name
        color = f"C{i % 10}"
        xs, ys = _series(records, "episode_return_mean", x_all)
        if xs:
            ax.plot(xs, ys, color=color, label=f"{label} (train)", **point_markers(xs))
        xs, ys = _series(records, "eval_return_mean", x_all)
        if xs:
            ax.plot(xs, ys, color=color, linestyle="--", marker="o", ms=3, label=f"{label} (eval)")
    if references:
        for j, (key, run_dir) in enumerate(envs.items()):
            refs = read_references(run_dir)
            env_id, kwargs = json.loads(key)
            which = f"{env_id} {kwargs}: " if len(envs) > 1 else ""
            for name, style in (("random", ":"), ("oracle", "-.")):
                if name in refs:
                    ax.axhline(
                        refs[name],
                        color="grey" if len(envs) == 1 else f"C{(9 - j) % 10}",
                        linestyle=style,
                        label=f"{which}{name} ({refs[name]:.1f})",
                    )
    ax.set_xlabel(X_AXES[x][1])
    ax.set_ylabel("episode return (mean of last 100)")
    ax.set_title(title or ", ".join(sorted(env_ids)))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, out)


TASK_CURVES = {
    "retrieval": ("valid_partial_accuracy", "validation partial accuracy"),
    "catbabi": ("valid_accuracy", "validation accuracy (answers)"),
    "lm": ("valid_perplexity", "validation perplexity"),
}


def plot_task_runs(
    run_dirs: list[str | Path], out: str | Path, title: str | None = None, x: str = "updates"
) -> Path:
    """Training loss (left) and the task's validation metric (right) against ``x`` (:data:`X_AXES`:
    optimizer steps by default; ``env_steps`` holds the optimizer step count here too), one colour
    per run (supervised/LM runs)."""
    fig, (ax_loss, ax_valid) = plt.subplots(1, 2, figsize=(10, 4.0), dpi=110)
    kinds = set()
    for i, run_dir in enumerate(run_dirs):
        config = load_run_config(run_dir)
        kinds.add(config.task.kind)
        records, x_all = _run_records(run_dir, x)
        color, label = f"C{i % 10}", Path(run_dir).name
        xs, ys = _series(records, "loss", x_all)
        if xs:
            ax_loss.plot(xs, ys, color=color, label=label, **point_markers(xs))
        key, _ = TASK_CURVES.get(config.task.kind, ("valid_loss", ""))
        xs, ys = _series(records, key, x_all)
        if xs:
            ax_valid.plot(xs, ys, color=color, marker="o", ms=3, label=label)
    kind = sorted(kinds)[0] if kinds else "lm"
    ax_loss.set_ylabel("training loss (cross-entropy, nats)")
    ax_valid.set_ylabel(TASK_CURVES.get(kind, ("", "validation loss"))[1])
    if kind == "lm":
        ax_valid.set_yscale("log")
    for ax in (ax_loss, ax_valid):
        ax.set_xlabel("optimizer steps" if x in ("updates", "env_steps") else X_AXES[x][1])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title or ", ".join(sorted(kinds)))
    return save_figure(fig, out)


def plot_seed_bands(
    groups: list[Any],
    out: str | Path,
    x_label: str = "env steps",
    references: dict[str, float] | None = None,
    title: str | None = None,
) -> Path:
    """The mean evaluation return of each agent over its seeds with a ± std band.

    Parameters
    ----------
    groups:
        :class:`fwmrl.results.SeedGroup` objects (``label``, ``seeds``, ``curve_x``,
        ``curve_mean``, ``curve_std``: the points every seed evaluated at).
    out:
        the PNG path.
    x_label:
        the x axis' label.
    references:
        horizontal reference returns by name (e.g. ``{"random": 10.1, "oracle": 279.6}``).
    title:
        the figure's title.

    Returns
    -------
    The path of the written figure.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, group in enumerate(groups):
        xs, mean, std = group.curve_x, group.curve_mean, group.curve_std
        color = f"C{i % 10}"
        label = f"{group.label} ({len(group.seeds)} seed{'s' * (len(group.seeds) > 1)})"
        ax.plot(xs, mean, color=color, label=label, **point_markers(xs))
        low = [m - s for m, s in zip(mean, std, strict=True)]
        high = [m + s for m, s in zip(mean, std, strict=True)]
        ax.fill_between(xs, low, high, color=color, alpha=0.2, linewidth=0)
    for name, value in (references or {}).items():
        ax.axhline(value, color="grey", linestyle=":", linewidth=0.8, label=f"{name} ({value:.1f})")
    ax.set_xlabel(x_label)
    ax.set_ylabel("evaluation return, mean ± std over seeds")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, out)
