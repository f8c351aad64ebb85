r"""Generate bAbI-style task files (tasks 1, 2, 3, 6 and 7) in the exact bAbI v1.2 format.

The Facebook bAbI data cannot be downloaded here, so tests and demos run on stories this module
writes: a small simulated world of people, places and objects, described sentence by sentence, with
questions whose answers follow from the world state. The files use the release's names
(``qa1_single-supporting-fact_train.txt`` …) and line format (numbered lines restarting at 1 per
story; ``question? \tanswer\tsupporting ids``), so :mod:`fwmrl.tasks.babi` reads them exactly like
the real ones. The stories are in the spirit of the originals, not copies of them.

Command line::

    python -m fwmrl.tasks.babi_generator OUT_DIR [--tasks 1 2 3 6 7] [--train-stories 1000]
        [--test-stories 100] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

PEOPLE = ["Mary", "John", "Daniel", "Sandra"]
PLACES = ["bathroom", "hallway", "garden", "office", "bedroom", "kitchen"]
OBJECTS = ["football", "apple", "milk"]
MOVES = ["moved to", "went to", "journeyed to", "travelled to", "went back to"]
GRABS = ["picked up", "got", "grabbed", "took"]
DROPS = ["dropped", "discarded", "put down", "left"]
NUMBERS = ["none", "one", "two", "three", "four", "five"]

TASK_NAMES = {
    1: "single-supporting-fact",
    2: "two-supporting-facts",
    3: "three-supporting-facts",
    6: "yes-no-questions",
    7: "counting",
}


def task_filename(task: int, split: str) -> str:
    """The release's file name, e.g. ``qa1_single-supporting-fact_train.txt``."""
    return f"qa{task}_{TASK_NAMES[task]}_{split}.txt"


class World:
    """People with places, objects with a holder or a place, and the story's lines so far."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.place: dict[str, str] = {}
        self.place_line: dict[str, int] = {}
        self.holder: dict[str, str | None] = {}
        self.object_place: dict[str, str] = {}
        self.object_line: dict[str, int] = {}  # the line that last changed who holds it / where
        self.history: dict[str, list[tuple[str, int]]] = {}  # object: (place, line that put it)
        self.lines: list[str] = []

    def pick(self, items: list[str]) -> str:
        """One of ``items``, drawn with the story's generator."""
        return items[int(self.rng.integers(len(items)))]

    def say(self, text: str) -> int:
        """Append a statement; returns its line number (from 1)."""
        self.lines.append(text)
        return len(self.lines)

    def ask(self, question: str, answer: str, support: list[int]) -> None:
        """Append a question line with its answer and supporting-fact line numbers."""
        ids = " ".join(str(i) for i in support)
        self.lines.append(f"{question} \t{answer}\t{ids}")

    def carried(self, person: str) -> list[str]:
        """The objects ``person`` holds."""
        return [o for o, h in self.holder.items() if h == person]

    def move(self, person: str | None = None) -> None:
        """``person`` (or a random one) goes to another place, with what they carry."""
        person = person or self.pick(PEOPLE)
        options = [p for p in PLACES if p != self.place.get(person)]
        place = self.pick(options)
        line = self.say(f"{person} {self.pick(MOVES)} the {place}.")
        self.place[person], self.place_line[person] = place, line
        for obj in self.carried(person):
            self.object_place[obj] = place
            self.history[obj].append((place, line))

    def grab(self) -> bool:
        """Someone who is somewhere picks up an object in the same place or not yet placed."""
        people = [p for p in PEOPLE if p in self.place]
        if not people:
            return False
        person = self.pick(people)
        free = [
            o
            for o in OBJECTS
            if self.holder.get(o) is None
            and self.object_place.get(o, self.place[person]) == self.place[person]
        ]
        if not free:
            return False
        obj = self.pick(free)
        line = self.say(f"{person} {self.pick(GRABS)} the {obj} there.")
        self.holder[obj], self.object_line[obj] = person, line
        if self.object_place.get(obj) != self.place[person]:
            self.history.setdefault(obj, []).append((self.place[person], line))
        self.object_place[obj] = self.place[person]
        return True

    def drop(self) -> bool:
        """Someone drops an object they hold; False if nobody holds one."""
        held = [o for o, h in self.holder.items() if h is not None]
        if not held:
            return False
        obj = self.pick(held)
        person = self.holder[obj]
        line = self.say(f"{person} {self.pick(DROPS)} the {obj}.")
        self.holder[obj], self.object_line[obj] = None, line
        return True

    def act(self, p_move: float = 0.5) -> None:
        """One random event: a move, or (objects tasks) a grab or a drop."""
        u = self.rng.random()
        if u < p_move or not (self.grab() if u < 0.8 else self.drop()):
            self.move()


def _story_1(w: World, questions: int = 5) -> None:
    for _ in range(questions):
        w.move()
        w.move()
        person = w.pick(list(w.place))
        w.ask(f"Where is {person}?", w.place[person], [w.place_line[person]])


