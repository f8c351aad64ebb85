"""``FWM-KeyValue-v0``: associative retrieval as an environment, and its sequence generator.

Vocabulary (:data:`VOCAB`, symbol ``s`` is ``VOCAB[s]``)::

    0-7  letters a b c d e f g h     (keys and values)
    8    =   separates a key from its value
    9    ;   ends a storage item
    10   ?   starts a query
    11   .   ends a query: the answer is due at this step
    12   _   blank: the target everywhere except answer steps, and the observation after the end

A storage item is ``key = value ;`` with a key of 2-4 letters and a 1-letter value; a query is
``? key .`` for a key stored since the previous query; the answer is the value most recently stored
for that key since the previous query. Example with 2 queries: ``ab=c;bdh=a;ab=e;?ab.hc=f;?hc.``
with answers ``e`` and ``f``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fwmrl.envs import _render as draw
from fwmrl.envs._rng import generator_from_state, generator_state
from fwmrl.envs._validation import (
    EnvStateError,
    check_action,
    check_int,
    check_render_mode,
    state_array,
    state_entry,
)
from fwmrl.envs.vector import BatchedEnv

VOCAB = "abcdefgh=;?._"
N_LETTERS = 8
EQUALS, SEMICOLON, QUERY, END, BLANK = 8, 9, 10, 11, 12
N_SYMBOLS = len(VOCAB)
OBS_SIZE = N_SYMBOLS + 1


@dataclasses.dataclass(frozen=True)
class KeyValueSequence:
    """One associative-retrieval sequence.

    Attributes
    ----------
    symbols
        int64 ``[L]``: the symbol stream.
    targets
        int64 ``[L]``: :data:`BLANK` everywhere except answer steps, which hold the value.
    answer_steps
        int64 ``[n_queries]``: positions of the queries' ``.`` symbols.
    """

    symbols: np.ndarray
    targets: np.ndarray
    answer_steps: np.ndarray

    def __len__(self) -> int:
        return len(self.symbols)

    def __str__(self) -> str:
        return decode(self.symbols)


def decode(symbols: np.ndarray | list[int]) -> str:
    """Symbols to text, e.g. ``[0, 1, 8, 2, 9]`` -> ``"ab=c;"``."""
    return "".join(VOCAB[int(s)] for s in symbols)


def encode(text: str) -> np.ndarray:
    """Text to symbols (int64); inverse of :func:`decode`."""
    try:
        return np.array([VOCAB.index(ch) for ch in text], dtype=np.int64)
    except ValueError:
        raise ValueError(f"text must only contain the symbols {VOCAB!r}, got {text!r}") from None


def max_sequence_length(n_queries: int = 10, max_items: int = 10, max_key_len: int = 4) -> int:
    """The longest sequence :func:`generate_sequence` can produce with these arguments."""
    return n_queries * (max_items * (max_key_len + 3) + max_key_len + 2)


def _validate(
    n_queries: int, min_items: int, max_items: int, min_key_len: int, max_key_len: int
) -> dict[str, int]:
    n_queries = check_int("n_queries", n_queries, 1, 1000)
    min_items = check_int("min_items", min_items, 1, 100)
    max_items = check_int("max_items", max_items, min_items, 100)
    min_key_len = check_int("min_key_len", min_key_len, 1, 16)
    max_key_len = check_int("max_key_len", max_key_len, min_key_len, 16)
    return {
        "n_queries": n_queries,
        "min_items": min_items,
        "max_items": max_items,
        "min_key_len": min_key_len,
        "max_key_len": max_key_len,
    }


def generate_sequence(
    rng: np.random.Generator,
    n_queries: int = 10,
    min_items: int = 1,
    max_items: int = 10,
    min_key_len: int = 2,
    max_key_len: int = 4,
) -> KeyValueSequence:
    """Draw one associative-retrieval sequence (the env's episodes and the supervised task).

    Each of the ``n_queries`` queries is preceded by a uniform number in ``[min_items, max_items]``
    of storage items ``key = value ;`` with uniform key lengths in ``[min_key_len, max_key_len]``
    and uniform letters; the query asks for a key drawn uniformly among the distinct keys stored
    since the previous query, and its answer is the latest value stored for that key.

    Parameters
    ----------
    rng
        the random generator (consumed in a fixed order: reproducible for a seed).
    n_queries
        queries in the sequence (1..1000).
    min_items, max_items
        storage items before each query (1 <= min <= max <= 100).
    min_key_len, max_key_len
        key lengths (1 <= min <= max <= 16).

    Returns
    -------
    The sequence with its targets (see :class:`KeyValueSequence`).
    """
    kw = _validate(n_queries, min_items, max_items, min_key_len, max_key_len)
    n_items = rng.integers(kw["min_items"], kw["max_items"] + 1, size=kw["n_queries"]).tolist()
    total = sum(n_items)
    key_len = rng.integers(kw["min_key_len"], kw["max_key_len"] + 1, size=total).tolist()
    letters = rng.integers(0, N_LETTERS, size=sum(key_len)).tolist()
    values = rng.integers(0, N_LETTERS, size=total).tolist()
    picks = rng.random(kw["n_queries"]).tolist()
    symbols: list[int] = []
    steps: list[int] = []
    answers: list[int] = []
    li = item = 0
    for count, pick in zip(n_items, picks, strict=True):
        latest: dict[tuple[int, ...], int] = {}
        for _ in range(count):
            kl = key_len[item]
            key = tuple(letters[li : li + kl])
            li += kl
            symbols.extend(key)
            symbols += (EQUALS, values[item], SEMICOLON)
            latest[key] = values[item]
            item += 1
        keys = list(latest)
        key = keys[int(pick * len(keys))]
        symbols.append(QUERY)
        symbols.extend(key)
        symbols.append(END)
        steps.append(len(symbols) - 1)
        answers.append(latest[key])
    sym = np.array(symbols, dtype=np.int64)
    targets = np.full(len(sym), BLANK, dtype=np.int64)
    targets[steps] = answers
    return KeyValueSequence(sym, targets, np.array(steps, dtype=np.int64))


def generate_batch(
    rng: np.random.Generator, batch_size: int, **kwargs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``batch_size`` sequences with :func:`generate_sequence`, padded with :data:`BLANK`.

    Returns
    -------
    ``(symbols [B, L], targets [B, L], lengths [B])`` as int64 arrays, ``L`` the longest length.
    """
    seqs = [generate_sequence(rng, **kwargs) for _ in range(check_int("batch_size", batch_size, 1))]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    symbols = np.full((len(seqs), lengths.max()), BLANK, dtype=np.int64)
    targets = symbols.copy()
    for i, s in enumerate(seqs):
        symbols[i, : len(s)] = s.symbols
        targets[i, : len(s)] = s.targets
    return symbols, targets, lengths


def _observation_space() -> spaces.Box:
    return spaces.Box(0.0, 1.0, shape=(OBS_SIZE,), dtype=np.float32)


class KeyValueEnv(gym.Env[np.ndarray, np.int64]):
    """Associative retrieval as a reinforcement-learning problem (the 2017 task, seed 002).

    ## Description
    The agent reads a stream of symbols (see :mod:`fwmrl.envs.keyvalue` for the vocabulary):
    storage items ``key = value ;`` and, every few items, a query ``? key .``. At each query's final
    symbol ``.`` it must output the value last stored for the queried key since the previous query.
    Episodes come from :func:`generate_sequence`, the generator the supervised trainer uses.

    ## Observation
    A float32 vector of 14 entries: one-hot of the current symbol (13 entries; the blank after the
    last step) and the previous reward.

    ## Action
    ``Discrete(13)``: a symbol. Only the action at an answer step counts; others are ignored.

    ## Reward
    +1 for the correct value at an answer step, 0 otherwise. The return is the number of queries
    answered correctly.

    ## Termination
    Terminated after the step that answers the last of ``n_queries`` queries; never truncated.

    ## Arguments
    - ``n_queries`` (int, 1..1000, default 10): queries per episode.
    - ``min_items``, ``max_items`` (int, 1 <= min <= max <= 100, defaults 1 and 10): storage items
      before each query.
    - ``min_key_len``, ``max_key_len`` (int, 1 <= min <= max <= 16, defaults 2 and 4): key lengths.
    - ``render_mode`` (``None`` | ``"rgb_array"`` | ``"ansi"``).

    There is no hidden task shared between episodes: ``reset(options={"keep_task": True})`` is
    accepted (for the :class:`~fwmrl.envs.trial.Trial` wrapper) and draws a new sequence as usual.
    Actions must be integers in ``[0, 12]``; stepping after the episode terminated raises until
    ``reset``. :meth:`state_dict` / :meth:`load_state_dict` save and restore the whole state as
    arrays.

    ## Registered ids
    - ``FWM-KeyValue-v0``; batched: ``gym.make_vec("FWM-KeyValue-v0", num_envs=N,
      vectorization_mode="vector_entry_point")`` gives :class:`KeyValueVectorEnv`.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}
    supports_keep_task = True

    def __init__(
        self,
        n_queries: int = 10,
        min_items: int = 1,
        max_items: int = 10,
        min_key_len: int = 2,
        max_key_len: int = 4,
        render_mode: str | None = None,
    ) -> None:
        self._kwargs = _validate(n_queries, min_items, max_items, min_key_len, max_key_len)
        self.render_mode = check_render_mode(render_mode, self.metadata["render_modes"])
        self.observation_space = _observation_space()
        self.action_space = spaces.Discrete(N_SYMBOLS)
        self.sequence: KeyValueSequence | None = None
        self._symbols: list[int] = []
        self._targets: list[int] = []
        self._pos = 0
        self._prev_reward = 0.0
        self._given: dict[int, int] = {}
        self._ended = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode with a new sequence."""
        super().reset(seed=seed)
        self.sequence = generate_sequence(self.np_random, **self._kwargs)
        self._symbols = self.sequence.symbols.tolist() + [BLANK]
        self._targets = self.sequence.targets.tolist()
        self._pos = 0
        self._prev_reward = 0.0
        self._given = {}
        self._ended = False
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Read the next symbol; ``action`` is the answer when the current symbol is ``.``."""
        a = check_action(action, N_SYMBOLS)
        if self.sequence is None:
            raise RuntimeError("Cannot call step() before reset()")
        if self._ended:
            raise RuntimeError("Cannot call step() after the episode ended; call reset() first")
        target = self._targets[self._pos]
        reward = 0.0
        if target != BLANK:
            reward = 1.0 if a == target else 0.0
            self._given[self._pos] = a
        self._pos += 1
        self._prev_reward = reward
        self._ended = self._pos >= len(self._targets)
        return self._observation(), reward, self._ended, False, {}

    def state_dict(self) -> dict[str, np.ndarray]:
        """The env's state as arrays: the generator, the episode's sequence, the read position, the
        previous reward and the answers given so far."""
        if self.sequence is None:
            raise RuntimeError("Cannot call state_dict() before reset()")
        steps = sorted(self._given)
        return {
            "rng": generator_state(self.np_random),
            "symbols": self.sequence.symbols.copy(),
            "targets": self.sequence.targets.copy(),
            "answer_steps": self.sequence.answer_steps.copy(),
            "pos": np.array(self._pos, dtype=np.int64),
            "prev_reward": np.array(self._prev_reward, dtype=np.float64),
            "given": np.array([steps, [self._given[k] for k in steps]], dtype=np.int64),
            "ended": np.array(self._ended),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` of an env with the same arguments (raises
        :class:`~fwmrl.envs._validation.EnvStateError` naming a bad entry)."""
        rng = generator_from_state(state_entry(state, "rng"))
        longest = max_sequence_length(
            self._kwargs["n_queries"], self._kwargs["max_items"], self._kwargs["max_key_len"]
        )
        symbols = state_array("symbols", state_entry(state, "symbols"), np.int64, (None,), 0, 11)
        n = len(symbols)
        if not 1 <= n <= longest:
            raise EnvStateError(f"symbols: a sequence has 1..{longest} symbols, got {n}")
        targets = state_array("targets", state_entry(state, "targets"), np.int64, (n,), 0, BLANK)
        answer_steps = state_array(
            "answer_steps", state_entry(state, "answer_steps"), np.int64, (None,), 0, n - 1
        )
        if not np.array_equal(answer_steps, np.flatnonzero(targets != BLANK)):
            raise EnvStateError("answer_steps: do not match the targets")
        pos = int(state_array("pos", state_entry(state, "pos"), np.int64, (), 0, n))
        prev_reward = state_array("prev_reward", state_entry(state, "prev_reward"), np.float64, ())
        given = state_array("given", state_entry(state, "given"), np.int64, (2, None), 0)
        ended = state_array("ended", state_entry(state, "ended"), np.bool_, ())
        self.np_random = rng
        self.sequence = KeyValueSequence(symbols, targets, answer_steps)
        self._symbols = symbols.tolist() + [BLANK]
        self._targets = targets.tolist()
        self._pos, self._prev_reward, self._ended = pos, float(prev_reward), bool(ended)
        self._given = dict(zip(given[0].tolist(), given[1].tolist(), strict=True))

    def _observation(self) -> np.ndarray:
        obs = np.zeros(OBS_SIZE, dtype=np.float32)
        obs[self._symbols[self._pos]] = 1.0
        obs[N_SYMBOLS] = self._prev_reward
        return obs

    def render(self) -> np.ndarray | str | None:
        """Render the stream read so far; answers green if correct, red if wrong."""
        if self.sequence is None or self.render_mode is None:
            return None
        capacity = max_sequence_length(
            self._kwargs["n_queries"], self._kwargs["max_items"], self._kwargs["max_key_len"]
        )
        if self.render_mode == "rgb_array":
            return render_rgb(self.sequence, self._pos, self._given, capacity)
        return render_ansi(self.sequence, self._pos, self._given)


class KeyValueVectorEnv(BatchedEnv):
    """``num_envs`` copies of :class:`KeyValueEnv` advanced with NumPy array operations.

    Same arguments as :class:`KeyValueEnv` plus ``num_envs``. Seeding and autoreset
    (``AutoresetMode.NEXT_STEP``) follow ``SyncVectorEnv``: for the same seeds and actions the
    trajectories equal those of ``num_envs`` single envs. Each sub-environment draws its sequences
    with :func:`generate_sequence` from its own generator.
    """

    def __init__(
        self,
        num_envs: int,
        n_queries: int = 10,
        min_items: int = 1,
        max_items: int = 10,
        min_key_len: int = 2,
        max_key_len: int = 4,
        render_mode: str | None = None,
    ) -> None:
        self._kwargs = _validate(n_queries, min_items, max_items, min_key_len, max_key_len)
        super().__init__(num_envs, _observation_space(), spaces.Discrete(N_SYMBOLS), render_mode)
        n = self.num_envs
        self._capacity = max_sequence_length(
            self._kwargs["n_queries"], self._kwargs["max_items"], self._kwargs["max_key_len"]
        )
        self._symbols = np.full((n, self._capacity + 1), BLANK, dtype=np.int64)
        self._targets = np.full((n, self._capacity + 1), BLANK, dtype=np.int64)
        self._length = np.zeros(n, dtype=np.int64)
        self._pos = np.zeros(n, dtype=np.int64)
        self._eye = np.eye(N_SYMBOLS, dtype=np.float32)

    def _state_fields(self) -> dict[str, tuple[float | None, float | None]]:
        return {
            "_symbols": (0, BLANK),
            "_targets": (0, BLANK),
            "_length": (1, self._capacity),
            "_pos": (0, self._capacity),
        }

    def _reset_envs(self, idx: np.ndarray, options: dict[str, Any]) -> None:
        for i in idx.tolist():
            seq = generate_sequence(self.streams.rngs[i], **self._kwargs)
            n = len(seq)
            self._symbols[i, :n] = seq.symbols
            self._symbols[i, n:] = BLANK
            self._targets[i, :n] = seq.targets
            self._targets[i, n:] = BLANK
            self._length[i] = n
        self._pos[idx] = 0
        self._obs[idx, :N_SYMBOLS] = self._eye[self._symbols[idx, 0]]
        self._obs[idx, N_SYMBOLS] = 0.0

    def _step_envs(
        self, actions: np.ndarray, active: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self._all
        target = self._targets[rows, self._pos]
        rewards = ((target != BLANK) & (actions == target)).astype(np.float64)
        self._pos = np.minimum(self._pos + 1, self._capacity)
        self._obs[:, :N_SYMBOLS] = self._eye[self._symbols[rows, self._pos]]
        self._obs[:, N_SYMBOLS] = rewards
        terminated = self._pos >= self._length
        return rewards, terminated, np.zeros(self.num_envs, dtype=bool)

    def _render_env(self, i: int) -> np.ndarray | str:
        n = int(self._length[i])
        seq = KeyValueSequence(
            self._symbols[i, :n].copy(),
            self._targets[i, :n].copy(),
            np.flatnonzero(self._targets[i, :n] != BLANK),
        )
        if self.render_mode == "rgb_array":
            return render_rgb(seq, int(self._pos[i]), {}, self._capacity)
        return render_ansi(seq, int(self._pos[i]), {})


def render_rgb(
    sequence: KeyValueSequence,
    pos: int,
    given: dict[int, int],
    capacity: int,
    per_row: int = 40,
) -> np.ndarray:
    """Draw the symbols read so far in rows of ``per_row``; the current symbol on yellow, answered
    steps on green (correct) or red (wrong), future steps as grey dots.

    Parameters
    ----------
    sequence
        the episode's sequence.
    pos
        index of the current symbol.
    given
        the agent's answers, by step.
    capacity
        the longest possible sequence (fixes the image size).
    per_row
        symbols per row.
    """
    cw, ch, scale = 14, 20, 2
    rows = -(-capacity // per_row)
    img = draw.canvas(rows * ch + 4, per_row * cw + 4, (250, 250, 250))
    for k in range(len(sequence)):
        y, x = 2 + (k // per_row) * ch, 2 + (k % per_row) * cw
        if k > pos:
            draw.fill_rect(
                img,
                y + ch // 2 - 1,
                x + cw // 2 - 1,
                y + ch // 2 + 1,
                x + cw // 2 + 1,
                (200, 200, 200),
            )
            continue
        if k == pos:
            draw.fill_rect(img, y, x, y + ch, x + cw, (255, 220, 90))
        elif k in given:
            ok = given[k] == sequence.targets[k]
            draw.fill_rect(img, y, x, y + ch, x + cw, (120, 210, 130) if ok else (240, 120, 110))
        draw.draw_text(img, y + 3, x + 2, VOCAB[int(sequence.symbols[k])], (20, 20, 20), scale)
    return img


def render_ansi(sequence: KeyValueSequence, pos: int, given: dict[int, int]) -> str:
    """Text picture: the stream read so far, the current symbol in brackets, then the answers."""
    text = decode(sequence.symbols[:pos])
    if pos < len(sequence):
        text += f"[{VOCAB[int(sequence.symbols[pos])]}]"
    marks = [
        f"{VOCAB[given[k]]}{'+' if given[k] == sequence.targets[k] else '-'}" for k in sorted(given)
    ]
    return text + "\nanswers: " + " ".join(marks) + "\n"
