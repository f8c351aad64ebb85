"""A run's evaluation history as a small CSV for the repository (``docs/results/``).

``fwmrl export RUN_DIR -o docs/results/<experiment>/<run>.csv`` writes one row per evaluation with
the columns :data:`COLUMNS` and copies the run's ``config.yaml`` beside it (``<run>.yaml``), so that
results survive the machine: run directories (checkpoints, TensorBoard files) stay out of git.

``fwmrl compare A_s0.csv A_s1.csv B_s0.csv ...`` reads such exports back, groups the runs of one
agent over seeds (:func:`seed_groups`) and prints the final return as mean ± std over seeds
(:func:`seed_table`), optionally with the curves' band over seeds
(:func:`fwmrl.plots.plot_seed_bands`).
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    """One row per record that holds an evaluation, in :data:`COLUMNS` order; ``time_s`` and
    ``cpu_time_s`` add up over the run's processes (also for runs whose processes each counted
    from their own start)."""
    from fwmrl.plots import x_values

    wall, cpu = x_values(records, "wall_time"), x_values(records, "cpu_time")
    rows = []
    train_return = None
    for record, wall_s, cpu_s in zip(records, wall, cpu, strict=True):
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
                "time_s": wall_s,
                "cpu_time_s": cpu_s,
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


SEED_SUFFIX = re.compile(r"_s(?:eed)?\d+$")
"""A trailing ``_s<N>`` / ``_seed<N>`` of an exported CSV's name: the runs of one agent over seeds."""


@dataclass
class SeedGroup:
    """The exported runs of one agent that differ only in ``train.seed``.

    ``label`` is the files' common name without the seed suffix; ``seeds`` the seeds, ``finals``
    each run's last evaluation return and ``final_x`` its ``x`` there; ``steps_per_cpu_s`` each
    run's env steps per CPU second up to its last evaluation (``None`` where the export has no CPU
    time); ``curve_x`` the ``x`` values that every run evaluated at, with ``curve_mean`` /
    ``curve_std`` over the runs there."""

    label: str
    paths: list[Path]
    seeds: list[int]
    finals: list[float]
    final_x: list[float]
    steps_per_cpu_s: list[float | None] = field(default_factory=list)
    curve_x: list[float] = field(default_factory=list)
    curve_mean: list[float] = field(default_factory=list)
    curve_std: list[float] = field(default_factory=list)


