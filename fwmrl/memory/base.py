"""The interface every memory core implements, and the state objects cores carry.

A core maps an input sequence ``x[T, B, F]`` to an output sequence ``y[T, B, D]`` while carrying a
recurrent :class:`CoreState`. Episode starts are passed as ``resets[T, B]``: the state of sequence ``b``
is replaced by the core's initial state *before* step ``t`` is processed, so callers never touch the
state's internals and a core may learn its initial state.

A core's :meth:`MemoryCore.forward` returns a :class:`CoreOutput`: the outputs, the state after the
last step and the core's auxiliary loss of that window (MNM's meta loss; ``None`` for cores without
one), which a trainer adds to its task loss. :meth:`MemoryCore.step`, the acting path, returns only
the output and the state.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint
from typing_extensions import override

S = TypeVar("S", bound="CoreState")


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    """A state class's field names (``dataclasses.fields`` costs microseconds per acting step)."""
    return tuple(field.name for field in dataclasses.fields(cls))


@dataclasses.dataclass
class CoreState:
    """Recurrent state of a core: a dataclass whose fields are tensors with the batch on dimension 0.

    Subclasses only declare their fields. Every field has a fixed shape ``[B, ...]``, so states can be
    indexed by batch, concatenated, detached, moved and saved without knowing what they hold.
    """

    def tensors(self) -> Iterator[tuple[str, Tensor]]:
        """Yield ``(field name, tensor)`` pairs in declaration order."""
        for name in _field_names(type(self)):
            yield name, getattr(self, name)

    def _map(self: S, fn: Any) -> S:
        return type(self)(**{name: fn(t) for name, t in self.tensors()})

    @property
    def batch_size(self) -> int:
        """Number of sequences in the batch."""
        return next(self.tensors())[1].shape[0]

    @property
    def device(self) -> torch.device:
        """Device of the state's tensors."""
        return next(self.tensors())[1].device

    @property
    def numel_per_sequence(self) -> int:
        """Number of floats one sequence of the batch holds."""
        return sum(t[0].numel() for _, t in self.tensors())

    def __getitem__(self: S, index: Any) -> S:
        """Select sequences along the batch: an int keeps a batch of one, a slice/mask/index tensor
        selects several."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self._map(lambda t: t[index])

    def detach(self: S) -> S:
        """The same values cut from the autograd graph (truncated BPTT boundaries)."""
        return self._map(Tensor.detach)

    def clone(self: S) -> S:
        """A copy with its own storage."""
        return self._map(Tensor.clone)

    def to(self: S, *args: Any, **kwargs: Any) -> S:
        """Move or cast every tensor, with the arguments of :meth:`torch.Tensor.to`."""
        return self._map(lambda t: t.to(*args, **kwargs))

    @classmethod
    def cat(cls: type[S], states: Sequence[S]) -> S:
        """Concatenate states along the batch."""
        if not states:
            raise ValueError("CoreState.cat: 'states' is empty; pass at least one state")
        kinds = {type(s) for s in states}
        if len(kinds) != 1:
            names = sorted(k.__name__ for k in kinds)
            raise TypeError(f"CoreState.cat: all states must be of one type, got {names}")
        first = states[0]
        return type(first)(
            **{name: torch.cat([getattr(s, name) for s in states]) for name, _ in first.tensors()}
        )

    def where(self: S, mask: Tensor, other: S) -> S:
        """Per sequence: ``other`` where ``mask[b]`` is True, ``self`` elsewhere (``mask`` is ``[B]``)."""
        out = {}
        for name, t in self.tensors():
            m = mask.reshape(mask.shape[0], *([1] * (t.dim() - 1)))
            out[name] = torch.where(m, getattr(other, name), t)
        return type(self)(**out)

    def state_dict(self) -> dict[str, Tensor]:
        """Plain ``{field: tensor}`` dict, for ``torch.save``."""
        return dict(self.tensors())

    @classmethod
    def from_state_dict(cls: type[S], data: dict[str, Tensor]) -> S:
        """The state :meth:`state_dict` saved; a KeyError names the expected fields."""
        names = [f.name for f in dataclasses.fields(cls)]
        if sorted(data) != sorted(names):
            raise KeyError(
                f"{cls.__name__}.from_state_dict: expected keys {names}, got {sorted(data)}"
            )
        return cls(**data)


class CoreOutput(NamedTuple):
    """What :meth:`MemoryCore.forward` returns: ``y, state, aux_loss = core(x, state, resets)``.

    Attributes
    ----------
    output:
        Outputs ``[T, B, D]``.
    state:
        The state after the last step.
    aux_loss:
        The core's auxiliary loss per step and sequence ``[T, B]`` (MNM's weighted meta loss), to add
        to the task loss (``aux_loss.mean()``, or masked to the valid steps), or ``None`` for cores
        without one. It is part of the autograd graph of ``output``.
    """

    output: Tensor
    state: CoreState
    aux_loss: Tensor | None


class MemoryCore(nn.Module):
    """Base class of all memory cores.

    Subclasses implement :meth:`initial_state` and either :meth:`_step` (one time step, no resets,
    with its auxiliary loss: the default :meth:`forward` loops over time and applies resets) or a
    faster :meth:`forward` that returns a :class:`CoreOutput`.

    Attributes
    ----------
    input_size:
        Features per input step ``F``.
    output_size:
        Features per output step ``D``.
    recompute_chunk:
        ``None``: autograd keeps every step's state. An int ``k``: cores that step with
        :meth:`_step` keep the state only every ``k`` steps and recompute the steps in between
        during backward (same gradients, a fraction of the memory, about one more forward pass).
    step_graph_is_cheap:
        Class attribute: whether back-propagating through ``T`` recorded single steps costs about
        what a window's backward does, so a trainer that steps the core anyway (A2C's collection)
        may keep those steps' graph instead of re-running the window (``True``; FWM says
        ``False``: its window scan has a chunk-parallel backward that is much cheaper).
    """

    input_size: int
    output_size: int
    step_graph_is_cheap: bool = True

    def __init__(self) -> None:
        super().__init__()
        self.recompute_chunk: int | None = None

    # ------------------------------------------------------------------ state
    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> CoreState:
        """The state of ``batch_size`` fresh sequences (episode starts)."""
        raise NotImplementedError

    @property
    def state_numel(self) -> int:
        """Floats of recurrent state per sequence (for memory planning)."""
        return self.initial_state(1).numel_per_sequence

    def reset_state(self, state: CoreState, reset: Tensor | None) -> CoreState:
        """Replace the state of the sequences where ``reset[B]`` is True by the initial state."""
        if reset is None:
            return state
        if not bool(reset.any()):
            return state
        return state.where(reset.to(device=state.device, dtype=torch.bool), self._fresh_like(state))

    def _fresh_like(self, state: CoreState) -> CoreState:
        fresh = self.initial_state(state.batch_size, state.device)
        dtype = next(state.tensors())[1].dtype
        return fresh.to(dtype=dtype)

    # ------------------------------------------------------------ computation
    def forward(
        self, x: Tensor, state: CoreState | None = None, resets: Tensor | None = None
    ) -> CoreOutput:
        """Run the core over a sequence.

        Parameters
        ----------
        x:
            Inputs ``[T, B, F]``.
        state:
            State before the first step; ``None`` starts fresh sequences.
        resets:
            Optional boolean ``[T, B]``: True where a sequence starts a new episode at step ``t``
            (its state is reset before that step).

        Returns
        -------
        CoreOutput
            ``(output, state, aux_loss)``: outputs ``[T, B, D]``, the state after the last step,
            and the auxiliary loss ``[T, B]`` of the window (``None`` for cores without one).
        """
        x, state, resets = self._check_inputs(x, state, resets)
        chunk = self.recompute_chunk
        if chunk is None or not torch.is_grad_enabled():
            return CoreOutput(*self._scan(x, state, resets))
        return CoreOutput(*self._scan_with_recomputation(x, state, resets, chunk))

    def _scan(
        self, x: Tensor, state: CoreState, resets: Tensor | None
    ) -> tuple[Tensor, CoreState, Tensor | None]:
        """Step through ``x``: outputs ``[T, B, D]``, final state, auxiliary losses ``[T, B]``."""
        outputs = []
        aux = []
        for t in range(x.shape[0]):
            if resets is not None:
                state = self.reset_state(state, resets[t])
            y, state, loss = self._step(x[t], state)
            outputs.append(y)
            if loss is not None:
                aux.append(loss)
        return torch.stack(outputs), state, torch.stack(aux) if aux else None

    def _scan_with_recomputation(
        self, x: Tensor, state: CoreState, resets: Tensor | None, chunk: int
    ) -> tuple[Tensor, CoreState, Tensor | None]:
        """:meth:`_scan` that keeps the state only every ``chunk`` steps for backward and recomputes
        the steps in between (activation checkpointing). Same values and gradients."""
        state_type = type(state)
        names = [name for name, _ in state.tensors()]

        def run(x_c: Tensor, resets_c: Tensor | None, *tensors: Tensor) -> tuple[Tensor, ...]:
            st = state_type(**dict(zip(names, tensors, strict=True)))
            y, st, aux = self._scan(x_c, st, resets_c)
            aux = y.new_empty(0) if aux is None else aux
            return y, aux, *[t for _, t in st.tensors()]

        outputs, aux_parts = [], []
        for start in range(0, x.shape[0], chunk):
            end = start + chunk
            resets_c = None if resets is None else resets[start:end]
            tensors = [t for _, t in state.tensors()]
            y, aux, *tensors = checkpoint(
                run, x[start:end], resets_c, *tensors, use_reentrant=False
            )
            state = state_type(**dict(zip(names, tensors, strict=True)))
            outputs.append(y)
            aux_parts.append(aux)
        aux_all = torch.cat(aux_parts) if aux_parts[0].numel() else None
        return torch.cat(outputs), state, aux_all

    def _step(self, x: Tensor, state: CoreState) -> tuple[Tensor, CoreState, Tensor | None]:
        """One time step without resets: ``x[B, F]`` → ``(y[B, D], state, aux loss [B] or None)``."""
        raise NotImplementedError

    def step(
        self, x: Tensor, state: CoreState | None = None, reset: Tensor | None = None
    ) -> tuple[Tensor, CoreState]:
        """One time step for acting: ``x[B, F]`` → ``(y[B, D], state)``, the output and state of
        :meth:`forward` with ``T = 1`` (its auxiliary loss, a training term, is not returned)."""
        if x.dim() != 2:
            raise ValueError(
                f"{type(self).__name__}.step: x must be [B, F], got shape {tuple(x.shape)}"
            )
        y, state, _ = self.forward(
            x.unsqueeze(0), state, None if reset is None else reset.unsqueeze(0)
        )
        return y.squeeze(0), state

    def _check_inputs(
        self, x: Tensor, state: CoreState | None, resets: Tensor | None
    ) -> tuple[Tensor, CoreState, Tensor | None]:
        name = type(self).__name__
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}.forward: x must be [T, B, {self.input_size}] (input_size={self.input_size}), "
                f"got shape {tuple(x.shape)}"
            )
        batch = x.shape[1]
        if state is None:
            state = self.initial_state(batch, x.device).to(dtype=x.dtype)
        elif state.batch_size != batch:
            raise ValueError(
                f"{name}.forward: state holds {state.batch_size} sequences but x has batch {batch}"
            )
        if resets is not None:
            if resets.shape != x.shape[:2]:
                raise ValueError(
                    f"{name}.forward: resets must be [T, B] = {tuple(x.shape[:2])}, "
                    f"got {tuple(resets.shape)}"
                )
            resets = resets.to(device=x.device, dtype=torch.bool)
        return x, state, resets

    @override
    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, output_size={self.output_size}"


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """Validate a size argument: a positive int, or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: '{name}' must be a positive integer, got {value!r}")
    return value


def check_choice(owner: str, name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """Validate an option against its allowed values, or a ValueError listing them."""
    if value not in allowed:
        raise ValueError(f"{owner}: '{name}' must be one of {list(allowed)}, got {value!r}")
    return value


def check_recompute_chunk(owner: str, value: Any) -> int | None:
    """Validate ``recompute_chunk``: ``None`` or a positive int."""
    if value is None:
        return None
    return check_positive_int(owner, "recompute_chunk", value)
