"""``FWM-Gridworld-v0``: a partially observable maze with a hidden goal (meta-RL)."""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fwmrl.envs import _render as draw
from fwmrl.envs._rng import UniformStream
from fwmrl.envs._validation import (
    EnvStateError,
    check_action,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_render_mode,
    state_array,
    state_entry,
    state_group,
)
from fwmrl.envs.vector import BatchedEnv

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
ACTION_NAMES = ("up", "right", "down", "left")
_DELTAS = ((-1, 0), (0, 1), (1, 0), (0, -1))
LAYOUTS = ("lattice", "open")


class GridLayout:
    """Precomputed tables of one maze, shared by every env with the same arguments.

    Cells are numbered ``row * size + col``.

    Attributes
    ----------
    walls
        bool array ``[size, size]``.
    free
        the numbers of the free cells, in increasing order.
    move
        int array ``[size * size, 4]``: the cell an action leads to (the same cell at a wall).
    windows
        float32 array ``[size * size, view * view]``: 1 where the window around a cell is a
        wall or outside the map.
    """

    def __init__(self, size: int, layout: str, view: int) -> None:
        self.size, self.layout, self.view = size, layout, view
        walls = np.zeros((size, size), dtype=bool)
        walls[[0, -1], :] = True
        walls[:, [0, -1]] = True
        if layout == "lattice":
            walls[0::2, 0::2] = True
        self.walls = walls
        self.free = np.flatnonzero(~walls.ravel())
        self.n_free = len(self.free)
        cells = np.arange(size * size)
        rows, cols = cells // size, cells % size
        self.move = np.repeat(cells[:, None], 4, axis=1)
        for a, (dr, dc) in enumerate(_DELTAS):
            r, c = rows + dr, cols + dc
            ok = (r >= 0) & (r < size) & (c >= 0) & (c < size)
            target = np.where(ok, r * size + c, cells)
            ok &= ~walls.ravel()[target]
            self.move[:, a] = np.where(ok, target, cells)
        half = view // 2
        padded = np.pad(walls, half, constant_values=True)
        self.windows = np.stack(
            [padded[r : r + view, c : c + view].ravel() for r, c in zip(rows, cols, strict=True)]
        ).astype(np.float32)
        self.move_list: list[list[int]] = self.move.tolist()

    @functools.lru_cache(maxsize=256)  # noqa: B019 (layouts are few and live for the process)
    def distances_to(self, goal: int) -> np.ndarray:
        """Shortest-path distances (in steps) from every cell to cell ``goal``; -1 where unreachable."""
        dist = np.full(self.size * self.size, -1, dtype=np.int64)
        dist[goal] = 0
        queue = deque([goal])
        while queue:
            cell = queue.popleft()
            for nxt in self.move_list[cell]:
                if dist[nxt] < 0:
                    dist[nxt] = dist[cell] + 1
                    queue.append(nxt)
        return dist


@functools.lru_cache(maxsize=32)
def grid_layout(size: int, layout: str, view: int) -> GridLayout:
    """Return the (cached) :class:`GridLayout` for these arguments."""
    return GridLayout(size, layout, view)


def _validate(
    size: int,
    view: int,
    layout: str,
    max_steps: int,
    goal_reward: float,
    wall_penalty: float,
    render_goal: bool,
) -> dict[str, Any]:
    size = check_int("size", size, 5, 63)
    view = check_int("view", view, 1, 2 * size - 1)
    if view % 2 == 0:
        raise ValueError(f"view must be an odd integer in [1, {2 * size - 1}], got {view}")
    return {
        "size": size,
        "view": view,
        "layout": check_choice("layout", layout, LAYOUTS),
        "max_steps": check_int("max_steps", max_steps, 1),
        "goal_reward": check_float("goal_reward", goal_reward, 0.0, low_open=True),
        "wall_penalty": check_float("wall_penalty", wall_penalty, high=0.0),
        "render_goal": check_bool("render_goal", render_goal),
    }


def _observation_space(view: int, goal_reward: float, wall_penalty: float) -> spaces.Box:
    vv = view * view
    low = np.zeros(vv + 6, dtype=np.float32)
    high = np.ones(vv + 6, dtype=np.float32)
    low[vv + 4], high[vv + 4] = wall_penalty, goal_reward
    return spaces.Box(low, high, dtype=np.float32)


