"""Hyper-parameter sweeps and multi-seed runs on Ray Tune: ``fwmrl sweep SWEEP.yaml``.

A sweep file names a base config, a search space over dotted config keys and the seeds per point::

    base: ../gridworld_fwm.yaml          # the fwmrl config of every trial (relative to this file)
    overrides: [train.total_steps=200000, env.num_envs=16]   # fixed for every trial
    space:                               # dotted config key -> domain
      algo.lr: {loguniform: [1.0e-4, 3.0e-3]}
      core.memory_size: {choice: [8, 16, 32]}
      algo.ent_coef: {grid: [0.0, 0.01]}
    samples: 4          # draws of the random domains (choice/uniform/loguniform/randint)
    seeds: 3            # seeds per point: train.seed = 0, 1, 2 (or a list of seeds)
    metric: eval_return_mean   # final value of each trial that ranks the points
    mode: max
    curve: episode_return_mean # learning curve drawn for the best points
    top_k: 3
    cpus_per_trial: 1

A *point* is one assignment of the space; every ``grid`` combination is crossed with ``samples``
draws of the random domains, and every point runs once per seed (Ray Tune's
``BasicVariantGenerator(constant_grid_search=True)`` with the seed as a grid axis, so the seeds of a
point share its random draws). Each trial is a normal fwmrl run directory
(``<sweep>/trials/<point>-seed<k>``: ``fwmrl eval``, ``fwmrl plot`` and ``fwmrl train --resume``
work on it; a retried or re-run trial resumes from its checkpoint). The sweep directory also holds
``trials.csv`` (one row per trial), ``results.csv`` / ``results.md`` (one row per point: mean, std
and per-seed values of ``metric``, best first), ``best.png`` (mean ± std learning curves of the
``top_k`` points) and ``tune/`` (Ray Tune's experiment state).

Ray starts locally (``num_cpus`` CPUs) unless an ``address`` of a running cluster is given
(``auto``, ``HOST:6379`` or ``ray://HOST:10001``). Ray is an optional extra:
``pip install 'fwmrl[sweep]'``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fwmrl.config import ConfigError, read_yaml, resolve_config
from fwmrl.errors import SweepError
from fwmrl.rundir import stamped_dir

DOMAINS = ("grid", "choice", "uniform", "loguniform", "randint")
"""Domains of a search-space entry: ``{grid: [values]}`` (every value, crossed with the other grid
keys), ``{choice: [values]}`` (one drawn per sample), ``{uniform: [low, high]}``,
``{loguniform: [low, high]}``, ``{randint: [low, high]}`` (high exclusive)."""

SEED_KEY = "train.seed"


class SweepSpec(BaseModel):
    """A sweep file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    base: str | None = None
    overrides: list[str] = Field(default_factory=list)
    space: dict[str, dict[str, Any]] = Field(default_factory=dict)
    samples: int = Field(1, ge=1)
    seeds: int | list[int] = 1
    metric: str = "eval_return_mean"
    mode: Literal["max", "min"] = "max"
    curve: str | None = "episode_return_mean"
    top_k: int = Field(3, ge=1)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    max_concurrent: int | None = Field(None, ge=1)
    retries: int = Field(0, ge=0)
    search_seed: int = 0
    name: str | None = None

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int) and seeds < 1:
            raise ValueError(f"must be a positive number of seeds or a list of seeds, got {seeds}")
        if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError(f"a list of seeds must be non-empty and distinct, got {seeds}")
        return seeds

    @field_validator("space")
    @classmethod
    def _space(cls, space: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for key, domain in space.items():
            if key == SEED_KEY:
                raise ValueError(f"{key}: seeds are set by 'seeds', not by the space")
            if len(key.split(".")) < 2:
                raise ValueError(f"{key}: space keys are dotted config keys like algo.lr")
            if len(domain) != 1 or next(iter(domain)) not in DOMAINS:
                raise ValueError(
                    f"{key}: a domain is one of {{{', '.join(f'{d}: ...' for d in DOMAINS)}}}, "
                    f"got {domain}"
                )
            kind, values = next(iter(domain.items()))
            if not isinstance(values, list) or not values:
                raise ValueError(f"{key}: {kind} takes a non-empty list, got {values!r}")
            if kind in ("uniform", "loguniform", "randint"):
                ok = len(values) == 2 and all(isinstance(v, (int, float)) for v in values)
                if not ok or values[0] >= values[1]:
                    raise ValueError(f"{key}: {kind} takes [low, high] with low < high")
                if kind == "loguniform" and values[0] <= 0:
                    raise ValueError(f"{key}: loguniform needs low > 0")
                if kind == "randint" and not all(isinstance(v, int) for v in values):
                    raise ValueError(f"{key}: randint takes integer bounds")
        return space

    @property
    def seed_list(self) -> list[int]:
        """The seeds each point runs with (``seeds: N`` means ``0 … N-1``)."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


def load_sweep(path: str | Path) -> tuple[SweepSpec, dict[str, Any]]:
    """Read and check a sweep file; returns the spec and the base config dict.

    Every space key and value is checked against the base config (each grid/choice value, the
    bounds of the continuous domains), so a typo fails here with the config's own message, before
    Ray starts.
    """
    path = Path(path)
    raw = read_yaml(path)
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as error:
        parts = []
        for item in error.errors():
            key = ".".join(str(x) for x in item["loc"]) or "<sweep>"
            msg = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                msg = f"unknown key; allowed keys: {', '.join(SweepSpec.model_fields)}"
            parts.append(f"{key}: {msg}")
        raise ConfigError(f"{path}: {'; '.join(parts)}") from None
    base = {} if spec.base is None else read_yaml((path.parent / spec.base).resolve())
    if spec.name is None:
        spec.name = path.stem
    check_space(spec, base)
    return spec, base


def _representatives(domain: dict[str, Any]) -> list[Any]:
    kind, values = next(iter(domain.items()))
    if kind == "randint":
        return [values[0], values[1] - 1]
    return list(values)


def check_space(spec: SweepSpec, base: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` when an override or a value of the space makes a bad config."""
    try:
        resolve_config(base, spec.overrides)
    except ConfigError as error:
        raise ConfigError(f"sweep overrides: {error}") from None
    for key, domain in spec.space.items():
        for value in _representatives(domain):
            try:
                resolve_config(base, [*spec.overrides, override(key, value)])
            except ConfigError as error:
                raise ConfigError(f"sweep space {key}={value!r}: {error}") from None


def override(key: str, value: Any) -> str:
    """A dotted override whose value reads back (as YAML) to exactly ``value``."""
    return f"{key}={json.dumps(value)}"


def point_id(params: dict[str, Any]) -> str:
    """A short stable name of a point (its parameters without the seed)."""
    items = {k: v for k, v in sorted(params.items()) if k != SEED_KEY}
    return "p" + hashlib.sha1(json.dumps(items, sort_keys=True).encode()).hexdigest()[:8]


# ---------------------------------------------------------------------------------- the trial
def run_trial(
    params: dict[str, Any],
    base: dict[str, Any],
    overrides: list[str],
    trials_dir: str,
    report: Any = None,
) -> dict[str, Any]:
    """One trial: the fwmrl run of ``base`` + ``overrides`` + ``params`` in
    ``<trials_dir>/<point>-seed<k>`` (resumed when it holds a checkpoint), each logged record passed
    to ``report`` (default: ``ray.tune.report``). Returns the last record."""
    from fwmrl.jobs import train_run
    from fwmrl.rundir import CHECKPOINT, read_metrics

    if report is None:
        from ray import tune

        report = tune.report
    point = point_id(params)
    seed = int(params[SEED_KEY])
    run_dir = Path(trials_dir) / f"{point}-seed{seed}"
    items = [*overrides, *(override(k, v) for k, v in params.items()), "train.progress=false"]
    config = resolve_config(base, items)
    tags = {"point": point, "seed": seed, "run_dir": str(run_dir)}
    reported = []

    def on_log(record: dict[str, Any]) -> None:
        clean = {k: v for k, v in record.items() if isinstance(v, (int, float)) or v is None}
        reported.append(clean)
        report({**clean, **tags})

    resume = (run_dir / CHECKPOINT).is_file()
    train_run(config, run_dir, resume=resume, on_log=on_log)
    if not reported:  # a finished run resumed, or a trainer without on_log: its last records
        records = read_metrics(run_dir)
        last: dict[str, Any] = {}
        for record in records:  # later records override, keeping the last value of every key
            last.update(record)
        on_log(last)
    return reported[-1]


# ---------------------------------------------------------------------------------- results
def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def summarize(trials: list[dict[str, Any]], metric: str, mode: str = "max") -> list[dict[str, Any]]:
    """Group trial rows (``point``, ``seed``, ``params``, ``metric`` values) by point: one row per
    point with the mean, std (population) and per-seed values of ``metric``, best first. Points
    without a finite value sort last."""
    groups: dict[str, dict[str, Any]] = {}
    for trial in trials:
        row = groups.setdefault(
            trial["point"],
            {"point": trial["point"], "params": trial["params"], "seeds": [], "values": []},
        )
        row["seeds"].append(trial["seed"])
        row["values"].append(_finite(trial.get(metric)))
    rows = []
    for row in groups.values():
        values = [v for v in row["values"] if v is not None]
        mean = sum(values) / len(values) if values else None
        std = (
            math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            if mean is not None
            else None
        )
        order = sorted(range(len(row["seeds"])), key=lambda i: row["seeds"][i])
        rows.append(
            {
                "point": row["point"],
                "params": row["params"],
                "n": len(values),
                "mean": mean,
                "std": std,
                "seeds": [row["seeds"][i] for i in order],
                "values": [row["values"][i] for i in order],
            }
        )
    sign = -1.0 if mode == "max" else 1.0
    rows.sort(key=lambda r: (r["mean"] is None, sign * (r["mean"] or 0.0), r["point"]))
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def results_markdown(rows: list[dict[str, Any]], metric: str) -> str:
    """The per-point table as Markdown (best first)."""
    keys = sorted({k for r in rows for k in r["params"]})
    head = ["rank", "point", *keys, f"{metric} mean", "std", "seeds", "per seed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(rows, 1):
        cells = [
            str(i),
            r["point"],
            *(_fmt(r["params"].get(k)) for k in keys),
            _fmt(r["mean"]),
            _fmt(r["std"]),
            f"{r['n']}/{len(r['seeds'])}",
            ", ".join(_fmt(v) for v in r["values"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(rows: list[dict[str, Any]], trials: list[dict[str, Any]], out: Path, metric: str):
    """``results.csv``, ``results.md`` (per point) and ``trials.csv`` (per trial) in ``out``."""
    keys = sorted({k for r in rows for k in r["params"]})
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "point", *keys, "mean", "std", "n", "seeds", "values"])
        for i, r in enumerate(rows, 1):
            writer.writerow(
                [i, r["point"], *(r["params"].get(k) for k in keys), r["mean"], r["std"], r["n"]]
                + [" ".join(map(str, r["seeds"])), " ".join(map(_fmt, r["values"]))]
            )
    with open(out / "trials.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["point", "seed", *keys, metric, "status", "run_dir"])
        for t in sorted(trials, key=lambda t: (t["point"], t["seed"])):
            writer.writerow(
                [t["point"], t["seed"], *(t["params"].get(k) for k in keys)]
                + [t.get(metric), t.get("status", ""), t.get("run_dir", "")]
            )
    (out / "results.md").write_text(results_markdown(rows, metric))


def plot_best(
    rows: list[dict[str, Any]],
    curves: dict[tuple[str, int], list[tuple[float, float]]],
    out: str | Path,
    top_k: int = 3,
    ylabel: str = "episode return",
    title: str | None = None,
) -> Path:
    """Mean ± std (over seeds) learning curves of the ``top_k`` best points.

    Parameters
    ----------
    rows:
        :func:`summarize` rows, best first.
    curves:
        ``(point, seed) -> [(x, y), ...]`` (``x``: env steps or optimizer steps).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from fwmrl.plots import point_markers, save_figure

    fig, ax = plt.subplots(figsize=(7.5, 4.4), dpi=110)
    for i, row in enumerate(rows[:top_k]):
        by_x: dict[float, list[float]] = {}
        for seed in row["seeds"]:
            for x, y in curves.get((row["point"], seed), []):
                by_x.setdefault(x, []).append(y)
        if not by_x:
            continue
        xs = np.array(sorted(by_x))
        mean = np.array([np.mean(by_x[x]) for x in xs])
        std = np.array([np.std(by_x[x]) for x in xs])
        params = ", ".join(
            f"{k.split('.')[-1]}={_fmt(v)}" for k, v in sorted(row["params"].items())
        )
        label = f"#{i + 1} {params} ({row['n']} seeds)"
        ax.plot(xs, mean, color=f"C{i}", label=label, **point_markers(xs))
        ax.fill_between(xs, mean - std, mean + std, color=f"C{i}", alpha=0.2)
    ax.set_xlabel("steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"best {min(top_k, len(rows))} points (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no curves logged", ha="center", va="center", transform=ax.transAxes)
    return save_figure(fig, out)


# ---------------------------------------------------------------------------------- Ray Tune
def _import_ray() -> Any:
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise SweepError(
            "fwmrl sweep needs Ray Tune, an optional extra: pip install 'fwmrl[sweep]' "
            "(or pip install 'ray[tune]')"
        ) from None
    return ray


def _domain(tune: Any, domain: dict[str, Any]) -> Any:
    kind, values = next(iter(domain.items()))
    if kind == "grid":
        return tune.grid_search(list(values))
    if kind == "choice":
        return tune.choice(list(values))
    return getattr(tune, kind)(*values)


def new_sweep_dir(name: str, base: str | Path = "runs/sweeps") -> Path:
    """``base/<name>-<YYYYmmdd-HHMMSS>`` (:func:`fwmrl.rundir.stamped_dir`)."""
    return stamped_dir(name, base)


def run_sweep(
    spec: SweepSpec,
    base: dict[str, Any],
    out_dir: str | Path,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: int = 1,
) -> dict[str, Any]:
    """Run every trial of the sweep on Ray Tune and write the results; returns a summary.

    Parameters
    ----------
    spec, base:
        from :func:`load_sweep`.
    out_dir:
        the sweep directory (created; an existing one is continued: finished trials only
        report their results again, unfinished ones resume from their checkpoints).
    address:
        a running Ray cluster (``auto``, ``HOST:6379``, ``ray://HOST:10001``); ``None``
        starts a local Ray instance with ``num_cpus`` CPUs (default: all).
    verbose:
        Ray Tune's verbosity (0 silent, 1 progress, 2 per-result).
    """
    ray = _import_ray()
    from ray import tune

    out = Path(out_dir).resolve()
    (out / "trials").mkdir(parents=True, exist_ok=True)
    (out / "sweep.yaml").write_text(
        yaml.safe_dump({**spec.model_dump(), "base_config": base}, sort_keys=False)
    )
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
    started_here = False
    if not ray.is_initialized():
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=verbose > 0)
        else:
            ray.init(address=address, log_to_driver=verbose > 0)
        started_here = True
    try:
        space = {key: _domain(tune, d) for key, d in spec.space.items()}
        space[SEED_KEY] = tune.grid_search(spec.seed_list)
        trainable = tune.with_parameters(
            _tune_trial, base=base, overrides=list(spec.overrides), trials_dir=str(out / "trials")
        )
        resources = {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial}
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space=space,
            tune_config=tune.TuneConfig(
                num_samples=spec.samples,
                search_alg=tune.search.BasicVariantGenerator(
                    constant_grid_search=True, random_state=spec.search_seed
                ),
                max_concurrent_trials=spec.max_concurrent,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(out),
                failure_config=tune.FailureConfig(max_failures=spec.retries),
                verbose=verbose,
            ),
        )
        grid = tuner.fit()
        trials, curves = [], {}
        for result in grid:
            params = {k: v for k, v in (result.config or {}).items() if k in spec.space}
            seed = int((result.config or {}).get(SEED_KEY, -1))
            point = point_id({**params, SEED_KEY: seed})
            metrics = dict(result.metrics or {})
            run_dir = out / "trials" / f"{point}-seed{seed}"
            trials.append(
                {
                    **metrics,
                    "point": point,
                    "seed": seed,
                    "params": params,
                    "status": "error" if result.error else "ok",
                    "run_dir": str(run_dir),
                }
            )
            curves[(point, seed)] = _curve(result, spec.curve or spec.metric, run_dir)
    finally:
        if started_here:
            ray.shutdown()
    return finish_sweep(spec, trials, curves, out)


def _tune_trial(
    params: dict[str, Any], base: dict[str, Any], overrides: list[str], trials_dir: str
):
    run_trial(params, base, overrides, trials_dir)


def _curve(result: Any, key: str, run_dir: Path) -> list[tuple[float, float]]:
    """``(env_steps, key)`` pairs of a trial: from Ray Tune's results, else its run directory."""
    frame = None
    try:
        frame = result.metrics_dataframe
    except Exception:  # results not synced to the driver
        frame = None
    if frame is not None and key in frame and "env_steps" in frame:
        points = frame[["env_steps", key]].dropna()
        return [(float(x), float(y)) for x, y in points.itertuples(index=False)]
    from fwmrl.rundir import read_metrics

    return [
        (float(r["env_steps"]), float(r[key]))
        for r in read_metrics(run_dir)
        if r.get(key) is not None and "env_steps" in r
    ]


def finish_sweep(
    spec: SweepSpec,
    trials: list[dict[str, Any]],
    curves: dict[tuple[str, int], list[tuple[float, float]]],
    out: Path,
) -> dict[str, Any]:
    """Write ``trials.csv``, ``results.csv``, ``results.md``, ``best.png`` and ``sweep.json``."""
    rows = summarize(trials, spec.metric, spec.mode)
    write_results(rows, trials, out, spec.metric)
    curve_key = spec.curve or spec.metric
    plot_best(rows, curves, out / "best.png", spec.top_k, ylabel=curve_key, title=spec.name)
    failed = [t for t in trials if t["status"] != "ok"]
    summary = {
        "sweep_dir": str(out),
        "trials": len(trials),
        "failed": len(failed),
        "points": len(rows),
        "metric": spec.metric,
        "mode": spec.mode,
        "best": rows[0] if rows else None,
        "results": str(out / "results.md"),
        "plot": str(out / "best.png"),
    }
    (out / "sweep.json").write_text(json.dumps({**summary, "ranking": rows}, indent=2) + "\n")
    if trials and len(failed) == len(trials):
        raise SweepError(f"every trial failed; see the Ray Tune logs under {out / 'tune'}")
    return summary
