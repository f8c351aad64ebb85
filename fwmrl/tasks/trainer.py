"""The shared supervised loop of the retrieval, catbAbI and LM trainers, and their run directories.

One optimizer step reads the next window of ``task.seq_len`` positions of every one of the
``task.batch_size`` columns of the training stream, starting from the core state the previous window
ended in (truncated BPTT: the state is detached, never reset between windows; it is reset only when
the stream wraps around to a new epoch). The loss is the mean cross-entropy over the window's
loss positions plus the core's auxiliary loss (MNM's meta loss) over its valid positions.

Run directories, metrics (``metrics.jsonl``, TensorBoard, wandb), atomic checkpoints and resume are
those of :mod:`fwmrl.runs`; ``env_steps`` in the records is the optimizer step count here, so plots
and tools that read it work unchanged.

Under ``torchrun`` the trainer is data-parallel (:mod:`fwmrl.distributed`): each rank trains on its
share of the ``task.batch_size`` columns in ``DistributedDataParallel`` with the loss normalised over
the global batch, and rank 0 alone writes the run directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from fwmrl import distributed
from fwmrl.config import Config, ConfigError
from fwmrl.memory import CoreState
from fwmrl.tasks.model import SequenceModel
from fwmrl.tasks.streams import (
    HEADLINE,
    Batched,
    MetricSums,
    TaskData,
    batchify,
    name_metrics,
)
from fwmrl.threads import set_threads


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN or infinite."""


