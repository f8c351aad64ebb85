"""Learning curves of one or several runs on one figure, with the env's reference returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fwmrl.errors import ConfigError  # noqa: E402
from fwmrl.runs import load_run_config, read_metrics  # noqa: E402

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


def run_references(run_dir: str | Path, episodes: int = 100) -> dict[str, float]:
    """The env's ``random`` (and, where it has one, ``oracle``) returns for a run: ``episodes``
    episodes of the training env (``env.kwargs``) from seed ``train.seed``; cached in
    ``<run>/references.json``, so that curves, ``eval.json`` and ``fwmrl eval`` quote the same
    numbers."""
    from fwmrl.agents.evaluation import reference_returns

    path = Path(run_dir) / "references.json"
    if path.is_file():
        return json.loads(path.read_text())
    config = load_run_config(run_dir)
    refs = reference_returns(config, episodes=episodes, seed=config.train.seed)
    path.write_text(json.dumps(refs, indent=2) + "\n")
    return refs


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


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        if r.get(key) is not None:
            xs.append(r["env_steps"])
            ys.append(r[key])
    return xs, ys


def plot_runs(
    run_dirs: list[str | Path],
    out: str | Path,
    references: bool = True,
    title: str | None = None,
) -> Path:
    """Plot the training return (solid) and eval return (dashed, when logged) of each run against
    env steps, with horizontal random/oracle references of each distinct env (id and kwargs).

    Runs of the supervised/LM trainers (``task.kind`` other than ``rl``) are drawn by
    :func:`plot_task_runs` instead; mixing both kinds raises :class:`ConfigError`.

    Returns:
        The path of the written figure.
    """
    if _check_one_kind(run_dirs) != "rl":
        return plot_task_runs(run_dirs, out, title=title)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    env_ids = set()
    envs: dict[str, str | Path] = {}  # one run per distinct env, for its references
    for i, run_dir in enumerate(run_dirs):
        records = read_metrics(run_dir)
        config = load_run_config(run_dir)
        env_ids.add(config.env.id)
        envs.setdefault(json.dumps([config.env.id, config.env.kwargs], sort_keys=True), run_dir)
        label = Path(run_dir).name
        color = f"C{i % 10}"
        xs, ys = _series(records, "episode_return_mean")
        if xs:
            ax.plot(xs, ys, color=color, label=f"{label} (train)", **point_markers(xs))
        xs, ys = _series(records, "eval_return_mean")
        if xs:
            ax.plot(xs, ys, color=color, linestyle="--", marker="o", ms=3, label=f"{label} (eval)")
    if references:
        for j, (key, run_dir) in enumerate(envs.items()):
            refs = run_references(run_dir)
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
    ax.set_xlabel("environment steps")
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


def plot_task_runs(run_dirs: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Training loss (left) and the task's validation metric (right) against optimizer steps, one
    colour per run (supervised/LM runs; ``env_steps`` holds their optimizer step count)."""
    fig, (ax_loss, ax_valid) = plt.subplots(1, 2, figsize=(10, 4.0), dpi=110)
    kinds = set()
    for i, run_dir in enumerate(run_dirs):
        config = load_run_config(run_dir)
        kinds.add(config.task.kind)
        records = read_metrics(run_dir)
        color, label = f"C{i % 10}", Path(run_dir).name
        xs, ys = _series(records, "loss")
        if xs:
            ax_loss.plot(xs, ys, color=color, label=label, **point_markers(xs))
        key, _ = TASK_CURVES.get(config.task.kind, ("valid_loss", ""))
        xs, ys = _series(records, key)
        if xs:
            ax_valid.plot(xs, ys, color=color, marker="o", ms=3, label=label)
    kind = sorted(kinds)[0] if kinds else "lm"
    ax_loss.set_ylabel("training loss (cross-entropy, nats)")
    ax_valid.set_ylabel(TASK_CURVES.get(kind, ("", "validation loss"))[1])
    if kind == "lm":
        ax_valid.set_yscale("log")
    for ax in (ax_loss, ax_valid):
        ax.set_xlabel("optimizer steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title or ", ".join(sorted(kinds)))
    return save_figure(fig, out)