def _std(values: list[float]) -> float:
    """Sample standard deviation (``ddof=1``, as across seeds); 0 for one value."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _read_rows(path: Path, x: str) -> tuple[list[tuple[float, float]], float | None]:
    """The ``(x, eval return)`` rows of an export and its env steps per CPU second at the last row."""
    with path.open() as f:
        reader = csv.DictReader(f)
        missing = {x, "eval_return_mean"} - set(reader.fieldnames or [])
        if missing:
            raise RunError(f"{path}: not an `fwmrl export` CSV (no column {sorted(missing)[0]})")
        records = [r for r in reader if r.get(x) != ""]
    if not records:
        raise RunError(f"{path}: no evaluation rows")
    rows = [(float(r[x]), float(r["eval_return_mean"])) for r in records]
    last = records[-1]
    try:
        speed = float(last["env_steps"]) / float(last["cpu_time_s"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        speed = None
    return rows, speed


OUTPUT_ONLY = ("progress", "plot_at_end", "gif_at_end")
"""``train`` keys that change only what a run shows or draws, ignored with ``logging`` when runs
are grouped over seeds (runs made with another default of e.g. the progress bar still group)."""


def seed_groups(csv_paths: list[str | Path], x: str = "env_steps") -> list[SeedGroup]:
    """Group exported runs (``fwmrl export`` CSVs, each with its ``.yaml`` config beside it) by
    their config without ``train.seed`` and the keys that do not change what is trained
    (:data:`OUTPUT_ONLY`), in the order of first appearance.

    Raises
    ------
    RunError
        a file is missing or not an export, a config is missing, or ``x`` is not a column.
    """
    if x not in COLUMNS:
        raise RunError(f"x: {x!r} is not a column of an export; allowed: {', '.join(COLUMNS)}")
    groups: dict[str, list[tuple[Path, int, list[tuple[float, float]], float | None]]] = {}
    for path in map(Path, csv_paths):
        config_path = path.with_suffix(".yaml")
        if not path.is_file() or not config_path.is_file():
            raise RunError(f"{path}: needs the CSV and its config {config_path.name} beside it")
        config = yaml.safe_load(config_path.read_text()) or {}
        seed = int((config.get("train") or {}).pop("seed", 0))
        config.pop("logging", None)
        for name in OUTPUT_ONLY:
            (config.get("train") or {}).pop(name, None)
        key = json.dumps(config, sort_keys=True, default=str)
        groups.setdefault(key, []).append((path, seed, *_read_rows(path, x)))
    out = []
    for runs in groups.values():
        runs.sort(key=lambda run: run[1])
        stems = {SEED_SUFFIX.sub("", path.stem) for path, *_ in runs}
        label = stems.pop() if len(stems) == 1 else runs[0][0].stem
        common = sorted(set.intersection(*({xv for xv, _ in rows} for _, _, rows, _ in runs)))
        by_x = [dict(rows) for _, _, rows, _ in runs]
        values = [[run[xv] for run in by_x] for xv in common]
        out.append(
            SeedGroup(
                label=label,
                paths=[path for path, *_ in runs],
                seeds=[seed for _, seed, *_ in runs],
                finals=[rows[-1][1] for _, _, rows, _ in runs],
                final_x=[rows[-1][0] for _, _, rows, _ in runs],
                steps_per_cpu_s=[speed for *_, speed in runs],
                curve_x=common,
                curve_mean=[sum(v) / len(v) for v in values],
                curve_std=[_std(v) for v in values],
            )
        )
    return out


def seed_table(
    groups: list[SeedGroup],
    random: float | None = None,
    oracle: float | None = None,
    parameters: dict[str, int] | None = None,
) -> str:
    """A Markdown table of :func:`seed_groups`: per agent the seeds, the budget (``x`` of the last
    evaluations), the final evaluation return as mean ± std over seeds (the value alone for one
    seed), each seed's, with both references the normalised score
    ``(R − random) / (oracle − random)`` as mean ± std, then the env steps per CPU second (mean over
    the seeds whose export has CPU times; ``—`` without) and, given ``parameters`` (agent label →
    count), each agent's parameter count."""
    if (random is None) != (oracle is None) or (random is not None and oracle == random):
        raise RunError("random/oracle: give both references, with oracle ≠ random, or neither")
    head = ["agent", "seeds", "last x", "final return", "per seed"]
    if random is not None:
        head.append("normalised score")
    head.append("env steps / CPU s")
    if parameters is not None:
        head.append("parameters")
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---|" + "---:|" * (len(head) - 5)]
    for g in groups:
        mean = sum(g.finals) / len(g.finals)
        low, high = min(g.final_x), max(g.final_x)
        last = f"{low:,.0f}" if low == high else f"{low:,.0f}–{high:,.0f}"
        cells = [
            g.label,
            ", ".join(map(str, g.seeds)),
            last,
            f"{mean:.1f} ± {_std(g.finals):.1f}" if len(g.finals) > 1 else f"{mean:.1f}",
            ", ".join(f"{v:.1f}" for v in g.finals),
        ]
        if random is not None and oracle is not None:
            scores = [(v - random) / (oracle - random) for v in g.finals]
            score = sum(scores) / len(scores)
            cells.append(f"{score:.2f} ± {_std(scores):.2f}" if len(scores) > 1 else f"{score:.2f}")
        speeds = [v for v in g.steps_per_cpu_s if v is not None]
        cells.append(f"{sum(speeds) / len(speeds):,.0f}" if speeds else "—")
        if parameters is not None:
            count = parameters.get(g.label)
            cells.append("—" if count is None else f"{count:,}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
