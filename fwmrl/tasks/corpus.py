"""A small license-clean corpus in the PTB / WikiText layout, generated from a tiny grammar.

Short "documents" introduce a few invented characters (name, kind of animal, home town, favourite
thing) and then talk about them; later sentences repeat those facts (``kalo comes from varen .``), so
a model that remembers the document predicts them and one that does not cannot. Names are drawn from
thousands of invented syllable combinations, so the validation and test files contain words the
training file lacks (``<unk>`` after vocabulary building, as in PTB). Files are lower-case, one
sentence per line, words separated by spaces, each line starting with a space like PTB's.

Command line: ``python -m fwmrl.tasks.corpus OUT_DIR [--train-lines 20000] [--seed 0]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SYLLABLES = ["ka", "lo", "mi", "ren", "to", "sa", "vi", "dor", "na", "pel", "ur", "fi", "ben", "zo"]
ANIMALS = ["fox", "owl", "bear", "otter", "crow", "hare", "wolf", "deer"]
ADJECTIVES = ["old", "young", "quiet", "clever", "brave", "small", "tall", "lazy"]
TOWNS = ["varen", "oskil", "tamber", "lunde", "pirra", "hollin", "mesk", "caradon"]
THINGS = ["apples", "music", "rain", "stories", "boats", "honey", "stars", "maps"]
VERBS = ["saw", "found", "carried", "painted", "lost", "wanted", "mended", "hid"]
OBJECTS = ["a basket", "the lantern", "a letter", "the old boat", "a red hat", "the map"]
PLACES = ["the river", "the market", "the hill", "the mill", "the forest", "the bridge"]
FILLERS = [
    "it was a long day",
    "the weather was cold",
    "nobody said a word",
    "the night came early",
    "everyone was tired",
]


def _name(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 4))
    return "".join(SYLLABLES[int(i)] for i in rng.integers(len(SYLLABLES), size=n))


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def document(rng: np.random.Generator) -> list[str]:
    """The sentences of one document (lists of words joined by spaces, no final newline)."""
    people = []
    lines = []
    for _ in range(int(rng.integers(2, 4))):
        p = {
            "name": _name(rng),
            "animal": _pick(rng, ANIMALS),
            "adj": _pick(rng, ADJECTIVES),
            "town": _pick(rng, TOWNS),
            "thing": _pick(rng, THINGS),
        }
        people.append(p)
        lines.append(f"{p['name']} is a {p['adj']} {p['animal']} from {p['town']} .")
        lines.append(f"{p['name']} likes {p['thing']} .")
    for _ in range(int(rng.integers(4, 9))):
        p = people[int(rng.integers(len(people)))]
        u = rng.random()
        if u < 0.3:
            verb, obj, place = _pick(rng, VERBS), _pick(rng, OBJECTS), _pick(rng, PLACES)
            lines.append(f"{p['name']} {verb} {obj} near {place} .")
        elif u < 0.5:
            lines.append(f"{p['name']} comes from {p['town']} .")
        elif u < 0.65:
            lines.append(f"the {p['animal']} from {p['town']} is called {p['name']} .")
        elif u < 0.8:
            lines.append(f"{p['name']} the {p['animal']} still likes {p['thing']} .")
        elif u < 0.9:
            lines.append(f"{_pick(rng, FILLERS)} .")
        else:
            lines.append(f"the {p['adj']} {p['animal']} went home to {p['town']} .")
    return lines


def corpus_lines(n_lines: int, rng: np.random.Generator) -> list[str]:
    """At least ``n_lines`` sentences of whole documents."""
    lines: list[str] = []
    while len(lines) < n_lines:
        lines += document(rng)
    return lines


def write_corpus(folder: str | Path, train_lines: int = 20000, seed: int = 0) -> dict[str, Path]:
    """Write ``train.txt``, ``valid.txt`` and ``test.txt`` (the latter two a tenth of the size) and
    the folder's generator record (:data:`~fwmrl.tasks.streams.GENERATED_MARKER`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {
        "train": train_lines,
        "valid": max(train_lines // 10, 1),
        "test": max(train_lines // 10, 1),
    }
    paths = {}
    for i, (split, n) in enumerate(sizes.items()):
        rng = np.random.default_rng([seed, i])
        text = "".join(f" {line} \n" for line in corpus_lines(n, rng))
        paths[split] = folder / f"{split}.txt"
        paths[split].write_text(text, encoding="utf-8")
    from fwmrl.tasks.streams import write_generated_marker

    write_generated_marker(
        folder, {"generator": "fwmrl.tasks.corpus", **corpus_parameters(train_lines, seed)}
    )
    return paths


def corpus_parameters(train_lines: int, seed: int) -> dict[str, int]:
    """What the generated corpus depends on (its generator record besides the generator)."""
    return {"train_lines": train_lines, "seed": seed}


def main(argv: list[str] | None = None) -> int:
    """Command line: write the corpus files into a folder (``--help`` lists the options)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--train-lines", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in write_corpus(args.folder, args.train_lines, args.seed).values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
