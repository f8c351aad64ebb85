"""Two A2C agents seeded alike, one on a fast path and one on its reference, stepped in lockstep:
the shared check of the compiled-kernel tests (LSTM cells, gated FW, MNM-p)."""

from __future__ import annotations

import pytest
import torch

TRAINING_METRICS = ("loss", "policy_loss", "value_loss", "entropy", "grad_norm")


def assert_updates_agree(
    compiled, reference, keys=TRAINING_METRICS, updates: int = 3
) -> list[bool]:  # noqa: ANN001
    """``updates`` rollouts and updates of both agents: the same actions, values, ``keys`` of the
    training metrics and final parameters to float32 tolerance. Returns, per rollout, whether an
    episode started inside its window."""
    inside = []
    for _ in range(updates):
        rollout_c, rollout_r = compiled.collect_rollout(), reference.collect_rollout()
        assert torch.equal(rollout_c.actions, rollout_r.actions)
        inside.append(bool(rollout_c.starts[1:].any()))
        torch.testing.assert_close(rollout_c.values, rollout_r.values, rtol=1e-4, atol=1e-5)
        metrics_c = compiled.train_on_rollout(rollout_c)
        metrics_r = reference.train_on_rollout(rollout_r)
        for key in keys:
            assert metrics_c[key] == pytest.approx(metrics_r[key], rel=1e-4, abs=1e-6), key
    for p_c, p_r in zip(compiled.policy.parameters(), reference.policy.parameters(), strict=True):
        torch.testing.assert_close(p_c, p_r, rtol=1e-4, atol=1e-5)
    return inside
