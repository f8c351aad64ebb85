"""One A2C + FWM Pendulum run by the slow test's own path (``build_agent``, ``learn``,
``evaluate_from_config`` over 32 episodes with the mean action), printed as one JSON line:

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/pendulum/slow_test_path.py SEED [KEY=VALUE ...]

``FWMRL_EVAL_EPISODES=N`` scores over ``N`` episodes instead of the test's 32;
``FWMRL_CONFIG=pendulum_fwm_ppo.yaml`` runs the PPO slow test's config instead of A2C's.

Made the rows of ``a2c_fwm_test_path_sweep.csv``."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from fwmrl.agents.job import build_agent, evaluate_from_config  # noqa: E402
from fwmrl.config import load_config  # noqa: E402


def main() -> None:
    seed, overrides = int(sys.argv[1]), sys.argv[2:]
    config = load_config(
        ROOT / "configs" / os.environ.get("FWMRL_CONFIG", "pendulum_fwm_a2c.yaml"),
        ["logging.tensorboard=false", "train.progress=false", f"train.seed={seed}", *overrides],
    )
    start = time.process_time()
    agent = build_agent(config)
    try:
        agent.learn(config.train.total_steps)
        episodes = int(os.environ.get("FWMRL_EVAL_EPISODES", "32"))
        result = evaluate_from_config(agent.policy, config, episodes=episodes, deterministic=True)
    finally:
        agent.close()
    cpu_s = round(time.process_time() - start, 1)
    print(
        json.dumps(
            {
                "seed": seed,
                "overrides": overrides,
                "episodes": episodes,
                "return": result["return_mean"],
                "return_std": result.get("return_std"),
                "cpu_s": cpu_s,
            }
        )
    )


if __name__ == "__main__":
    main()
