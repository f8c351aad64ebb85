"""``FWM-GraphNav-v0``: the FWM paper's meta-RL task, navigation on a hidden random graph."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fwmrl.envs import _render as draw
from fwmrl.envs._rng import UniformStream
from fwmrl.envs._validation import (
    EnvStateError,
    check_action,
    check_choice,
    check_float,
    check_int,
    check_render_mode,
    state_array,
    state_entry,
    state_group,
)
from fwmrl.envs.vector import BatchedEnv

N_NODES = 5
N_ACTIONS = 3
BANK_SIZE = 600
DATA_SEED = 666
GRAPH_SETS = ("train", "test", "random")
GRAPH_ORDERS = ("uniform", "fixed")
OBS_SIZE = 2 * N_NODES + N_ACTIONS + 1 + 2
"""Goal one-hot, node one-hot, previous action one-hot with a "none" slot, previous reward, time."""


def sample_graphs(draw_uniform: Callable[[np.ndarray], np.ndarray], n: int) -> np.ndarray:
    """Draw ``n`` random graphs as in the FWM paper.

    For every node ``i``, one edge to a uniform ``j != i`` under a uniform action; then for every node
    ``j`` one more edge into ``j`` from a uniform ``(i != j, action)`` pair that has no edge yet; the
    graph is rejected and drawn again unless it is strongly connected and aperiodic (every entry of
    ``Q^32`` positive, ``Q`` the binary adjacency matrix). Each graph has 10 labelled edges, no
    self-loops, and 5 of its 15 ``(node, action)`` pairs lead nowhere.

    Parameters
    ----------
    draw_uniform
        ``draw_uniform(sel)`` returns one uniform number in ``[0, 1)`` for each graph
        ``sel`` (integer positions in ``[0, n)``); graph ``k`` consumes its numbers in a fixed
        order, so per-graph streams give the same graph whether drawn alone or in a batch.
    n
        number of graphs.

    Returns
    -------
    int64 array ``[n, N_NODES, N_ACTIONS]``: the node an action leads to, or -1.
    """
    out = np.empty((n, N_NODES, N_ACTIONS), dtype=np.int64)
    pending = np.arange(n)
    while len(pending):
        m = len(pending)
        rows = np.arange(m)
        t = np.full((m, N_NODES, N_ACTIONS), -1, dtype=np.int64)
        for i in range(N_NODES):
            j = (draw_uniform(pending) * (N_NODES - 1)).astype(np.int64)
            j += j >= i
            a = (draw_uniform(pending) * N_ACTIONS).astype(np.int64)
            t[rows, i, a] = j
        for j in range(N_NODES):
            free = t == -1
            free[:, j, :] = False
            free = free.reshape(m, -1)
            k = (draw_uniform(pending) * free.sum(1)).astype(np.int64)
            pick = np.argmax(np.cumsum(free, axis=1) > k[:, None], axis=1)
            t.reshape(m, -1)[rows, pick] = j
        ok = is_primitive(t)
        out[pending[ok]] = t[ok]
        pending = pending[~ok]
    return out


def adjacency(graphs: np.ndarray) -> np.ndarray:
    """Binary adjacency matrices ``[..., N_NODES, N_NODES]`` of graphs ``[..., N_NODES, N_ACTIONS]``."""
    q = np.zeros((*graphs.shape[:-2], N_NODES, N_NODES + 1), dtype=np.int64)
    np.put_along_axis(q, np.where(graphs < 0, N_NODES, graphs), 1, axis=-1)
    return q[..., :N_NODES]


def is_primitive(graphs: np.ndarray) -> np.ndarray:
    """Whether each graph is strongly connected and aperiodic: ``Q^32 > 0`` everywhere."""
    q = adjacency(graphs)
    for _ in range(5):
        q = np.minimum(q @ q, 1)
    return (q > 0).all(axis=(-2, -1))


@functools.cache
def graph_banks() -> dict[str, np.ndarray]:
    """The fixed banks ``{"train": [600, 5, 3], "test": [600, 5, 3]}`` (read-only int8 arrays).

    Drawn once per process with :func:`sample_graphs` from ``np.random.default_rng(666)`` in batches
    of 256: the first 600 distinct graphs form the test bank, the next 600 distinct graphs that are
    not in the test bank form the train bank (the paper drew its test graphs first too).
    """
    rng = np.random.default_rng(DATA_SEED)
    seen: set[bytes] = set()
    kept: list[np.ndarray] = []
    while len(kept) < 2 * BANK_SIZE:
        for g in sample_graphs(lambda sel: rng.random(len(sel)), 256).astype(np.int8):
            key = g.tobytes()
            if key not in seen and len(kept) < 2 * BANK_SIZE:
                seen.add(key)
                kept.append(g)
    test, train = np.stack(kept[:BANK_SIZE]), np.stack(kept[BANK_SIZE:])
    test.flags.writeable = False
    train.flags.writeable = False
    return {"train": train, "test": test}


def _configure(
    env: Any,
    graphs: str,
    max_steps: int,
    goal_reward: float,
    invalid_penalty: float,
    max_moves: int,
    paper_rules: bool = False,
    graph_order: str = "uniform",
    graph_offset: int = 0,
    show_reward: bool = True,
) -> None:
    """Check the arguments the single and the vector env share and set them on ``env`` (and its
    graph bank, ``None`` for fresh graphs)."""
    for name, flag in (("paper_rules", paper_rules), ("show_reward", show_reward)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {flag!r}")
    graphs = check_choice("graphs", graphs, GRAPH_SETS)
    graph_order = check_choice("graph_order", graph_order, GRAPH_ORDERS)
    if graph_order == "fixed" and graphs == "random":
        raise ValueError(
            "graph_order='fixed' needs a fixed bank: graphs must be 'train' or 'test', got 'random'"
        )
    env.paper_rules = bool(paper_rules)
    env.show_reward = bool(show_reward) and not paper_rules
    env.graphs, env.graph_order = graphs, graph_order
    env.graph_offset = check_int("graph_offset", graph_offset, 0)
    env.max_steps = check_int("max_steps", max_steps, 1)
    env.goal_reward = check_float("goal_reward", goal_reward, 0.0, low_open=True)
    env.invalid_penalty = check_float("invalid_penalty", invalid_penalty, high=0.0)
    env.max_moves = check_int("max_moves", max_moves, 1)
    env._bank = None if graphs == "random" else graph_banks()[graphs]


def _observation_space(goal_reward: float, invalid_penalty: float) -> spaces.Box:
    low = np.zeros(OBS_SIZE, dtype=np.float32)
    high = np.ones(OBS_SIZE, dtype=np.float32)
    low[-2], high[-2] = invalid_penalty, goal_reward
    return spaces.Box(low, high, dtype=np.float32)


class GraphNavEnv(gym.Env[np.ndarray, np.int64]):
    """Navigate a hidden random directed graph to goal nodes (the FWM paper's meta-RL task).

    ## Description
    Each episode uses one deterministic directed graph with 5 nodes and 3 actions (see
    :func:`sample_graphs`), taken from a fixed bank of 600 train or 600 test graphs or drawn fresh.
    The agent sees where it is and where it must go, but not the graph: it has to learn the graph's
    edges within the episode and then use them to reach goal after goal.

    ## Observation
    A float32 vector of 16 entries: one-hot goal node (0-4), one-hot current node (5-9), one-hot
    previous action (10-12) with its own "none" slot (13, set on the first step only), previous
    reward (14), elapsed-time fraction ``t / max_steps`` (15). (The paper's code never showed the
    reward and let the "none" slot collide with a bias input; both are fixed here.)

    ## Action
    ``Discrete(3)``: the edge label to follow.

    ## Reward
    An action without an edge from the current node leaves the agent in place with reward
    ``invalid_penalty`` (default -0.05). Reaching the goal gives ``goal_reward`` (default 10); then a
    new goal different from the old one is drawn and the agent is teleported to a node other than
    the new goal. After more than ``max_moves`` (default 5) steps without reaching the goal, the goal
    and the start are drawn again the same way. ``info["goal_hits"]`` counts the goals reached.
    Paper reference (30 steps, test graphs): random policy about 45, LSTM about 80, FWM about 107.

    ## Termination
    Never terminated; truncated after ``max_steps`` steps (default 30).

    ## Arguments
    - ``graphs`` (``"train"`` | ``"test"`` | ``"random"``, default ``"train"``): a uniform graph of the
      fixed train or test bank each episode (:func:`graph_banks`, data seed 666), or a fresh graph.
    - ``max_steps`` (int >= 1, default 30), ``goal_reward`` (float > 0, default 10.0),
      ``invalid_penalty`` (float <= 0, default -0.05), ``max_moves`` (int >= 1, default 5).
    - ``paper_rules`` (bool, default False): the rules of the FWM authors' code
      (``metaRL/train_agent.py``) where they differ from the above: reaching the goal does not
      restart the ``max_moves`` count (it counts every step without a goal since the last redraw),
      a redraw after ``max_moves`` sets the previous-action entry back to "none", and the
      previous-reward entry of the observation is always 0 (their input never showed the reward).
    - ``graph_order`` (``"uniform"`` | ``"fixed"``, default ``"uniform"``): how a bank graph is
      chosen for an episode: uniformly at random, or always the bank's graph
      ``graph_offset % 600`` (the FWM authors' code gave env ``k`` of their 600 envs train graph
      ``k`` in every update, and tested each of the 600 test graphs once; the vector env gives
      its env ``k`` graph ``(graph_offset + k) % 600``). ``"fixed"`` needs ``graphs`` ``"train"`` or
      ``"test"``.
    - ``graph_offset`` (int >= 0, default 0): the bank index of ``graph_order="fixed"``.
    - ``show_reward`` (bool, default True): False keeps the previous-reward entry at 0 and changes
      nothing else (the hidden reward of ``paper_rules`` alone); ``paper_rules=True`` always hides it.
    - ``render_mode`` (``None`` | ``"rgb_array"`` | ``"ansi"``).

    ``reset(options={"keep_task": True})`` keeps the graph of the previous episode (goal and start are
    drawn again); the :class:`~fwmrl.envs.trial.Trial` wrapper uses it. Actions must be integers in
    ``[0, 2]``; stepping after the episode was truncated raises until ``reset``.
    :meth:`state_dict` / :meth:`load_state_dict` save and restore the whole state as arrays.

    ## Registered ids
    - ``FWM-GraphNav-v0``; batched: ``gym.make_vec("FWM-GraphNav-v0", num_envs=N,
      vectorization_mode="vector_entry_point")`` gives :class:`GraphNavVectorEnv`.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}
    supports_keep_task = True

    def __init__(
        self,
        graphs: str = "train",
        max_steps: int = 30,
        goal_reward: float = 10.0,
        invalid_penalty: float = -0.05,
        max_moves: int = 5,
        paper_rules: bool = False,
        graph_order: str = "uniform",
        graph_offset: int = 0,
        show_reward: bool = True,
        render_mode: str | None = None,
    ) -> None:
        _configure(
            self,
            graphs,
            max_steps,
            goal_reward,
            invalid_penalty,
            max_moves,
            paper_rules,
            graph_order,
            graph_offset,
            show_reward,
        )
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.observation_space = _observation_space(self.goal_reward, self.invalid_penalty)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self._stream: UniformStream | None = None
        self.graph: np.ndarray | None = None
        self.graph_index = -1
        self._edges: list[list[int]] = []
        self._goal = self._node = -1
        self._t = self._timer = self._hits = 0
        self._prev_action = -1
        self._prev_reward = 0.0
        self._ended = False

    def _uniform(self) -> float:
        return self._stream.next()

    def _draw_other(self, exclude: int) -> int:
        k = int(self._uniform() * (N_NODES - 1))
        return k + 1 if k >= exclude else k

    def _resample(self) -> None:
        self._goal = self._draw_other(self._goal)
        self._node = self._draw_other(self._goal)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``options={"keep_task": True}`` keeps the previous graph."""
        super().reset(seed=seed)
        if self._stream is None or self._stream.rng is not self.np_random:
            self._stream = UniformStream(self.np_random)
        if options and options.get("keep_task", False):
            if self.graph is None:
                raise ValueError("options['keep_task'] needs a previous reset")
        elif self._bank is None:
            self.graph = sample_graphs(lambda sel: self._stream.take(len(sel)), 1)[0]
        else:
            if self.graph_order == "fixed":
                self.graph_index = self.graph_offset % BANK_SIZE
            else:
                self.graph_index = int(self._uniform() * BANK_SIZE)
            self.graph = self._bank[self.graph_index].astype(np.int64)
        self._edges = self.graph.tolist()
        self._goal = int(self._uniform() * N_NODES)
        self._node = self._draw_other(self._goal)
        self._t = self._timer = self._hits = 0
        self._prev_action = -1
        self._prev_reward = 0.0
        self._ended = False
        return self._observation(), {"goal_hits": 0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Follow the edge labelled ``action`` if there is one."""
        a = check_action(action, N_ACTIONS)
        if self.graph is None:
            raise RuntimeError("Cannot call step() before reset()")
        if self._ended:
            raise RuntimeError("Cannot call step() after the episode ended; call reset() first")
        nxt = self._edges[self._node][a]
        if nxt < 0:
            reward = self.invalid_penalty
            self._timer += 1
        elif nxt == self._goal:
            reward = self.goal_reward
            self._hits += 1
            if not self.paper_rules:
                self._timer = 0
            self._resample()
        else:
            reward = 0.0
            self._node = nxt
            self._timer += 1
        late = self._timer > self.max_moves
        if late:
            self._timer = 0
            self._resample()
        self._t += 1
        self._prev_action = -1 if late and self.paper_rules else a
        self._prev_reward = reward if self.show_reward else 0.0
        self._ended = self._t >= self.max_steps
        return (
            self._observation(),
            reward,
            False,
            self._ended,
            {"goal_hits": self._hits},
        )

    def state_dict(self) -> dict[str, np.ndarray]:
        """The env's state as arrays: the generator and its buffered uniforms, the graph (and its
        bank index), the goal and agent nodes, the counters, the previous action and reward."""
        if self._stream is None or self.graph is None:
            raise RuntimeError("Cannot call state_dict() before reset()")
        ints = [self.graph_index, self._goal, self._node, self._t, self._timer, self._hits]
        return {
            **{f"stream.{k}": v for k, v in self._stream.state_dict().items()},
            "graph": np.array(self.graph, dtype=np.int64),
            "ints": np.array([*ints, self._prev_action], dtype=np.int64),
            "prev_reward": np.array(self._prev_reward, dtype=np.float64),
            "ended": np.array(self._ended),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` of an env with the same arguments (raises
        :class:`~fwmrl.envs._validation.EnvStateError` naming a bad entry)."""
        stream = UniformStream.from_state_dict(state_group(state, "stream"))
        graph = state_array(
            "graph", state_entry(state, "graph"), np.int64, (N_NODES, N_ACTIONS), -1, N_NODES - 1
        )
        ints = state_array("ints", state_entry(state, "ints"), np.int64, (7,)).tolist()
        index, goal, node, t, timer, hits, prev_action = ints
        if not (-1 <= index < BANK_SIZE and 0 <= goal < N_NODES and 0 <= node < N_NODES):
            raise EnvStateError("ints: graph index, goal or node out of range")
        if not (0 <= t <= self.max_steps and timer >= 0 and hits >= 0 and -1 <= prev_action < 3):
            raise EnvStateError("ints: counters or previous action out of range")
        prev_reward = state_array("prev_reward", state_entry(state, "prev_reward"), np.float64, ())
        ended = state_array("ended", state_entry(state, "ended"), np.bool_, ())
        self.np_random = stream.rng
        self._stream = stream
        self.graph, self.graph_index, self._edges = graph, index, graph.tolist()
        self._goal, self._node, self._t, self._timer, self._hits = goal, node, t, timer, hits
        self._prev_action, self._prev_reward = prev_action, float(prev_reward)
        self._ended = bool(ended)

    def _observation(self) -> np.ndarray:
        obs = np.zeros(OBS_SIZE, dtype=np.float32)
        obs[self._goal] = 1.0
        obs[N_NODES + self._node] = 1.0
        obs[2 * N_NODES + (self._prev_action if self._prev_action >= 0 else N_ACTIONS)] = 1.0
        obs[-2] = self._prev_reward
        obs[-1] = self._t / self.max_steps
        return obs

    def render(self) -> np.ndarray | str | None:
        """Render the graph (edges coloured by action), the agent (red) and the goal (green ring)."""
        status = f"t={self._t}/{self.max_steps} reward={self._prev_reward:g} hits={self._hits}"
        if self.render_mode == "rgb_array":
            return render_rgb(self.graph, self._node, self._goal)
        if self.render_mode == "ansi":
            return render_ansi(self.graph, self._node, self._goal, status)
        return None


class GraphNavVectorEnv(BatchedEnv):
    """``num_envs`` copies of :class:`GraphNavEnv` advanced with NumPy array operations.

    Same arguments as :class:`GraphNavEnv` plus ``num_envs``; with ``graph_order="fixed"`` env ``k``
    plays bank graph ``(graph_offset + k) % 600`` in every episode (the single env with
    ``graph_offset + k``). Seeding and autoreset
    (``AutoresetMode.NEXT_STEP``) follow ``SyncVectorEnv``: for the same seeds and actions the
    trajectories equal those of ``num_envs`` single envs. ``reset(options={"keep_task": True})``
    keeps every reset sub-environment's graph; autoresets draw a new graph (the same one with
    ``graph_order="fixed"``).
    """

    def __init__(
        self,
        num_envs: int,
        graphs: str = "train",
        max_steps: int = 30,
        goal_reward: float = 10.0,
        invalid_penalty: float = -0.05,
        max_moves: int = 5,
        paper_rules: bool = False,
        graph_order: str = "uniform",
        graph_offset: int = 0,
        show_reward: bool = True,
        render_mode: str | None = None,
    ) -> None:
        _configure(
            self,
            graphs,
            max_steps,
            goal_reward,
            invalid_penalty,
            max_moves,
            paper_rules,
            graph_order,
            graph_offset,
            show_reward,
        )
        super().__init__(
            num_envs,
            _observation_space(self.goal_reward, self.invalid_penalty),
            spaces.Discrete(N_ACTIONS),
            render_mode,
        )
        n = self.num_envs
        self.graph = np.full((n, N_NODES, N_ACTIONS), -1, dtype=np.int64)
        self.graph_index = np.full(n, -1, dtype=np.int64)
        self._flat = self.graph.reshape(n, -1)
        self._offset = np.arange(n) * (N_NODES * N_ACTIONS)
        self._goal = np.zeros(n, dtype=np.int64)
        self._node = np.zeros(n, dtype=np.int64)
        self._t = np.zeros(n, dtype=np.int64)
        self._timer = np.zeros(n, dtype=np.int64)
        self._hits = np.zeros(n, dtype=np.int64)
        self._prev_action = np.full(n, -1, dtype=np.int64)
        self._prev_reward = np.zeros(n)
        self._has_graph = np.zeros(n, dtype=bool)
        self._true = np.ones(n, dtype=bool)

    def _state_fields(self) -> dict[str, tuple[float | None, float | None]]:
        return {
            "graph": (-1, N_NODES - 1),
            "graph_index": (-1, BANK_SIZE - 1),
            "_goal": (0, N_NODES - 1),
            "_node": (0, N_NODES - 1),
            "_t": (0, self.max_steps),
            "_timer": (0, None),
            "_hits": (0, None),
            "_prev_action": (-1, N_ACTIONS - 1),
            "_prev_reward": (None, None),
            "_has_graph": (None, None),
        }

    def _draw_other(self, idx: np.ndarray, exclude: np.ndarray) -> np.ndarray:
        k = (self.streams.next(idx) * (N_NODES - 1)).astype(np.int64)
        return k + (k >= exclude)

    def _resample(self, idx: np.ndarray) -> None:
        goal = self._draw_other(idx, self._goal[idx])
        self._goal[idx] = goal
        self._node[idx] = self._draw_other(idx, goal)

    def _reset_envs(self, idx: np.ndarray, options: dict[str, Any]) -> None:
        if options.get("keep_task", False):
            if not self._has_graph[idx].all():
                raise ValueError("options['keep_task'] needs a previous reset")
        elif self._bank is None:
            self.graph[idx] = sample_graphs(lambda sel: self.streams.next(idx[sel]), len(idx))
        else:
            if self.graph_order == "fixed":
                k = (self.graph_offset + idx) % BANK_SIZE
            else:
                k = (self.streams.next(idx) * BANK_SIZE).astype(np.int64)
            self.graph_index[idx] = k
            self.graph[idx] = self._bank[k]
        self._has_graph[idx] = True
        goal = (self.streams.next(idx) * N_NODES).astype(np.int64)
        self._goal[idx] = goal
        self._node[idx] = self._draw_other(idx, goal)
        self._t[idx] = 0
        self._timer[idx] = 0
        self._hits[idx] = 0
        self._prev_action[idx] = -1
        self._prev_reward[idx] = 0.0
        self._write_obs()

    def _step_envs(
        self, actions: np.ndarray, active: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nxt = self._flat.ravel()[self._offset + self._node * N_ACTIONS + actions]
        invalid = nxt < 0
        hit = nxt == self._goal
        rewards = np.where(invalid, self.invalid_penalty, np.where(hit, self.goal_reward, 0.0))
        self._node = np.where(invalid | hit, self._node, nxt)
        self._timer = np.where(hit, self._timer if self.paper_rules else 0, self._timer + 1)
        hit &= active
        if hit.any():
            idx = np.flatnonzero(hit)
            self._hits[idx] += 1
            self._resample(idx)
        late = (self._timer > self.max_moves) & active
        if late.any():
            idx = np.flatnonzero(late)
            self._timer[idx] = 0
            self._resample(idx)
        self._t += 1
        self._prev_action = actions.copy()
        self._prev_reward = rewards if self.show_reward else np.zeros_like(rewards)
        if self.paper_rules:
            self._prev_action[late] = -1
        self._write_obs()
        return rewards.copy(), np.zeros(self.num_envs, dtype=bool), self._t >= self.max_steps

    def _write_obs(self) -> None:
        obs = self._obs
        obs[:] = 0.0
        rows = self._all
        obs[rows, self._goal] = 1.0
        obs[rows, N_NODES + self._node] = 1.0
        prev = np.where(self._prev_action >= 0, self._prev_action, N_ACTIONS)
        obs[rows, 2 * N_NODES + prev] = 1.0
        obs[:, -2] = self._prev_reward
        obs[:, -1] = self._t / self.max_steps

    def _infos(self) -> dict[str, Any]:
        return {"goal_hits": self._hits.copy(), "_goal_hits": self._true.copy()}

    def _render_env(self, i: int) -> np.ndarray | str:
        status = f"t={self._t[i]}/{self.max_steps} hits={self._hits[i]}"
        if self.render_mode == "rgb_array":
            return render_rgb(self.graph[i], int(self._node[i]), int(self._goal[i]))
        return render_ansi(self.graph[i], int(self._node[i]), int(self._goal[i]), status)


ACTION_COLORS = ((220, 70, 50), (40, 150, 70), (50, 90, 220))


def render_rgb(graph: np.ndarray, node: int, goal: int, size: int = 320) -> np.ndarray:
    """Draw the graph: nodes on a circle, edges as arrows coloured by action, agent red, goal green.

    Parameters
    ----------
    graph
        ``[N_NODES, N_ACTIONS]`` targets (-1: no edge).
    node
        the agent's node.
    goal
        the goal node.
    size
        image side in pixels.
    """
    img = draw.canvas(size, size, (250, 250, 250))
    centre, radius, node_r = size * 0.45, size * 0.33, size * 0.06
    angles = -np.pi / 2 + 2 * np.pi * np.arange(N_NODES) / N_NODES
    pos = np.stack([centre + radius * np.sin(angles), size / 2 + radius * np.cos(angles)], axis=1)
    for i in range(N_NODES):
        for a in range(N_ACTIONS):
            j = int(graph[i, a])
            if j < 0:
                continue
            d = pos[j] - pos[i]
            d /= np.linalg.norm(d)
            perp = np.array([d[1], -d[0]]) * (size * (0.012 + 0.02 * a))
            p0 = pos[i] + perp + d * node_r * 1.1
            p1 = pos[j] + perp - d * node_r * 1.1
            tip_base = p1 - d * size * 0.035
            draw.draw_line(img, *p0, *tip_base, ACTION_COLORS[a], width=max(size / 160, 1.5))
            side = np.array([d[1], -d[0]]) * size * 0.015
            draw.fill_triangle(
                img, np.stack([p1, tip_base + side, tip_base - side]), ACTION_COLORS[a]
            )
    for i in range(N_NODES):
        if i == goal:
            draw.fill_disk(img, *pos[i], node_r * 1.35, (40, 170, 70))
        color = (220, 40, 40) if i == node else (90, 90, 100)
        draw.fill_disk(img, *pos[i], node_r, color)
        scale = max(int(size / 160), 1)
        draw.draw_text(
            img,
            int(pos[i][0] - 3.5 * scale),
            int(pos[i][1] - 2.5 * scale),
            str(i),
            (255, 255, 255),
            scale,
        )
    scale = max(int(size / 320), 1)
    y = int(size * 0.88)
    for a in range(N_ACTIONS):
        x = int(size * (0.08 + 0.3 * a))
        draw.fill_rect(img, y, x, y + 7 * scale, x + 14 * scale, ACTION_COLORS[a])
        draw.draw_text(img, y, x + 18 * scale, f"a{a}", (30, 30, 30), scale)
    return img


def render_ansi(graph: np.ndarray, node: int, goal: int, status: str = "") -> str:
    """Text picture: one line per node with its outgoing edges, the agent ``*`` and the goal ``G``."""
    lines = []
    for i in range(N_NODES):
        mark = ("*" if i == node else " ") + ("G" if i == goal else " ")
        edges = "  ".join(
            f"a{a}->{int(graph[i, a])}" if graph[i, a] >= 0 else f"a{a}->-"
            for a in range(N_ACTIONS)
        )
        lines.append(f"{mark} node {i}: {edges}")
    return "\n".join(lines + ([status] if status else [])) + "\n"
