"""Retrieval data: generator options (easier variants) and the key-blind accuracy bound."""

from __future__ import annotations

import numpy as np
import pytest

from fwmrl.envs.keyvalue import BLANK, decode, encode
from fwmrl.tasks.retrieval import key_blind_accuracy, query_stream, retrieval_data
from fwmrl.tasks.streams import Stream


def _stream(text: str) -> Stream:
    inputs = encode(text)
    n = len(inputs)
    targets = np.full(n, BLANK)
    return Stream(inputs, targets, np.ones(n, dtype=bool), np.zeros(n, dtype=bool))


def test_key_blind_accuracy_by_hand():
    # block 1: distinct keys ab, cd, ef hold c, c, d (ab's first value e is overwritten): 2/3;
    # block 2: one key: 1. Mean 5/6.
    text = "ab=e;cd=c;ef=d;ab=c;?ab.gh=a;?gh."
    assert key_blind_accuracy(_stream(text)) == pytest.approx((2 / 3 + 1) / 2)
    with pytest.raises(ValueError, match="no query"):
        key_blind_accuracy(_stream("ab=c;"))


def test_key_blind_accuracy_of_the_paper_task_is_the_gated_fw_plateau():
    """0.445 on the validation stream: the plateau where gated FW and MNM-p stopped."""
    data = retrieval_data(1, 5000, 1, seed=0, vocab_size=15)
    assert key_blind_accuracy(data.valid) == pytest.approx(0.4449, abs=5e-4)


def test_generator_options_reach_the_stream():
    stream = query_stream(np.random.default_rng(0), 300, max_items=1, max_key_len=2)
    text = decode(stream.inputs)
    blocks = [b for b in text.split(".") if b]
    assert len(blocks) == 300
    # one storage item of a 2-letter key before every query: "ab=c;?ab"
    assert all(len(b) == 8 and b.count(";") == 1 for b in blocks)
    assert key_blind_accuracy(stream) == 1.0
    easier = retrieval_data(1, 2000, 1, seed=0, max_items=3)
    assert key_blind_accuracy(easier.valid) > 0.6
    with pytest.raises(ValueError, match="max_items"):
        retrieval_data(1, 10, 1, max_items=0)


def test_paper_config_is_the_paper_model_without_clipping():
    from pathlib import Path

    from fwmrl.config import load_config
    from fwmrl.tasks.job import build_model

    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "configs/retrieval_gated_fw_paper.yaml")
    task = config.task
    assert (task.seq_len, task.batch_size, task.optimizer, task.lr) == (32, 256, "nadam", 0.002)
    assert task.max_grad_norm is None
    model = build_model(config, 15)
    assert sum(p.numel() for p in model.parameters()) == 45_830
    assert model.core.init == "glorot" and not model.core.slow_out.bias.detach().any()
