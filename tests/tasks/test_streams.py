"""Batched stream layout and the metrics, checked by hand on tiny cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fwmrl.tasks.streams import Stream, batchify, name_metrics, stream_metrics


def _stream(n: int, boundaries=None) -> Stream:
    return Stream(
        inputs=np.arange(n),
        targets=np.arange(n) + 100,
        loss_mask=np.ones(n, dtype=bool),
        score_mask=np.arange(n) % 3 == 2,
        boundaries=None if boundaries is None else np.array(boundaries),
    )


def test_batchify_cuts_at_boundaries_and_pads():
    b = batchify(_stream(10, boundaries=[3, 6]), columns=2, pad_input=-1)
    # ideal cut 5 snaps to the nearest boundary (6): columns [0..5] and [6..9], padded to 6 rows
    assert b.inputs.shape == (6, 2)
    assert b.inputs[:, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert b.inputs[:, 1].tolist() == [6, 7, 8, 9, -1, -1]
    assert b.valid[:, 1].tolist() == [True] * 4 + [False] * 2
    assert not b.loss_mask[4:, 1].any() and not b.score_mask[4:, 1].any()
    assert b.targets[0, 1] == 106


def test_batchify_drop_tail_is_the_ptb_layout():
    b = batchify(_stream(11), columns=3, drop_tail=True)
    assert b.inputs.T.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert bool(b.valid.all())
    w = b.window(2, 5)
    assert w.length == 1 and w.inputs.tolist() == [[2, 5, 8]]
    with pytest.raises(ValueError, match="cannot be cut"):
        batchify(_stream(2), columns=3)


def test_total_and_partial_accuracy_and_bits_by_hand():
    # 4 positions, vocab 2; position 1 and 3 are scored answers.
    logits = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1], [0.75, 0.25]])).view(
        4, 1, 2
    )
    s = Stream(
        inputs=np.zeros(4, dtype=np.int64),
        targets=np.array([0, 1, 0, 1]),
        loss_mask=np.ones(4, dtype=bool),
        score_mask=np.array([False, True, False, True]),
        groups=np.array([-1, 7, -1, 8]),
    )
    b = batchify(s, 1)
    m = stream_metrics(logits, b)
    # argmax: pos0 ties -> 0 (correct), pos1 1 (correct), pos2 0 (correct), pos3 0 (wrong)
    assert m["total_accuracy"] == pytest.approx(3 / 4)
    assert m["partial_accuracy"] == pytest.approx(1 / 2)
    bits = [1.0, -math.log2(0.75), -math.log2(0.9), 2.0]
    assert m["total_bpc"] == pytest.approx(sum(bits) / 4, rel=1e-5)
    assert m["partial_bpc"] == pytest.approx((bits[1] + bits[3]) / 2, rel=1e-5)
    assert m["acc_g7"] == 1.0 and m["acc_g8"] == 0.0
    named = name_metrics("catbabi", m, {7: "qa7", 8: "qa8"}, mode="lm")
    assert named["accuracy"] == 0.5 and named["acc_qa7"] == 1.0 and named["acc_qa8"] == 0.0
    assert named["perplexity"] == pytest.approx(2 ** (sum(bits) / 4), rel=1e-5)
    assert name_metrics("retrieval", m, {})["partial_bpc"] == pytest.approx(m["partial_bpc"])
