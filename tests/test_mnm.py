"""Tests of the MNM cores (MNM-g and MNM-p): interface, gradients and memory behaviour."""

from __future__ import annotations

import inspect

import pytest
import torch

from fwmrl.memory.mnm import (
    MNMCore,
    MNMGCore,
    MNMPCore,
    MNMState,
    gradient_write_grads,
    memory_forward,
    perceptron_write_grads,
)
from fwmrl.memory.registry import CoreConfigError, make_core

RULES = ["gradient", "perceptron"]
CORES = {"gradient": MNMGCore, "perceptron": MNMPCore}
SMALL = dict(hidden_size=6, key_size=5, memory_size=7, num_heads=2)


def make(rule: str, seed: int = 0, **kwargs) -> MNMCore:
    torch.manual_seed(seed)
    args = {"input_size": 3, **SMALL, **kwargs}
    return CORES[rule](**args)


def inputs(t: int = 6, b: int = 3, f: int = 3, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, b, f, generator=g, dtype=dtype)


# ------------------------------------------------------------------------------------ interface
@pytest.mark.parametrize("rule", RULES)
def test_shapes_and_dtypes(rule):
    core = make(rule, output_size=4)
    x = inputs()
    y, state, meta = core(x)
    assert y.shape == (6, 3, 4) and y.dtype == torch.float32
    assert isinstance(state, MNMState)
    expected = {"h": (3, 6), "c": (3, 6), "read": (3, 5), "w1": (3, 7, 5), "w2": (3, 7, 7)}
    expected["w3"] = (3, 5, 7)
    for name, t in state.tensors():
        assert t.shape == expected[name], name
        assert t.dtype == torch.float32
    assert core.state_numel == 2 * 6 + 5 + 2 * 5 * 7 + 7 * 7
    assert core.input_size == 3 and core.output_size == 4
    assert meta.shape == (6, 3) and meta.dtype == torch.float32
    assert make(rule).output_size == SMALL["hidden_size"]
    core64 = make(rule).double()
    y64, s64, _ = core64(x.double())
    assert y64.dtype == torch.float64 and s64.w1.dtype == torch.float64


def test_subclasses_fix_the_rule():
    torch.manual_seed(0)
    g = MNMGCore(3, **SMALL)
    torch.manual_seed(0)
    p = MNMPCore(3, **SMALL)
    assert g.rule == "gradient" and g.bfpf is None
    assert p.rule == "perceptron" and len(p.bfpf) == 3
    assert MNMGCore.rule == "gradient" and MNMPCore.rule == "perceptron"  # class attributes
    assert "rule" not in g.__dict__ and "rule=" not in str(inspect.signature(MNMGCore))
    # the parameter names (checkpoint keys) of the cores with the rule as an argument
    shared = [
        "controller.weight_ih",
        "controller.weight_hh",
        "controller.bias_ih",
        "controller.bias_hh",
        "interaction.weight",
        "interaction.bias",
        "beta.weight",
        "beta.bias",
        "output.weight",
        "output.bias",
    ]
    phi0 = ["phi0_w1", "phi0_w2", "phi0_w3"]
    bfpf = [f"bfpf.{i}.{w}" for i in range(3) for w in ("weight", "bias")]
    assert sorted(g.state_dict()) == sorted(shared + phi0)
    assert sorted(p.state_dict()) == sorted(shared + bfpf + phi0)


