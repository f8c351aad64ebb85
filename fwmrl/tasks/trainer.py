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

import numpy as np
import torch

from fwmrl import distributed
from fwmrl.config import Config, ConfigError
from fwmrl.errors import NonFiniteLossError, RunError
from fwmrl.memory import NO_CORE, CoreState
from fwmrl.tasks.model import SequenceModel
from fwmrl.tasks.streams import (
    HEADLINE,
    Batched,
    MetricSums,
    Stream,
    TaskData,
    batchify,
    name_metrics,
    read_generated_marker,
)
from fwmrl.threads import set_threads

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


def data_record(data: TaskData) -> dict[str, Any]:
    """What a run read (its ``data.json``): ``origin`` (path, whether the data is generated,
    whether this run generated it, the generator record) and every file read with its size and
    SHA-256, plus ``sha256``, the digest of the list (names relative to the path, and digests)."""
    import hashlib

    root = Path(data.origin["path"]) if data.origin.get("path") else None
    files = []
    for path in data.files:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        name = str(path.resolve().relative_to(root)) if root is not None else str(path)
        files.append({"name": name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()})
    summary = hashlib.sha256()
    for f in sorted(files, key=lambda f: f["name"]):
        summary.update(f"{f['name']}\0{f['sha256']}\n".encode())
    if not files:  # generated in memory: the digest of its generator's parameters
        summary.update(json.dumps(data.origin.get("generator"), sort_keys=True).encode())
    return {"kind": data.kind, **data.origin, "files": files, "sha256": summary.hexdigest()}


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
        self.reshuffle = config.task.reshuffle and self.data.reorder_train is not None
        self.batches = self._train_batches(0)
        self._eval_cache: dict[str, Batched] = {}
        self.update = self.position = self.epoch = self.tokens = 0
        self.state: CoreState | None = None
        self.best: float | None = None

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def _train_batches(self, epoch: int) -> Batched:
        """This rank's columns of the training stream of ``epoch``: the data's own order in epoch 0
        and without reshuffling, else the stories in the order drawn from ``(train.seed, epoch)``
        (so a resumed run rebuilds exactly the stream it was in)."""
        stream = self.data.train
        if self.reshuffle and epoch > 0:
            generator = np.random.default_rng([self.config.train.seed, epoch])
            stream = self.data.reorder_train(generator)  # type: ignore[misc]
        batches = self._batchify("train", self.config.task.batch_size, stream)
        self.global_columns = batches.inputs.shape[1]
        if self.world > 1:  # this rank's columns of the global batch
            try:
                self.shard = distributed.shard_columns(self.global_columns, self.world, self.rank)
            except ValueError as error:
                raise ConfigError(f"task.batch_size: {error}") from None
            batches = Batched(
                *(getattr(batches, f.name)[:, self.shard] for f in dataclasses.fields(Batched))
            )
        return batches

    def _batchify(self, split: str, columns: int, stream: Stream | None = None) -> Batched:
        stream = self.data.split(split) if stream is None else stream
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
            if self.reshuffle:
                self.batches = self._train_batches(self.epoch)
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
            "reshuffle": self.reshuffle,
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
        # checkpoints from before per-epoch reshuffling repeated the epoch-0 stream
        reshuffle = bool(data.get("reshuffle", False)) and self.data.reorder_train is not None
        if (reshuffle, self.epoch) != (self.reshuffle, 0):
            self.reshuffle = reshuffle
            self.batches = self._train_batches(self.epoch)
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
    ``metrics.jsonl`` (+ TensorBoard/wandb, with ``time_s`` and ``cpu_time_s``, the wall and process
    CPU seconds since the process started), ``checkpoint.pt`` every ``train.checkpoint_every`` steps
    and at the end, ``best.pt`` (same format) whenever the validation headline metric improves,
    ``data.json`` (:func:`data_record`: the data's path, origin and file digests; a resume on
    other data is refused), ``eval.json`` (final validation and test metrics of the last
    checkpoint) and ``curves.png``;
    ``on_log(record)`` is called with every record.

    Under ``torchrun`` (:mod:`fwmrl.distributed`) every rank trains its share of the batch and only
    rank 0 writes, evaluates and calls ``on_log``; the other ranks return ``{"rank": r, ...}``
    without evaluation once training is done.
    """
    from tqdm import tqdm

    from fwmrl.runs import (
        CHECKPOINT,
        CONFIG,
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
    record = data_record(trainer.data) if main else {}
    if resume and main:  # before the checkpoint: a changed file is named, not just the vocabulary
        _check_same_data(run_dir, record)
    resume_update = None
    if resume:  # rank 0 reads the checkpoint and sends it to the other ranks
        data = load_checkpoint(run_dir / CHECKPOINT, map_location="cpu") if main else None
        trainer.load_state_dict(distributed.broadcast_object(data))
        resume_update = trainer.update
        if main:
            _truncate_metrics(run_dir, trainer.update)
    logger = None
    if main:
        if resume:
            _drop_later_best(run_dir, trainer.update)
        save_config(config, run_dir / CONFIG)
        _write_meta(run_dir, resumed=resume)
        atomic_write_text(run_dir / DATA_RECORD, json.dumps(record, indent=2) + "\n")
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
    cpu_start = time.process_time()
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
            improved = False
            if main and (trainer.update % log_every == 0 or done or evaluate):
                now = time.perf_counter()
                record: dict[str, Any] = {
                    "update": trainer.update,
                    "env_steps": trainer.update,
                    "tokens": trainer.tokens,
                    "epoch": trainer.epoch,
                    "time_s": round(now - start, 3),
                    "cpu_time_s": round(time.process_time() - cpu_start, 3),
                    "tokens_per_s": (trainer.tokens - last_tokens) / max(now - last_time, 1e-9),
                    **{k: v / counts[k] for k, v in sums.items()},
                }
                if evaluate:
                    valid = trainer.evaluate("valid")
                    record.update({f"valid_{k}": v for k, v in valid.items()})
                    previous = trainer.best
                    best = trainer.track_best(valid)
                    improved = best is not None and best != previous
                    if best is not None:
                        record[f"best_valid_{headline}"] = best
                    progress.set_postfix({headline: f"{valid.get(headline, math.nan):.4g}"})
                logger.log(record)
                if on_log is not None:
                    on_log(record)
                sums, counts = {}, {}
                last_time, last_tokens = now, trainer.tokens
            if evaluate and trainer.world > 1:  # every rank takes part in state_dict()
                improved = bool(distributed.broadcast_object(improved))
            if improved:  # the same format as checkpoint.pt, at the improving step
                data = trainer.state_dict()
                if main:
                    atomic_torch_save(data, run_dir / BEST_CHECKPOINT)
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


BEST_CHECKPOINT = "best.pt"
"""The checkpoint of the best validation headline metric so far (format of ``checkpoint.pt``)."""
DATA_RECORD = "data.json"
"""What a run read: :func:`data_record` of its data."""


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
    from fwmrl.runs import load_checkpoint

    path = run_dir / BEST_CHECKPOINT
    if path.is_file() and int(load_checkpoint(path)["update"]) > update:
        path.unlink()


def checkpoint_path(run_dir: str | Path, which: str = "last") -> Path:
    """``checkpoint.pt`` (``which="last"``) or ``best.pt`` (``"best"``) of a task run.

    Raises:
        RunError: an unknown ``which``, or no ``best.pt`` (no validation yet, or an older run).
    """
    from fwmrl.runs import CHECKPOINT

    if which not in ("last", "best"):
        raise RunError(f"--checkpoint: 'last' or 'best', got {which!r}")
    path = Path(run_dir) / (CHECKPOINT if which == "last" else BEST_CHECKPOINT)
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
    from fwmrl.runs import load_checkpoint, load_run_config

    config = load_run_config(run_dir)
    data = load_checkpoint(checkpoint_path(run_dir, which))
    vocab = list(data["vocab"])
    model = build_model(config, len(vocab))
    model.load_state_dict(data["model"])
    return model.eval(), vocab, config
