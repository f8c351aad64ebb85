"""The SB3 slow test's recall task (tests/sb3/test_sb3_slow.py) per seed: MemoryRecurrentPPO with
MemoryPolicy(fwm) trained on CueRecall, then the fraction of 100 evaluation recalls solved
(mean action), one line per ``SEED:STEPS`` argument:

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/sb3_recall/seeds.py 0:12000 1:12000 0:20000
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import torch as th  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402

from fwmrl.sb3 import MemoryRecurrentPPO  # noqa: E402
from tests.sb3.test_sb3_slow import CueRecall, _recall_settings  # noqa: E402


def main() -> None:
    eval_env = make_vec_env(CueRecall, n_envs=4, seed=123)
    for arg in sys.argv[1:]:
        seed, steps = (int(part) for part in arg.split(":"))
        th.manual_seed(seed)
        memory = MemoryRecurrentPPO(
            "MemoryPolicy",
            make_vec_env(CueRecall, n_envs=8, seed=seed),
            sequence_length=8,
            policy_kwargs={
                "core": "fwm",
                "core_kwargs": {"hidden_size": 16, "memory_size": 4, "read_hops": 1},
                "net_arch": [16],
            },
            **_recall_settings(seed),
        )
        memory.learn(steps)
        solved, _ = evaluate_policy(memory, eval_env, n_eval_episodes=100, deterministic=True)
        print(f"seed {seed} steps {steps}: solved {solved:.2f}", flush=True)


if __name__ == "__main__":
    main()
