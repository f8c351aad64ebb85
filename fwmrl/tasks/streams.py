"""Token streams, their batched layout for truncated BPTT, and the metrics computed on them.

Every task turns its data into one :class:`Stream` per split: an input token and a target token per
position, a mask of the positions that carry loss, a mask of the positions that are *scored* (the
answers of retrieval and catbAbI), and an optional group per position (the bAbI task). The stream is
cut into ``B`` columns (at allowed split points when the task gives them, so no query or story is cut
in two), padded to equal length, and read in windows of ``seq_len`` steps with the state carried
from window to window.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


@dataclasses.dataclass
class Stream:
    """One split as a single sequence of positions.

    Attributes
    ----------
    inputs
        int64 ``[N]`` tokens read at each position.
    targets
        int64 ``[N]`` tokens to predict at each position.
    loss_mask
        bool ``[N]``: the position contributes to the training loss.
    score_mask
        bool ``[N]``: the position is scored by the partial/answer metrics.
    groups
        int64 ``[N]``: group of the position for per-group accuracy (``-1``: none).
    boundaries
        sorted int64 positions where the stream may be cut between columns (``None``:
        anywhere).
    """

    inputs: np.ndarray
    targets: np.ndarray
    loss_mask: np.ndarray
    score_mask: np.ndarray
    groups: np.ndarray | None = None
    boundaries: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.inputs)


@dataclasses.dataclass
class Batched:
    """A stream cut into ``B`` columns, time-major ``[L, B]`` (``valid`` is False on padding)."""

    inputs: Tensor
    targets: Tensor
    loss_mask: Tensor
    score_mask: Tensor
    groups: Tensor
    valid: Tensor

    @property
    def length(self) -> int:
        """Rows (time steps) of every column."""
        return self.inputs.shape[0]

    def window(self, start: int, seq_len: int) -> Batched:
        """Rows ``start : start + seq_len``."""
        end = min(start + seq_len, self.length)
        return Batched(*(getattr(self, f.name)[start:end] for f in dataclasses.fields(self)))

    def to(self, device: torch.device | str) -> Batched:
        """Every tensor moved to ``device``."""
        return Batched(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def _cut_points(n: int, columns: int, boundaries: np.ndarray | None) -> list[int]:
    """``columns + 1`` cut positions from 0 to ``n``, snapped to the nearest allowed boundary."""
    ideal = [round(i * n / columns) for i in range(columns + 1)]
    if boundaries is None or len(boundaries) == 0:
        return ideal
    allowed = np.unique(np.concatenate([[0, n], boundaries]))
    cuts = [0]
    for x in ideal[1:-1]:
        i = int(np.searchsorted(allowed, x))
        near = min(
            (allowed[j] for j in (i - 1, i) if 0 <= j < len(allowed)), key=lambda a: abs(a - x)
        )
        cuts.append(int(max(near, cuts[-1])))
    cuts.append(n)
    return cuts


def batchify(stream: Stream, columns: int, pad_input: int = 0, drop_tail: bool = False) -> Batched:
    """Cut ``stream`` into ``columns`` contiguous pieces laid side by side (time-major).

    With ``drop_tail`` (language modelling) the stream is cut at ``N // columns`` exactly and the
    remainder dropped, as in the PTB/WikiText recipes; otherwise pieces end at allowed boundaries and
    shorter columns are padded with ``pad_input`` (masked out everywhere).
    """
    n = len(stream)
    if n < columns:
        raise ValueError(f"a stream of {n} positions cannot be cut into {columns} columns")
    if drop_tail:
        per = n // columns
        cuts = [i * per for i in range(columns + 1)]
    else:
        cuts = _cut_points(n, columns, stream.boundaries)
    length = max(b - a for a, b in zip(cuts[:-1], cuts[1:], strict=True))
    groups = stream.groups if stream.groups is not None else np.full(n, -1, dtype=np.int64)
    arrays = {
        "inputs": np.full((length, columns), pad_input, dtype=np.int64),
        "targets": np.zeros((length, columns), dtype=np.int64),
        "loss_mask": np.zeros((length, columns), dtype=bool),
        "score_mask": np.zeros((length, columns), dtype=bool),
        "groups": np.full((length, columns), -1, dtype=np.int64),
        "valid": np.zeros((length, columns), dtype=bool),
    }
    sources = {
        "inputs": stream.inputs,
        "targets": stream.targets,
        "loss_mask": stream.loss_mask,
        "score_mask": stream.score_mask,
        "groups": groups,
    }
    for b, (a, e) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        for key, src in sources.items():
            arrays[key][: e - a, b] = src[a:e]
        arrays["valid"][: e - a, b] = True
    arrays["loss_mask"] &= arrays["valid"]
    arrays["score_mask"] &= arrays["valid"]
    return Batched(**{k: torch.from_numpy(v) for k, v in arrays.items()})


class MetricSums:
    """Running sums over evaluated positions; :meth:`result` turns them into metrics.

    ``total_*`` are over every valid position, ``partial_*`` over scored positions (answers), and
    ``acc_g{k}`` is the accuracy at the scored positions of group ``k``.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}

    def _add(self, key: str, value: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value

    def add(self, logits: Tensor, batch: Batched) -> None:
        """Accumulate the metrics of ``logits [T, B, V]`` against a window."""
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1), reduction="none"
        ).view(batch.targets.shape)
        correct = logits.argmax(-1) == batch.targets
        for prefix, mask in (("total", batch.valid), ("partial", batch.score_mask)):
            self._add(f"{prefix}_n", float(mask.sum()))
            self._add(f"{prefix}_nll", float(nll[mask].sum()))
            self._add(f"{prefix}_correct", float(correct[mask].sum()))
        scored = batch.groups[batch.score_mask]
        if scored.numel():
            hits = correct[batch.score_mask]
            for g in scored.unique().tolist():
                sel = scored == g
                self._add(f"g{g}_n", float(sel.sum()))
                self._add(f"g{g}_correct", float(hits[sel].sum()))

    def result(self) -> dict[str, float]:
        """``total/partial_accuracy``, ``total/partial_nll`` (nats), ``total/partial_bpc`` (bits)
        and ``acc_g{k}``; NaN where no position was counted."""
        s = self.sums
        out: dict[str, float] = {}
        for prefix in ("total", "partial"):
            n = s.get(f"{prefix}_n", 0.0)
            out[f"{prefix}_accuracy"] = s.get(f"{prefix}_correct", 0.0) / n if n else math.nan
            out[f"{prefix}_nll"] = s.get(f"{prefix}_nll", 0.0) / n if n else math.nan
            out[f"{prefix}_bpc"] = out[f"{prefix}_nll"] / math.log(2)
        for key in sorted(s):
            if key.startswith("g") and key.endswith("_n") and s[key]:
                g = key[1:-2]
                out[f"acc_g{g}"] = s[f"g{g}_correct"] / s[key]
        return out