def load_task_data(config: Config) -> TaskData:
    """The :class:`TaskData` of ``config.task`` (generating bAbI-style stories or the grammar corpus
    into ``task.data`` first when it holds none and ``task.generate`` is true)."""
    task = config.task
    if task.kind == "retrieval":
        from fwmrl.tasks.retrieval import retrieval_data

        return retrieval_data(
            task.train_queries,
            task.valid_queries,
            task.test_queries,
            task.data_seed,
            task.vocab_size,
        )
    if task.data is None:
        raise ConfigError(f"task.data: the {task.kind} trainer needs a data folder")
    folder = Path(task.data)
    if task.kind == "catbabi":
        from fwmrl.tasks.babi import catbabi_data
        from fwmrl.tasks.babi_generator import STORIES, generate_babi

        has_files = folder.is_dir() and any(folder.rglob("qa*_train.txt"))
        if not has_files and task.generate:
            unknown = sorted(set(task.tasks) - set(STORIES))
            if unknown:
                raise ConfigError(
                    f"task.tasks: cannot generate bAbI task(s) {unknown}; generated tasks: "
                    f"{sorted(STORIES)} (put the real bAbI files in {folder} for the others)"
                )
            n = task.generate_stories
            generate_babi(folder, task.tasks, n, max(n // 10, 1), task.data_seed)
        try:
            return catbabi_data(folder, task.tasks, task.mode, task.valid_fraction, task.data_seed)
        except (FileNotFoundError, ValueError) as error:
            raise ConfigError(f"task.data: {error}") from None
    from fwmrl.tasks.corpus import write_corpus
    from fwmrl.tasks.lm import lm_data

    if not (folder / "train.txt").is_file() and task.generate:
        write_corpus(folder, seed=task.data_seed)
    try:
        return lm_data(folder)
    except FileNotFoundError as error:
        raise ConfigError(f"task.data: {error}") from None


def build_model(config: Config, vocab_size: int) -> SequenceModel:
    """The :class:`SequenceModel` a config describes."""
    task = config.task
    if config.core.name == "none":
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


def _optimizer(config: Config, params: Any) -> torch.optim.Optimizer:
    t = config.task
    if t.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def _state_only_parameters(model: SequenceModel, device: torch.device) -> bool:
    """Whether some parameters get no gradient in a window that starts from a carried state (a
    learned initial state): DDP must then look for unused parameters every step."""
    was_training = model.training
    model.eval()  # no dropout: no random numbers drawn
    try:
        state = model.initial_state(1, device).detach()
        logits, _ = model(torch.zeros(1, 1, dtype=torch.long, device=device), state)
        logits.sum().backward()
        return any(p.grad is None for p in model.parameters() if p.requires_grad)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)


class SupervisedTrainer:
    """Truncated-BPTT training of a :class:`SequenceModel` on a task's streams.

    Args:
        config: the experiment; ``task``, ``core``, ``train.seed`` and ``train.device`` are used.
        data: the task's data (default: :func:`load_task_data`).

    Attributes:
        update: optimizer steps so far; ``position`` the next window's first row; ``epoch`` how
            often the training stream wrapped around; ``tokens`` positions read in training (over
            all ranks).
        model: the model; ``ddp`` the module trained (``DistributedDataParallel(model)`` under
            ``torchrun``, else ``model``).
        rank, world: this process's rank and the number of data-parallel processes.
    """

    def __init__(self, config: Config, data: TaskData | None = None) -> None:
        self.config = config
        set_threads(config.train.num_threads)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.device = distributed.local_device(config.train.device)
        self.data = data if data is not None else load_task_data(config)
        torch.manual_seed(config.train.seed)
        self.model = build_model(config, len(self.data.vocab)).to(self.device)
        self.ddp = self.model
        if self.world > 1:
            unused = _state_only_parameters(self.model, self.device)
            self.ddp = distributed.wrap_ddp(self.model, self.device, unused)
        if self.rank > 0:  # other dropout masks than rank 0's (the parameters are rank 0's)
            torch.manual_seed(config.train.seed + 1_000_003 * self.rank)
        self.optimizer = _optimizer(config, self.model.parameters())
        task = config.task
        self.batches = self._batchify("train", task.batch_size)
        self.global_columns = self.batches.inputs.shape[1]
        if self.world > 1:  # this rank's columns of the global batch
            try:
                self.shard = distributed.shard_columns(self.global_columns, self.world, self.rank)
            except ValueError as error:
                raise ConfigError(f"task.batch_size: {error}") from None
            self.batches = Batched(
                *(getattr(self.batches, f.name)[:, self.shard] for f in dataclasses.fields(Batched))
            )
        self._eval_cache: dict[str, Batched] = {}
        self.update = self.position = self.epoch = self.tokens = 0
        self.state: CoreState | None = None
        self.best: float | None = None

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def _batchify(self, split: str, columns: int) -> Batched:
        stream = self.data.split(split)
        columns = min(columns, len(stream))
        try:
            batched = batchify(stream, columns, self.data.pad, self.data.drop_tail)
        except ValueError as error:
            raise ConfigError(f"task.batch_size: {split} split: {error}") from None
        return batched.to(self.device)

    # ------------------------------------------------------------------ training
    def learn_update(self) -> dict[str, float]:
        """One optimizer step on the next window; returns its loss terms and train accuracy."""
        seq_len = self.config.task.seq_len
        if self.position >= self.batches.length:
            self.position, self.state = 0, None
            self.epoch += 1
        window = self.batches.window(self.position, seq_len)
        self.ddp.train()
        logits, state = self.ddp(window.inputs, self.state)
        nll = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), window.targets.flatten(), reduction="none"
        ).view(window.targets.shape)
        mask = window.loss_mask.float()
        valid = window.valid.float()
        n_loss, n_valid = mask.sum(), valid.sum()
        if self.world > 1:  # normalise by the global counts: DDP's mean of the ranks' gradients
            n_loss, n_valid = distributed.all_reduce_sum(torch.stack([n_loss, n_valid]))
        task_loss = (nll * mask).sum() / n_loss.clamp_min(1.0)
        aux = self.model.aux_loss_per_step
        aux_loss = (aux * valid).sum() / n_valid.clamp_min(1.0) if aux is not None else None
        if self.world > 1:  # then is the gradient of the global-batch loss
            task_loss = task_loss * self.world
            aux_loss = aux_loss * self.world if aux_loss is not None else None
        loss = task_loss if aux_loss is None else task_loss + aux_loss
        with torch.no_grad():
            hits = logits.argmax(-1) == window.targets
            scored = window.score_mask
            stats = torch.stack(
                [
                    task_loss.detach() / self.world,
                    aux_loss.detach() / self.world if aux_loss is not None else 0 * task_loss,
                    hits[window.valid].float().sum(),
                    valid.sum(),
                    hits[scored].float().sum(),
                    scored.float().sum(),
                ]
            ).double()
            if self.world > 1:  # every rank sees the same global values (and NaN check)
                stats = distributed.all_reduce_sum(stats)
        if not torch.isfinite(stats[:2]).all():
            raise NonFiniteLossError(
                f"the loss became {stats[0].item() + stats[1].item()} at step {self.update + 1}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP: gradients averaged over the ranks here
        max_norm = self.config.task.max_grad_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), max_norm if max_norm is not None else float("inf")
        )
        if not torch.isfinite(grad_norm):
            raise NonFiniteLossError(
                f"the gradient norm became {grad_norm.item()} at step {self.update + 1}"
            )
        self.optimizer.step()
        self.state = state.detach()
        self.position += window.length
        self.update += 1
        task_value, aux_value, hit_sum, valid_sum, scored_hits, scored_sum = stats.tolist()
        self.tokens += int(valid_sum)
        out = {
            "loss": task_value,
            "grad_norm": grad_norm.item(),
            "train_accuracy": hit_sum / valid_sum if valid_sum else math.nan,
        }
        if scored_sum:
            out["train_answer_accuracy"] = scored_hits / scored_sum
        if aux_loss is not None:
            out["aux_loss"] = aux_value
        return out

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, split: str = "valid", max_windows: int | None = None) -> dict[str, float]:
        """Metrics of the task on a whole split (state carried across windows, dropout off)."""
        if split not in self._eval_cache:
            self._eval_cache[split] = self._batchify(split, self.config.task.eval_batch_size)
        batches = self._eval_cache[split]
        self.model.eval()
        sums = MetricSums()
        state = None
        seq_len = self.config.task.seq_len
        for i, start in enumerate(range(0, batches.length, seq_len)):
            if max_windows is not None and i >= max_windows:
                break
            window = batches.window(start, seq_len)
            logits, state = self.model(window.inputs, state)
            sums.add(logits, window)
        return name_metrics(
            self.data.kind, sums.result(), self.data.group_names, self.config.task.mode
        )

    def track_best(self, metrics: dict[str, float]) -> float | None:
        """Update and return the best validation value of the task's headline metric."""
        key, better = HEADLINE[self.data.kind]
        value = metrics.get(key)
        if value is None or not math.isfinite(value):
            return self.best
        if self.best is None or (value > self.best if better == "max" else value < self.best):
            self.best = float(value)
        return self.best

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (loads with ``weights_only=True``).

        Under ``torchrun`` every rank must call it (the core states and random-number states of
        all ranks are gathered); the result holds the full-batch core state and rank 0's values.
        """
        state = self.state
        if self.world > 1 and state is not None:
            state = distributed.gather_state(state)
        rng_states = distributed.all_gather_objects(torch.get_rng_state())
        return {
            "format": 1,
            "kind": self.data.kind,
            "update": self.update,
            "env_steps": self.update,
            "position": self.position,
            "epoch": self.epoch,
            "tokens": self.tokens,
            "best": self.best,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "torch_rng_ranks": rng_states,
            "core_state": None if state is None else state.state_dict(),
            "vocab": list(self.data.vocab),
            "config": self.config.to_dict(),
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        if list(data["vocab"]) != list(self.data.vocab):
            raise ConfigError("the task data changed since the checkpoint: the vocabulary differs")
        self.model.load_state_dict(data["model"])
        self.optimizer.load_state_dict(data["optimizer"])
        rng_ranks = data.get("torch_rng_ranks") or []
        same_world = len(rng_ranks) == self.world
        torch.set_rng_state(rng_ranks[self.rank] if same_world else data["torch_rng"])
        self.update, self.position = int(data["update"]), int(data["position"])
        self.epoch, self.tokens = int(data["epoch"]), int(data["tokens"])
        self.best = data["best"]
        if data["core_state"] is None:
            self.state = None
        else:
            state_type = type(self.model.initial_state(1))
            state = state_type.from_state_dict(data["core_state"])
            if self.world > 1 and state.batch_size == self.global_columns:
                state = state[self.shard]  # this rank's columns of the full-batch state
            self.state = state.to(self.device)


def train_task_run(
    config: Config,
    run_dir: str | Path,
    resume: bool = False,
    on_log: Any = None,
) -> dict[str, Any]:
    """Train (or continue) a supervised/LM run until ``train.total_steps`` optimizer steps.

    Writes what :func:`fwmrl.runs.train_run` writes for RL: ``config.yaml``, ``meta.json``,
    ``metrics.jsonl`` (+ TensorBoard/wandb), ``checkpoint.pt`` every ``train.checkpoint_every`` steps
    and at the end, ``eval.json`` (final validation and test metrics) and ``curves.png``;
    ``on_log(record)`` is called with every record.

    Under ``torchrun`` (:mod:`fwmrl.distributed`) every rank trains its share of the batch and only
    rank 0 writes, evaluates and calls ``on_log``; the other ranks return ``{"rank": r, ...}``
    without evaluation once training is done.
    """
    from tqdm import tqdm

    from fwmrl.runs import (
        CHECKPOINT,
        RunLogger,
        _truncate_metrics,
        _warn_on_error,
        _write_meta,
        atomic_torch_save,
        atomic_write_text,
        load_checkpoint,
        save_config,
    )

    run_dir = Path(run_dir)
    main = distributed.is_main()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    data = load_task_data(config) if main else None  # rank 0 generates missing data first
    distributed.barrier()
    trainer = SupervisedTrainer(config, data if main else load_task_data(config))
    resume_update = None
    if resume:  # rank 0 reads the checkpoint and sends it to the other ranks
        data = load_checkpoint(run_dir / CHECKPOINT, map_location="cpu") if main else None
        trainer.load_state_dict(distributed.broadcast_object(data))
        resume_update = trainer.update
        if main:
            _truncate_metrics(run_dir, trainer.update)
    logger = None
    if main:
        save_config(config, run_dir / CONFIG_NAME)
        _write_meta(run_dir, resumed=resume)
        logger = RunLogger(run_dir, config, resume_update)
    train, log_every = config.train, config.logging.log_every
    progress = tqdm(
        total=train.total_steps,
        initial=min(trainer.update, train.total_steps),
        unit="step",
        dynamic_ncols=True,
        disable=not train.progress or not main,
        desc=run_dir.name,
    )
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    start = last_time = time.perf_counter()
    last_tokens = trainer.tokens
    headline = HEADLINE[trainer.data.kind][0]
    try:
        while trainer.update < train.total_steps:
            metrics = trainer.learn_update()
            progress.update(1)
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
            done = trainer.update >= train.total_steps
            evaluate = done or (train.eval_every and trainer.update % train.eval_every == 0)
            if main and (trainer.update % log_every == 0 or done or evaluate):
                now = time.perf_counter()
                record: dict[str, Any] = {
                    "update": trainer.update,
                    "env_steps": trainer.update,
                    "tokens": trainer.tokens,
                    "epoch": trainer.epoch,
                    "time_s": round(now - start, 3),
                    "tokens_per_s": (trainer.tokens - last_tokens) / max(now - last_time, 1e-9),
                    **{k: v / counts[k] for k, v in sums.items()},
                }
                if evaluate:
                    valid = trainer.evaluate("valid")
                    record.update({f"valid_{k}": v for k, v in valid.items()})
                    best = trainer.track_best(valid)
                    if best is not None:
                        record[f"best_valid_{headline}"] = best
                    progress.set_postfix({headline: f"{valid.get(headline, math.nan):.4g}"})
                logger.log(record)
                if on_log is not None:
                    on_log(record)
                sums, counts = {}, {}
                last_time, last_tokens = now, trainer.tokens
            if trainer.update % train.checkpoint_every == 0 or done:
                data = trainer.state_dict()  # every rank: gathers the ranks' core states
                if main:
                    atomic_torch_save(data, run_dir / CHECKPOINT)
    finally:
        progress.close()
        if logger is not None:
            logger.close()
    distributed.barrier()  # the final checkpoint is written before any rank moves on
    if not main:
        return {"rank": trainer.rank, "update": trainer.update}
    evaluation = {
        "steps": trainer.update,
        "parameters": trainer.num_parameters,
        "valid": trainer.evaluate("valid"),
        "test": trainer.evaluate("test"),
    }
    atomic_write_text(run_dir / "eval.json", json.dumps(evaluation, indent=2) + "\n")
    summary = {"run_dir": str(run_dir), "update": trainer.update, "eval": evaluation}
    if train.plot_at_end:
        from fwmrl.plots import plot_runs

        with _warn_on_error("curves.png"):
            plot_runs([run_dir], run_dir / "curves.png")
            summary["curves"] = str(run_dir / "curves.png")
    return summary


CONFIG_NAME = "config.yaml"


def load_task_model(run_dir: str | Path) -> tuple[SequenceModel, list[str], Config]:
    """The model of a task run's last checkpoint (CPU, eval mode), its vocabulary and config."""
    from fwmrl.runs import CHECKPOINT, load_checkpoint, load_run_config

    config = load_run_config(run_dir)
    data = load_checkpoint(Path(run_dir) / CHECKPOINT)
    vocab = list(data["vocab"])
    model = build_model(config, len(vocab))
    model.load_state_dict(data["model"])
    return model.eval(), vocab, config
