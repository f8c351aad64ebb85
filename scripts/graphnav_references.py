"""Reference policies for FWM-GraphNav-v0: what each amount of memory is worth on the test graphs.

Scripted policies play 30-step episodes of fwmrl's own ``GraphNavEnv`` on the 600 test graphs,
under fwmrl's rules and the FWM authors' (``paper_rules=True``):

- ``random``: a uniform action every step (no memory);
- ``no_repeat_invalid``: uniform, but never the action that just failed (one step of memory);
- ``avoid_invalid``: uniform among the actions not yet seen failing at this node (episode memory of
  the dead ends);
- ``planner``: remembers every transition of the episode, takes the shortest known path to the goal,
  else an untried action, else a random valid one.

The planner learns a transition from the graph entry of the action it took, which an agent can
infer from its observations (the next node, or the failure). With ``--run RUN_DIR`` the run's last
checkpoint is also evaluated (sampled and greedy, 600 test episodes) with its FWM read removed
(``W_o = 0``: the output projection of the fast-weight read zeroed, its bias kept).

    python scripts/graphnav_references.py [--episodes 1500] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import copy
from collections import deque

import numpy as np
import torch

from fwmrl.envs.graphnav import N_ACTIONS, N_NODES, GraphNavEnv


class Random:
    def act(self, node: int, goal: int, rng: np.random.Generator) -> int:
        return int(rng.integers(N_ACTIONS))

    def observe(self, node: int, action: int, target: int) -> None:
        pass


class NoRepeatInvalid(Random):
    def __init__(self) -> None:
        self.failed: tuple[int, int] | None = None

    def act(self, node: int, goal: int, rng: np.random.Generator) -> int:
        options = [a for a in range(N_ACTIONS) if (node, a) != self.failed]
        return int(rng.choice(options))

    def observe(self, node: int, action: int, target: int) -> None:
        self.failed = (node, action) if target < 0 else None


class AvoidInvalid(Random):
    def __init__(self) -> None:
        self.dead: set[tuple[int, int]] = set()

    def act(self, node: int, goal: int, rng: np.random.Generator) -> int:
        options = [a for a in range(N_ACTIONS) if (node, a) not in self.dead]
        return int(rng.choice(options))

    def observe(self, node: int, action: int, target: int) -> None:
        if target < 0:
            self.dead.add((node, action))


class Planner(Random):
    def __init__(self) -> None:
        self.known: dict[tuple[int, int], int] = {}

    def act(self, node: int, goal: int, rng: np.random.Generator) -> int:
        queue, seen = deque([(node, None)]), {node}
        while (
            queue
        ):  # breadth-first over the known transitions: the first action of a shortest path
            here, first = queue.popleft()
            for action in range(N_ACTIONS):
                there = self.known.get((here, action))
                if there is None or there < 0 or there in seen:
                    continue
                start = action if first is None else first
                if there == goal:
                    return start
                seen.add(there)
                queue.append((there, start))
        untried = [a for a in range(N_ACTIONS) if (node, a) not in self.known]
        if untried:
            return int(rng.choice(untried))
        valid = [a for a in range(N_ACTIONS) if self.known[(node, a)] >= 0]
        return int(rng.choice(valid))

    def observe(self, node: int, action: int, target: int) -> None:
        self.known[(node, action)] = target


POLICIES = {
    "random": Random,
    "no_repeat_invalid": NoRepeatInvalid,
    "avoid_invalid": AvoidInvalid,
    "planner": Planner,
}


def play(policy_class: type[Random], paper_rules: bool, episodes: int, seed: int = 0) -> np.ndarray:
    """Returns of ``episodes`` test-graph episodes of a scripted policy."""
    env = GraphNavEnv(graphs="test", paper_rules=paper_rules)
    rng = np.random.default_rng(seed)
    returns = np.zeros(episodes)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 1_000_003 + episode)
        policy = policy_class()
        done = False
        while not done:
            goal, node = int(obs[:N_NODES].argmax()), int(obs[N_NODES : 2 * N_NODES].argmax())
            action = policy.act(node, goal, rng)
            target = int(env.graph[node, action])
            obs, reward, terminated, truncated, _ = env.step(action)
            policy.observe(node, action, target)
            returns[episode] += reward
            done = terminated or truncated
    return returns


def ablate_read(run_dir: str) -> None:
    """A run's checkpoint on the test graphs, as trained and with its FWM read removed."""
    from fwmrl.agents.job import evaluate_from_config as evaluate
    from fwmrl.agents.job import load_policy
    from fwmrl.rundir import load_run_config

    config = load_run_config(run_dir)
    policy = load_policy(run_dir, config)
    ablated = copy.deepcopy(policy)
    with torch.no_grad():
        ablated.core.out_proj.weight.zero_()
    for name, p in (("as trained", policy), ("FWM read removed (W_o = 0)", ablated)):
        sampled = evaluate(p, config, episodes=600)["return_mean"]
        greedy = evaluate(p, config, episodes=600, deterministic=True)["return_mean"]
        print(f"| {run_dir}: {name} | {sampled:.1f} | {greedy:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1500)
    parser.add_argument(
        "--run", help="a GraphNav FWM run directory to evaluate with the read removed"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"test graphs, {args.episodes} episodes each, mean ± standard error")
    print("| policy | paper rules | fwmrl rules |\n|---|---:|---:|")
    for name, policy_class in POLICIES.items():
        cells = []
        for paper_rules in (True, False):
            returns = play(policy_class, paper_rules, args.episodes)
            cells.append(f"{returns.mean():.1f} ± {returns.std() / np.sqrt(len(returns)):.1f}")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    if args.run:
        print("\n| checkpoint | test, sampled | test, greedy |\n|---|---:|---:|")
        ablate_read(args.run)


if __name__ == "__main__":
    main()
