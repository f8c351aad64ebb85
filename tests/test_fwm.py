"""FWM-specific behaviour: storage and retrieval with hand-set keys, multi-hop reads, scan variants."""

from __future__ import annotations

import math

import pytest
import torch

from fwmrl.memory import FWMCore, make_core
from fwmrl.memory.fwm_scan import (
    FWM_SCANS,
    FWMScanOptions,
    LowRankMemory,
    _DeltaRecurrence,
    fwm_step,
    lowrank_scan,
    naive_scan,
)

M = 8
STRONG = 20.0  # pre-activation that makes σ(b̂ + 1) ≈ 1 (write) or ≈ 0 (no write)


def hadamard(n: int) -> torch.Tensor:
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    return h


def write_vec(k1, k2, v, write=True) -> torch.Tensor:
    """Pre-activations [ŝ; r̂; v̂; b̂] for the wanted post-tanh k1, k2, v."""
    gate = torch.tensor([STRONG if write else -STRONG], dtype=torch.float64)
    return torch.cat([torch.atanh(k1), torch.atanh(k2), torch.atanh(v), gate])


def read_vec(n0, *hop_keys) -> torch.Tensor:
    return torch.cat([n0, *[torch.atanh(e) for e in hop_keys]])


def standardise(v: torch.Tensor) -> torch.Tensor:
    return (v - v.mean()) / v.std(unbiased=False)


def run(writes, reads, hops):
    opts = FWMScanOptions(memory_size=M, read_hops=hops, write_scale=1.0)
    write = torch.stack(writes).unsqueeze(1)
    read = torch.stack(reads).unsqueeze(1)
    F0 = torch.zeros(1, M, M, M, dtype=torch.float64)
    n, F = naive_scan(write, read, F0, None, opts)
    return n[:, 0], F


def test_stores_and_reads_back_pairs_with_orthogonal_keys():
    H = hadamard(M)
    eye = torch.eye(M, dtype=torch.float64)
    entities = [0.5 * H[i] for i in (1, 2, 3)]
    values = [0.5 * H[i] for i in (4, 5, 6)]
    relation = 0.9 * eye[0]
    writes = [write_vec(e, relation, v) for e, v in zip(entities, values, strict=True)]
    blank_read = read_vec(H[7], relation)
    queries = [read_vec(H[i], relation) for i in (1, 2, 3)]
    silent = write_vec(entities[0], relation, values[0], write=False)
    n, _ = run(writes + [silent] * 3, [blank_read] * 3 + queries, hops=1)
    for i, v in enumerate(values):
        torch.testing.assert_close(n[3 + i], standardise(v), atol=1e-3, rtol=0)
        others = [standardise(w) for j, w in enumerate(values) if j != i]
        assert all(torch.dot(n[3 + i], o).abs() < 1e-3 for o in others)


def test_delta_rule_overwrites_a_key():
    H = hadamard(M)
    relation = 0.9 * torch.eye(M, dtype=torch.float64)[1]
    key = 0.5 * H[1]
    first, second = 0.5 * H[2], 0.5 * H[3]
    n, _ = run(
        [write_vec(key, relation, first), write_vec(key, relation, second)],
        [read_vec(H[1], relation)] * 2,
        hops=1,
    )
    torch.testing.assert_close(n[0], standardise(first), atol=1e-3, rtol=0)
    # λ = 1, β ≈ 1 and ‖k‖² = 0.81·0.25·M: the old value is mostly replaced by the new one.
    assert torch.dot(n[1], standardise(second)) > 0.9 * M
    assert torch.dot(n[1], standardise(first)) < 0.5 * M


def test_two_hop_read_follows_a_chain():
    H = hadamard(M)
    eye = torch.eye(M, dtype=torch.float64)
    a, b, c, distractor = (0.5 * H[i] for i in (1, 2, 3, 4))
    r1, r2 = 0.9 * eye[0], 0.9 * eye[1]
    writes = [
        write_vec(a, r1, b),  # a -r1-> b
        write_vec(b, r2, c),  # b -r2-> c
        write_vec(a, r2, distractor),  # a -r2-> distractor (a one-hop read with r2 would find it)
        write_vec(a, r1, b, write=False),
    ]
    reads = [read_vec(H[7], r1, r2)] * 3 + [read_vec(H[1], r1, r2)]
    n, _ = run(writes, reads, hops=2)
    torch.testing.assert_close(n[3], standardise(c), atol=1e-3, rtol=0)
    assert torch.dot(n[3], standardise(distractor)).abs() < 1e-3


