"""Where an FWM training step spends its time, against ``torch.nn.LSTM(d)`` in the same run.

    python benchmarks/fwm_profile.py                      # d = 256, m = 32, N_r = 3, B = 32, T = 64
    python benchmarks/fwm_profile.py --hidden 32 --memory 16 --batch 64

Times (CPU time) forward + backward of one window (a sum over the outputs), per time step, median of
``--repeats`` alternating runs, for the whole core and for its parts measured alone at the same
shapes:

* *controller*: the core's LSTM path (``FWMCore._controller``) and the write/read/output
  projections (no memory);
* *F contractions*: every bulk contraction of the chunked scan with the chunk's initial ``F``
  (``N_r + 1`` batched reads per chunk and the end-of-chunk write), with their backward;
* *recurrence*: the sequential delta-rule/norm loop the chunked scan runs
  (:class:`fwmrl.memory.fwm_scan._ScaledDeltaRecurrence`, in its C kernel where that builds);
* *rest of the scan*: the whole core minus the three parts above (key products, masks, layer
  norms, the chunk's small matrix products).

The *F contractions* are ``(N_r + 2) · m³`` multiply-adds per sample and step forward (the
chunk's reads of ``F`` and its write) and twice that backward; their achieved GFLOP/s shows how close they
run to the machine's matrix-multiply rate, and ``floor × LSTM`` is the ratio the core would have if
everything but the controller and these contractions cost nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fwmrl.memory import FWMCore, fwm_kernel  # noqa: E402
from fwmrl.memory.fwm_scan import _ScaledDeltaRecurrence, hop_many  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--memory", type=int, default=32)
    parser.add_argument("--hops", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d, m, hops, B, T, C = args.hidden, args.memory, args.hops, args.batch, args.steps, args.chunk
    chunks = -(-T // C)

    x = torch.randn(T, B, d)
    lstm = nn.LSTM(d, d)
    core = FWMCore(d, hidden_size=d, memory_size=m, read_hops=hops, chunk_size=C)

    def baseline() -> None:
        lstm(x)[0].sum().backward()

    with torch.no_grad():  # a nonzero F (a window from F = 0 runs on factors, no contractions)
        warm = core(x).state

    def whole() -> None:
        core(x, warm)[0].sum().backward()

    def controller() -> None:  # the core's own controller path (FWMCore._controller)
        z, _, _, w, r = core._controller(x, core.initial_state(B), None)
        (core.out_proj(r[..., :m]) + z).sum().add(w.sum()).backward()

    # A window's first chunk starts from a state without gradient (fresh or carried and detached),
    # so only the later chunks' F need one, as in the scan.
    F_first = 0.1 * torch.randn(B, m, m, m)
    F = F_first.clone().requires_grad_(True)
    queries = [torch.randn(B, C, m, requires_grad=True) for _ in range(2 * (hops + 1))]
    U = torch.randn(B, C, m, requires_grad=True)
    keys = torch.randn(B, C, m * m, requires_grad=True)

    def contractions() -> None:
        total = 0
        for chunk in range(chunks):
            F_c = F_first if chunk == 0 else F
            for i in range(hops + 1):
                total = total + hop_many(F_c, queries[2 * i], queries[2 * i + 1]).sum()
            total = total + (keys.transpose(1, 2) @ U).sum()
        total.backward()

    rec_inputs = (
        torch.randn(B, C, m),
        torch.randn(B, C, C),
        torch.rand(B, C),
        0.05 * torch.rand(B, C),
        torch.randn(B, C, m),
    )
    rec_inputs = tuple(t.requires_grad_(True) for t in rec_inputs)
    norm_sq = torch.rand(B, requires_grad=True)
    compiled = fwm_kernel.available(rec_inputs[0], m)

    def recurrence() -> None:
        total = 0
        for _ in range(chunks):
            U_, before, end = _ScaledDeltaRecurrence.apply(*rec_inputs, None, norm_sq, compiled)
            total = total + U_.sum() + before.sum() + end.sum()
        total.backward()

    parts = {
        f"torch.nn.LSTM({d}) [baseline]": baseline,
        f"FWM d={d} m={m} Nr={hops} (chunked, from a nonzero F)": whole,
        "  controller (LSTM + projections)": controller,
        "  F contractions": contractions,
        "  recurrence": recurrence,
    }
    times: dict[str, list[float]] = {name: [] for name in parts}
    for fn in parts.values():  # warm-up
        fn()
    for _ in range(args.repeats):
        for name, fn in parts.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    ms = {name: statistics.median(v) / T * 1e3 for name, v in times.items()}
    names = list(parts)
    rest = ms[names[1]] - ms[names[2]] - ms[names[3]] - ms[names[4]]
    flops = 3 * 2 * (hops + 2) * m**3 * B  # fwd + 2× bwd, 2 flops per multiply-add, per step
    base = ms[names[0]]
    print(
        f"B={B} T={T} chunk={C} threads={torch.get_num_threads()} torch={torch.__version__} "
        f"(median of {args.repeats}, CPU ms per time step, forward + backward)"
    )
    print("| part | ms/step | × LSTM | share of FWM |")
    print("|---|---|---|---|")
    for name in names:
        share = "" if name == names[0] else f"{ms[name] / ms[names[1]]:.0%}"
        print(f"| {name} | {ms[name]:.3f} | {ms[name] / base:.2f} | {share} |")
    print(f"|   rest of the scan | {rest:.3f} | {rest / base:.2f} | {rest / ms[names[1]]:.0%} |")
    a, b = torch.randn(2048, 256), torch.randn(256, 1024)
    a @ b
    start = time.process_time()
    for _ in range(10):
        a @ b
    gemm = 10 * 2.0 * 2048 * 256 * 1024 / (time.process_time() - start) / 1e9
    floor = ms[names[2]] + ms[names[3]]
    print(
        f"F contractions: {flops / 1e6:.1f} MFLOP per step at "
        f"{flops / (ms[names[3]] * 1e-3) / 1e9:.0f} GFLOP/s (a [2048, 256] x [256, 1024] GEMM: "
        f"{gemm:.0f} GFLOP/s in this run); "
        f"floor (controller + contractions) = {floor:.3f} ms/step = {floor / base:.2f} × LSTM"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
