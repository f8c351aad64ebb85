"""FWM-Recall-v0: targets of the three tasks, scoring, observations, references, the batched env,
saved states and bad input."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import SyncVectorEnv

from fwmrl.envs import (
    EnvStateError,
    RecallEnv,
    RecallVectorEnv,
    load_vector_env_state,
    make_vec_env,
    vector_env_state,
)
from fwmrl.envs.recall import NOT_SCORED, TASKS, recall_targets, reference_returns, scored_steps


def _reference_targets(task, stream, k, symbols):
    """Independent loop version of the three targets."""
    out = []
    zeros = 0
    for t, s in enumerate(stream):
        zeros += s == 0
        if task == "kback":
            out.append(stream[t - k] if t >= k else NOT_SCORED)
        elif task == "first":
            out.append(stream[0] if t >= 1 else NOT_SCORED)
        else:
            out.append(min(zeros, symbols - 1))
    return out


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(("symbols", "k", "max_steps"), [(8, 3, 32), (2, 1, 40), (3, 5, 6)])
def test_targets_match_a_loop_reference(task, symbols, k, max_steps):
    env = RecallEnv(task=task, symbols=symbols, k=k, max_steps=max_steps)
    for seed in range(20):
        env.reset(seed=seed)
        stream = env.stream.tolist()
        assert len(stream) == max_steps and all(0 <= s < symbols for s in stream)
        expected = _reference_targets(task, stream, k, symbols)
        assert env.targets.tolist() == expected
        assert sum(x != NOT_SCORED for x in expected) == scored_steps(task, k, max_steps)
    batch = np.random.default_rng(0).integers(0, symbols, size=(4, max_steps))
    np.testing.assert_array_equal(
        recall_targets(task, batch, k, symbols),
        [_reference_targets(task, row.tolist(), k, symbols) for row in batch],
    )


def test_count_is_capped_and_reaches_the_cap():
    env = RecallEnv(task="count", symbols=2, max_steps=20)
    env.reset(seed=0)
    assert env.targets.max() == 1 and (env.targets >= 0).all()
    assert env.targets[-1] == 1  # 20 fair coin flips without a single 0 is (almost) impossible


@pytest.mark.parametrize("task", TASKS)
def test_oracle_scores_every_scored_step_and_wrong_answers_score_nothing(task):
    env = RecallEnv(task=task, symbols=5, k=4, max_steps=12)
    obs, info = env.reset(seed=3)
    assert info == {}
    total, t, truncated = 0.0, 0, False
    while not truncated:
        assert obs[:5].sum() == 1 and obs[:5].argmax() == env.stream[t]
        target = env.targets[t]
        obs, reward, terminated, truncated, _ = env.step(env.oracle_action())
        assert not terminated
        assert reward == (1.0 if target != NOT_SCORED else 0.0)
        assert obs[5] == reward
        total, t = total + reward, t + 1
    assert t == 12 and total == scored_steps(task, 4, 12)
    assert obs[:5].sum() == 0, "no symbol after the last step"
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step(0)
    env.reset(seed=3)
    wrong = [(max(x, 0) + 1) % 5 for x in env.targets.tolist()]
    assert sum(env.step(a)[1] for a in wrong) == 0


def test_target_is_not_the_current_symbol():
    """kback with k >= 1: repeating the symbol on screen is no better than chance."""
    env = RecallEnv(symbols=4, k=2, max_steps=200)
    env.reset(seed=1)
    hits = sum(env.step(int(env.stream[t]))[1] for t in range(200))
    assert 25 < hits < 75  # 198 scored steps at 1/4: mean 49.5, std 6.1


@pytest.mark.parametrize("task", TASKS)
def test_reference_returns_oracle_exact_random_near_expectation(task):
    refs = reference_returns(seed=0, episodes=200, task=task)
    n_scored = scored_steps(task, 3, 32)
    assert refs["oracle"] == n_scored
    # per-episode std sqrt(n p (1 - p)) <= 1.9 at p = 1/8: 200 episodes give a std of the mean of 0.13
    assert refs["random"] == pytest.approx(n_scored / 8, abs=0.6)
    assert reference_returns(seed=0, episodes=200, task=task) == refs
    env = gym.make("FWM-Recall-v0", task=task)
    assert env.unwrapped.reference_returns(seed=0, episodes=200) == refs


@pytest.mark.parametrize("task", TASKS)
def test_batched_env_equals_single_envs_across_autoresets(task):
    n, kwargs = 5, {"task": task, "symbols": 4, "k": 2, "max_steps": 7}
    sync = SyncVectorEnv([lambda: RecallEnv(**kwargs) for _ in range(n)])
    native = gym.make_vec(
        "FWM-Recall-v0", num_envs=n, vectorization_mode="vector_entry_point", **kwargs
    )
    assert isinstance(native.unwrapped, RecallVectorEnv)
    np.testing.assert_array_equal(
        sync.reset(seed=[1, 2, 3, 4, 9])[0], native.reset(seed=[1, 2, 3, 4, 9])[0]
    )
    rng = np.random.default_rng(0)
    total = 0.0
    for t in range(60):
        # half of the steps from the oracle, so that rewards are frequent
        targets = np.array([e.unwrapped.oracle_action() for e in sync.envs])
        actions = targets if t % 2 else rng.integers(4, size=n)
        out_sync, out_native = sync.step(actions), native.step(actions)
        for x, y in zip(out_sync[:4], out_native[:4], strict=True):
            assert np.asarray(x).dtype == np.asarray(y).dtype
            np.testing.assert_array_equal(x, y)
        assert out_native[4] == {} and out_sync[4] == {}
        if t == 30:  # a mid-episode reset: None keeps a sub-env's generator running
            seeds = [None, 5, None, None, 6]
            np.testing.assert_array_equal(sync.reset(seed=seeds)[0], native.reset(seed=seeds)[0])
        total += out_native[1].sum()
    assert total > 40
    assert native.unwrapped.render() is None  # no render_mode


def test_batched_state_continues_exactly_and_bad_states_are_refused():
    env = make_vec_env("FWM-Recall-v0", 3, task="kback", k=2, max_steps=9)
    env.reset(seed=4)
    rng = np.random.default_rng(1)
    for _ in range(13):
        env.step(rng.integers(8, size=3))
    saved = vector_env_state(env)
    copy = make_vec_env("FWM-Recall-v0", 3, task="kback", k=2, max_steps=9)
    copy.reset(seed=77)
    load_vector_env_state(copy, saved)
    for _ in range(30):
        actions = rng.integers(8, size=3)
        for x, y in zip(env.step(actions)[:4], copy.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(x, y)

    def broken(key, change):
        bad = vector_env_state(env)
        bad["state"][key] = change(bad["state"][key].copy())
        return bad

    before = vector_env_state(copy)["state"]
    cases = [
        ("stream", lambda a: np.where(a == 8, 0, a), "stream: symbols must lie in"),
        ("targets", lambda a: np.where(a >= 0, (a + 1) % 8, a), "targets: do not match"),
        ("actions", lambda a: np.full_like(a, 0), "actions: exactly the first t"),
        ("t", lambda a: np.full_like(a, 10), r"t: values must lie in \[0, 9\]"),
        ("obs", lambda a: np.roll(a, 1, axis=1), "obs: do not match"),
    ]
    for key, change, message in cases:
        with pytest.raises(EnvStateError, match=message):
            load_vector_env_state(copy, broken(key, change))
    after = vector_env_state(copy)["state"]
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_single_state_round_trip_and_bad_states():
    env = RecallEnv(task="first", symbols=3, max_steps=10)
    env.reset(seed=2)
    for a in (0, 1, 2, 1):
        env.step(a)
    state = env.state_dict()
    assert set(state) == {"rng", "stream", "t", "actions", "prev_reward"}
    copy = RecallEnv(task="first", symbols=3, max_steps=10)
    copy.load_state_dict(state)
    assert copy.render() is None
    for t in range(25):
        x, y = env.step(t % 3), copy.step(t % 3)
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:4] == y[1:4]
        if x[3]:
            np.testing.assert_array_equal(env.reset()[0], copy.reset()[0])
    bad = dict(state, prev_reward=np.array(1.0 - float(state["prev_reward"])))
    with pytest.raises(EnvStateError, match="prev_reward: the reward of the last saved step"):
        copy.load_state_dict(bad)
    with pytest.raises(EnvStateError, match=r"actions: expected shape \(4\)"):
        copy.load_state_dict(dict(state, actions=np.zeros(3, dtype=np.int64)))
    with pytest.raises(EnvStateError, match=r"stream: values must lie in \[0, 2\]"):
        copy.load_state_dict(dict(state, stream=np.full(10, 3)))
    with pytest.raises(EnvStateError, match="t: missing"):
        copy.load_state_dict({k: v for k, v in state.items() if k != "t"})
    with pytest.raises(RuntimeError, match="before reset"):
        RecallEnv().state_dict()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "copy"}, r"task must be one of \['count', 'first', 'kback'\]"),
        ({"symbols": 101}, r"symbols must be an integer in \[2, 100\]"),
        ({"symbols": 4.0}, r"symbols must be an integer in \[2, 100\]"),
        ({"k": 0}, r"k must be an integer in \[1, 31\]"),
        ({"k": 8, "max_steps": 8}, r"k must be an integer in \[1, 7\]"),
        ({"task": "first", "k": 0}, r"k must be an integer in \[1, inf\]"),
        ({"max_steps": 1}, r"max_steps must be an integer in \[2, 100000\]"),
        ({"render_mode": "human"}, "render_mode must be None or one of"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RecallEnv(**kwargs)
    with pytest.raises(ValueError, match=message):
        RecallVectorEnv(2, **kwargs)


def test_k_is_free_for_the_tasks_that_ignore_it():
    env = RecallEnv(task="first", k=50, max_steps=4)
    env.reset(seed=0)
    assert scored_steps("count", 50, 4) == 4
    with pytest.raises(ValueError, match="k must be"):
        scored_steps("kback", 50, 4)


def test_keep_task_is_accepted_and_draws_a_new_stream():
    env = RecallEnv()
    env.reset(seed=0)
    first = env.stream.copy()
    env.reset(options={"keep_task": True})
    assert not np.array_equal(env.stream, first)


def test_renderings_show_stream_and_scored_answers():
    env = RecallEnv(symbols=12, k=1, max_steps=40, render_mode="rgb_array")
    env.reset(seed=5)
    first = env.render()
    assert first.dtype == np.uint8 and first.shape == (5 * 40 + 4, 8 * 28 + 4, 3)  # 5 rows of 8
    env.step(0)  # not scored: grey
    env.step(env.oracle_action())  # correct: green
    env.step((env.oracle_action() + 1) % 12)  # wrong: red
    frame = env.render()
    assert frame.shape == first.shape
    colors = {tuple(c) for c in frame.reshape(-1, 3)}
    assert {(120, 210, 130), (240, 120, 110), (215, 215, 215), (255, 220, 90)} <= colors
    text = RecallEnv(k=1, render_mode="ansi")
    text.reset(seed=5)
    text.step(0)
    text.step(text.oracle_action())
    text.step((text.oracle_action() + 1) % 8)
    lines = text.render().splitlines()
    assert lines[0] == "recall task=kback k=1 t=3/32"
    assert lines[1].startswith("stream: ") and lines[1].endswith("]")
    assert lines[2].split()[1:] == [
        "0",
        f"{text.stream[0]}+",
        f"{(text.stream[1] + 1) % 8}-",
    ]
    for mode in ("ansi", "rgb_array"):
        single = RecallEnv(k=1, render_mode=mode)
        vec = RecallVectorEnv(2, k=1, render_mode=mode)
        single.reset(seed=5)
        vec.reset(seed=5)
        for a in (0, 3, 5):
            single.step(a)
            vec.step(np.array([a, 0]))
        np.testing.assert_array_equal(vec.render()[0], single.render())


def test_run_references_of_the_shipped_configs_have_an_oracle():
    from pathlib import Path

    from fwmrl.agents.job import references_from_config as config_references
    from fwmrl.config import load_config

    root = Path(__file__).resolve().parents[2]
    for name in ("recall_kback_lstm.yaml", "recall_kback_fwm.yaml"):
        config = load_config(root / "configs" / name)
        refs = config_references(config, episodes=10, seed=3)
        assert refs == reference_returns(3, 10, **config.env.kwargs)
        assert refs["oracle"] == 29 and 0 < refs["random"] < 29
