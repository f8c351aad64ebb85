"""Embedding → memory core → linear read-out, with optional AWD-LSTM-style dropouts."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from typing_extensions import override

from fwmrl.memory import CoreState, make_core
from fwmrl.threads import apply_default_threads


class SequenceModel(nn.Module):
    """Token model around any registered core: ``logits = W · core(embed(x))``.

    Parameters
    ----------
    vocab_size
        tokens embedded and predicted.
    embedding_size
        embedding width (the core's ``input_size``).
    core
        registered core name; ``core_kwargs`` its constructor arguments.
    dropout_embedding
        probability of dropping a whole word type from the embedding matrix
        (AWD-LSTM's embedding dropout), training only.
    dropout_input
        dropout on the embedded inputs with one mask per sequence and window
        (variational/"locked" dropout).
    dropout_output
        locked dropout on the core outputs before the read-out.
    dropout_weight
        DropConnect on the hidden-to-hidden weights of every LSTM inside the core
        (AWD-LSTM's weight drop): one mask per forward call, training only. The core must
        contain an LSTM (``lstm``, ``fwm``, ``mnm_g``/``mnm_p`` controllers).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        core: str,
        core_kwargs: dict[str, Any] | None = None,
        dropout_embedding: float = 0.0,
        dropout_input: float = 0.0,
        dropout_output: float = 0.0,
        dropout_weight: float = 0.0,
    ) -> None:
        super().__init__()
        apply_default_threads()
        self.embed = nn.Embedding(vocab_size, embedding_size)
        self.core = make_core(core, input_size=embedding_size, **(core_kwargs or {}))
        self.out = nn.Linear(self.core.output_size, vocab_size)
        self.dropout_embedding = dropout_embedding
        self.dropout_input = dropout_input
        self.dropout_output = dropout_output
        self.dropout_weight = dropout_weight
        if dropout_weight > 0:
            dropped = add_weight_drop(self.core, dropout_weight)
            if not dropped:
                raise ValueError(
                    f"dropout_weight: core {core!r} has no LSTM whose recurrent weights could be "
                    "dropped; use 0 or one of the cores with an LSTM (lstm, fwm, mnm_g, mnm_p)"
                )

    @staticmethod
    def _locked(x: Tensor, p: float) -> Tensor:
        mask = torch.empty_like(x[:1]).bernoulli_(1 - p) / (1 - p)
        return x * mask

    def _embed(self, tokens: Tensor) -> Tensor:
        weight = self.embed.weight
        p = self.dropout_embedding
        if self.training and p > 0:
            keep = torch.empty(weight.shape[0], 1, device=weight.device).bernoulli_(1 - p)
            weight = weight * keep / (1 - p)
        return nn.functional.embedding(tokens, weight)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> CoreState:
        """The core's state for ``batch_size`` fresh sequences."""
        return self.core.initial_state(batch_size, device)

    def forward(
        self, tokens: Tensor, state: CoreState | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, CoreState, Tensor | None]:
        """``tokens [T, B]`` → ``logits [T, B, V]``, the core state after the last step and the
        core's auxiliary loss ``[T, B]`` of the window (MNM's meta loss; ``None`` for cores
        without one, see :class:`~fwmrl.memory.base.CoreOutput`)."""
        x = self._embed(tokens)
        if self.training and self.dropout_input > 0:
            x = self._locked(x, self.dropout_input)
        with parametrize.cached():  # one weight-drop mask for the whole window
            y, state, aux_loss = self.core(x, state, resets)
        if self.training and self.dropout_output > 0:
            y = self._locked(y, self.dropout_output)
        return self.out(y), state, aux_loss


class WeightDrop(nn.Module):
    """Parametrization that applies dropout to a whole weight matrix while training."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    @override
    def forward(self, weight: Tensor) -> Tensor:
        return nn.functional.dropout(weight, self.p, training=self.training)


def add_weight_drop(module: nn.Module, p: float) -> list[str]:
    """Register :class:`WeightDrop` on the hidden-to-hidden weights of every ``nn.LSTM`` and
    ``nn.LSTMCell`` in ``module``; returns the names of the weights it wraps."""
    wrapped = []
    for name, sub in list(module.named_modules()):
        if isinstance(sub, nn.LSTM):
            weights = [w for w in sub._flat_weights_names if w.startswith("weight_hh")]
        elif isinstance(sub, nn.LSTMCell):
            weights = ["weight_hh"]
        else:
            continue
        for weight in weights:
            parametrize.register_parametrization(sub, weight, WeightDrop(p))
            wrapped.append(f"{name}.{weight}" if name else weight)
    return wrapped
