"""bAbI v1.2 task files and the catbAbI stream (Schlag et al. 2021, §4.1).

**File format** (``qa1_single-supporting-fact_train.txt`` …): one sentence per line, each line
starting with its number within the story; numbering restarts at 1 with every story. A question
line holds the question, a tab, the answer and a tab with the space-separated ids of the supporting
facts::

    1 Mary moved to the bathroom.
    2 John went to the hallway.
    3 Where is Mary? \tbathroom\t1

**catbAbI**: every line is lower-cased and split into words and punctuation; supporting-fact ids
are dropped; a question becomes ``where is mary ?`` followed in-line by its answer token
(``bathroom``); stories (of all tasks, shuffled) are concatenated into one stream with ``<eos>``
between them, which a model reads word by word predicting the next token, in windows of 200 tokens
with its state carried across windows and stories. *QA mode*: the loss is only at the answer
positions; *LM mode*: on every token. Accuracy is counted at the answer positions, per task.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from fwmrl.tasks.streams import Stream, TaskData

EOS = "<eos>"
SPLITS = ("train", "valid", "test")


class BabiFormatError(ValueError):
    """A file that does not follow the bAbI format (the message names the file and line)."""


@dataclasses.dataclass(frozen=True)
class BabiLine:
    """A line of a story: ``answer`` (and ``supporting``) only on question lines."""

    id: int
    text: str
    answer: str | None = None
    supporting: tuple[int, ...] = ()

    @property
    def is_question(self) -> bool:
        return self.answer is not None


Story = list[BabiLine]


def parse_babi(text: str, source: str = "<text>") -> list[Story]:
    """Parse the text of a bAbI file into stories (a new story starts where a line's id is 1)."""
    stories: list[Story] = []
    previous = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        number, sep, rest = raw.strip("\n").partition(" ")
        if not sep or not number.isdigit():
            raise BabiFormatError(f"{source}:{lineno}: a line must start with its number: {raw!r}")
        line_id = int(number)
        if line_id == 1:
            stories.append([])
        elif not stories or line_id != previous + 1:
            raise BabiFormatError(
                f"{source}:{lineno}: line number {line_id} does not follow {previous}"
            )
        previous = line_id
        fields = rest.split("\t")
        if len(fields) == 1:
            stories[-1].append(BabiLine(line_id, fields[0].strip()))
            continue
        if len(fields) not in (2, 3) or not fields[1].strip():
            raise BabiFormatError(
                f"{source}:{lineno}: a question line is 'ID QUESTION\\tANSWER\\tSUPPORTING IDS'"
            )
        support = fields[2].split() if len(fields) == 3 else []
        if not all(s.isdigit() for s in support):
            raise BabiFormatError(f"{source}:{lineno}: supporting facts must be line ids: {raw!r}")
        stories[-1].append(
            BabiLine(line_id, fields[0].strip(), fields[1].strip(), tuple(int(s) for s in support))
        )
    return stories


def read_babi_file(path: str | Path) -> list[Story]:
    """Read one bAbI file (any origin: the Facebook release or :mod:`babi_generator`)."""
    path = Path(path)
    return parse_babi(path.read_text(encoding="utf-8"), source=str(path))


def find_task_files(folder: str | Path, task: int) -> dict[str, Path]:
    """``{split: path}`` of ``qa{task}_*_{train,valid,test}.txt`` anywhere under ``folder``
    (so both a flat folder and the release's ``en-10k/`` layout work)."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for split in SPLITS:
        matches = sorted(folder.rglob(f"qa{task}_*_{split}.txt"))
        if len(matches) > 1:
            names = ", ".join(str(m) for m in matches)
            raise BabiFormatError(f"several files for task {task} ({split}): {names}")
        if matches:
            found[split] = matches[0]
    if "train" not in found or "test" not in found:
        raise FileNotFoundError(
            f"no qa{task}_*_train.txt and qa{task}_*_test.txt under {folder} "
            "(generate bAbI-style files with python -m fwmrl.tasks.babi_generator FOLDER)"
        )
    return found


_TOKEN = re.compile(r"[\w'-]+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-case words and punctuation: ``"Where is Mary?"`` → ``[where, is, mary, ?]``."""
    return _TOKEN.findall(text.lower())


def story_tokens(story: Story) -> tuple[list[str], list[int]]:
    """The catbAbI tokens of a story and the indices of its answer tokens.

    Each question is followed by its answer as one lower-case token (``"n,w"`` stays one token).
    """
    tokens: list[str] = []
    answers: list[int] = []
    for line in story:
        tokens += tokenize(line.text)
        if line.is_question:
            if not tokens or tokens[-1] != "?":
                tokens.append("?")
            answers.append(len(tokens))
            tokens.append(line.answer.lower().replace(" ", "_"))  # type: ignore[union-attr]
    return tokens, answers


def catbabi_stream(
    stories: list[tuple[int, Story]], vocab: dict[str, int], mode: str = "qa"
) -> Stream:
    """The catbAbI stream of ``(task, story)`` pairs, in the given order.

    Position ``i`` reads token ``w_i`` and predicts ``w_{i+1}``; the stream is ``<eos> s_1 <eos> s_2
    … <eos>``. Answer targets are scored (group = task); ``mode="qa"`` puts the loss only there,
    ``"lm"`` on every position. Columns may be cut only at story starts.
    """
    if mode not in ("qa", "lm"):
        raise ValueError(f"mode must be 'qa' or 'lm', got {mode!r}")
    words = [EOS]
    answer_at: list[int] = []
    groups_at: list[int] = []
    starts: list[int] = []
    for task, story in stories:
        tokens, answers = story_tokens(story)
        starts.append(len(words) - 1)  # the position that reads the <eos> before the story
        answer_at += [len(words) + a for a in answers]
        groups_at += [task] * len(answers)
        words += tokens + [EOS]
    ids = np.array([vocab[w] for w in words], dtype=np.int64)
    n = len(ids) - 1
    score = np.zeros(n, dtype=bool)
    groups = np.full(n, -1, dtype=np.int64)
    pos = np.array(answer_at, dtype=np.int64) - 1  # predicted from the position before
    score[pos] = True
    groups[pos] = groups_at
    return Stream(
        inputs=ids[:-1],
        targets=ids[1:],
        loss_mask=score.copy() if mode == "qa" else np.ones(n, dtype=bool),
        score_mask=score,
        groups=groups,
        boundaries=np.array(starts[1:], dtype=np.int64),
    )


def load_babi_tasks(
    folder: str | Path, tasks: list[int], valid_fraction: float = 0.1
) -> dict[str, list[tuple[int, Story]]]:
    """``{split: [(task, story), …]}``; without a ``_valid.txt`` file the last ``valid_fraction``
    of each task's training stories are the validation split."""
    out: dict[str, list[tuple[int, Story]]] = {s: [] for s in SPLITS}
    for task in tasks:
        files = find_task_files(folder, task)
        train = read_babi_file(files["train"])
        if "valid" in files:
            valid = read_babi_file(files["valid"])
        else:
            n_valid = int(round(len(train) * valid_fraction))
            if valid_fraction > 0:
                n_valid = max(n_valid, 1)
            train, valid = train[: len(train) - n_valid], train[len(train) - n_valid :]
        for split, stories in (("train", train), ("valid", valid), ("test", None)):
            stories = stories if stories is not None else read_babi_file(files["test"])
            out[split] += [(task, s) for s in stories]
    return out


def catbabi_data(
    folder: str | Path,
    tasks: list[int],
    mode: str = "qa",
    valid_fraction: float = 0.1,
    seed: int = 0,
) -> TaskData:
    """catbAbI from a folder of bAbI files: stories of all ``tasks`` shuffled (per split, with
    ``seed``) into one stream per split; the vocabulary is every token of the three splits (bAbI's
    vocabulary is closed), ``<eos>`` first."""
    splits = load_babi_tasks(folder, tasks, valid_fraction)
    rng = np.random.default_rng(seed)
    words: set[str] = set()
    for split in SPLITS:
        order = rng.permutation(len(splits[split]))
        splits[split] = [splits[split][i] for i in order]
        for _, story in splits[split]:
            words.update(story_tokens(story)[0])
    if not splits["valid"]:
        raise ValueError("catbAbI needs validation stories: raise task.valid_fraction")
    vocab = [EOS, *sorted(words - {EOS})]
    index = {w: i for i, w in enumerate(vocab)}
    streams = [catbabi_stream(splits[s], index, mode) for s in SPLITS]
    return TaskData(
        "catbabi", vocab, *streams, pad=index[EOS], group_names={t: f"qa{t}" for t in tasks}
    )