def _where_object(w: World) -> tuple[str, str, list[int]] | None:
    """An object whose place is known, its place and the supporting lines."""
    known = [o for o in OBJECTS if o in w.object_place]
    if not known:
        return None
    obj = w.pick(known)
    person = w.holder.get(obj)
    if person is not None and w.place_line[person] > w.object_line[obj]:
        support = [w.object_line[obj], w.place_line[person]]
    elif person is not None:
        support = [w.place_line[person], w.object_line[obj]]
    else:
        support = [w.object_line[obj]]
    return obj, w.object_place[obj], sorted(set(support))


def _story_2(w: World, questions: int = 5) -> None:
    for p in PEOPLE:
        if w.rng.random() < 0.5:
            w.move(p)
    asked = 0
    while asked < questions:
        for _ in range(int(w.rng.integers(1, 4))):
            w.act(0.45)
        found = _where_object(w)
        if found is not None and len(found[2]) == 2:
            obj, place, support = found
            w.ask(f"Where is the {obj}?", place, support)
            asked += 1


def _story_3(w: World, questions: int = 5) -> None:
    for p in PEOPLE:
        w.move(p)
    asked = 0
    steps = 0
    while asked < questions and steps < 200:
        steps += 1
        w.act(0.55)
        options = [o for o, h in w.history.items() if len(h) >= 2 and h[-1][0] != h[-2][0]]
        if options and w.rng.random() < 0.35:
            obj = w.pick(options)
            (before, line_a), (now, line_b) = w.history[obj][-2], w.history[obj][-1]
            support = sorted({w.object_line[obj], line_a, line_b})
            w.ask(f"Where was the {obj} before the {now}?", before, support)
            asked += 1


def _story_6(w: World, questions: int = 5) -> None:
    for _ in range(questions):
        w.move()
        w.move()
        person = w.pick(list(w.place))
        place = w.place[person] if w.rng.random() < 0.5 else w.pick(PLACES)
        answer = "yes" if place == w.place[person] else "no"
        w.ask(f"Is {person} in the {place}?", answer, [w.place_line[person]])


def _story_7(w: World, questions: int = 5) -> None:
    for p in PEOPLE:
        w.move(p)
    touched: dict[str, list[int]] = {p: [] for p in PEOPLE}
    for _ in range(questions):
        for _ in range(int(w.rng.integers(1, 4))):
            before = len(w.lines)
            w.act(0.3)
            if len(w.lines) > before:
                text = w.lines[-1]
                person = text.split(" ", 1)[0]
                if person in touched and not any(m in text for m in MOVES):
                    touched[person].append(len(w.lines))
        person = w.pick(PEOPLE)
        count = len(w.carried(person))
        w.ask(f"How many objects is {person} carrying?", NUMBERS[count], touched[person] or [])


STORIES: dict[int, Callable[[World], None]] = {
    1: _story_1,
    2: _story_2,
    3: _story_3,
    6: _story_6,
    7: _story_7,
}


def generate_story(task: int, rng: np.random.Generator) -> list[str]:
    """The lines of one story (without their numbers)."""
    if task not in STORIES:
        raise ValueError(f"no generator for bAbI task {task}; available: {sorted(STORIES)}")
    world = World(rng)
    STORIES[task](world)
    return world.lines


def format_story(lines: list[str]) -> str:
    r"""Numbered lines as in the release: ``"1 Mary moved to the bathroom.\n"``."""
    return "".join(f"{i} {line}\n" for i, line in enumerate(lines, 1))


def write_task(
    folder: str | Path, task: int, n_train: int = 1000, n_test: int = 100, seed: int = 0
) -> dict[str, Path]:
    """Write ``qa{task}_{name}_train.txt`` and ``_test.txt`` under ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, offset in (("train", n_train, 0), ("test", n_test, 1)):
        rng = np.random.default_rng([seed, task, offset])
        text = "".join(format_story(generate_story(task, rng)) for _ in range(n))
        path = folder / task_filename(task, split)
        path.write_text(text, encoding="utf-8")
        paths[split] = path
    return paths


def generate_babi(
    folder: str | Path,
    tasks: list[int] | tuple[int, ...] = (1, 2, 3, 6, 7),
    n_train: int = 1000,
    n_test: int = 100,
    seed: int = 0,
) -> list[Path]:
    """Write train and test files of every task in ``tasks`` and the folder's generator record
    (:data:`~fwmrl.tasks.streams.GENERATED_MARKER`, one part per task); returns their paths."""
    from fwmrl.tasks.streams import write_generated_marker

    paths = []
    for task in tasks:
        paths += list(write_task(folder, task, n_train, n_test, seed).values())
    parts = {str(t): generation_parameters(n_train, n_test, seed) for t in tasks}
    write_generated_marker(folder, {"generator": "fwmrl.tasks.babi_generator", "parts": parts})
    return paths


def generation_parameters(n_train: int, n_test: int, seed: int) -> dict[str, int]:
    """What one task's generated files depend on (its part of the generator record)."""
    return {"train_stories": n_train, "test_stories": n_test, "seed": seed}


def main(argv: list[str] | None = None) -> int:
    """Command line: write the task files into a folder (``--help`` lists the options)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 2, 3, 6, 7])
    parser.add_argument("--train-stories", type=int, default=1000)
    parser.add_argument("--test-stories", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in generate_babi(
        args.folder, args.tasks, args.train_stories, args.test_stories, args.seed
    ):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
