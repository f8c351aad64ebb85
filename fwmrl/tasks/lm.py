"""Word-level language modelling on a PTB / WikiText-2 style folder.

The folder holds one file per split in one of three namings: ``train.txt``, ``valid.txt``,
``test.txt`` (fwmrl's generated corpus); ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``
(Mikolov's PTB, ``simple-examples/data``); ``wiki.train.tokens``, ``wiki.valid.tokens``,
``wiki.test.tokens`` (WikiText-2/-103). Words are whitespace-separated, one sentence (PTB) or
paragraph or `` = Heading = `` line (WikiText) per line; WikiText's `` @-@ `` and similar split
marks are ordinary words. As in those corpora's standard loaders (PyTorch's
``word_language_model``, AWD-LSTM's ``data.py``: ``line.split() + ['<eos>']``), every line ends
with ``<eos>``, blank lines too (WikiText separates paragraphs and headings with `` `` lines; their
``<eos>`` tokens are part of its published token counts), the vocabulary is built from the training
split alone (most frequent first, ties alphabetical), and a word of ``valid``/``test`` missing from it reads as
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
    """The words of a corpus file with ``<eos>`` after every line (a blank line is one ``<eos>``)."""
    words: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words += line.split() + [EOS]
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


LAYOUTS = {
    "generated": "{split}.txt",
    "ptb": "ptb.{split}.txt",
    "wikitext": "wiki.{split}.tokens",
}
"""File names of the splits in each folder layout ``lm_data`` reads."""


def find_lm_files(folder: str | Path) -> dict[str, Path]:
    """``{split: path}`` of the one layout of :data:`LAYOUTS` that ``folder`` holds completely."""
    folder = Path(folder)
    complete = {
        name: {s: folder / pattern.format(split=s) for s in SPLITS}
        for name, pattern in LAYOUTS.items()
    }
    complete = {n: f for n, f in complete.items() if all(p.is_file() for p in f.values())}
    if len(complete) > 1:
        raise ValueError(
            f"{folder} holds the splits of several layouts ({', '.join(complete)}); keep one"
        )
    if not complete:
        names = "; ".join(", ".join(p.format(split=s) for s in SPLITS) for p in LAYOUTS.values())
        raise FileNotFoundError(
            f"{folder} holds no complete corpus (one of: {names}; "
            "python -m fwmrl.tasks.corpus FOLDER writes one)"
        )
    return next(iter(complete.values()))


def lm_data(folder: str | Path) -> TaskData:
    """Read the three splits of ``folder`` (any layout of :data:`LAYOUTS`)."""
    files = find_lm_files(folder)
    words = {s: read_words(files[s]) for s in SPLITS}
    vocab = build_vocab(words["train"])
    index = {w: i for i, w in enumerate(vocab)}
    streams = [lm_stream(encode_words(words[s], index)) for s in SPLITS]
    return TaskData(
        "lm", vocab, *streams, pad=index[EOS], drop_tail=True, files=[files[s] for s in SPLITS]
    )
