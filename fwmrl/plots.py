"""Learning curves of one or several runs on one figure, with the env's reference returns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fwmrl.runs import load_run_config, read_metrics  # noqa: E402


def save_figure(fig: Any, out: str | Path) -> Path:
    """Lay out ``fig``, write it to ``out`` (creating the folder) and close it."""
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def run_references(run_dir: str | Path, episodes: int = 100) -> dict[str, float]:
    """The env's ``random`` (and, where it has one, ``oracle``) returns for a run; cached in
    ``<run>/references.json``."""
    from fwmrl.agents.evaluation import reference_returns

    path = Path(run_dir) / "references.json"
    if path.is_file():
        return json.loads(path.read_text())
    config = load_run_config(run_dir)
    refs = reference_returns(config, episodes=episodes, seed=config.train.seed)
    path.write_text(json.dumps(refs, indent=2) + "\n")
    return refs


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
    env steps, with horizontal random/oracle references of the first run's env.

    Runs of the supervised/LM trainers (``task.kind`` other than ``rl``) are drawn by
    :func:`plot_task_runs` instead.

    Returns:
        The path of the written figure.
    """
    if run_dirs and load_run_config(run_dirs[0]).task.kind != "rl":
        return plot_task_runs(run_dirs, out, title=title)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    env_ids = set()
    for i, run_dir in enumerate(run_dirs):
        records = read_metrics(run_dir)
        config = load_run_config(run_dir)
        env_ids.add(config.env.id)
        label = Path(run_dir).name
        color = f"C{i % 10}"
        xs, ys = _series(records, "episode_return_mean")
        if xs:
            ax.plot(xs, ys, color=color, label=f"{label} (train)")
        xs, ys = _series(records, "eval_return_mean")
        if xs:
            ax.plot(xs, ys, color=color, linestyle="--", marker="o", ms=3, label=f"{label} (eval)")
    if references and run_dirs:
        refs = run_references(run_dirs[0])
        for name, style in (("random", ":"), ("oracle", "-.")):
            if name in refs:
                ax.axhline(
                    refs[name], color="grey", linestyle=style, label=f"{name} ({refs[name]:.1f})"
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
            ax_loss.plot(xs, ys, color=color, label=label)
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
