"""The contract every memory core must meet (docs/memory-cores.md, sections 1 and 6)."""

from __future__ import annotations

import io

import pytest
import torch

from fwmrl.memory import CoreConfigError, CoreState, MemoryCore, available_cores, make_core

INPUT = 3
T, B = 6, 3

# Tiny sizes so that float64 gradcheck stays fast; one entry per core and per FWM scan.
TINY: dict[str, tuple[str, dict]] = {
    "lstm": ("lstm", {"hidden_size": 4}),
    "lstm2": ("lstm", {"hidden_size": 3, "num_layers": 2}),
    "fwm": ("fwm", {"hidden_size": 4, "memory_size": 3, "read_hops": 2}),
    "fwm_naive": (
        "fwm",
        {"hidden_size": 4, "memory_size": 3, "read_hops": 2, "implementation": "naive"},
    ),
    "fwm_write1": ("fwm", {"hidden_size": 4, "memory_size": 3, "write_scale": 1.0}),
    "fwm_checkpoint": (
        "fwm",
        {"hidden_size": 4, "memory_size": 3, "implementation": "checkpoint", "chunk_size": 2},
    ),
    "fwm_chunked": (
        "fwm",
        {"hidden_size": 4, "memory_size": 3, "implementation": "chunked", "chunk_size": 4},
    ),
    "fwm_chunked_checkpoint": (
        "fwm",
        {
            "hidden_size": 4,
            "memory_size": 3,
            "implementation": "chunked_checkpoint",
            "chunk_size": 4,
        },
    ),
    "gated_fw": ("gated_fw", {"fast_size": 4, "slow_size": 3, "slow_hidden_size": 5}),
    "mnm_g": ("mnm_g", {"hidden_size": 4, "key_size": 3, "memory_size": 3, "num_heads": 2}),
    "mnm_p": ("mnm_p", {"hidden_size": 4, "key_size": 3, "memory_size": 3, "num_heads": 2}),
    "mnm_g_recompute": (
        "mnm_g",
        {"hidden_size": 4, "key_size": 3, "memory_size": 3, "num_heads": 2, "recompute_chunk": 2},
    ),
    "gated_fw_recompute": (
        "gated_fw",
        {"fast_size": 4, "slow_size": 3, "slow_hidden_size": 5, "recompute_chunk": 4},
    ),
}


