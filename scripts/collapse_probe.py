"""Watch an A2C run for the policy collapse: fast-weight norm, read outputs, logits, losses per update.

Trains the config's agent with :class:`fwmrl.agents.A2C` (the trainer ``fwmrl train`` builds) and,
after every ``--every`` updates, records from the last rollout:

- ``return``: mean training episode return (last 100 episodes), ``entropy``, ``value_loss``,
  ``policy_loss``, ``grad_norm``, ``explained_variance`` (the trainer's own terms);
- ``max_prob``: mean probability of the most likely action; ``logit_range``: mean (max - min) logit;
- ``read_rms``: RMS of the memory read ``n`` entering the FWM output projection, ``out_rms`` of
  ``W_o n``, ``ctrl_rms`` of the controller output ``z`` (FWM only; ``nan`` otherwise);
- ``fw_norm``: mean Frobenius norm of the carried fast weights ``F`` (FWM only);
- ``value_mean``: mean predicted value; ``param_norm``: the parameters' L2 norm.

    python scripts/collapse_probe.py configs/gridworld_fwm.yaml algo.ent_coef=0.01 \\
        --steps 3000000 --csv docs/results/collapse/fwm_ent001_s0.csv
    python scripts/collapse_probe.py configs/gridworld_fwm.yaml --plot \
        --csv docs/results/collapse/fwm_ent001_s0.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import torch

from fwmrl.agents.job import build_agent
from fwmrl.config import load_config


def fast_weight_norm(state: object) -> float:
    """Mean ``‖F‖`` over the batch of an FWM state (dense ``F`` or its factor form)."""
    if hasattr(state, "F"):
        return float(state.F.flatten(1).norm(dim=1).mean())
    if hasattr(state, "norm_sq"):
        return float(state.norm_sq.clamp_min(0).sqrt().mean())
    return math.nan


def plot(csv_path: Path) -> Path:
    """Draw the recorded signals of ``csv_path`` into ``<csv>.png`` (one panel per signal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    x = [int(r["update"]) for r in rows]
    panels = [
        ("return", "training return"),
        ("entropy", "policy entropy"),
        ("max_prob", "mean max action probability"),
        ("grad_norm", "gradient norm (before clipping)"),
        ("value_loss", "value loss"),
        (("out_rms", "ctrl_rms"), "RMS of W_o n (memory) and z (controller)"),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 11), sharex=True)
    for ax, (keys, title) in zip(axes, panels, strict=True):
        for key in (keys,) if isinstance(keys, str) else keys:
            ax.plot(x, [float(r[key]) for r in rows], label=key, linewidth=1)
        ax.set_title(title, fontsize=9)
        if not isinstance(keys, str):
            ax.legend(fontsize=7)
    axes[-1].set_xlabel("update")
    fig.tight_layout()
    out = csv_path.with_suffix(".png")
    fig.savefig(out, dpi=90)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE as for fwmrl train")
    parser.add_argument("--steps", type=int, default=3_000_000)
    parser.add_argument("--every", type=int, default=20, help="updates between records")
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--plot", action="store_true", help="only draw an existing --csv")
    args = parser.parse_args()
    if args.plot:
        print(plot(args.csv))
        return
    torch.set_num_threads(1)
    config = load_config(args.config, args.overrides)
    trainer = build_agent(config)
    policy = trainer.policy
    core = policy.core
    captured: dict[str, list[float]] = {"read": [], "out": [], "ctrl": []}

    def rms(x: torch.Tensor) -> float:
        return float(x.detach().pow(2).mean().sqrt())

    if hasattr(core, "out_proj"):

        def on_out(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            captured["read"].append(rms(inputs[0]))
            captured["out"].append(rms(output))

        def on_controller(module: torch.nn.Module, inputs: tuple, output: tuple) -> None:
            captured["ctrl"].append(rms(output[0]))

        core.out_proj.register_forward_hook(on_out)
        core.controller.register_forward_hook(on_controller)

    rows: list[dict[str, float]] = []
    start = time.time()
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    while trainer.env_steps < args.steps:
        for values in captured.values():
            values.clear()
        rollout = trainer.collect_rollout()
        with torch.no_grad():
            logits, values, _, _ = policy.forward_flat(
                rollout.obs, rollout.initial_state, rollout.starts
            )
        metrics = trainer.train_on_rollout(rollout)
        if trainer.update % args.every:
            continue
        probs = logits.softmax(-1)
        valid = rollout.valid
        stats = trainer.episode_stats()
        row = {
            "update": trainer.update,
            "env_steps": trainer.env_steps,
            "return": stats.get("episode_return_mean", math.nan),
            "entropy": metrics["entropy"],
            "value_loss": metrics["value_loss"],
            "policy_loss": metrics["policy_loss"],
            "grad_norm": metrics["grad_norm"],
            "explained_variance": metrics["explained_variance"],
            "max_prob": float(probs.max(-1).values[valid].mean()),
            "logit_range": float((logits.max(-1).values - logits.min(-1).values)[valid].mean()),
            "value_mean": float(values[valid].mean()),
            "read_rms": (sum(captured["read"]) / len(captured["read"]))
            if captured["read"]
            else math.nan,
            "out_rms": (sum(captured["out"]) / len(captured["out"]))
            if captured["out"]
            else math.nan,
            "ctrl_rms": (sum(captured["ctrl"]) / len(captured["ctrl"]))
            if captured["ctrl"]
            else math.nan,
            "fw_norm": fast_weight_norm(trainer.state),
            "param_norm": float(
                torch.cat([p.detach().flatten() for p in policy.parameters()]).norm()
            ),
            "time_s": round(time.time() - start, 1),
        }
        rows.append(row)
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(rows)
        print(
            " ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            ),
            flush=True,
        )
    trainer.close()


if __name__ == "__main__":
    main()
