"""Where the SB3 drop-in's training time goes, against the machine's matmul rate.

    python benchmarks/sb3_profile.py [--envs gridworld minigrid gridworld200]
        [--settings defaults tuned] [--cores lstm fwm] [--repeats 3]

For each env × settings × core of ``benchmarks/sb3.py``: ``MemoryRecurrentPPO`` + ``MemoryPolicy``
collects one rollout, then ``train()`` runs on that rollout again and again (one thread). Reported:
the CPU seconds of one ``train()`` call (median of ``--repeats``, not profiled), and from one call
under ``torch.profiler``: the aten operators dispatched, the matrix products' (``mm``, ``addmm``,
``bmm``, ``baddbmm``) floating-point work and rate, the same-run rate of one large GEMM (1024³)
and of a GEMM at the policy's own size (one minibatch against a 64 × 256 weight), and the shares
of the profiled call's CPU time by kind of operator (their own time; "outside operators" is
Python, autograd's engine and the profiler's own cost). The products' rate against the large
GEMM's says whether time is lost in arithmetic (close to it) or around it (far below: the cost
follows the number and shape of operations, not their arithmetic). oneDNN's fused LSTM layers
report no FLOPs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _revision import revision  # noqa: E402
from sb3 import ENVS, SETTINGS, _model, _vec_env  # noqa: E402

PRODUCTS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
FUSED_LSTM = {"aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward"}
ELEMENTWISE = {
    "aten::mul",
    "aten::add",
    "aten::sub",
    "aten::div",
    "aten::tanh",
    "aten::sigmoid",
    "aten::exp",
    "aten::mul_",
    "aten::add_",
    "aten::sub_",
    "aten::div_",
    "aten::tanh_backward",
    "aten::sigmoid_backward",
    "aten::neg",
    "aten::sum",
    "aten::mean",
    "aten::clamp",
    "aten::where",
    "aten::pow",
    "aten::sqrt",
    "aten::rsqrt",
    "aten::maximum",
    "aten::addcmul_",
    "aten::addcdiv_",
    "aten::lerp_",
    "aten::native_layer_norm",
    "aten::native_layer_norm_backward",
    "aten::linalg_vector_norm",
    "aten::tril",
    "aten::cumsum",
    "aten::log_softmax",
    "aten::_log_softmax",
    "aten::_log_softmax_backward_data",
    "aten::exp_",
    "aten::mul_out",
}
LAYOUT = {
    "aten::copy_",
    "aten::_to_copy",
    "aten::cat",
    "aten::stack",
    "aten::empty",
    "aten::zeros",
    "aten::zero_",
    "aten::fill_",
    "aten::clone",
    "aten::contiguous",
    "aten::index",
    "aten::index_select",
    "aten::gather",
    "aten::scatter",
    "aten::masked_fill",
    "aten::index_put_",
    "aten::slice_backward",
    "aten::select_backward",
    "aten::new_zeros",
    "aten::empty_strided",
    "aten::as_strided",
    "aten::transpose",
    "aten::view",
    "aten::reshape",
    "aten::permute",
    "aten::expand",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::slice",
    "aten::select",
    "aten::t",
    "aten::_unsafe_view",
    "aten::split",
    "aten::narrow",
    "aten::unbind",
    "aten::flatten",
    "aten::detach",
    "aten::alias",
}
"""Operator names by kind, for the profile's shares (the rest: "other")."""


def gemm_rate(m: int, k: int, n: int, seconds: float = 0.5) -> float:
    """GFLOP/s of ``[m, k] × [k, n]`` products on this thread (CPU time over ``seconds``)."""
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    calls, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        torch.mm(a, b)
        calls += 1
    return 2 * m * k * n * calls / (time.process_time() - start) / 1e9


def profile_train(env_key: str, settings: str, core: str, repeats: int) -> dict[str, Any]:
    """One configuration: ``train()`` CPU time and its profile (see the module docstring)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    import fwmrl  # noqa: F401  (registers the ids)

    torch.set_num_threads(1)
    env = _vec_env(env_key, 8)
    model = _model("ppo", core, env, SETTINGS[settings])
    model.learn(model.n_envs * model.n_steps)  # one rollout and update; the buffer keeps it
    model.train()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.process_time()
        model.train()
        times.append(time.process_time() - start)
    profiled_start = time.process_time()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        model.train()
    profiled = time.process_time() - profiled_start
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    own = sum(e.self_cpu_time_total for e in events) * 1e-6

    def share(names: set[str]) -> float:
        return sum(e.self_cpu_time_total for e in events if e.key in names) * 1e-6 / profiled

    product_s = share(PRODUCTS) * profiled
    flops = sum(e.flops for e in events if e.key in PRODUCTS)
    env.close()
    return {
        "train_cpu_s": statistics.median(times),
        "operators": sum(e.count for e in events),
        "mflop": flops / 1e6,
        "products": share(PRODUCTS),
        "product_gflops": flops / product_s / 1e9 if product_s else 0.0,
        "fused_lstm": share(FUSED_LSTM),
        "elementwise": share(ELEMENTWISE),
        "layout": share(LAYOUT),
        "other_operators": own / profiled - share(PRODUCTS | FUSED_LSTM | ELEMENTWISE | LAYOUT),
        "outside": 1 - own / profiled,
        "minibatch_gemm_gflops": gemm_rate(model.batch_size, 64, 256),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", choices=list(ENVS), default=list(ENVS))
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--cores", nargs="+", choices=["lstm", "fwm"], default=["lstm", "fwm"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    large = gemm_rate(1024, 1024, 1024, seconds=2.0)
    print(
        f"commit {revision('benchmarks/sb3_profile.py')}: MemoryRecurrentPPO.train() on one "
        f"rollout of 8 envs, 1 thread, torch {torch.__version__}; a 1024³ GEMM runs at "
        f"{large:.1f} GFLOP/s here\n"
    )
    kinds = ["products", "fused_lstm", "elementwise", "layout", "other_operators", "outside"]
    print(
        "| env | settings | core | train() CPU s | aten operators | µs per operator | matmul MFLOP "
        "| matmul GFLOP/s "
        "| × 1024³ GEMM | minibatch-size GEMM GFLOP/s | share: matmul | fused LSTM (oneDNN) "
        "| elementwise and reductions | copies and views | other operators "
        "| outside operators (with the profiler's cost) |"
    )
    print("|---|---|---|" + "---:|" * 14)
    for env_key in args.envs:
        for settings in args.settings:
            for core in args.cores:
                r = profile_train(env_key, settings, core, args.repeats)
                shares = " | ".join(f"{r[k]:.0%}" for k in kinds)
                print(
                    f"| {ENVS[env_key][0]} | {settings} | {core} | {r['train_cpu_s']:.3f} "
                    f"| {r['operators']:,} | {r['train_cpu_s'] / r['operators'] * 1e6:.1f} "
                    f"| {r['mflop']:.0f} | {r['product_gflops']:.1f} "
                    f"| {r['product_gflops'] / large:.2f} | {r['minibatch_gemm_gflops']:.1f} "
                    f"| {shares} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
