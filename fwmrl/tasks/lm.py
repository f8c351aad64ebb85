"""Word-level language modelling on a PTB / WikiText-2 style folder.

The folder holds ``train.txt``, ``valid.txt`` and ``test.txt``: whitespace-separated words, one
sentence (PTB) or paragraph (WikiText) per line. As in those corpora's standard loaders, every line
ends with ``<eos>``, empty lines are skipped, the vocabulary is built from ``train.txt`` alone (most
frequent first, ties alphabetical), and a word of ``valid``/``test`` missing from it reads as
``<unk>`` (PTB already writes ``<unk>`` itself; it is then an ordinary training word). Each split is
one stream cut into ``B`` equal columns (the remainder is dropped) and read with truncated BPTT;
the metric is perplexity, ``exp`` of the mean cross-entropy per token.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from fwmrl.tasks.streams import Stream, TaskData

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")


def read_words(path: str | Path) -> list[str]:
    """The words of a corpus file with ``<eos>`` after every non-empty line."""
    words: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            tokens = line.split()
            if tokens:
                words += tokens + [EOS]
    return words


def build_vocab(words: list[str]) -> list[str]:
    """``<eos>`` and ``<unk>`` first, then the words by decreasing count (ties alphabetical)."""
    counts = collections.Counter(w for w in words if w not in (EOS, UNK))
    ordered = sorted(counts, key=lambda w: (-counts[w], w))
    return [EOS, UNK, *ordered]


def encode_words(words: list[str], index: dict[str, int]) -> np.ndarray:
    """Word ids; unknown words map to ``<unk>``."""
    unk = index[UNK]
    return np.array([index.get(w, unk) for w in words], dtype=np.int64)


def lm_stream(ids: np.ndarray) -> Stream:
    """Next-word prediction over the whole stream (every position carries loss; none is
    'scored' separately)."""
    n = len(ids) - 1
    return Stream(
        inputs=ids[:-1],
        targets=ids[1:],
        loss_mask=np.ones(n, dtype=bool),
        score_mask=np.zeros(n, dtype=bool),
    )


def lm_data(folder: str | Path) -> TaskData:
    """Read ``train/valid/test.txt`` from ``folder``."""
    folder = Path(folder)
    missing = [s for s in SPLITS if not (folder / f"{s}.txt").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} lacks {', '.join(f'{s}.txt' for s in missing)} (a corpus folder holds "
            "train.txt, valid.txt and test.txt; python -m fwmrl.tasks.corpus FOLDER writes one)"
        )
    words = {s: read_words(folder / f"{s}.txt") for s in SPLITS}
    vocab = build_vocab(words["train"])
    index = {w: i for i, w in enumerate(vocab)}
    streams = [lm_stream(encode_words(words[s], index)) for s in SPLITS]
    return TaskData("lm", vocab, *streams, pad=index[EOS], drop_tail=True)
