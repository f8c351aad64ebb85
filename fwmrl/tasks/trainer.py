"""The shared supervised loop of the retrieval, catbAbI and LM trainers.

One optimizer step reads the next window of ``task.seq_len`` positions of every one of the
``task.batch_size`` columns of the training stream, starting from the core state the previous window
ended in (truncated BPTT: the state is detached, never reset between windows; it is reset only when
the stream wraps around to a new epoch). The loss is the mean cross-entropy over the window's
loss positions plus the core's auxiliary loss (MNM's meta loss) over its valid positions.

The trainer knows no run directory: :class:`fwmrl.tasks.job.TaskJob` adapts it to the one job loop
(:mod:`fwmrl.jobloop`: run directories, metrics, checkpoints, resume, evaluation, pictures).

Under ``torchrun`` the trainer is data-parallel (:mod:`fwmrl.distributed`): each rank trains on its
share of the ``task.batch_size`` columns in ``DistributedDataParallel`` with the loss normalised over
the global batch, and rank 0 alone writes the run directory.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fwmrl import distributed
from fwmrl.errors import ConfigError, NonFiniteLossError
from fwmrl.memory import CoreState
from fwmrl.tasks.model import SequenceModel
from fwmrl.tasks.streams import (
    HEADLINE,
    Batched,
    MetricSums,
    Stream,
    TaskData,
    batchify,
    name_metrics,
)
from fwmrl.threads import set_threads


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


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "nadam": torch.optim.NAdam,
    "sgd": torch.optim.SGD,
}
"""The optimizers a :class:`SupervisedTrainer` takes by name."""


def _state_only_parameters(model: SequenceModel, device: torch.device) -> bool:
    """Whether some parameters get no gradient in a window that starts from a carried state (a
    learned initial state): DDP must then look for unused parameters every step."""
    was_training = model.training
    model.eval()  # no dropout: no random numbers drawn
    try:
        state = model.initial_state(1, device).detach()
        logits, _, _ = model(torch.zeros(1, 1, dtype=torch.long, device=device), state)
        logits.sum().backward()
        return any(p.grad is None for p in model.parameters() if p.requires_grad)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)


class SupervisedTrainer:
    """Truncated-BPTT training of a :class:`SequenceModel` on a task's streams.

    The trainer takes objects and plain values, never a config:
    :func:`fwmrl.tasks.job.build_trainer` builds one from a :class:`~fwmrl.config.Config`.

    Parameters
    ----------
    data:
        The task's data (:func:`fwmrl.tasks.job.load_task_data` reads a config's).
    model:
        The model to train (built after ``torch.manual_seed(seed)`` for a reproducible start; it is
        moved to ``device``).
    seq_len:
        Truncated-BPTT window: positions per optimizer step and column.
    batch_size, eval_batch_size:
        Columns of the training stream per step (the global batch under ``torchrun``) and of the
        evaluation streams.
    optimizer, lr, weight_decay:
        The optimizer (a name of :data:`OPTIMIZERS`) and its settings.
    max_grad_norm:
        Gradient-norm clipping threshold, or ``None`` for none.
    mode:
        catbAbI: ``qa`` or ``lm`` (how the metrics are named).
    reshuffle:
        A new order of the training stories every epoch, drawn from ``(seed, epoch)`` (where the
        data can reorder its training stream).
    seed:
        Seeds the per-epoch order and, on ranks other than 0, the dropout masks.
    device:
        Torch device (``cuda`` is this rank's GPU under ``torchrun``).
    num_threads:
        ``torch.set_num_threads`` (``None``: torch's default).

    Attributes
    ----------
    update:
        Optimizer steps so far; ``position`` the next window's first row; ``epoch`` how
        often the training stream wrapped around; ``tokens`` positions read in training (over
        all ranks).
    model:
        The model; ``ddp`` the module trained (``DistributedDataParallel(model)`` under
        ``torchrun``, else ``model``).
    rank, world:
        This process's rank and the number of data-parallel processes.
    """

    def __init__(
        self,
        data: TaskData,
        model: SequenceModel,
        *,
        seq_len: int = 32,
        batch_size: int = 32,
        eval_batch_size: int = 32,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        max_grad_norm: float | None = 1.0,
        mode: str = "qa",
        reshuffle: bool = False,
        seed: int = 0,
        device: str = "cpu",
        num_threads: int | None = 1,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        self.seq_len, self.batch_size, self.eval_batch_size = seq_len, batch_size, eval_batch_size
        self.max_grad_norm, self.mode, self.seed = max_grad_norm, mode, seed
        set_threads(num_threads)
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.device = distributed.local_device(device)
        self.data = data
        self.model = model.to(self.device)
        self.ddp = self.model
        if self.world > 1:
            unused = _state_only_parameters(self.model, self.device)
            self.ddp = distributed.wrap_ddp(self.model, self.device, unused)
        if self.rank > 0:  # other dropout masks than rank 0's (the parameters are rank 0's)
            torch.manual_seed(seed + 1_000_003 * self.rank)
        self.optimizer = OPTIMIZERS[optimizer](
            self.model.parameters(), lr=lr, weight_decay=weight_decay
        )
        self.reshuffle = reshuffle and self.data.reorder_train is not None
        self.batches = self._train_batches(0)
        self._eval_cache: dict[str, Batched] = {}
        self.update = self.position = self.epoch = self.tokens = 0
        self.state: CoreState | None = None
        self.best: float | None = None

    @property
    def num_parameters(self) -> int:
        """Parameters of the model."""
        return sum(p.numel() for p in self.model.parameters())

    def _train_batches(self, epoch: int) -> Batched:
        """The columns of this rank of the training stream of ``epoch``: the data's own order in
        epoch 0 and without reshuffling, else the stories in the order drawn from ``(train.seed, epoch)``
        (so a resumed run rebuilds exactly the stream it was in)."""
        stream = self.data.train
        if self.reshuffle and epoch > 0:
            generator = np.random.default_rng([self.seed, epoch])
            stream = self.data.reorder_train(generator)  # type: ignore[misc]
        batches = self._batchify("train", self.batch_size, stream)
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
        seq_len = self.seq_len
        if self.position >= self.batches.length:
            self.position, self.state = 0, None
            self.epoch += 1
            if self.reshuffle:
                self.batches = self._train_batches(self.epoch)
        window = self.batches.window(self.position, seq_len)
        self.ddp.train()
        logits, state, aux = self.ddp(window.inputs, self.state)
        nll = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), window.targets.flatten(), reduction="none"
        ).view(window.targets.shape)
        mask = window.loss_mask.float()
        valid = window.valid.float()
        n_loss, n_valid = mask.sum(), valid.sum()
        if self.world > 1:  # normalise by the global counts: DDP's mean of the ranks' gradients
            n_loss, n_valid = distributed.all_reduce_sum(torch.stack([n_loss, n_valid]))
        task_loss = (nll * mask).sum() / n_loss.clamp_min(1.0)
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
        max_norm = self.max_grad_norm
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
            self._eval_cache[split] = self._batchify(split, self.eval_batch_size)
        batches = self._eval_cache[split]
        self.model.eval()
        sums = MetricSums()
        state = None
        seq_len = self.seq_len
        for i, start in enumerate(range(0, batches.length, seq_len)):
            if max_windows is not None and i >= max_windows:
                break
            window = batches.window(start, seq_len)
            logits, state, _ = self.model(window.inputs, state)
            sums.add(logits, window)
        return name_metrics(
            self.data.kind,
            sums.result(),
            self.data.group_names,
            self.mode,
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
        A run's checkpoint adds its ``config`` (:meth:`fwmrl.tasks.job.TaskJob.state_dict`).
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
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (this rank's share, from any world size)."""
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
