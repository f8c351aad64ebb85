"""The memory plot reads the keys and values that the cores actually write."""

from __future__ import annotations

import pytest
import torch

from fwmrl.errors import ConfigError
from fwmrl.memory import make_core
from fwmrl.memory_plot import capture_core_writes


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


def test_fwm_write_trace_is_what_the_first_write_puts_into_f() -> None:
    """From an empty memory the first write is ``F = c · key ⊗ value`` (``c > 0``: the write
    strength and the renormalisation), so the traced key and value are the ones the scan wrote."""
    torch.manual_seed(0)
    m = 4
    core = make_core("fwm", input_size=3, hidden_size=5, memory_size=m, read_hops=1)
    x = torch.randn(1, 1, 3)
    keys, values = capture_core_writes(core, lambda: core(x))
    with torch.no_grad():
        _, state, _ = core(x)
    dense = state.to_dense() if hasattr(state, "to_dense") else state
    written = dense.F.reshape(m * m, m)
    expected = keys[0][:, None] * values[0][None, :]
    ratio = (written * expected).sum() / expected.square().sum()
    assert float(ratio) > 0
    torch.testing.assert_close(written, ratio * expected, rtol=1e-5, atol=1e-7)


def test_the_hook_is_the_cores_own() -> None:
    fwm = make_core("fwm", input_size=3, hidden_size=5, memory_size=4)
    mnm = make_core("mnm_p", input_size=3, hidden_size=5, key_size=4, memory_size=6)
    assert fwm.write_trace_source is fwm.write_proj
    assert mnm.write_trace_source is mnm.controller
    lstm = make_core("lstm", input_size=3, hidden_size=5)
    with pytest.raises(
        ConfigError, match="plot-memory needs an FWM or MNM core, this run has LSTM"
    ):
        capture_core_writes(lstm, lambda: lstm(torch.zeros(2, 1, 3)))
