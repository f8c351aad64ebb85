"""The word-level LM corpus loader and the retrieval streams."""

from __future__ import annotations

import numpy as np

from fwmrl.envs.keyvalue import BLANK, decode
from fwmrl.tasks.corpus import write_corpus
from fwmrl.tasks.lm import EOS, UNK, lm_data
from fwmrl.tasks.retrieval import query_stream, retrieval_data


def test_lm_folder_vocab_unk_and_eos(tmp_path):
    (tmp_path / "train.txt").write_text(" the cat sat \n\n the dog sat on the mat \n")
    (tmp_path / "valid.txt").write_text(" the bird sat \n")
    (tmp_path / "test.txt").write_text(" a <unk> cat \n")
    data = lm_data(tmp_path)
    assert data.vocab[:4] == [EOS, UNK, "the", "sat"]  # then by count, ties alphabetical
    assert data.vocab[4:] == ["cat", "dog", "mat", "on"]
    inv = data.vocab
    train = [inv[i] for i in data.train.inputs] + [inv[data.train.targets[-1]]]
    assert train == [
        *["the", "cat", "sat", "<eos>", "<eos>"],  # the blank line is an <eos> of its own
        *["the", "dog", "sat", "on", "the", "mat", "<eos>"],
    ]
    valid = [inv[i] for i in data.valid.inputs] + [inv[data.valid.targets[-1]]]
    assert valid == ["the", UNK, "sat", EOS]
    assert [inv[i] for i in data.test.inputs] == [UNK, UNK, "cat"]
    assert data.drop_tail and data.train.loss_mask.all()


def test_generated_corpus_has_unseen_words_in_valid(tmp_path):
    paths = write_corpus(tmp_path, train_lines=300, seed=1)
    assert sorted(p.name for p in paths.values()) == ["test.txt", "train.txt", "valid.txt"]
    assert all(line.startswith(" ") for line in paths["train"].read_text().splitlines())
    data = lm_data(tmp_path)
    assert (data.valid.targets == data.vocab.index(UNK)).any()
    assert not (data.train.targets == data.vocab.index(UNK)).any()


def test_retrieval_stream_is_one_stream_of_queries():
    s = query_stream(np.random.default_rng(0), 1500)  # two generator calls
    assert int(s.score_mask.sum()) == 1500 and len(s.boundaries) == 1499
    assert (s.targets[~s.score_mask] == BLANK).all()
    text = decode(s.inputs)
    # every scored position reads a '.', and every cut point follows one
    assert {text[i] for i in np.flatnonzero(s.score_mask)} == {"."}
    assert {text[i - 1] for i in s.boundaries} == {"."}
    # the answer is the latest value stored for the key since the previous query
    start = 0
    for end in s.boundaries[:50]:
        query = text[start:end]
        storage, key = query.split("?")
        latest = dict(item.split("=") for item in storage.split(";") if item)
        assert latest[key.rstrip(".")] == "abcdefgh"[s.targets[end - 1]]
        start = end
    data = retrieval_data(10, 5, 5, seed=0, vocab_size=15)
    assert len(data.vocab) == 15 and int(data.valid.score_mask.sum()) == 5
