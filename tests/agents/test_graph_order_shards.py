"""Data-parallel A2C with GraphNav's ``graph_order: fixed``: each rank plays its envs' graphs."""

from __future__ import annotations

import numpy as np

from fwmrl.agents.job import build_agent
from fwmrl.config import config_from_dict


def _graph_indices(monkeypatch, rank: int, world: int) -> np.ndarray:
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    config = config_from_dict(
        {
            "env": {
                "id": "FWM-GraphNav-v0",
                "num_envs": 8,
                "kwargs": {"graphs": "train", "graph_order": "fixed", "graph_offset": 3},
            },
            "core": {"name": "lstm", "hidden_size": 8},
            "policy": {"encoder_sizes": []},
        }
    )
    trainer = build_agent(config)
    try:
        return trainer.env.graph_index.copy()
    finally:
        trainer.close()


def test_each_rank_plays_the_graphs_of_its_envs_in_a_one_process_run(monkeypatch):
    whole = _graph_indices(monkeypatch, 0, 1)
    np.testing.assert_array_equal(whole, np.arange(3, 11))
    shards = [_graph_indices(monkeypatch, rank, 2) for rank in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(shards), whole)
