"""Where an MNM training window spends its CPU time, against the machine's matrix-multiply rate.

    python benchmarks/mnm_profile.py                      # mnm_g and mnm_p, d = 128, B = 32, T = 64
    python benchmarks/mnm_profile.py --rule mnm_p --batch 64 --threads 1

For each rule, the low-rank and the naive core's training window (forward and backward of the
outputs' sum plus the mean meta loss; CPU time per time step, median of ``--repeats``) beside its
parts measured alone at the same shapes, in the same run:

* *memory products*: the low-rank scan's batched products with a per-sequence weight
  ``[B, d, d]`` (``[B, 2H, d]`` or ``[B, H, d]`` against ``[B, d, d]``: 7 per step for MNM-g, 5 for
  MNM-p, and as many in backward), without autograd, cycling over three layers' weights as the
  scan does (6 MiB at B = 32: measured 5× slower per product than one weight that stays cached);
* *shared GEMMs*: the products with the shared weights that run once per step (controller read
  and recurrent gates, interface, write strength) and their backward (input and weight
  gradients);
* *rest*: the whole window minus the two (elementwise operators, concatenations of the factors,
  autograd's nodes and the Python Functions).

The same run measures a large GEMM (``[2048, 256] × [256, 1024]``): the machine's rate that the
parts' achieved GFLOP/s read against. (``torch.profiler`` was not used: on this machine it
inflated the batched products' own times about 50-fold.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fwmrl.memory import make_core  # noqa: E402


def _rate(fn, flops: float, repeats: int = 20) -> float:  # noqa: ANN001
    """GFLOP/s of ``fn`` (CPU time)."""
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return flops * repeats / (time.process_time() - start) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rule", nargs="+", default=["mnm_g", "mnm_p"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    B, T, d = args.batch, args.steps, 128  # noqa: N806

    a, b = torch.randn(2048, 256), torch.randn(256, 1024)
    gemm = _rate(lambda: a @ b, 2.0 * 2048 * 256 * 1024)
    print(
        f"B={B} T={T} d={d} threads={torch.get_num_threads()} torch={torch.__version__}, CPU time "
        f"(median of {args.repeats}); GEMM [2048, 256] x [256, 1024]: {gemm:.1f} GFLOP/s"
    )
    print(
        "| core | train ms/step | naive / this | memory products ms/step (GFLOP/s) "
        "| shared GEMMs ms/step (GFLOP/s) | rest ms/step |"
    )
    print("|---|---|---|---|---|---|")
    layers = [torch.randn(B, d, d) for _ in range(3)]  # three layers' weights, as in the scan
    two, one = torch.randn(B, 2, d), torch.randn(B, 1, d)
    vec, w_gate, w_int = torch.randn(B, d), torch.randn(d, 4 * d), torch.randn(d, 4 * d)
    grad_gate = torch.randn(B, 4 * d)
    for rule in args.rule:
        totals = {}
        for impl in ("naive", "lowrank"):
            torch.manual_seed(0)
            core = make_core(rule, input_size=256, implementation=impl)
            x = torch.randn(T, B, 256)

            def train(core=core, x=x) -> None:  # noqa: ANN001
                core.zero_grad(set_to_none=True)
                out = core(x)
                (out[0].sum() + out.aux_loss.mean()).backward()

            train()
            times = []
            for _ in range(args.repeats):
                start = time.process_time()
                train()
                times.append(time.process_time() - start)
            totals[impl] = statistics.median(times) / T * 1e3
        singles = 4 if rule == "mnm_g" else 2  # [B, 1, d] products per step (H = 1)

        def products(singles: int = singles) -> None:
            for _ in range(2):  # forward and backward, the three layers in turn
                for i in range(3):
                    torch.bmm(two, layers[i])
                for i in range(singles):
                    torch.bmm(one, layers[i % 3])

        def shared() -> None:
            for w in (w_gate, w_gate, w_int):  # read and recurrent gates, interface
                vec @ w  # forward
                grad_gate @ w.t()  # input gradient
                vec.t() @ grad_gate  # weight gradient

        product_flops = 2 * 2.0 * B * d * d * (3 * 2 + singles)
        shared_flops = 3 * 3 * 2.0 * B * d * 4 * d
        ms_products = product_flops / _rate(products, product_flops, 50) / 1e6
        ms_shared = shared_flops / _rate(shared, shared_flops, 50) / 1e6
        rest = totals["lowrank"] - ms_products - ms_shared
        print(
            f"| {rule} [lowrank] | {totals['lowrank']:.3f} | "
            f"{totals['naive'] / totals['lowrank']:.2f} | "
            f"{ms_products:.3f} ({product_flops / ms_products / 1e6:.1f}) | "
            f"{ms_shared:.3f} ({shared_flops / ms_shared / 1e6:.1f}) | {rest:.3f} |"
        )
        print(f"| {rule} [naive] | {totals['naive']:.3f} | 1.00 | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