def build(key: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> MemoryCore:
    name, kwargs = TINY[key]
    torch.manual_seed(seed)
    return make_core(name, input_size=INPUT, **kwargs).to(dtype)


def inputs(dtype: torch.dtype = torch.float32, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, INPUT, generator=g, dtype=dtype)
    resets = torch.zeros(T, B, dtype=torch.bool)
    resets[3, 0] = True
    resets[2, 2] = True
    return x, resets


@pytest.fixture(params=list(TINY))
def key(request) -> str:
    return request.param


def test_every_registered_core_is_covered():
    assert {name for name, _ in TINY.values()} == set(available_cores())


def test_shapes_dtypes_and_attributes(key):
    core = build(key)
    x, resets = inputs()
    y, state, _ = core(x, None, resets)
    assert y.shape == (T, B, core.output_size)
    assert y.dtype == torch.float32
    assert isinstance(state, CoreState)
    assert state.batch_size == B
    assert core.input_size == INPUT
    assert core.state_numel == state.numel_per_sequence > 0
    assert all(t.dtype == torch.float32 and t.shape[0] == B for _, t in state.tensors())
    assert torch.isfinite(y).all()


def test_step_matches_forward(key):
    core = build(key)
    x, resets = inputs()
    y_seq, s_seq, _ = core(x, None, resets)
    state = None
    ys = []
    for t in range(T):
        y, state = core.step(x[t], state, resets[t])
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys), y_seq, rtol=1e-5, atol=1e-6)
    for (_, a), (_, b) in zip(state.tensors(), s_seq.tensors(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_reset_equals_fresh_sequence(key):
    core = build(key)
    x, resets = inputs()
    y, _, _ = core(x, None, resets)
    for b, t0 in [(0, 3), (2, 2)]:
        y_fresh, _, _ = core(x[t0:, b : b + 1], None)
        torch.testing.assert_close(y[t0:, b : b + 1], y_fresh, rtol=1e-5, atol=1e-6)
    # A sequence that never resets is unaffected by the others' resets.
    y_alone, _, _ = core(x[:, 1:2], None)
    torch.testing.assert_close(y[:, 1:2], y_alone, rtol=1e-5, atol=1e-6)


def test_reset_in_first_step_discards_given_state(key):
    core = build(key)
    x, _ = inputs()
    _, warm, _ = core(x, None)
    first = torch.ones(T, B, dtype=torch.bool)
    first[1:] = False
    y_reset, _, _ = core(x, warm, first)
    y_fresh, _, _ = core(x, None)
    torch.testing.assert_close(y_reset, y_fresh, rtol=1e-5, atol=1e-6)
    y_warm, _, _ = core(x, warm)
    assert not torch.allclose(y_warm, y_fresh)


def test_state_index_cat_detach_and_save(key):
    core = build(key)
    x, resets = inputs()
    _, state, _ = core(x[:3], None, resets[:3])
    y_full, _, _ = core(x[3:], state, resets[3:])

    part = state[torch.tensor([2, 0])]
    y_part, _, _ = core(x[3:, [2, 0]], part, resets[3:, [2, 0]])
    torch.testing.assert_close(y_part, y_full[:, [2, 0]], rtol=1e-5, atol=1e-6)

    joined = type(state).cat([state[0], state[1:]])
    for (_, a), (_, b) in zip(joined.tensors(), state.tensors(), strict=True):
        assert torch.equal(a, b)

    assert any(t.requires_grad for _, t in state.tensors())
    assert not any(t.requires_grad for _, t in state.detach().tensors())

    buffer = io.BytesIO()
    torch.save(state.detach().state_dict(), buffer)
    buffer.seek(0)
    loaded = type(state).from_state_dict(torch.load(buffer))
    y_loaded, _, _ = core(x[3:], loaded, resets[3:])
    torch.testing.assert_close(y_loaded, y_full, rtol=0, atol=0)

    as_double = state.to(torch.float64)
    assert all(t.dtype == torch.float64 for _, t in as_double.tensors())


def test_gradcheck_through_steps_and_resets(key):
    core = build(key, dtype=torch.float64)
    x, resets = inputs(torch.float64)
    x = x[:4].clone().requires_grad_(True)
    resets = resets[:4]
    _, state0, _ = core(torch.randn(2, B, INPUT, dtype=torch.float64), None)
    h0 = [t.detach().clone().requires_grad_(True) for _, t in state0.tensors()]
    names = [n for n, _ in state0.tensors()]

    def run(x, *state_tensors):
        state = type(state0)(**dict(zip(names, state_tensors, strict=True)))
        y, final, aux = core(x, state, resets)
        aux = aux.mean() if aux is not None else y.new_zeros(())
        return y, aux, *[t for _, t in final.tensors()]

    assert torch.autograd.gradcheck(run, (x, *h0), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_same_seed_gives_identical_outputs(key):
    x, resets = inputs()
    y1, s1, _ = build(key, seed=7)(x, None, resets)
    y2, s2, _ = build(key, seed=7)(x, None, resets)
    assert torch.equal(y1, y2)
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(s1.tensors(), s2.tensors(), strict=True))
    y3 = build(key, seed=8)(x, None, resets).output
    assert not torch.equal(y1, y3)


def test_bad_inputs_raise_clear_errors(key):
    core = build(key)
    x, resets = inputs()
    with pytest.raises(ValueError, match=f"input_size={INPUT}"):
        core(x[..., :2])
    with pytest.raises(ValueError, match="resets must be"):
        core(x, None, resets[:2])
    with pytest.raises(ValueError, match="state holds"):
        core(x, core.initial_state(B + 1))


def test_make_core_errors_list_what_is_allowed():
    with pytest.raises(CoreConfigError, match=r"available cores: \['fwm', 'gated_fw'"):
        make_core("transformer", input_size=3)
    with pytest.raises(CoreConfigError, match="unknown argument.*'memroy_size'.*memory_size=16"):
        make_core("fwm", input_size=3, memroy_size=8)
    with pytest.raises(CoreConfigError, match="missing argument.*input_size"):
        make_core("lstm")
    with pytest.raises(CoreConfigError, match="'read_hops' must be a positive integer"):
        make_core("fwm", input_size=3, read_hops=0)
    with pytest.raises(CoreConfigError, match="'implementation' must be one of"):
        make_core("fwm", input_size=3, implementation="cuda-magic")


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("gated_fw", {"fast_size": 4, "slow_size": 3, "slow_hidden_size": 5}),
        ("mnm_g", {"hidden_size": 4, "key_size": 3, "memory_size": 3, "num_heads": 2}),
        ("mnm_p", {"hidden_size": 4, "key_size": 3, "memory_size": 3, "num_heads": 2}),
    ],
)
def test_recomputation_gives_the_naive_values_and_gradients(name, kwargs):
    x = torch.randn(11, B, INPUT, generator=torch.Generator().manual_seed(3))
    resets = torch.zeros(11, B, dtype=torch.bool)
    resets[5, 1] = resets[8, 0] = True
    results = []
    for chunk in (None, 3):
        torch.manual_seed(0)
        core = make_core(name, input_size=INPUT, recompute_chunk=chunk, **kwargs)
        y, state, aux = core(x, None, resets)
        loss = y.square().sum() + state.tensors().__next__()[1].sum()
        if aux is not None:
            loss = loss + aux.mean()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in core.named_parameters()}
        results.append((y.detach(), grads, aux))
    (y0, g0, a0), (y1, g1, a1) = results
    torch.testing.assert_close(y1, y0, rtol=1e-6, atol=1e-7)
    assert g0.keys() == g1.keys()
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], rtol=1e-5, atol=1e-6, msg=n)
    if a0 is not None:
        assert a1.shape == (11, B)
        torch.testing.assert_close(a1, a0)
