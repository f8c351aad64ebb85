"""Data-parallel training of the supervised/LM trainers and of A2C with ``torch.distributed``.

Launch any ``fwmrl train`` of a supervised or language-modelling config with ``torchrun``::

    torchrun --nproc_per_node=4 -m fwmrl train configs/lm_fwm.yaml --run-dir runs/lm4
    torchrun --nproc_per_node=4 -m fwmrl train --resume runs/lm4       # continue, any world size

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them and joins the process group (``nccl`` on CUDA, ``gloo`` on CPU).
``task.batch_size`` stays the *global* batch: each of the ``N`` ranks trains on its own
``batch_size / N`` columns of the training stream inside ``DistributedDataParallel``, and the loss
is normalised by the global number of loss positions, so the gradient (and hence the parameters) is
that of a one-process run with the same global batch, up to floating-point summation order. Rank 0
alone writes the run directory (config, metrics, TensorBoard/wandb, checkpoints, evaluation);
checkpoints hold the full-batch core state, so a run resumes on any number of ranks that divides the
batch, and a one-process run resumes a data-parallel checkpoint and vice versa.

A2C (``task.kind: rl``) runs the same way::

    torchrun --nproc_per_node=2 -m fwmrl train configs/graphnav_fwm_paper.yaml --run-dir runs/g2

``env.num_envs`` stays the *global* number of envs: rank ``r`` steps the envs
``r·B/N … (r+1)·B/N − 1`` of a one-process run, seeded as those (env ``i`` gets ``seed + i``);
every rank draws the sampling uniforms of the whole batch and uses its rows, so the actions are
the one-process actions; the loss is normalised by the global number of valid steps and the
gradients are summed over the ranks (:class:`fwmrl.agents.a2c.A2C`). Rank 0 alone writes the run
directory and evaluates; checkpoints hold the whole batch's env state, bookkeeping and core state
(gathered from every rank), so a run resumes on any number of ranks that divides ``env.num_envs``.

Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) every function here is a no-op for one process.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from fwmrl.memory import CoreState


def world_size() -> int:
    """Processes of the job (1 outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """The rank of this process (0 outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process writes the run directory (rank 0)."""
    return rank() == 0


def is_distributed() -> bool:
    """Whether a process group of more than one process is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def local_device(device: str) -> torch.device:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` under ``torchrun`` (one GPU per process)."""
    if device == "cuda" and world_size() > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(device)


def init_distributed(device: str = "cpu") -> bool:
    """Join the process group ``torchrun`` describes; returns whether this is a multi-process run.

    The backend is ``nccl`` for CUDA devices and ``gloo`` otherwise (``FWMRL_DIST_BACKEND``
    overrides it).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        default = "nccl" if device.startswith("cuda") else "gloo"
        backend = os.environ.get("FWMRL_DIST_BACKEND", default)
        if backend == "nccl":
            local_device(device)
        dist.init_process_group(backend=backend)
    return dist.get_world_size() > 1


def shutdown() -> None:
    """Leave the process group (when one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (nothing outside ``torchrun``)."""
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (pickled; for small objects and checkpoints)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The elementwise sum over ranks (a new tensor; the input when there is one process)."""
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def any_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Whether ``flag`` is True on any rank (``flag`` itself with one process)."""
    if not is_distributed():
        return flag
    box = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return bool(box.item())


class EpisodeEnds:
    """The length of an episode-mode rollout under ``torchrun``: the step after which the last env
    of any rank ended, known without a collective per step.

    Made by every rank at the start of a rollout: it posts one receive from each other rank. A
    rank whose envs have all ended calls :meth:`finish` with its own step count: that sends it to
    every other rank and waits for theirs, so a rank still stepping envs never waits, and each
    rollout exchanges one message per pair of ranks (a one-element ``all_reduce`` per step wakes
    gloo's threads at every step and cost part of the data-parallel speed-up). The messages of
    consecutive rollouts between two ranks arrive in the order sent."""

    _TAG = 7201

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self._device = device
        self._me, world = dist.get_rank(), dist.get_world_size()
        self._peers = [r for r in range(world) if r != self._me]
        self._boxes = [torch.zeros(1, dtype=torch.long, device=device) for _ in self._peers]
        self._receives = [
            dist.irecv(box, src=peer, tag=self._TAG)
            for box, peer in zip(self._boxes, self._peers, strict=True)
        ]
        self.steps: int | None = None
        """The rollout's length once :meth:`finish` has returned."""

    def finish(self, steps: int) -> int:
        """Tell the other ranks that this rank's envs have all ended after ``steps`` steps (or
        that the step limit was reached) and return the largest such count over the ranks."""
        if self.steps is not None:
            raise RuntimeError("EpisodeEnds.finish: already called for this rollout")
        mine = torch.tensor([steps], dtype=torch.long, device=self._device)
        sends = [dist.isend(mine, dst=peer, tag=self._TAG) for peer in self._peers]
        for work in [*self._receives, *sends]:
            work.wait()
        self.steps = max(steps, *(int(box.item()) for box in self._boxes))
        return self.steps


def concat_batches(parts: list[Any], key: str = "") -> Any:
    """Nested dicts of arrays, tensors and lists from every rank joined along the batch (rank
    order): arrays and tensors are concatenated on dimension 0, lists are concatenated, and
    strings, numbers and ``None`` must be equal on every rank (:class:`ValueError` naming
    ``key``)."""
    import numpy as np

    first = parts[0]
    if isinstance(first, dict):
        if any(not isinstance(p, dict) or p.keys() != first.keys() for p in parts):
            raise ValueError(f"{key or 'state'}: the ranks hold different entries")
        return {k: concat_batches([p[k] for p in parts], f"{key}.{k}" if key else k) for k in first}
    if isinstance(first, (list, tuple)):
        return [item for p in parts for item in p]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if any(p != first for p in parts[1:]):
        raise ValueError(f"{key or 'state'}: the ranks hold different values {parts}")
    return first


def batch_slice(data: Any, index: slice, total: int, key: str = "") -> Any:
    """The rows ``index`` of nested batch data of ``total`` rows (the inverse of
    :func:`concat_batches`: arrays, tensors and lists are sliced on dimension 0, anything else
    kept; :class:`ValueError` naming the entry whose first dimension is not ``total``)."""
    if isinstance(data, dict):
        return {
            k: batch_slice(v, index, total, f"{key}.{k}" if key else k) for k, v in data.items()
        }
    if isinstance(data, (list, tuple)) or hasattr(data, "shape"):
        size = len(data) if isinstance(data, (list, tuple)) else data.shape[0] if data.shape else 0
        if size != total:
            raise ValueError(f"{key or 'state'}: expected {total} rows (one per env), got {size}")
        return list(data[index]) if isinstance(data, (list, tuple)) else data[index]
    return data


def shard_columns(total: int, world: int, rank_: int) -> slice:
    """The columns of a ``total``-column batch that rank ``rank_`` of ``world`` trains on."""
    if total % world:
        raise ValueError(
            f"a batch of {total} columns cannot be split evenly over {world} processes"
        )
    per = total // world
    return slice(rank_ * per, (rank_ + 1) * per)


def gather_state(state: CoreState) -> CoreState:
    """The full-batch core state: every rank's shard concatenated in rank order (all ranks)."""
    if not is_distributed():
        return state
    parts = []
    for _, tensor in state.tensors():
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        parts.append(torch.cat(gathered))
    return type(state)(*parts)


def wrap_ddp(
    model: torch.nn.Module, device: torch.device, find_unused_parameters: bool = False
) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` in a multi-process run, else ``model``.

    ``find_unused_parameters`` must be on for models with parameters that some steps do not use
    (a learned initial state, e.g. MNM's ``phi0``, gets gradients only in windows that start
    from it).
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )
