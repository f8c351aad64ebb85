"""The supervised/LM job: :class:`~fwmrl.tasks.trainer.SupervisedTrainer` as a
:class:`fwmrl.jobloop.Job`, the files only these runs have, and the config layer of these trainers
(:func:`build_trainer`, :func:`build_model`, :func:`load_task_data`: the trainer itself takes
objects and values).

Besides what every run writes, a task run writes ``data.json`` (:func:`~fwmrl.tasks.trainer.data_record`:
the data's path, origin and file digests; a resume on other data is refused) and ``best.pt`` (the
format of ``checkpoint.pt``) whenever the validation headline metric improves; its ``eval.json``
holds the final validation and test metrics. ``env_steps`` in the records is the optimizer step
count, so plots and tools that read it work unchanged. :func:`fwmrl.jobs.train_run` runs it for
``task.kind: retrieval | catbabi | lm``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from fwmrl import distributed, rundir
from fwmrl.atomic import atomic_write_text
from fwmrl.config import Config
from fwmrl.errors import ConfigError, RunError
from fwmrl.jobloop import write_curves
from fwmrl.memory import NO_CORE
from fwmrl.tasks.model import SequenceModel
from fwmrl.tasks.streams import HEADLINE, TaskData, read_generated_marker
from fwmrl.tasks.trainer import SupervisedTrainer, data_record
from fwmrl.threads import set_threads

DATA_RECORD = "data.json"
"""What a run read: :func:`~fwmrl.tasks.trainer.data_record` of its data."""


GENERATED_ROOT = Path("runs/data/generated")
"""Where generated catbAbI/LM data goes when ``task.data`` is null (a folder per set of
generation parameters, relative to the working directory)."""


def default_data_folder(config: Config) -> Path:
    """The generated-data folder of a config with ``task.data: null``."""
    task = config.task
    if task.kind == "catbabi":
        tasks = "-".join(str(t) for t in sorted(set(task.tasks)))
        return GENERATED_ROOT / f"babi-qa{tasks}-n{task.generate_stories}-seed{task.data_seed}"
    return GENERATED_ROOT / f"lm-grammar-lines{CORPUS_LINES}-seed{task.data_seed}"


CORPUS_LINES = 20000
"""Training lines of the generated LM corpus."""


def load_task_data(config: Config) -> TaskData:
    """The :class:`TaskData` of ``config.task``, with ``TaskData.origin`` saying where it came from.

    ``task.data: null`` reads generated data from :func:`default_data_folder`, generating it the
    first time. A named ``task.data`` folder must hold the data; only with ``task.generate: true``
    are bAbI-style stories or the grammar corpus generated into it when it holds none. Generated
    data found in a folder must have been generated with the config's parameters.
    """
    task = config.task
    if task.kind == "retrieval":
        from fwmrl.tasks.retrieval import retrieval_data

        data = retrieval_data(
            task.train_queries,
            task.valid_queries,
            task.test_queries,
            task.data_seed,
            task.vocab_size,
        )
        keys = ("train_queries", "valid_queries", "test_queries", "data_seed", "vocab_size")
        data.origin = {
            "path": None,
            "generated": True,
            "generated_now": True,
            "generator": {
                "generator": "fwmrl.tasks.retrieval",
                **{k: getattr(task, k) for k in keys},
            },
        }
        return data
    named = task.data is not None
    folder = Path(task.data) if named else default_data_folder(config)
    may_generate = task.generate or not named
    if task.kind == "catbabi":
        generated_now = _catbabi_files(config, folder, may_generate)
    else:
        generated_now = _corpus_files(config, folder, may_generate)
    try:
        if task.kind == "catbabi":
            from fwmrl.tasks.babi import catbabi_data

            data = catbabi_data(folder, task.tasks, task.mode, task.valid_fraction, task.data_seed)
        else:
            from fwmrl.tasks.lm import lm_data

            data = lm_data(folder)
    except (FileNotFoundError, ValueError) as error:
        raise ConfigError(f"task.data: {error}") from None
    marker = read_generated_marker(folder)
    data.origin = {
        "path": str(folder.resolve()),
        "generated": marker is not None,
        "generated_now": generated_now,
        "generator": marker,
    }
    return data


def _missing_folder(folder: Path, what: str, hint: str) -> ConfigError:
    state = "does not exist" if not folder.exists() else f"holds no {what}"
    return ConfigError(
        f"task.data: {folder} {state} (a typo?); point task.data at the data, set task.data=null "
        f"for generated data, or add task.generate=true to generate {hint} into {folder}"
    )


def _catbabi_files(config: Config, folder: Path, may_generate: bool) -> bool:
    """Check (and generate where allowed) the bAbI files; whether any were generated now."""
    from fwmrl.tasks.babi import find_task_files, has_babi_files
    from fwmrl.tasks.babi_generator import STORIES, generate_babi, generation_parameters

    task = config.task
    n = task.generate_stories
    wanted = generation_parameters(n, max(n // 10, 1), task.data_seed)
    has_files = has_babi_files(folder)
    if not has_files and not may_generate:
        raise _missing_folder(folder, "bAbI files (qa*_train.txt)", "bAbI-style stories")
    marker = read_generated_marker(folder)
    if has_files and marker is None:
        return False  # data from elsewhere (the bAbI release): read as it is
    if has_files and not may_generate:
        return False  # generated earlier, named explicitly: read as it is
    parts = (marker or {}).get("parts", {})
    for t in task.tasks:
        if str(t) in parts and parts[str(t)] != wanted:
            raise ConfigError(
                f"task.data: {folder} holds task {t} generated with {parts[str(t)]}, not the "
                f"config's {wanted} (task.generate_stories, task.data_seed); use another folder"
            )
    missing = []
    for t in task.tasks:
        try:
            find_task_files(folder, t)
        except FileNotFoundError:
            missing.append(t)
    if not missing:
        return False
    unknown = sorted(set(missing) - set(STORIES))
    if unknown:
        raise ConfigError(
            f"task.tasks: cannot generate bAbI task(s) {unknown}; generated tasks: "
            f"{sorted(STORIES)} (put the real bAbI files in {folder} for the others)"
        )
    generate_babi(folder, missing, wanted["train_stories"], wanted["test_stories"], task.data_seed)
    return True


def _corpus_files(config: Config, folder: Path, may_generate: bool) -> bool:
    """Check (and generate where allowed) the LM corpus; whether it was generated now."""
    from fwmrl.tasks.corpus import corpus_parameters, write_corpus
    from fwmrl.tasks.lm import find_lm_files

    try:
        find_lm_files(folder)
        has_files = True
    except FileNotFoundError:
        has_files = False
    except ValueError as error:
        raise ConfigError(f"task.data: {error}") from None
    if has_files:
        marker = read_generated_marker(folder)
        wanted = corpus_parameters(CORPUS_LINES, config.task.data_seed)
        if marker is not None and may_generate:
            found = {k: marker.get(k) for k in wanted}
            if found != wanted:
                raise ConfigError(
                    f"task.data: {folder} holds a corpus generated with {found}, not {wanted}"
                )
        return False
    if not may_generate:
        raise _missing_folder(
            folder,
            "corpus (train/valid/test.txt, ptb.*.txt or wiki.*.tokens)",
            "the grammar corpus",
        )
    write_corpus(folder, train_lines=CORPUS_LINES, seed=config.task.data_seed)
    return True


def build_model(config: Config, vocab_size: int) -> SequenceModel:
    """The :class:`SequenceModel` a config describes."""
    task = config.task
    if config.core.name == NO_CORE:
        raise ConfigError("core.name: the supervised trainers need a memory core, not 'none'")
    if task.dropout_weight > 0 and config.core.kwargs.get("recompute_chunk"):
        raise ConfigError(
            "task.dropout_weight: weight drop cannot be combined with core.recompute_chunk "
            "(the recomputed steps would draw other masks); set one of them to 0/null"
        )
    try:
        return _sequence_model(config, vocab_size)
    except ValueError as error:
        if str(error).startswith("dropout_weight"):
            raise ConfigError(f"task.{error}") from None
        raise


def _sequence_model(config: Config, vocab_size: int) -> SequenceModel:
    task = config.task
    return SequenceModel(
        vocab_size,
        task.embedding_size,
        config.core.name,
        config.core.kwargs,
        task.dropout_embedding,
        task.dropout_input,
        task.dropout_output,
        task.dropout_weight,
    )


def build_trainer(config: Config, data: TaskData | None = None) -> SupervisedTrainer:
    """The :class:`SupervisedTrainer` a config describes (the config layer of the supervised
    trainers: the trainer itself takes only objects and values).

    Parameters
    ----------
    config:
        The experiment: ``task`` (the trainer's keys), ``core`` (the model) and ``train.seed``,
        ``train.device``, ``train.num_threads``.
    data:
        The task's data (default: :func:`load_task_data` of ``config``).
    """
    task, train = config.task, config.train
    data = data if data is not None else load_task_data(config)
    set_threads(train.num_threads)
    torch.manual_seed(train.seed)  # the model's initial parameters (the same on every rank)
    model = build_model(config, len(data.vocab))
    return SupervisedTrainer(
        data,
        model,
        seq_len=task.seq_len,
        batch_size=task.batch_size,
        eval_batch_size=task.eval_batch_size,
        optimizer=task.optimizer,
        lr=task.lr,
        weight_decay=task.weight_decay,
        max_grad_norm=task.max_grad_norm,
        mode=getattr(task, "mode", "qa"),  # catbabi keys
        reshuffle=getattr(task, "reshuffle", False),
        seed=train.seed,
        device=train.device,
        num_threads=train.num_threads,
    )


class TaskJob:
    """The supervised/LM trainer driven by :func:`fwmrl.jobloop.run_job`.

    Parameters
    ----------
    config:
        the experiment; rank 0 loads (and, where allowed, generates) the data first, the
        other ranks read it after.

    Attributes
    ----------
    trainer:
        the :class:`SupervisedTrainer`.
    """

    steps_unit = "optimizer steps"
    evaluation_label = "validation split"

    def __init__(self, config: Config) -> None:
        main = distributed.is_main()
        data = load_task_data(config) if main else None  # rank 0 generates missing data first
        distributed.barrier()
        self.trainer = build_trainer(config, data if main else load_task_data(config))
        self.config = config
        self.rank, self.world = self.trainer.rank, self.trainer.world
        self._record = data_record(self.trainer.data) if main else {}
        self._headline = HEADLINE[self.trainer.data.kind][0]
        self.headline = f"valid_{self._headline}"
        self._last_tokens = 0

    @property
    def update(self) -> int:
        """Optimizer steps done."""
        return self.trainer.update

    @property
    def steps(self) -> int:
        """Optimizer steps done (what ``train.total_steps`` counts here)."""
        return self.trainer.update

    def restore(self, data: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        """Refuse other data than the run read (before the checkpoint: a changed file is named,
        not just the vocabulary), then :meth:`SupervisedTrainer.load_state_dict`."""
        if self.rank == 0:
            _check_same_data(run_dir, self._record)
        self.trainer.load_state_dict(data)
        self._last_tokens = self.trainer.tokens
        return {}

    def write_files(self, run_dir: Path, resume: bool) -> None:
        """``data.json``; on resume, a ``best.pt`` of the abandoned later steps is removed."""
        if resume:
            _drop_later_best(run_dir, self.trainer.update)
        atomic_write_text(run_dir / DATA_RECORD, json.dumps(self._record, indent=2) + "\n")

    def learn_update(self) -> dict[str, float]:
        """One optimizer step (the trainer raises on a NaN/inf loss or gradient)."""
        return self.trainer.learn_update()

    def record(self, seconds: float) -> dict[str, Any]:
        """``tokens``, ``epoch`` and ``tokens_per_s`` since the last record."""
        tokens, self._last_tokens = self.trainer.tokens - self._last_tokens, self.trainer.tokens
        return {
            "tokens": self.trainer.tokens,
            "epoch": self.trainer.epoch,
            "tokens_per_s": tokens / max(seconds, 1e-9),
        }

    def evaluate(self) -> tuple[dict[str, float], bool]:
        """The validation split (``valid_*``) and the best headline value so far."""
        valid = self.trainer.evaluate("valid")
        fields = {f"valid_{k}": v for k, v in valid.items()}
        previous = self.trainer.best
        best = self.trainer.track_best(valid)
        if best is not None:
            fields[f"best_valid_{self._headline}"] = best
        return fields, best is not None and best != previous

    def check_finite(self) -> None:
        """Nothing to add: every step checks its loss and gradient norm."""

    def state_dict(self) -> dict[str, Any]:
        """:meth:`SupervisedTrainer.state_dict` and the run's ``config``."""
        return {**self.trainer.state_dict(), "config": self.config.to_dict()}

    def final_evaluation(self, last_record: dict[str, Any]) -> dict[str, Any]:
        """Validation and test metrics of the last checkpoint, its steps and parameter count."""
        return {
            "steps": self.trainer.update,
            "parameters": self.trainer.num_parameters,
            "valid": self.trainer.evaluate("valid"),
            "test": self.trainer.evaluate("test"),
        }

    def summary(self) -> dict[str, Any]:
        """No fields beyond ``run_dir``, ``update`` and ``eval``."""
        return {}

    def pictures(self, run_dir: Path) -> dict[str, str]:
        """``curves.png`` (training loss and the validation metric)."""
        return write_curves(run_dir, self.config)

    def close(self) -> None:
        """Nothing to release."""


def _check_same_data(run_dir: Path, record: dict[str, Any]) -> None:
    """Refuse to resume on other data than the run read (its ``data.json``, where it has one)."""
    path = run_dir / DATA_RECORD
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError:
        raise RunError(f"{path}: damaged (not JSON)") from None
    if old.get("sha256") != record["sha256"]:
        changed = sorted(
            {(f["name"], f["sha256"]) for f in old.get("files", [])}
            ^ {(f["name"], f["sha256"]) for f in record["files"]}
        )
        names = ", ".join(sorted({n for n, _ in changed})) or "the generator parameters"
        raise ConfigError(
            f"task.data: the data differ from those this run read ({path}: "
            f"{str(old.get('sha256'))[:12]}…, now {record['sha256'][:12]}…; changed: {names})"
        )


def _drop_later_best(run_dir: Path, update: int) -> None:
    """A ``best.pt`` saved after the checkpoint a run resumes from belongs to the abandoned steps."""
    path = run_dir / rundir.BEST_CHECKPOINT
    if path.is_file() and int(rundir.load_checkpoint(path)["update"]) > update:
        path.unlink()


def checkpoint_path(run_dir: str | Path, which: str = "last") -> Path:
    """``checkpoint.pt`` (``which="last"``) or ``best.pt`` (``"best"``) of a task run.

    Raises
    ------
    RunError:
        an unknown ``which``, or no ``best.pt`` (no validation yet, or an older run).
    """
    if which not in ("last", "best"):
        raise RunError(f"--checkpoint: 'last' or 'best', got {which!r}")
    path = Path(run_dir) / (rundir.CHECKPOINT if which == "last" else rundir.BEST_CHECKPOINT)
    if which == "best" and not path.is_file():
        raise RunError(
            f"--checkpoint best: {path} does not exist (no validation has run yet, or the run "
            "predates best.pt); use --checkpoint last"
        )
    return path


def load_task_model(
    run_dir: str | Path, which: str = "last"
) -> tuple[SequenceModel, list[str], Config]:
    """The model of a task run's last (or best, :func:`checkpoint_path`) checkpoint (CPU, eval
    mode), its vocabulary and config."""
    config = rundir.load_run_config(run_dir)
    data = rundir.load_checkpoint(checkpoint_path(run_dir, which))
    vocab = list(data["vocab"])
    model = build_model(config, len(vocab))
    model.load_state_dict(data["model"])
    return model.eval(), vocab, config
