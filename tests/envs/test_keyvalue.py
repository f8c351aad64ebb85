"""FWM-KeyValue-v0 and its sequence generator."""

import re

import numpy as np
import pytest

from fwmrl.envs import KeyValueEnv, generate_batch, generate_sequence
from fwmrl.envs.keyvalue import BLANK, END, N_SYMBOLS, VOCAB, decode, encode, max_sequence_length

ITEM = re.compile(r"([a-h]+)=([a-h]);")
BLOCK = re.compile(r"((?:[a-h]+=[a-h];)+)\?([a-h]+)\.")


def _parse(text):
    """Independent reference: (item list, queried key, expected answer) per query."""
    blocks = BLOCK.findall(text)
    assert "".join(f"{items}?{key}." for items, key in blocks) == text, "bad syntax"
    out = []
    for items, key in blocks:
        pairs = ITEM.findall(items)
        latest = dict(pairs)
        assert key in latest, "query for a key not stored since the previous query"
        out.append((pairs, key, latest[key]))
    return out


@pytest.mark.parametrize("seed", range(30))
def test_every_answer_is_the_latest_value_of_its_key(seed):
    seq = generate_sequence(np.random.default_rng(seed))
    text = decode(seq.symbols)
    parsed = _parse(text)
    assert len(parsed) == 10 == len(seq.answer_steps)
    for (pairs, _, answer), step in zip(parsed, seq.answer_steps, strict=True):
        assert 1 <= len(pairs) <= 10
        assert all(2 <= len(k) <= 4 for k, _ in pairs)
        assert seq.symbols[step] == END
        assert VOCAB[seq.targets[step]] == answer
    blank = np.ones(len(seq), dtype=bool)
    blank[seq.answer_steps] = False
    assert (seq.targets[blank] == BLANK).all()


def test_duplicate_keys_answer_with_latest_value():
    found = 0
    for seed in range(300):
        seq = generate_sequence(np.random.default_rng(seed), max_key_len=2)
        for pairs, key, answer in _parse(decode(seq.symbols)):
            values = [v for k, v in pairs if k == key]
            if len(values) > 1 and len(set(values)) > 1:
                assert answer == values[-1]
                found += 1
    assert found > 10


def test_generator_arguments_and_determinism():
    rng = np.random.default_rng(0)
    seq = generate_sequence(
        rng, n_queries=3, min_items=2, max_items=2, min_key_len=3, max_key_len=3
    )
    parsed = _parse(decode(seq.symbols))
    assert len(parsed) == 3
    assert all(len(p) == 2 and all(len(k) == 3 for k, _ in p) for p, _, _ in parsed)
    a = generate_sequence(np.random.default_rng(9))
    b = generate_sequence(np.random.default_rng(9))
    np.testing.assert_array_equal(a.symbols, b.symbols)
    assert len(a) <= max_sequence_length()
    with pytest.raises(ValueError, match="max_items"):
        generate_sequence(rng, min_items=5, max_items=4)


def test_encode_decode_and_vocabulary():
    assert VOCAB == "abcdefgh=;?._" and N_SYMBOLS == 13
    np.testing.assert_array_equal(encode("ab=c;?ab."), [0, 1, 8, 2, 9, 10, 0, 1, 11])
    assert decode(encode("hg=a;")) == "hg=a;"
    with pytest.raises(ValueError, match="symbols"):
        encode("xyz")


def test_generate_batch_pads_with_blank():
    symbols, targets, lengths = generate_batch(np.random.default_rng(1), 5, n_queries=3)
    assert symbols.shape == targets.shape == (5, lengths.max())
    for i in range(5):
        assert (symbols[i, lengths[i] :] == BLANK).all()
        assert (targets[i] != BLANK).sum() == 3
        _parse(decode(symbols[i, : lengths[i]]))


def test_env_perfect_policy_scores_n_queries_and_observes_stream():
    env = KeyValueEnv(n_queries=4)
    obs, info = env.reset(seed=3)
    seq = env.sequence
    assert info == {}
    total, steps, terminated = 0.0, 0, False
    while not terminated:
        assert obs[:N_SYMBOLS].argmax() == seq.symbols[steps] and obs[:N_SYMBOLS].sum() == 1
        target = seq.targets[steps]
        obs, reward, terminated, truncated, _ = env.step(target if target != BLANK else 0)
        assert not truncated
        assert reward == (1.0 if target != BLANK else 0.0)
        assert obs[N_SYMBOLS] == reward
        total, steps = total + reward, steps + 1
    assert total == 4 and steps == len(seq)
    assert obs[BLANK] == 1, "blank observation after the end"


def test_env_wrong_answers_score_zero_and_other_actions_are_ignored():
    env = KeyValueEnv(n_queries=3)
    env.reset(seed=4)
    targets = env.sequence.targets
    rewards = []
    for t in range(len(targets)):
        wrong = (targets[t] + 1) % 8 if targets[t] != BLANK else t % N_SYMBOLS
        rewards.append(env.step(wrong)[1])
    assert sum(rewards) == 0