def test_fast_weights_stay_inside_the_unit_ball():
    torch.manual_seed(0)
    opts = FWMScanOptions(memory_size=4, read_hops=2, write_scale=1.0)
    write = 3 * torch.randn(50, 5, 13)
    read = torch.randn(50, 5, 12)
    F = torch.zeros(5, 4, 4, 4)
    norms = []
    for t in range(50):
        _, F = fwm_step(F, write[t], read[t], opts)
        norms.append(F.flatten(1).norm(dim=1))
    norms = torch.stack(norms)
    assert (norms <= 1 + 1e-5).all()
    assert (norms > 0.99).any()  # the rescaling was actually exercised


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", [n for n in FWM_SCANS if n != "naive"])
def test_scan_implementations_match_naive_values_and_gradients(name, dtype):
    torch.manual_seed(0)
    m, hops, steps, batch = 4, 3, 37, 3
    opts = FWMScanOptions(memory_size=m, read_hops=hops, write_scale=0.5, chunk_size=8)
    write = (1.5 * torch.randn(steps, batch, 3 * m + 1, dtype=dtype)).requires_grad_(True)
    read = torch.randn(steps, batch, m + hops * m, dtype=dtype, requires_grad=True)
    F0 = (0.3 * torch.randn(batch, m, m, m, dtype=dtype)).requires_grad_(True)
    resets = torch.rand(steps, batch) < 0.1
    resets[9, 1] = resets[16, 2] = True  # at a chunk's first step and inside a chunk
    weights = torch.randn(steps, batch, m, dtype=dtype)

    results = {}
    for impl in ("naive", name):
        n, F = FWM_SCANS[impl](write, read, F0, resets, opts)
        loss = (n * weights).sum() + F.sum()
        grads = torch.autograd.grad(loss, (write, read, F0))
        results[impl] = (n, F, *grads)
    # float64 shows the algebra is exact; float32 that rounding stays at float32 level (the layer
    # norms amplify differences where a read has little variance).
    tol = {"rtol": 1e-9, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-3, "atol": 1e-4}
    for a, b in zip(results["naive"], results[name], strict=True):
        torch.testing.assert_close(b, a, **tol)


@pytest.mark.parametrize("with_resets", [False, True])
def test_delta_recurrence_backward_matches_finite_differences(with_resets):
    torch.manual_seed(2)
    batch, steps, m = 3, 6, 4
    f64 = {"dtype": torch.float64}
    inputs = (
        torch.randn(batch, steps, m, **f64),  # old values read from F_0
        2 * torch.randn(batch, steps, steps, **f64),  # key products
        3 * torch.rand(batch, steps, **f64),  # their diagonal
        torch.rand(batch, steps, **f64),  # write rates
        2 * torch.randn(batch, steps, m, **f64),  # new values
        1.5 * torch.rand(batch, **f64),  # ‖F_0‖²
    )
    inputs = tuple(x.requires_grad_(True) for x in inputs)
    keep = None
    if with_resets:
        keep = torch.ones(batch, steps, **f64)
        keep[1, 3] = 0.0

    def run(A, W, D, rate, v, norm_sq):  # noqa: ANN001, ANN202
        return _DeltaRecurrence.apply(A, W, D, rate, v, keep, norm_sq)

    _, _, log_g = run(*inputs)
    assert (log_g < 0).any()  # the norm bound was active, so its branch is checked too
    assert torch.autograd.gradcheck(run, inputs)


