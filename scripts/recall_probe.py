"""Supervised recall probes: how fast does each memory core learn to recall a symbol?

Streams of uniform random symbols (one-hot inputs); the target at step ``t`` is

- ``kback``: the symbol seen ``k`` steps earlier (steps ``t < k`` are not scored);
- ``first``: the first symbol of the stream;
- ``count``: how many times symbol 0 has appeared so far (capped at ``symbols - 1``).

Each model is a core from :func:`fwmrl.memory.make_core` and a linear read-out, trained with Adam on
fresh batches; the script prints the scored accuracy on a held-out batch every ``--eval-every``
steps and writes the curves to ``--csv``. This separates the core's ability to learn recall from
the reinforcement-learning loop around it (docs/results.md, "Simple recall").

    python scripts/recall_probe.py --task kback --k 3 --steps 1500 --csv /tmp/kback3.csv
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import torch
from torch import nn

from fwmrl.memory import make_core

VARIANTS: dict[str, tuple[str, dict]] = {
    "lstm32": ("lstm", {"hidden_size": 32}),
    "lstm64": ("lstm", {"hidden_size": 64}),
    "fwm": ("fwm", {"hidden_size": 32, "memory_size": 16, "read_hops": 3}),
    "fwm_ws1": ("fwm", {"hidden_size": 32, "memory_size": 16, "read_hops": 3, "write_scale": 1.0}),
    "fwm_hop1": ("fwm", {"hidden_size": 32, "memory_size": 16, "read_hops": 1}),
    "fwm_nores": ("fwm", {"hidden_size": 32, "memory_size": 16, "read_hops": 3, "residual": False}),
    "fwm_zo": ("fwm", {"hidden_size": 32, "memory_size": 16, "read_hops": 3}),
    "fwm_ws1_zo": (
        "fwm",
        {"hidden_size": 32, "memory_size": 16, "read_hops": 3, "write_scale": 1.0},
    ),
    "mnm_p": ("mnm_p", {"hidden_size": 32, "memory_size": 32}),
    "gated_fw": ("gated_fw", {"hidden_size": 32}),
}
"""Probe name -> (core, core arguments); a name ending in ``_zo`` starts the FWM output projection's
weight ``W_o`` at zero (its bias as initialised; ``FWMCore(zero_init_output=True)`` zeroes both), so
the core starts as its LSTM controller plus a constant and the memory read enters as it learns."""


def make_batch(
    task: str, k: int, symbols: int, steps: int, batch: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(inputs [T, B, S] one-hot, targets [T, B], scored [T, B] bool)``."""
    stream = torch.randint(0, symbols, (steps, batch), generator=gen)
    scored = torch.ones(steps, batch, dtype=torch.bool)
    if task == "kback":
        targets = torch.roll(stream, k, dims=0)
        scored[:k] = False
    elif task == "first":
        targets = stream[:1].expand(steps, batch).clone()
        scored[0] = False
    elif task == "count":
        targets = torch.cumsum(stream == 0, dim=0).clamp(max=symbols - 1)
    else:
        raise ValueError(f"task must be kback, first or count, got {task!r}")
    inputs = nn.functional.one_hot(stream, symbols).float()
    return inputs, targets, scored


class Probe(nn.Module):
    def __init__(self, core: str, kwargs: dict, symbols: int, zero_out: bool = False) -> None:
        super().__init__()
        self.core = make_core(core, input_size=symbols, **kwargs)
        self.head = nn.Linear(self.core.output_size, symbols)
        if zero_out:
            nn.init.zeros_(self.core.out_proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _, _ = self.core(x)
        return self.head(y)


def accuracy(logits: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor) -> float:
    return float((logits.argmax(-1) == targets)[scored].float().mean())


def run(args: argparse.Namespace, name: str, seed: int) -> list[dict]:
    core, kwargs = VARIANTS[name]
    torch.manual_seed(seed)
    model = Probe(core, kwargs, args.symbols, zero_out=name.endswith("_zo"))
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(1000 + seed)
    test = make_batch(
        args.task, args.k, args.symbols, args.length, 512, torch.Generator().manual_seed(7)
    )
    rows, start = [], time.process_time()
    for step in range(args.steps + 1):
        if step % args.eval_every == 0:
            with torch.no_grad():
                acc = accuracy(model(test[0]), test[1], test[2])
            rows.append(
                {
                    "model": name,
                    "seed": seed,
                    "params": params,
                    "step": step,
                    "accuracy": round(acc, 4),
                    "cpu_s": round(time.process_time() - start, 1),
                }
            )
        if step == args.steps:
            break
        x, y, scored = make_batch(args.task, args.k, args.symbols, args.length, args.batch, gen)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits[scored], y[scored])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="kback", choices=["kback", "first", "count"])
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--models", default="lstm32,lstm64,fwm,fwm_ws1,fwm_hop1,fwm_nores")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.models.split(","):
        if name not in VARIANTS:
            parser.error(f"--models: unknown {name!r}; choose from {', '.join(VARIANTS)}")
        for seed in (int(s) for s in args.seeds.split(",")):
            result = run(args, name, seed)
            rows += result
            curve = " ".join(f"{r['accuracy']:.2f}" for r in result)
            print(
                f"{name:10s} seed {seed} params {result[0]['params']:6d}  acc: {curve}", flush=True
            )
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
