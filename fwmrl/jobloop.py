"""The one job loop: run directory, resume, logging, checkpoints, evaluation and pictures for every
trainer, driven through the small :class:`Job` protocol.

A service below the trainers: it imports the run-directory services (:mod:`fwmrl.rundir`),
:mod:`fwmrl.distributed` and :mod:`fwmrl.plots`, never a trainer. Each trainer family brings an
adapter that implements :class:`Job` (:class:`fwmrl.agents.job.RLJob` for A2C and PPO,
:class:`fwmrl.tasks.job.TaskJob` for the supervised/LM trainers); :func:`fwmrl.jobs.train_run`
picks the adapter of a config's ``task.kind`` and calls :func:`run_job`.

What the loop does, whatever the trainer:

1. Checks before writing anything: the device, the run directory (a fresh start refuses a folder
   holding a run; a resume verifies the checkpoint, its config against config.yaml and the
   overrides, meta.json and metrics.jsonl), then builds the job (the adapter checks its env or
   data), restores the checkpoint and only then holds the run's lock and tidies what a killed
   writer left.
2. Writes config.yaml and meta.json (a resume appends a record: the update it continues from, the
   overrides, and what the job adds), and whatever the job writes itself (``write_files``).
3. Calls ``learn_update`` until ``train.total_steps`` (counted in the job's ``steps``) and writes a
   record to metrics.jsonl (+ TensorBoard/wandb, and ``on_log``) at every ``logging.log_every``-th
   update, at every ``train.eval_every``-th one (which also evaluates) and at the last one: the
   counters ``update``, ``env_steps`` (the job's ``steps``), ``time_s`` and ``cpu_time_s`` (the
   run's wall seconds and the CPU seconds of all its ranks, summed over its processes: a resume
   continues from the last record it keeps, so the time a killed process spent after that record,
   on updates the resume trains again, is not counted), the
   job's own counters and rates (``record``) and the mean of each training metric since the last
   record. An evaluation whose headline improved also saves ``best.pt``.
4. Saves ``checkpoint.pt`` every ``train.checkpoint_every`` updates and at the end (after
   ``check_finite``: a kept checkpoint holds weights that act), and at once when a resume finds
   the budget spent (so the checkpoint carries the config.yaml the resume wrote).
5. Writes the final evaluation (``eval.json``) and the pictures (``pictures``), and returns a
   summary.

Under ``torchrun`` (:mod:`fwmrl.distributed`) every rank runs the loop; rank 0 alone checks the
run directory, holds the lock, writes, logs and evaluates, and sends a resumed checkpoint to the
other ranks, which return ``{"rank": r, ...}`` once training is done. ``state_dict``,
``restore``, ``check_finite``, ``learn_update`` and the CPU-time gather are collective: every rank
calls them at the same updates.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from fwmrl import distributed, rundir
from fwmrl.atomic import atomic_write_text
from fwmrl.config import Config, save_config
from fwmrl.threads import set_threads


class Job(Protocol):
    """One trainer as the job loop sees it (an adapter per trainer family).

    Attributes
    ----------
    update:
        updates done so far (rollouts for RL, optimizer steps for the supervised trainers).
    steps:
        what ``train.total_steps`` counts (env steps over all ranks for RL, optimizer steps
        for the supervised trainers); logged as ``env_steps``.
    steps_unit:
        the unit of ``steps`` in notes, e.g. ``"env steps"``.
    rank, world:
        this process's rank and the number of data-parallel processes.
    headline:
        the record key shown on the progress bar (e.g. ``episode_return_mean``).
    evaluation_label:
        what the final evaluation runs, for the progress line (e.g.
        ``"32 episodes"``).
    """

    update: int
    rank: int
    world: int
    steps_unit: str
    headline: str
    evaluation_label: str

    @property
    def steps(self) -> int:
        """What ``train.total_steps`` counts."""
        ...

    def restore(self, data: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        """Load a verified checkpoint (every rank; rank 0's copy); return the fields this resume
        adds to its meta.json record. Raise :class:`~fwmrl.errors.RunError` or
        :class:`~fwmrl.errors.ConfigError` (one line naming the file) when it does not fit."""
        ...

    def write_files(self, run_dir: Path, resume: bool) -> None:
        """Rank 0, after config.yaml and meta.json: write (or tidy) the job's own files."""
        ...

    def learn_update(self) -> dict[str, float]:
        """One update (every rank); its training metrics. Raise
        :class:`~fwmrl.errors.NonFiniteLossError` when the loss or the weights become NaN/inf."""
        ...

    def record(self, seconds: float) -> dict[str, Any]:
        """Rank 0: the job's counters for a metrics record, rates over the ``seconds`` since the
        previous record."""
        ...

    def evaluate(self) -> tuple[dict[str, float], bool]:
        """Rank 0: a periodic evaluation as record fields (prefixed, e.g. ``eval_return_mean``) and
        whether the headline validation metric improved (then ``best.pt`` is saved)."""
        ...

    def check_finite(self) -> None:
        """Every rank, before each periodic checkpoint: raise
        :class:`~fwmrl.errors.NonFiniteLossError` unless the weights and outputs are finite."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Every rank: the checkpoint (tensors and plain data; it holds ``update`` and
        ``config``)."""
        ...

    def final_evaluation(self, last_record: dict[str, Any]) -> dict[str, Any]:
        """Rank 0, after training: the contents of ``eval.json`` (``last_record`` is the last line
        of metrics.jsonl, ``{}`` if none)."""
        ...

    def summary(self) -> dict[str, Any]:
        """Rank 0: the job's fields of the summary :func:`run_job` returns."""
        ...

    def pictures(self, run_dir: Path) -> dict[str, str]:
        """Rank 0, last: write the pictures the config asks for (:func:`write_curves`, ...);
        ``{name: path}`` of those written. A failing picture only warns."""
        ...

    def close(self) -> None:
        """Release what the job holds (envs); called once, however the run ends."""
        ...


def say(enabled: bool, message: str) -> None:
    """A progress line on stderr for the steps after training (``train.progress``)."""
    if enabled:
        print(f"fwmrl: {message} …", file=sys.stderr, flush=True)


@contextlib.contextmanager
def warn_on_error(what: str) -> Iterator[None]:
    """Turn an error while writing ``what`` into a warning: a figure must not fail a finished run."""
    try:
        yield
    except Exception as error:  # noqa: BLE001
        warnings.warn(f"could not write {what}: {error}", stacklevel=3)


def write_curves(run_dir: Path, config: Config) -> dict[str, str]:
    """``curves.png`` of the run (:func:`fwmrl.plots.plot_runs`) when ``train.plot_at_end``."""
    if not config.train.plot_at_end:
        return {}
    from fwmrl.plots import plot_runs

    with warn_on_error("curves.png"):
        plot_runs([run_dir], run_dir / "curves.png")
        return {"curves": str(run_dir / "curves.png")}
    return {}


def run_job(
    make_job: Callable[[Config], Job],
    config: Config,
    run_dir: str | Path,
    resume: bool = False,
    on_log: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue) the run in ``run_dir`` with the job ``make_job(config)`` builds, until
    its ``steps`` reach ``train.total_steps`` (the module docstring says what is written when).

    ``on_log(record)`` is called with every record written to ``metrics.jsonl`` (e.g. to report
    it to Ray Tune). The process holds the run directory's lock (:class:`fwmrl.rundir.RunLock`)
    throughout; a refused start leaves the folder as it was (and creates none).

    Raises
    ------
    NonFiniteLossError:
        the loss, the parameters or the outputs became NaN/inf (the last
        checkpoint, whose weights are finite and act, is kept).
    RunError:
        a second writer, a damaged or mismatching checkpoint or run file (one line).
    ConfigError:
        a config that cannot run here (env, data, device).

    Returns
    -------
    ``run_dir``, ``update``, the job's :meth:`Job.summary` fields and ``eval`` (rank 0);
    ``{"rank", "update", "env_steps"}`` on the other ranks.
    """
    run_dir = Path(run_dir)
    lock = rundir.RunLock(run_dir)
    main = distributed.is_main()
    if main and run_dir.is_dir():
        lock.acquire()
    try:
        return _run(make_job, config, run_dir, resume, on_log, lock)
    finally:
        lock.release()


def _start(
    make_job: Callable[[Config], Job],
    config: Config,
    run_dir: Path,
    resume: bool,
    lock: rundir.RunLock,
) -> tuple[Job, dict[str, Any]]:
    """Check, build, restore and claim: the job and the resume's meta.json record."""
    main = distributed.is_main()
    set_threads(config.train.num_threads)
    rundir.check_device(config)
    data, diff = rundir.check_start(config, run_dir, resume) if main else ({}, {})
    job = make_job(config)
    try:
        record: dict[str, Any] = {}
        if resume:
            data = distributed.broadcast_object(data)  # rank 0's checked checkpoint
            restored = job.restore(data, run_dir)
            if job.steps >= config.train.total_steps and main:
                rundir.note(
                    f"{run_dir} has done {job.steps} {job.steps_unit}, train.total_steps is "
                    f"{config.train.total_steps}: nothing to train (pass a larger "
                    "train.total_steps=N to continue)"
                )
            record = {
                "from_update": job.update,
                "env_steps": job.steps,
                "overrides": {k: [a, b] for k, (a, b) in diff.items()},
                **restored,
            }
            if job.world > 1:
                record["world_size"] = job.world
        if main:
            rundir.claim(lock, run_dir, resume)
    except BaseException:
        job.close()
        raise
    return job, record


def _time_spent(run_dir: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the metrics a resume keeps (``x_values`` adds up the records of
    runs whose processes each counted from their own start)."""
    from fwmrl.plots import x_values

    records = rundir.read_metrics(run_dir)
    spent = []
    for axis in ("wall_time", "cpu_time"):
        values = [v for v in x_values(records, axis) if v is not None]
        spent.append(float(values[-1]) if values else 0.0)
    return spent[0], spent[1]


def _run(
    make_job: Callable[[Config], Job],
    config: Config,
    run_dir: Path,
    resume: bool,
    on_log: Callable[[dict[str, Any]], Any] | None,
    lock: rundir.RunLock,
) -> dict[str, Any]:
    from tqdm import tqdm

    main = distributed.is_main()
    job, record = _start(make_job, config, run_dir, resume, lock)
    logger = None
    try:
        if main:
            fresh_over = not resume and (run_dir / rundir.TB).is_dir()
            if resume:
                rundir.truncate_metrics(run_dir, job.update)
            save_config(config, run_dir / rundir.CONFIG)
            rundir.write_meta(run_dir, resumed=resume, record=record)
            job.write_files(run_dir, resume)
            resume_update = job.update if resume else (0 if fresh_over else None)
            logger = rundir.RunLogger(run_dir, config, resume_update)
    except BaseException:
        job.close()
        raise
    train, log_every = config.train, config.logging.log_every
    progress = tqdm(
        total=train.total_steps,
        initial=min(job.steps, train.total_steps),
        unit="step",
        unit_scale=True,
        dynamic_ncols=True,
        disable=not train.progress or not main,
        desc=run_dir.name,
    )
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    start_time = last_time = time.perf_counter()
    cpu_start = time.process_time()
    time_before, cpu_before = _time_spent(run_dir) if main and resume else (0.0, 0.0)

    def checkpoint(path: Path) -> None:
        data = job.state_dict()  # every rank: gathers the ranks' envs / core states
        if main:
            rundir.atomic_torch_save(data, path)

    if job.steps >= train.total_steps:  # a spent budget: the checkpoint must still carry
        checkpoint(run_dir / rundir.CHECKPOINT)  # the config.yaml just written, or eval refuses
    try:
        while job.steps < train.total_steps:
            steps_before = job.steps
            metrics = job.learn_update()
            progress.update(
                min(job.steps, train.total_steps) - min(steps_before, train.total_steps)
            )
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
            done = job.steps >= train.total_steps
            evaluate = done or bool(train.eval_every and job.update % train.eval_every == 0)
            improved = False
            if job.update % log_every == 0 or evaluate:
                # CPU seconds of all ranks (a collective: every rank reaches the same records)
                cpu_time = sum(distributed.all_gather_objects(time.process_time() - cpu_start))
                if main:
                    now = time.perf_counter()
                    entry: dict[str, Any] = {
                        "update": job.update,
                        "env_steps": job.steps,
                        "time_s": round(time_before + now - start_time, 3),
                        "cpu_time_s": round(cpu_before + cpu_time, 3),
                        **job.record(now - last_time),
                        **{k: v / counts[k] for k, v in sums.items()},
                    }
                    if evaluate:
                        if done:
                            progress.close()  # the bar is full: say what the last seconds are for
                            say(train.progress, f"final evaluation ({job.evaluation_label})")
                        fields, improved = job.evaluate()
                        entry.update(fields)
                    logger.log(entry)
                    if on_log is not None:
                        on_log(entry)
                    last_time = now
                    if job.headline in entry and entry[job.headline] is not None:
                        postfix = {"upd": job.update, job.headline: f"{entry[job.headline]:.4g}"}
                        progress.set_postfix(postfix)
                sums, counts = {}, {}
            if evaluate and job.world > 1:  # every rank takes part in state_dict()
                improved = bool(distributed.broadcast_object(improved))
            if improved:  # the format of checkpoint.pt, at the improving update
                checkpoint(run_dir / rundir.BEST_CHECKPOINT)
            if job.update % train.checkpoint_every == 0 or done:
                job.check_finite()
                checkpoint(run_dir / rundir.CHECKPOINT)
    finally:
        progress.close()
        if logger is not None:
            logger.close()
        job.close()
    distributed.barrier()  # the final checkpoint is written before any rank moves on
    if not main:  # rank 0 evaluates and draws
        return {"rank": job.rank, "update": job.update, "env_steps": job.steps}
    records = rundir.read_metrics(run_dir)
    evaluation = job.final_evaluation(records[-1] if records else {})
    atomic_write_text(run_dir / rundir.EVAL, json.dumps(evaluation, indent=2) + "\n")
    summary = {"run_dir": str(run_dir), "update": job.update, **job.summary(), "eval": evaluation}
    summary.update(job.pictures(run_dir))
    return summary
