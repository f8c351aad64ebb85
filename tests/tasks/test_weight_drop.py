"""AWD-LSTM weight drop on the cores' LSTMs (``task.dropout_weight``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fwmrl.config import ConfigError, load_config
from fwmrl.tasks.job import build_model
from fwmrl.tasks.model import SequenceModel

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("core", "kwargs", "wrapped"),
    [
        ("lstm", {"hidden_size": 12}, "core.lstm.parametrizations.weight_hh_l0.original"),
        ("fwm", {"hidden_size": 12, "memory_size": 4}, "core.controller.parametrizations"),
        ("mnm_p", {"hidden_size": 12, "key_size": 4}, "core.controller.parametrizations"),
    ],
)
def test_weight_drop_masks_recurrent_weights_in_training_only(core, kwargs, wrapped):
    torch.manual_seed(0)
    model = SequenceModel(11, 6, core, kwargs, dropout_weight=0.5)
    assert any(name.startswith(wrapped) for name, _ in model.named_parameters())
    tokens = torch.randint(0, 11, (7, 3))
    model.train()
    a, _, _ = model(tokens)
    b, _, _ = model(tokens)
    assert not torch.allclose(a, b)  # a fresh mask per window
    a.square().mean().backward()
    original = next(p for name, p in model.named_parameters() if name.startswith(wrapped))
    assert original.grad is not None and original.grad.abs().sum() > 0
    model.eval()
    c, _, _ = model(tokens)
    d, _, _ = model(tokens)
    torch.testing.assert_close(c, d)  # no dropout in evaluation


def test_one_mask_per_window(monkeypatch):
    torch.manual_seed(0)
    model = SequenceModel(11, 6, "lstm", {"hidden_size": 12}, dropout_weight=0.5)
    lstm = model.core.lstm
    seen = []  # the recurrent weight each LSTM call or cell step used
    hook = lstm.register_forward_pre_hook(lambda mod, args: seen.append(mod.weight_hh_l0))
    cell = torch.lstm_cell

    def recording_cell(x, state, w_ih, w_hh, *biases):
        seen.append(w_hh)
        return cell(x, state, w_ih, w_hh, *biases)

    monkeypatch.setattr(torch, "lstm_cell", recording_cell)  # the stepped path (with gradients)
    resets = torch.zeros(8, 2, dtype=torch.bool)
    resets[4, 0] = True  # a reset inside the window: two segments on the fused path
    model.train()
    model(torch.randint(0, 11, (8, 2)), None, resets)
    hook.remove()
    assert len(seen) >= 2
    assert all(w is seen[0] for w in seen)
    zeros = (seen[0] == 0).float().mean().item()
    assert 0.3 < zeros < 0.7


def test_weight_drop_errors_name_the_field():
    base = ROOT / "configs/retrieval_gated_fw.yaml"
    config = load_config(base, ["task.dropout_weight=0.2"])
    with pytest.raises(ConfigError, match="task.dropout_weight: core 'gated_fw' has no LSTM"):
        build_model(config, 15)
    config = load_config(
        ROOT / "configs/retrieval_mnm_p.yaml",
        ["task.dropout_weight=0.2", "core.recompute_chunk=4"],
    )
    with pytest.raises(ConfigError, match="task.dropout_weight: .*recompute_chunk"):
        build_model(config, 15)