def stream_metrics(logits: Tensor, batch: Batched) -> dict[str, float]:
    """The metrics of :class:`MetricSums` for a single window (convenience for tests)."""
    sums = MetricSums()
    sums.add(logits, batch)
    return sums.result()


GENERATED_MARKER = "fwmrl-generated.json"
"""The file fwmrl's data generators write next to the data: what generated it, with which
parameters (its absence marks data from elsewhere, such as the bAbI release or PTB)."""


def read_generated_marker(folder: str | Path) -> dict | None:
    """The generator record of ``folder`` (``None``: not generated by fwmrl or unreadable)."""
    path = Path(folder) / GENERATED_MARKER
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_generated_marker(folder: str | Path, record: dict) -> None:
    """Merge ``record`` into ``folder``'s generator record (``parts`` dicts are merged key by
    key, so that generating more bAbI tasks into a folder keeps the earlier ones)."""
    old = read_generated_marker(folder) or {}
    parts = {**old.get("parts", {}), **record.get("parts", {})}
    merged = {**old, **record, **({"parts": parts} if parts else {})}
    path = Path(folder) / GENERATED_MARKER
    path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@dataclasses.dataclass
class TaskData:
    """What a trainer needs from a task: its vocabulary and its three streams.

    Attributes
    ----------
    kind
        the task kind (``retrieval``, ``catbabi``, ``lm``).
    vocab
        token strings; the model embeds and predicts ``len(vocab)`` tokens.
    train, valid, test
        the splits.
    pad
        input token of padding positions.
    drop_tail
        cut streams into equal columns dropping the remainder (language modelling).
    group_names
        names of the groups of per-group accuracy (``{1: "qa1"}``).
    reorder_train
        ``reorder_train(rng)`` is the training stream with its items (catbAbI's
        stories) in a new order drawn from ``rng`` (``None``: the order is fixed).
    files
        the data files read (recorded with their digests in the run's ``data.json``).
    origin
        where the data came from (set by :func:`fwmrl.tasks.job.load_task_data`).
    """

    kind: str
    vocab: list[str]
    train: Stream
    valid: Stream
    test: Stream
    pad: int = 0
    drop_tail: bool = False
    group_names: dict[int, str] = dataclasses.field(default_factory=dict)
    reorder_train: Callable[[np.random.Generator], Stream] | None = None
    files: list[Path] = dataclasses.field(default_factory=list)
    origin: dict = dataclasses.field(default_factory=dict)

    def split(self, name: str) -> Stream:
        """The ``train``, ``valid`` or ``test`` stream."""
        if name not in ("train", "valid", "test"):
            raise ValueError(f"split must be train, valid or test, got {name!r}")
        return getattr(self, name)


def name_metrics(kind: str, raw: dict[str, float], group_names: dict[int, str], mode: str = "qa"):
    """The task's own metric names from :meth:`MetricSums.result` (``loss`` is always the
    cross-entropy the trainer minimises, in nats).

    * retrieval: ``total_accuracy``, ``partial_accuracy``, ``total_bpc``, ``partial_bpc``;
    * catbabi: ``accuracy`` (at answers) and ``acc_qa{N}`` per task, ``perplexity`` in LM mode;
    * lm: ``perplexity`` (``exp`` of the mean cross-entropy per token).
    """
    if kind == "retrieval":
        keys = ("total_accuracy", "partial_accuracy", "total_bpc", "partial_bpc")
        return {"loss": raw["total_nll"], **{k: raw[k] for k in keys}}
    if kind == "catbabi":
        out = {"accuracy": raw["partial_accuracy"]}
        if mode == "qa":
            out["loss"] = raw["partial_nll"]
        else:
            out["loss"] = raw["total_nll"]
            out["perplexity"] = math.exp(min(raw["total_nll"], 50.0))
        for key, value in raw.items():
            if key.startswith("acc_g"):
                g = int(key[5:])
                out[f"acc_{group_names.get(g, g)}"] = value
        return out
    return {"loss": raw["total_nll"], "perplexity": math.exp(min(raw["total_nll"], 50.0))}


HEADLINE = {
    "retrieval": ("partial_accuracy", "max"),
    "catbabi": ("accuracy", "max"),
    "lm": ("perplexity", "min"),
}
"""The validation metric each kind tracks as ``best_valid_*``, and whether higher is better."""