def test_chunked_scan_keeps_the_norm_bound_over_long_windows():
    torch.manual_seed(1)
    opts = FWMScanOptions(memory_size=8, read_hops=2, write_scale=1.0, chunk_size=16)
    write = 3 * torch.randn(200, 4, 25)
    read = torch.randn(200, 4, 24)
    n_naive, F_naive = naive_scan(write, read, torch.zeros(4, 8, 8, 8), None, opts)
    n_fast, F_fast = FWM_SCANS["chunked"](write, read, torch.zeros(4, 8, 8, 8), None, opts)
    assert (F_fast.flatten(1).norm(dim=1) <= 1 + 1e-5).all()
    torch.testing.assert_close(F_fast, F_naive, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(n_fast, n_naive, rtol=1e-3, atol=1e-3)


def test_core_defaults_follow_the_paper():
    core = FWMCore(input_size=16, hidden_size=32, memory_size=16)
    assert core.read_hops == 3
    assert math.isclose(core.scan_options.write_scale, 1 / 16)
    assert core.residual
    assert core.state_numel == 2 * 32 + 16**3
    # LSTM(16→32) 6,400 + write 32→49 1,617 + read 32→64 2,112 + out 16→32 544 = 10,673; with the
    # graph task's policy (32→3) and value (32→1) heads: 10,805, the paper's "≈ 10.9k".
    assert sum(p.numel() for p in core.parameters()) == 10_673
    bound = math.sqrt(6 / (32 + 16))
    assert core.write_proj.weight.abs().max() <= bound
    assert core.write_proj.weight.abs().max() > 0.9 * bound


def test_residual_off_returns_the_memory_read_only():
    torch.manual_seed(0)
    core = make_core("fwm", input_size=3, hidden_size=5, memory_size=3, residual=False)
    x = torch.randn(4, 2, 3)
    y, _, _ = core(x)
    z, _ = core.controller(x)
    write, read = core.write_proj(z), core.read_proj(z)
    n, _ = naive_scan(write, read, torch.zeros(2, 3, 3, 3), None, core.scan_options)
    torch.testing.assert_close(y, core.out_proj(n))


def test_memory_carries_information_the_controller_does_not():
    """Two inputs that differ only at step 0 give different outputs later through F alone."""
    torch.manual_seed(0)
    core = make_core("fwm", input_size=3, hidden_size=4, memory_size=4)
    x = torch.randn(6, 2, 3)
    x[:, 1] = x[:, 0]
    x[0, 1] += 1.0
    _, state, _ = core(x)
    assert not torch.allclose(state.F[0], state.F[1])


def test_zero_init_output_starts_as_the_controller_and_learns_the_read():
    torch.manual_seed(0)
    core = FWMCore(input_size=5, hidden_size=8, memory_size=4, zero_init_output=True)
    x = torch.randn(6, 3, 5)
    y, _, _ = core(x)
    z, _ = core.controller(x)
    torch.testing.assert_close(y, z)  # the memory term is zero at the start ...
    y.pow(2).sum().backward()
    assert core.out_proj.weight.grad.abs().sum() > 0  # ... and gets a gradient
    with pytest.raises(ValueError, match="zero_init_output"):
        FWMCore(input_size=5, zero_init_output="yes")


@pytest.mark.parametrize("name", ["chunked", "chunked_checkpoint", "lowrank"])
def test_chunk_scans_stay_finite_when_the_memory_shrinks_out_of_float32_range(name):
    # Saturated keys and values with write scale 1 rescale F by about e^-3 per step, so over one
    # 64-step chunk the product of the norm scales leaves float32's range (e^-88): the decay
    # coefficients of later writes (zero by causality) must come out 0, not inf * 0. A catbAbI
    # run hit this after 3,833 updates (a NaN at the first step of a chunk).
    torch.manual_seed(3)
    m, hops, steps, batch = 8, 2, 64, 3
    opts = FWMScanOptions(memory_size=m, read_hops=hops, write_scale=1.0, chunk_size=64)
    write = (6 * torch.randn(steps, batch, 3 * m + 1)).requires_grad_(True)
    read = torch.randn(steps, batch, m + hops * m, requires_grad=True)
    weights = torch.randn(steps, batch, m)
    if name == "lowrank":
        memory = LowRankMemory.empty(batch, m, write)
        n, memory = lowrank_scan(write, read, memory, None, opts)
        F = memory.to_dense()
    else:
        F0 = torch.randn(batch, m, m, m)
        F0 = F0 / F0.flatten(1).norm(dim=1).view(batch, 1, 1, 1)
        n, F = FWM_SCANS[name](write, read, F0, None, opts)
    grads = torch.autograd.grad((n * weights).sum() + F.sum(), (write, read))
    for tensor in (n, F, *grads):
        assert torch.isfinite(tensor).all()
    F0_ref = torch.zeros(batch, m, m, m) if name == "lowrank" else F0
    n_ref, F_ref = naive_scan(write.double(), read.double(), F0_ref.double(), None, opts)
    torch.testing.assert_close(n.double(), n_ref, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(F.double(), F_ref, rtol=1e-3, atol=1e-5)