@pytest.mark.parametrize("rule", RULES)
def test_step_equals_forward(rule):
    core = make(rule)
    x = inputs(t=5)
    resets = torch.zeros(5, 3, dtype=torch.bool)
    resets[2, 1] = True
    y, final, _ = core(x, None, resets)
    state = None
    ys = []
    for t in range(5):
        yt, state = core.step(x[t], state, resets[t])
        ys.append(yt)
    torch.testing.assert_close(torch.stack(ys), y, rtol=1e-6, atol=1e-6)
    for (_, a), (_, b) in zip(state.tensors(), final.tensors(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rule", RULES)
def test_reset_equals_fresh_sequence(rule):
    core = make(rule)
    x = inputs(t=7)
    t0 = 3
    resets = torch.zeros(7, 3, dtype=torch.bool)
    resets[t0, 0] = True
    resets[t0, 2] = True
    y, _, _ = core(x, None, resets)
    y_plain, _, _ = core(x)
    y_fresh, _, _ = core(x[t0:])
    torch.testing.assert_close(y[t0:, [0, 2]], y_fresh[:, [0, 2]], rtol=1e-6, atol=1e-6)
    # the low-rank scan cuts its chunks at resets, which changes rounding only
    torch.testing.assert_close(y[:, 1], y_plain[:, 1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y[:t0], y_plain[:t0], rtol=0, atol=0)
    # the reset must actually change something
    assert not torch.allclose(y[t0:, 0], y_plain[t0:, 0])


@pytest.mark.parametrize("rule", RULES)
def test_state_index_cat_detach(rule):
    core = make(rule)
    x = inputs(t=4, b=4)
    y, state, _ = core(x)
    assert state.w1.requires_grad
    parts = [state[0], state[1:3], state[3]]
    assert parts[0].batch_size == 1 and parts[1].batch_size == 2
    joined = MNMState.cat(parts)
    for (_, a), (_, b) in zip(joined.tensors(), state.tensors(), strict=True):
        assert torch.equal(a, b)
    detached = state.detach()
    assert not any(t.requires_grad for _, t in detached.tensors())
    # continuing a slice of the batch equals continuing the whole batch, for those sequences
    x2 = inputs(t=3, b=4, seed=5)
    y_all, _, _ = core(x2, state.detach())
    y_sub, _, _ = core(x2[:, 1:3], state[1:3].detach())
    torch.testing.assert_close(y_sub, y_all[:, 1:3], rtol=1e-6, atol=1e-6)
    restored = MNMState.from_state_dict(state.state_dict())
    assert torch.equal(restored.w2, state.w2)


def _reference_step(core, x, state):
    """docs/memory-cores.md's MNM step written plainly, per sample and head (float64)."""
    d_k, heads = core.key_size, core.num_heads
    ys, reads, metas, weights = [], [], [], []
    for b in range(x.shape[0]):
        h, c = core.controller(
            torch.cat([x[b], state.read[b]]).unsqueeze(0), (state.h[b : b + 1], state.c[b : b + 1])
        )
        u = torch.tanh(core.interaction(h[0]))
        beta = torch.sigmoid(core.beta(u[:d_k]))[0]
        kw, vw, kr = [], [], []
        for i in range(heads):
            base = d_k + 3 * i * d_k
            kw.append(u[base : base + d_k])
            vw.append(u[base + d_k : base + 2 * d_k])
            kr.append(u[base + 2 * d_k : base + 3 * d_k])
        old = [state.w1[b], state.w2[b], state.w3[b]]

        def acts(w, k):
            z1 = torch.tanh(w[0] @ k)
            z2 = torch.tanh(w[1] @ z1)
            return [k, z1, z2, w[2] @ z2]

        if core.rule == "gradient":
            alias = [w.clone() for w in old]
            loss = sum(
                ((acts(alias, k)[3] - v) ** 2).sum() for k, v in zip(kw, vw, strict=True)
            ) / (heads * d_k)
            grads = torch.autograd.grad(loss, alias, create_graph=True)
            new = [w - beta * g for w, g in zip(old, grads, strict=True)]
        else:
            new = []
            for layer in range(3):
                step = 0
                for k, v in zip(kw, vw, strict=True):
                    z = acts(old, k)
                    z_hat = core.bfpf[layer](v)
                    width = z[layer + 1].shape[0]
                    step = step + torch.outer(z[layer + 1] - z_hat, z[layer]) * 2 / (heads * width)
                new.append(old[layer] - beta * step)
        metas.append(
            sum(((acts(new, k)[3] - v) ** 2).mean() for k, v in zip(kw, vw, strict=True)) / heads
        )
        read = sum(acts(new, k)[3] for k in kr) / heads
        reads.append(read)
        ys.append(core.output(torch.cat([h[0], read])))
        weights.append(new)
    return torch.stack(ys), torch.stack(reads), torch.stack(metas), weights


@pytest.mark.parametrize("rule", RULES)
def test_step_matches_plain_reference(rule):
    core = make(rule).double()
    with torch.no_grad():
        core.beta.bias.fill_(1.0)
        if rule == "perceptron":
            for q in core.bfpf:
                q.weight.normal_()
    x = inputs(t=3, dtype=torch.float64)
    state = core.initial_state(3).to(dtype=torch.float64)
    for t in range(3):
        y_ref, read_ref, meta_ref, w_ref = _reference_step(core, x[t], state)
        y_step, _ = core.step(x[t], state)
        y, state, meta = core(x[t : t + 1], state)
        assert torch.equal(y_step, y[0])
        torch.testing.assert_close(y[0], y_ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(state.read, read_ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(meta[0], meta_ref, rtol=1e-10, atol=1e-12)
        for b, ws in enumerate(w_ref):
            torch.testing.assert_close(state.w1[b], ws[0], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(state.w2[b], ws[1], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(state.w3[b], ws[2], rtol=1e-10, atol=1e-12)
    assert not torch.allclose(state.w1[0], core.phi0_w1)  # the memory was written


# ------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("rule", RULES)
def test_gradcheck_through_steps_and_reset(rule):
    torch.manual_seed(0)
    core = CORES[rule](2, hidden_size=3, key_size=3, memory_size=4, num_heads=2)
    core = core.double()
    with torch.no_grad():
        core.beta.bias.fill_(1.0)  # a sizeable write
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    resets = torch.zeros(4, 2, dtype=torch.bool)
    resets[2, 0] = True
    init = core.initial_state(2).to(dtype=torch.float64)
    w1 = (init.w1 + 0.1 * torch.randn_like(init.w1)).requires_grad_()
    read = (0.3 * torch.randn_like(init.read)).requires_grad_()

    def fn(x, w1, read):
        state = MNMState(h=init.h, c=init.c, read=read, w1=w1, w2=init.w2, w3=init.w3)
        y, final, meta = core(x, state, resets)
        return y, final.w3, meta

    assert torch.autograd.gradcheck(fn, (x, w1, read), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("recompute", [None, 3])
@pytest.mark.parametrize("rule", RULES)
def test_lowrank_matches_naive_values_and_gradients(rule, recompute):
    """The chunked low-rank scan (default) against the step-by-step reference, across chunk
    boundaries and resets inside a chunk, with and without recomputation."""
    results = {}
    for impl in ("naive", "lowrank"):
        torch.manual_seed(0)
        core = CORES[rule](
            3, implementation=impl, chunk_size=4, recompute_chunk=recompute, **SMALL
        ).double()
        with torch.no_grad():
            core.beta.bias.fill_(1.0)  # sizeable writes
        x = inputs(t=11, b=3, dtype=torch.float64).requires_grad_(True)
        resets = torch.zeros(11, 3, dtype=torch.bool)
        resets[4, 1] = resets[6, 0] = True  # at a chunk start and inside a chunk
        y, state, meta = core(x, None, resets)
        loss = y.square().sum() + meta.mean() + sum(t.sum() for _, t in state.tensors())
        grads = torch.autograd.grad(loss, [x, *core.parameters()])
        results[impl] = (y, meta, *[t for _, t in state.tensors()], *grads)
    for a, b in zip(results["naive"], results["lowrank"], strict=True):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("rule", RULES)
def test_lowrank_step_and_no_grad_match_naive(rule):
    cores = {}
    for impl in ("naive", "lowrank"):
        torch.manual_seed(0)
        cores[impl] = CORES[rule](3, implementation=impl, **SMALL)
    x = inputs(t=5)
    with torch.no_grad():
        y_naive, s_naive, _ = cores["naive"](x)
        y_fast, s_fast, _ = cores["lowrank"](x)
        torch.testing.assert_close(y_fast, y_naive, rtol=1e-5, atol=1e-6)
        state = None
        for t in range(5):
            y_t, state = cores["lowrank"].step(x[t], state)
            torch.testing.assert_close(y_t, y_naive[t], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state.w2, s_naive.w2, rtol=1e-5, atol=1e-6)


def test_lowrank_backward_frees_its_graph(monkeypatch):
    """The deferred weight gradients must not keep the graph alive (a reference cycle through
    autograd's nodes leaked all of a run's memory), also when ``W_0`` needs no gradient."""
    import gc
    import weakref

    from fwmrl.memory import mnm_lowrank

    stores = []

    class Tracked(mnm_lowrank._GradStore):
        def __init__(self) -> None:
            super().__init__()
            stores.append(weakref.ref(self))

    monkeypatch.setattr(mnm_lowrank, "_GradStore", Tracked)
    core = make("perceptron")
    x = inputs(t=6).requires_grad_(True)
    with torch.no_grad():
        _, state, _ = core(x)
    y, state, _ = core(x, state)  # W_0 without gradient
    y2, state2, meta = core(x)  # W_0 with gradient (φ0)
    (y.sum() + y2.sum() + meta.mean()).backward()
    del y, y2, state, state2, meta
    gc.collect()
    assert len(stores) >= 3
    assert all(ref() is None for ref in stores)


def _autograd_write_grads(weights, keys, values, acts):
    """Reference: the partial ∇_φ L^up (keys and values held) by autograd with create_graph=True.

    Inside the core, the keys depend on the current weights too (through the previous read), so the
    gradient is taken w.r.t. fresh aliases of the weights that only the memory pass uses.
    """
    alias = tuple(w.clone() for w in weights)
    z3 = memory_forward(alias, keys)[2]
    loss = (z3 - values).pow(2).mean(dim=(1, 2)).sum()  # samples are independent: sum over batch
    return torch.autograd.grad(loss, alias, create_graph=True)


def test_closed_form_gradient_equals_autograd():
    g = torch.Generator().manual_seed(0)
    b, h, d_k, d_m = 3, 2, 4, 5
    w1 = (0.5 * torch.randn(b, d_m, d_k, generator=g, dtype=torch.float64)).requires_grad_()
    w2 = (0.5 * torch.randn(b, d_m, d_m, generator=g, dtype=torch.float64)).requires_grad_()
    w3 = (0.5 * torch.randn(b, d_k, d_m, generator=g, dtype=torch.float64)).requires_grad_()
    keys = torch.randn(b, h, d_k, generator=g, dtype=torch.float64).tanh().requires_grad_()
    values = torch.randn(b, h, d_k, generator=g, dtype=torch.float64).tanh()
    weights = (w1, w2, w3)
    acts = memory_forward(weights, keys)
    closed = gradient_write_grads(weights, keys, values, acts)
    ref = _autograd_write_grads(weights, keys, values, acts)
    for a, r in zip(closed, ref, strict=True):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)
        assert a.abs().sum() > 0
    # second order: the closed form is differentiable and has the same derivatives as autograd's
    probe = [torch.randn(c.shape, generator=g, dtype=torch.float64) for c in closed]
    s_closed = sum((c * p).sum() for c, p in zip(closed, probe, strict=True))
    s_ref = sum((c * p).sum() for c, p in zip(ref, probe, strict=True))
    d_closed = torch.autograd.grad(s_closed, (w1, w2, w3, keys), retain_graph=True)
    d_ref = torch.autograd.grad(s_ref, (w1, w2, w3, keys))
    for a, r in zip(d_closed, d_ref, strict=True):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)
        assert a.abs().sum() > 0


def test_second_order_gradient_flows_through_the_write(monkeypatch):
    # the naive step's write is swapped for references here; the low-rank scan matches it
    core = make("gradient", implementation="naive").double()
    x = inputs(t=4, dtype=torch.float64)
    d_k, heads = core.key_size, core.num_heads
    # rows of W_u that produce the write keys k^w (layout: β', then per head (k^w, v^w, k^r))
    rows = torch.cat([d_k + i * 3 * d_k + torch.arange(d_k) for i in range(heads)])

    def grads():
        core.zero_grad()
        y, _, meta = core(x)
        (y.pow(2).sum() + meta.mean()).backward()
        return {n: p.grad.clone() for n, p in core.named_parameters()}

    closed = grads()
    # the write keys enter the read path only through the update: their rows get a gradient
    assert closed["interaction.weight"][rows].abs().sum() > 1e-6
    monkeypatch.setattr(core, "_write_grads", lambda w, k, v, a: _autograd_write_grads(w, k, v, a))
    reference = grads()
    for name, g in closed.items():
        torch.testing.assert_close(g, reference[name], rtol=1e-9, atol=1e-11, msg=name)
    # dropping the second-order terms changes the gradients: they really are present
    monkeypatch.setattr(
        core,
        "_write_grads",
        lambda w, k, v, a: tuple(t.detach() for t in gradient_write_grads(w, k, v, a)),
    )
    first_order = grads()
    assert not torch.allclose(first_order["interaction.weight"], closed["interaction.weight"])


# ------------------------------------------------------------------------------------ memory
def _recon_errors(core, x):
    """Per-sample ‖f_φ(k^w) − v^w‖ before and after the first write, captured from the core."""
    seen = {}
    original = core._write_grads

    def spy(weights, keys, values, acts):
        seen.setdefault("old", (weights, keys, values, acts))
        return original(weights, keys, values, acts)

    core._write_grads = spy
    try:
        _, state, _ = core(x[:1])
    finally:
        del core._write_grads
    weights, keys, values, acts = seen["old"]
    before = (acts[2] - values).flatten(1).norm(dim=1)
    after = (
        (memory_forward((state.w1, state.w2, state.w3), keys)[2] - values).flatten(1).norm(dim=1)
    )
    return before, after, (weights, keys, values, acts), state


def test_gradient_write_lowers_reconstruction_error():
    core = make("gradient", key_size=8, memory_size=8, num_heads=1, implementation="naive")
    with torch.no_grad():
        core.beta.bias.fill_(8.0)  # β ≈ 1
        core.interaction.weight.mul_(4.0)  # keys/values spread over (−1, 1)
    x = inputs(t=1, b=16)
    with torch.no_grad():
        before, after, _, _ = _recon_errors(core, x)
    assert (after < before).all(), (before, after)
    assert (after < 0.9 * before).float().mean() > 0.5


def test_perceptron_write_lowers_error_with_consistent_bfpf():
    """With ẑ¹ = z¹, ẑ² = z² (nothing to fix below) and ẑ³ = v^w, MNM-p's write is a delta-rule step
    on the output layer; with d_m ≤ d_k it lowers the error for every β in (0, 1)."""
    core = make(
        "perceptron", key_size=8, memory_size=8, num_heads=1, implementation="naive", kernel="eager"
    )
    d_k = core.key_size
    with torch.no_grad():
        core.beta.bias.fill_(8.0)
        # constant write key k* (zero weights, bias): z¹, z² are the same for every sample
        kw_rows = slice(d_k, 2 * d_k)
        core.interaction.weight[kw_rows] = 0.0
        core.interaction.bias[kw_rows] = torch.linspace(-1.0, 1.0, d_k)
        core.interaction.weight.mul_(4.0)
        k_star = torch.tanh(core.interaction.bias[kw_rows]).view(1, 1, d_k)
        phi0 = (core.phi0_w1.unsqueeze(0), core.phi0_w2.unsqueeze(0), core.phi0_w3.unsqueeze(0))
        z1, z2, _ = memory_forward(phi0, k_star)
        for q, z in ((core.bfpf[0], z1), (core.bfpf[1], z2)):
            q.weight.zero_()
            q.bias.copy_(z.view(-1))
        x = inputs(t=1, b=16)
        before, after, _, state = _recon_errors(core, x)
        # lower layers untouched, output layer moved
        torch.testing.assert_close(state.w1, phi0[0].expand_as(state.w1))
        torch.testing.assert_close(state.w2, phi0[1].expand_as(state.w2))
    assert (after < before).all(), (before, after)


def test_perceptron_output_layer_is_a_delta_rule_step():
    """What the rule guarantees in general: with ẑ³ = v^w, the new W3 on the pre-update z² is
    strictly closer to v^w (for any lower-layer targets), when d_m ≤ d_k and 0 < β < 1."""
    g = torch.Generator().manual_seed(3)
    b, h, d_k, d_m = 8, 3, 6, 6
    w1 = torch.randn(b, d_m, d_k, generator=g)
    w2 = torch.randn(b, d_m, d_m, generator=g)
    w3 = torch.randn(b, d_k, d_m, generator=g)
    keys = torch.randn(b, h, d_k, generator=g).tanh()
    values = torch.randn(b, h, d_k, generator=g).tanh()
    acts = memory_forward((w1, w2, w3), keys)
    targets = (torch.randn_like(acts[0]), torch.randn_like(acts[1]), values)
    grads = perceptron_write_grads(keys, acts, targets)
    for beta in (0.1, 0.5, 0.99):
        new_w3 = w3 - beta * grads[2]
        before = (acts[2] - values).pow(2).sum(dim=(1, 2))
        after = (acts[1] @ new_w3.transpose(1, 2) - values).pow(2).sum(dim=(1, 2))
        assert (after < before).all(), beta
    # the output-layer update equals the gradient step of L^up w.r.t. W3
    closed = gradient_write_grads((w1, w2, w3), keys, values, acts)
    torch.testing.assert_close(grads[2], closed[2])
    # lower layers: no tanh derivative, targets compared to activations directly
    expected = (acts[0] - targets[0]).transpose(1, 2) @ keys * (2.0 / (h * d_m))
    torch.testing.assert_close(grads[0], expected)


# ------------------------------------------------------------------------------------ meta loss
@pytest.mark.parametrize("rule", RULES)
def test_meta_loss(rule):
    x = inputs(t=5)
    core = make(rule, implementation="naive")  # spied below; the low-rank scan matches it
    y, state, meta = core(x)
    assert meta.shape == (5, 3) and (meta >= 0).all()
    # it is the MSE of the updated memory at the write keys: recompute for the last step
    captured = {}
    original = core._write_grads

    def spy(weights, keys, values, acts):
        captured["kv"] = (keys, values)
        return original(weights, keys, values, acts)

    core._write_grads = spy
    core(x)
    del core._write_grads
    keys, values = captured["kv"]
    recon = memory_forward((state.w1, state.w2, state.w3), keys)[2]
    torch.testing.assert_close(meta[-1], (recon - values).pow(2).mean(dim=(1, 2)))
    # differentiable: reaches φ0, the controller and (MNM-p) the BFPF
    core.zero_grad()
    core(x).aux_loss.mean().backward()
    assert core.phi0_w1.grad.abs().sum() > 0
    assert core.controller.weight_ih.grad.abs().sum() > 0
    if rule == "perceptron":
        assert core.bfpf[0].weight.grad.abs().sum() > 0
    # weighted, outputs unchanged
    heavy = make(rule, meta_loss_weight=2.5, implementation="naive")
    y2, _, heavy_meta = heavy(x)
    assert torch.equal(y2, y)
    torch.testing.assert_close(heavy_meta, 2.5 * meta.detach())
    off = make(rule, meta_loss_weight=0.0)
    assert torch.equal(off(x).aux_loss, torch.zeros(5, 3))


# ------------------------------------------------------------------------------------ φ0, seeds
@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("learn", [True, False])
def test_initial_memory_saved(rule, learn):
    core = make(rule, learn_initial_memory=learn)
    sd = core.state_dict()
    for name in ("phi0_w1", "phi0_w2", "phi0_w3"):
        assert name in sd
    params = dict(core.named_parameters())
    assert ("phi0_w1" in params) == learn
    assert core.phi0_w1.requires_grad == learn
    state = core.initial_state(2)
    assert torch.equal(state.w1[1], core.phi0_w1.detach())
    assert torch.equal(state.w3[0], core.phi0_w3.detach())
    assert not state.h.any() and not state.c.any() and not state.read.any()
    bound = (6.0 / (SMALL["memory_size"] + SMALL["key_size"])) ** 0.5
    assert 0 < core.phi0_w1.abs().max() <= bound
    # a core with another seed loads φ0 (and everything else) and then computes the same outputs
    other = make(rule, seed=123, learn_initial_memory=learn)
    assert not torch.equal(other.phi0_w1, core.phi0_w1)
    other.load_state_dict(sd)
    x = inputs()
    assert torch.equal(other(x)[0], core(x)[0])


@pytest.mark.parametrize("rule", RULES)
def test_same_seed_bitwise_identical(rule):
    x = inputs()
    y1, s1, m1 = make(rule, seed=7)(x)
    y2, s2, m2 = make(rule, seed=7)(x)
    assert torch.equal(y1, y2) and torch.equal(s1.w2, s2.w2) and torch.equal(m1, m2)
    y3 = make(rule, seed=8)(x).output
    assert not torch.equal(y1, y3)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"input_size": 0}, "input_size"),
        ({"hidden_size": -1}, "hidden_size"),
        ({"key_size": 2.5}, "key_size"),
        ({"memory_size": True}, "memory_size"),
        ({"num_heads": 0}, "num_heads"),
        ({"output_size": 0}, "output_size"),
        ({"learn_initial_memory": "yes"}, "learn_initial_memory"),
        ({"meta_loss_weight": -1.0}, "meta_loss_weight"),
        ({"meta_loss_weight": float("nan")}, "meta_loss_weight"),
        ({"meta_loss_weight": "1"}, "meta_loss_weight"),
    ],
)
def test_bad_arguments(kwargs, name):
    args = {"input_size": 3, **kwargs}
    with pytest.raises(ValueError, match=name):
        MNMGCore(**args)


def test_the_rule_is_the_class_s():
    with pytest.raises(TypeError, match="MNMCore: no write rule.*MNMGCore.*MNMPCore"):
        MNMCore(3)

    class Hebbian(MNMCore):
        rule = "hebbian"

    with pytest.raises(TypeError, match="'gradient', 'perceptron'"):
        Hebbian(3)
    with pytest.raises(TypeError, match="rule"):
        MNMGCore(3, rule="perceptron")  # type: ignore[call-arg]
    with pytest.raises(CoreConfigError, match=r"core 'mnm_p' got unknown argument\(s\) \['rule'\]"):
        make_core("mnm_p", input_size=3, rule="gradient")
    assert type(make_core("mnm_g", input_size=3)) is MNMGCore
    with pytest.raises(ValueError, match="num_heads"):
        MNMPCore(3, num_heads=-2)


def test_bad_inputs():
    core = make("gradient")
    with pytest.raises(ValueError, match="input_size"):
        core(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="resets"):
        core(torch.zeros(2, 3, 3), None, torch.zeros(2, 2, dtype=torch.bool))
