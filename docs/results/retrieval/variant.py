"""Train one model on associative retrieval (or an easier variant) for a CPU-time budget.

The diagnostic behind docs/tasks.md "Gated fast weights on associative retrieval": the same
model, trainer and protocol as ``fwmrl train configs/retrieval_*.yaml`` (one stream, truncated
BPTT, loss on every position, Nadam 0.002, gradient norm clipped at 1.0 by default), with the
data generator's ``max_items``, the batch size and the clipping as arguments, probing the
validation partial accuracy against CPU seconds and the key-blind bound of the validation stream
(:func:`fwmrl.tasks.retrieval.key_blind_accuracy`). One CSV row per probe.

    python docs/results/retrieval/variant.py gated_fw --max-items 3 --batch-size 32 \\
        --budget 300 --out runs/retrieval/variant_gfw_i3.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from fwmrl.tasks.model import SequenceModel
from fwmrl.tasks.retrieval import key_blind_accuracy, retrieval_data
from fwmrl.tasks.trainer import SupervisedTrainer

SIZES = {
    "gated_fw": {"fast_size": 40, "slow_size": 40, "slow_hidden_size": 100},
    "lstm": {"hidden_size": 128},
    "fwm": {"hidden_size": 64, "memory_size": 16, "read_hops": 3},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("core", choices=sorted(SIZES))
    parser.add_argument("--core-kwargs", default="{}", help="JSON, added to the config sizes")
    parser.add_argument("--max-items", type=int, default=10, help="storage items per query: 1..N")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-grad-norm", type=float, default=1.0, help="0: no clipping")
    parser.add_argument("--train-queries", type=int, default=100_000)
    parser.add_argument("--valid-queries", type=int, default=1000)
    parser.add_argument("--budget", type=float, required=True, help="training CPU seconds")
    parser.add_argument("--probe-every", type=float, default=30.0, help="CPU seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    data = retrieval_data(
        args.train_queries, args.valid_queries, 1, seed=0, vocab_size=15, max_items=args.max_items
    )
    bound = key_blind_accuracy(data.valid)
    torch.manual_seed(args.seed)
    kwargs = {**SIZES[args.core], **json.loads(args.core_kwargs)}
    model = SequenceModel(len(data.vocab), 15, args.core, kwargs)
    trainer = SupervisedTrainer(
        data, model, seq_len=32, batch_size=args.batch_size, eval_batch_size=64,
        optimizer="nadam", lr=0.002, max_grad_norm=args.max_grad_norm or None, seed=args.seed,
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fields = ["update", "cpu_s", "train_answer_accuracy", "valid_partial_accuracy", "key_blind"]
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        spent, next_probe, answer_acc = 0.0, 0.0, []
        while True:
            if spent >= next_probe or spent >= args.budget:
                metrics = trainer.evaluate("valid")
                row = {
                    "update": trainer.update,
                    "cpu_s": round(spent, 1),
                    "train_answer_accuracy": round(sum(answer_acc) / len(answer_acc), 4)
                    if answer_acc
                    else "",
                    "valid_partial_accuracy": round(metrics["partial_accuracy"], 4),
                    "key_blind": round(bound, 4),
                }
                writer.writerow(row)
                f.flush()
                print(row, flush=True)
                answer_acc = []
                next_probe += args.probe_every
                if spent >= args.budget:
                    break
            start = time.process_time()
            out = trainer.learn_update()
            spent += time.process_time() - start
            if "train_answer_accuracy" in out:
                answer_acc.append(out["train_answer_accuracy"])


if __name__ == "__main__":
    main()
