"""The memory plot reads the keys and values that the cores actually write."""

from __future__ import annotations

import pytest
import torch

from fwmrl.memory import make_core
from fwmrl.tasks.memory_plot import capture_core_writes


@pytest.mark.parametrize("name", ["mnm_g", "mnm_p"])
@pytest.mark.parametrize("implementation", ["naive", "lowrank"])
def test_mnm_capture_equals_the_controller_steps(name: str, implementation: str) -> None:
    torch.manual_seed(0)
    core = make_core(
        name,
        input_size=3,
        hidden_size=5,
        key_size=4,
        memory_size=6,
        num_heads=2,
        implementation=implementation,
    )
    x = torch.randn(7, 1, 3)
    keys, values = capture_core_writes(core, lambda: core(x))
    state = core.initial_state(1)
    h, c, read = state.h, state.c, state.read
    expected_keys, expected_values = [], []
    with torch.no_grad():
        for t in range(7):
            h, c, k_w, v_w, _, _ = core.controller_step(x[t], read, h, c)
            _, state, _ = core._step(x[t], state)
            read = state.read
            expected_keys.append(k_w.flatten(1))
            expected_values.append(v_w.flatten(1))
    torch.testing.assert_close(keys, torch.cat(expected_keys))
    torch.testing.assert_close(values, torch.cat(expected_values))
    assert keys.shape == (7, 2 * 4)


def test_fwm_capture_has_one_key_per_step() -> None:
    core = make_core("fwm", input_size=3, hidden_size=5, memory_size=4, read_hops=1)
    x = torch.randn(6, 1, 3)
    keys, values = capture_core_writes(core, lambda: core(x))
    assert keys.shape == (6, 16) and values.shape == (6, 4)
    assert torch.all(values.abs() <= 1)  # tanh of the value projection