class GridworldEnv(gym.Env[np.ndarray, np.int64]):
    """A partially observable maze in which the agent must find an invisible goal, then return to it.

    ## Description
    The classic meta-RL maze. The map is a ``size`` x ``size`` grid with walls on the border and, with
    ``layout="lattice"``, on every cell whose two coordinates are both even. Each episode hides a goal
    on a uniformly drawn free cell; the agent starts on another free cell. Reaching the goal gives a
    reward and teleports the agent to a random free cell other than the goal; the goal stays where it
    is until the episode ends. A good agent explores until it finds the goal, remembers where it is
    and then walks straight back to it after every teleport.

    ## Observation
    A float32 vector of ``view * view + 6`` entries:

    | index | meaning |
    |---|---|
    | ``0 .. view*view-1`` | 1 where the ``view`` x ``view`` window centred on the agent is a wall (or outside the map), row by row |
    | ``view*view .. +3`` | one-hot of the previous action (all zeros on the first step) |
    | ``view*view + 4`` | previous reward |
    | ``view*view + 5`` | elapsed-time fraction ``t / max_steps`` |

    The goal is never visible.

    ## Action
    ``Discrete(4)``: 0 up, 1 right, 2 down, 3 left.

    ## Reward
    ``goal_reward`` (default 10) when the agent steps onto the goal, ``wall_penalty`` (default -0.1)
    when it walks into a wall (it stays where it is), 0 otherwise. ``info["goal_hits"]`` counts the
    goal hits of the episode. :meth:`reference_returns` computes the returns of an oracle that knows
    the goal and of the uniformly random policy; :func:`normalized_score` turns a return into
    ``(R - R_random) / (R_oracle - R_random)``.

    ## Termination
    Never terminated; truncated after ``max_steps`` steps.

    ## Arguments
    - ``size`` (int, 5..63, default 9): side of the map, border included.
    - ``view`` (odd int, 1..2*size-1, default 3): side of the observed window.
    - ``layout`` (``"lattice"`` | ``"open"``, default ``"lattice"``): walls inside the map.
    - ``max_steps`` (int >= 1, default 200): episode length.
    - ``goal_reward`` (float > 0, default 10.0), ``wall_penalty`` (float <= 0, default -0.1).
    - ``render_mode`` (``None`` | ``"rgb_array"`` | ``"ansi"``).
    - ``render_goal`` (bool, default False): draw the goal in renderings.

    ``reset(options={"keep_task": True})`` keeps the goal of the previous episode (a new start cell is
    drawn); the :class:`~fwmrl.envs.trial.Trial` wrapper uses it. Actions must be integers in
    ``[0, 3]``; stepping after the episode was truncated raises until ``reset``.
    :meth:`state_dict` / :meth:`load_state_dict` save and restore the whole state as arrays.

    ## Registered ids
    - ``FWM-Gridworld-v0``; batched: ``gym.make_vec("FWM-Gridworld-v0", num_envs=N,
      vectorization_mode="vector_entry_point")`` gives :class:`GridworldVectorEnv`.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}
    supports_keep_task = True

    def __init__(
        self,
        size: int = 9,
        view: int = 3,
        layout: str = "lattice",
        max_steps: int = 200,
        goal_reward: float = 10.0,
        wall_penalty: float = -0.1,
        render_mode: str | None = None,
        render_goal: bool = False,
    ) -> None:
        self._kwargs = _validate(
            size, view, layout, max_steps, goal_reward, wall_penalty, render_goal
        )
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        kw = self._kwargs
        self.size, self.view, self.layout = kw["size"], kw["view"], kw["layout"]
        self.max_steps = kw["max_steps"]
        self.goal_reward, self.wall_penalty = kw["goal_reward"], kw["wall_penalty"]
        self.render_goal = render_goal
        self.grid = grid_layout(self.size, self.layout, self.view)
        self.observation_space = _observation_space(self.view, self.goal_reward, self.wall_penalty)
        self.action_space = spaces.Discrete(4)
        self._vv = view * view
        self._stream: UniformStream | None = None
        self._goal_k = -1
        self._goal = -1
        self._cell = -1
        self._t = 0
        self._prev_action = -1
        self._prev_reward = 0.0
        self._hits = 0
        self._ended = False

    @property
    def agent_cell(self) -> tuple[int, int]:
        """The agent's ``(row, col)``."""
        return divmod(self._cell, self.size)

    @property
    def goal_cell(self) -> tuple[int, int]:
        """The goal's ``(row, col)``."""
        return divmod(self._goal, self.size)

    def _uniform(self) -> float:
        return self._stream.next()

    def _draw_start(self) -> int:
        k = int(self._uniform() * (self.grid.n_free - 1))
        if k >= self._goal_k:
            k += 1
        return int(self.grid.free[k])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``options={"keep_task": True}`` keeps the previous goal."""
        super().reset(seed=seed)
        if self._stream is None or self._stream.rng is not self.np_random:
            self._stream = UniformStream(self.np_random)
        if options and options.get("keep_task", False):
            if self._goal < 0:
                raise ValueError("options['keep_task'] needs a previous reset")
        else:
            self._goal_k = int(self._uniform() * self.grid.n_free)
            self._goal = int(self.grid.free[self._goal_k])
        self._cell = self._draw_start()
        self._t = 0
        self._prev_action = -1
        self._prev_reward = 0.0
        self._hits = 0
        self._ended = False
        return self._observation(), {"goal_hits": 0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move one cell (or bump into a wall)."""
        a = check_action(action, 4)
        if self._cell < 0:
            raise RuntimeError("Cannot call step() before reset()")
        if self._ended:
            raise RuntimeError("Cannot call step() after the episode ended; call reset() first")
        nxt = self.grid.move_list[self._cell][a]
        if nxt == self._cell:
            reward = self.wall_penalty
        elif nxt == self._goal:
            reward = self.goal_reward
            self._hits += 1
            nxt = self._draw_start()
        else:
            reward = 0.0
        self._cell = nxt
        self._t += 1
        self._prev_action = a
        self._prev_reward = reward
        self._ended = self._t >= self.max_steps
        return (
            self._observation(),
            reward,
            False,
            self._ended,
            {"goal_hits": self._hits},
        )

    def state_dict(self) -> dict[str, np.ndarray]:
        """The env's state as arrays: the generator and its buffered uniforms, the goal, the agent's
        cell, the step counter, the previous action and reward, the goal hits."""
        if self._stream is None:
            raise RuntimeError("Cannot call state_dict() before reset()")
        ints = [self._goal_k, self._goal, self._cell, self._t, self._prev_action, self._hits]
        return {
            **{f"stream.{k}": v for k, v in self._stream.state_dict().items()},
            "ints": np.array(ints, dtype=np.int64),
            "prev_reward": np.array(self._prev_reward, dtype=np.float64),
            "ended": np.array(self._ended),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` of an env with the same arguments (raises
        :class:`~fwmrl.envs._validation.EnvStateError` naming a bad entry)."""
        stream = UniformStream.from_state_dict(state_group(state, "stream"))
        goal_k, goal, cell, t, prev_action, hits = state_array(
            "ints", state_entry(state, "ints"), np.int64, (6,)
        ).tolist()
        free = self.grid.free
        if not 0 <= goal_k < self.grid.n_free or goal != free[goal_k] or cell not in free:
            raise EnvStateError("ints: goal or agent cell is not a free cell of this maze")
        if not (0 <= t <= self.max_steps and -1 <= prev_action < 4 and hits >= 0):
            raise EnvStateError("ints: step counter, previous action or goal hits out of range")
        prev_reward = state_array("prev_reward", state_entry(state, "prev_reward"), np.float64, ())
        ended = state_array("ended", state_entry(state, "ended"), np.bool_, ())
        self.np_random = stream.rng
        self._stream = stream
        self._goal_k, self._goal, self._cell, self._t = goal_k, goal, cell, t
        self._prev_action, self._hits = prev_action, hits
        self._prev_reward, self._ended = float(prev_reward), bool(ended)

    def _observation(self) -> np.ndarray:
        vv = self._vv
        obs = np.zeros(vv + 6, dtype=np.float32)
        obs[:vv] = self.grid.windows[self._cell]
        if self._prev_action >= 0:
            obs[vv + self._prev_action] = 1.0
        obs[vv + 4] = self._prev_reward
        obs[vv + 5] = self._t / self.max_steps
        return obs

    def oracle_action(self) -> int:
        """The first action (in the order up, right, down, left) on a shortest path to the goal."""
        dist = self.grid.distances_to(self._goal)
        here = dist[self._cell]
        for a, nxt in enumerate(self.grid.move_list[self._cell]):
            if dist[nxt] == here - 1:
                return a
        raise RuntimeError("the goal is unreachable")  # cannot happen in the built-in layouts

    def reference_returns(self, seed: int, episodes: int = 20) -> dict[str, float]:
        """Mean returns of the oracle and of the random policy; see :func:`reference_returns`."""
        return reference_returns(seed, episodes, **self._kwargs)

    def render(self) -> np.ndarray | str | None:
        """Render the maze (``rgb_array``: walls, view window, agent, goal if ``render_goal``)."""
        if self.render_mode == "rgb_array":
            return render_rgb(self.grid, self._cell, self._goal if self.render_goal else -1)
        if self.render_mode == "ansi":
            return render_ansi(
                self.grid,
                self._cell,
                self._goal if self.render_goal else -1,
                f"t={self._t}/{self.max_steps} reward={self._prev_reward:g} hits={self._hits}",
            )
        return None


class GridworldVectorEnv(BatchedEnv):
    """``num_envs`` copies of :class:`GridworldEnv` advanced with NumPy array operations.

    Same arguments as :class:`GridworldEnv` plus ``num_envs``. Seeding and autoreset
    (``AutoresetMode.NEXT_STEP``) follow ``SyncVectorEnv``: for the same seeds and actions the
    trajectories equal those of ``num_envs`` single envs. ``reset(options={"keep_task": True})``
    keeps every reset sub-environment's goal; autoresets always draw a new goal.
    """

    def __init__(
        self,
        num_envs: int,
        size: int = 9,
        view: int = 3,
        layout: str = "lattice",
        max_steps: int = 200,
        goal_reward: float = 10.0,
        wall_penalty: float = -0.1,
        render_mode: str | None = None,
        render_goal: bool = False,
    ) -> None:
        kw = _validate(size, view, layout, max_steps, goal_reward, wall_penalty, render_goal)
        super().__init__(
            num_envs,
            _observation_space(kw["view"], kw["goal_reward"], kw["wall_penalty"]),
            spaces.Discrete(4),
            render_mode,
        )
        self.size, self.view, self.max_steps = kw["size"], kw["view"], kw["max_steps"]
        self.goal_reward, self.wall_penalty = kw["goal_reward"], kw["wall_penalty"]
        self.render_goal = render_goal
        self.grid = grid_layout(self.size, kw["layout"], self.view)
        n = self.num_envs
        self._vv = view * view
        self._cell = np.zeros(n, dtype=np.int64)
        self._goal = np.full(n, -1, dtype=np.int64)
        self._goal_k = np.zeros(n, dtype=np.int64)
        self._t = np.zeros(n, dtype=np.int64)
        self._prev_action = np.full(n, -1, dtype=np.int64)
        self._prev_reward = np.zeros(n)
        self._hits = np.zeros(n, dtype=np.int64)
        self._onehot = np.vstack([np.zeros((1, 4)), np.eye(4)]).astype(np.float32)
        self._true = np.ones(n, dtype=bool)

    def _state_fields(self) -> dict[str, tuple[float | None, float | None]]:
        cells = self.size * self.size - 1
        return {
            "_cell": (0, cells),
            "_goal": (0, cells),
            "_goal_k": (0, self.grid.n_free - 1),
            "_t": (0, self.max_steps),
            "_prev_action": (-1, 3),
            "_prev_reward": (None, None),
            "_hits": (0, None),
        }

    def _check_loaded(self, loaded: dict[str, np.ndarray]) -> None:
        walls = self.grid.walls.ravel()
        if (
            walls[loaded["_cell"]].any()
            or (self.grid.free[loaded["_goal_k"]] != loaded["_goal"]).any()
        ):
            raise EnvStateError(
                "cell/goal: a saved agent or goal cell is not a free cell of this maze"
            )

    def _draw_starts(self, idx: np.ndarray) -> np.ndarray:
        k = (self.streams.next(idx) * (self.grid.n_free - 1)).astype(np.int64)
        k += k >= self._goal_k[idx]
        return self.grid.free[k]

    def _reset_envs(self, idx: np.ndarray, options: dict[str, Any]) -> None:
        if options.get("keep_task", False):
            if (self._goal[idx] < 0).any():
                raise ValueError("options['keep_task'] needs a previous reset")
        else:
            goal_k = (self.streams.next(idx) * self.grid.n_free).astype(np.int64)
            self._goal_k[idx] = goal_k
            self._goal[idx] = self.grid.free[goal_k]
        self._cell[idx] = self._draw_starts(idx)
        self._t[idx] = 0
        self._prev_action[idx] = -1
        self._prev_reward[idx] = 0.0
        self._hits[idx] = 0
        self._write_obs(idx)

    def _step_envs(
        self, actions: np.ndarray, active: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cell = self._cell
        nxt = self.grid.move[cell, actions]
        bump = nxt == cell
        hit = nxt == self._goal
        rewards = np.where(bump, self.wall_penalty, np.where(hit, self.goal_reward, 0.0))
        hit &= active
        if hit.any():
            idx = np.flatnonzero(hit)
            nxt[idx] = self._draw_starts(idx)
            self._hits[idx] += 1
        self._cell = nxt
        self._t += 1
        self._prev_action = actions.copy()
        self._prev_reward = rewards
        self._write_obs(slice(None))
        return rewards.copy(), np.zeros(self.num_envs, dtype=bool), self._t >= self.max_steps

    def _write_obs(self, idx: np.ndarray | slice) -> None:
        vv = self._vv
        obs = self._obs
        obs[idx, :vv] = self.grid.windows[self._cell[idx]]
        obs[idx, vv : vv + 4] = self._onehot[self._prev_action[idx] + 1]
        obs[idx, vv + 4] = self._prev_reward[idx]
        obs[idx, vv + 5] = self._t[idx] / self.max_steps

    def _infos(self) -> dict[str, Any]:
        return {"goal_hits": self._hits.copy(), "_goal_hits": self._true.copy()}

    def _render_env(self, i: int) -> np.ndarray | str:
        goal = int(self._goal[i]) if self.render_goal else -1
        if self.render_mode == "rgb_array":
            return render_rgb(self.grid, int(self._cell[i]), goal)
        return render_ansi(self.grid, int(self._cell[i]), goal, f"t={self._t[i]}")


def render_rgb(grid: GridLayout, cell: int, goal: int, tile: int = 24) -> np.ndarray:
    """Draw the maze: walls grey, the agent's view window shaded, the agent red, the goal green.

    Parameters
    ----------
    grid
        the maze tables.
    cell
        the agent's cell (``row * size + col``).
    goal
        the goal's cell, or -1 to hide it.
    tile
        pixels per cell.
    """
    size = grid.size
    img = draw.canvas(size * tile, size * tile, (245, 245, 245))
    r0, c0 = divmod(cell, size)
    half = grid.view // 2
    draw.fill_rect(
        img,
        (r0 - half) * tile,
        (c0 - half) * tile,
        (r0 + half + 1) * tile,
        (c0 + half + 1) * tile,
        (255, 236, 170),
    )
    for r, c in zip(*np.nonzero(grid.walls), strict=True):
        draw.fill_rect(img, r * tile, c * tile, (r + 1) * tile, (c + 1) * tile, (70, 70, 80))
    img[::tile, :] = (200, 200, 200)
    img[:, ::tile] = (200, 200, 200)
    if goal >= 0:
        gr, gc = divmod(goal, size)
        m = tile // 6
        draw.fill_rect(
            img,
            gr * tile + m,
            gc * tile + m,
            (gr + 1) * tile - m,
            (gc + 1) * tile - m,
            (40, 170, 70),
        )
    draw.fill_disk(img, (r0 + 0.5) * tile, (c0 + 0.5) * tile, tile * 0.36, (220, 40, 40))
    return img


def render_ansi(grid: GridLayout, cell: int, goal: int, status: str = "") -> str:
    """Text picture: ``#`` wall, ``.`` free, ``A`` agent, ``G`` goal (when ``goal >= 0``)."""
    chars = np.where(grid.walls, "#", ".").ravel()
    if goal >= 0:
        chars[goal] = "G"
    chars[cell] = "A"
    rows = ["".join(chars[r * grid.size : (r + 1) * grid.size]) for r in range(grid.size)]
    return "\n".join(rows + ([status] if status else [])) + "\n"


def reference_returns(seed: int, episodes: int = 20, **env_kwargs: Any) -> dict[str, float]:
    """Mean episode returns of the oracle and of the uniformly random policy.

    Episode ``e`` of both policies is reset with seed ``seed + e``, so both face the same goals and
    start cells. The oracle knows the goal and always takes a shortest path
    (:meth:`GridworldEnv.oracle_action`); the random policy draws actions from
    ``np.random.default_rng(seed)``.

    Parameters
    ----------
    seed
        base seed.
    episodes
        number of episodes per policy.
    **env_kwargs
        :class:`GridworldEnv` arguments.

    Returns
    -------
    ``{"oracle": mean oracle return, "random": mean random-policy return}``.
    """
    check_int("episodes", episodes, 1)
    env = GridworldEnv(**env_kwargs)
    actions = np.random.default_rng(seed)
    totals = {"oracle": 0.0, "random": 0.0}
    for policy in totals:
        for e in range(episodes):
            env.reset(seed=seed + e)
            truncated = False
            while not truncated:
                a = env.oracle_action() if policy == "oracle" else int(actions.integers(4))
                _, reward, _, truncated, _ = env.step(a)
                totals[policy] += reward
    return {k: v / episodes for k, v in totals.items()}


def normalized_score(episode_return: float, references: dict[str, float]) -> float:
    """``(R - R_random) / (R_oracle - R_random)``: 0 for the random policy, 1 for the oracle."""
    return (episode_return - references["random"]) / (references["oracle"] - references["random"])
