"""Associative retrieval as a supervised task (Schlag & Schmidhuber 2017, seed 002).

The data come from the generator :func:`fwmrl.envs.keyvalue.generate_sequence` that
``FWM-KeyValue-v0`` uses: storage items ``key = value ;`` (keys of 2-4 letters from ``a``-``h``, one
letter values), and, after 1-10 items, a query ``? key .`` whose answer (the value last stored for
the key since the previous query) is due at the ``.``; the target is the blank ``_`` everywhere else.
As in the paper, each split is *one* stream of queries (100k for training, 5k for validation and
test) read with truncated BPTT; the loss is on every position, and the *partial* metrics count only
the answer positions.

Our symbol stream is shorter than the paper's (≈ 38 symbols per query against ≈ 57: we have no
separator characters between tokens), so 100k queries are ≈ 3.8 M symbols instead of ≈ 5.7 M.
"""

from __future__ import annotations

import numpy as np

from fwmrl.envs.keyvalue import (
    BLANK,
    END,
    EQUALS,
    N_SYMBOLS,
    QUERY,
    SEMICOLON,
    VOCAB,
    generate_sequence,
)
from fwmrl.tasks.streams import Stream, TaskData

MAX_QUERIES_PER_CALL = 1000


def query_stream(rng: np.random.Generator, n_queries: int, **generator: int) -> Stream:
    """``n_queries`` queries as one stream; columns may only be cut between queries.

    Queries are independent of what came before the previous query, so the stream is the
    concatenation of :func:`generate_sequence` calls of up to 1000 queries each.

    Parameters
    ----------
    generator
        ``min_items``, ``max_items``, ``min_key_len``, ``max_key_len`` of
        :func:`generate_sequence` (the paper's 1-10 items and 2-4 letter keys by default).
    """
    symbols, targets, ends = [], [], []
    offset = 0
    left = n_queries
    while left > 0:
        n = min(left, MAX_QUERIES_PER_CALL)
        seq = generate_sequence(rng, n_queries=n, **generator)
        symbols.append(seq.symbols)
        targets.append(seq.targets)
        ends.append(seq.answer_steps + offset + 1)
        offset += len(seq)
        left -= n
    inputs = np.concatenate(symbols)
    target = np.concatenate(targets)
    answers = target != BLANK
    # A query whose answer is the blank symbol cannot exist (values are letters).
    return Stream(
        inputs=inputs,
        targets=target,
        loss_mask=np.ones(len(inputs), dtype=bool),
        score_mask=answers,
        boundaries=np.concatenate(ends)[:-1],
    )


def retrieval_data(
    train_queries: int,
    valid_queries: int,
    test_queries: int,
    seed: int = 0,
    vocab_size: int | None = None,
    **generator: int,
) -> TaskData:
    """The three splits, each drawn from its own generator seeded by ``seed``.

    Parameters
    ----------
    vocab_size
        size of the embedding/output vocabulary; ``None`` gives the 13 symbols of
        :data:`~fwmrl.envs.keyvalue.VOCAB`; larger values add unused symbols (the paper's
        alphabet had 15).
    generator
        passed to :func:`query_stream` (easier or harder variants of the task, e.g.
        ``max_items=3``; the paper's task by default).
    """
    vocab = list(VOCAB)
    if vocab_size is not None:
        if vocab_size < N_SYMBOLS:
            raise ValueError(f"vocab_size must be at least {N_SYMBOLS}, got {vocab_size}")
        vocab += [f"<unused{i}>" for i in range(vocab_size - N_SYMBOLS)]
    seeds = np.random.SeedSequence(seed).spawn(3)
    splits = [
        query_stream(np.random.default_rng(s), n, **generator)
        for s, n in zip(seeds, (train_queries, valid_queries, test_queries), strict=True)
    ]
    return TaskData("retrieval", vocab, *splits, pad=BLANK)


def key_blind_accuracy(stream: Stream) -> float:
    """The expected partial accuracy of the best answer that ignores the query's key.

    For each query, such an answer can only pick a value among the latest values of the distinct
    keys stored since the previous query (the query key is uniform among them); the best pick is
    the most frequent of those values, right with probability ``count / distinct keys``. A model
    whose partial accuracy stays at this value has not learned to read the key.
    """
    symbols = stream.inputs.tolist()
    total = 0.0
    queries = 0
    latest: dict[tuple[int, ...], int] = {}
    start = 0
    for i, sym in enumerate(symbols):
        if sym == EQUALS:
            key = tuple(symbols[start:i])
            latest[key] = symbols[i + 1]
        elif sym in (SEMICOLON, END):
            start = i + 1
        elif sym == QUERY:
            values = list(latest.values())
            total += max(values.count(v) for v in set(values)) / len(values)
            queries += 1
            latest = {}
    if not queries:
        raise ValueError("the stream holds no query")
    return total / queries
