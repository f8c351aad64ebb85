r"""bAbI v1.2 task files and the catbAbI stream (Schlag et al. 2021, §4.1).

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
        """Whether the line is a question (it has an answer)."""
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
    """``{split: path}`` of task ``task``'s files anywhere under ``folder``, in either naming of the
    bAbI v1.2 release: ``qa{task}_{name}_{train,test}.txt`` (``en/``, ``en-10k/``: no validation
    file) or ``qa{task}_{train,valid,test}.txt`` (``en-valid/``, ``en-valid-10k/``). A flat folder
    and a folder holding one of those layouts both work; two files for one split are an error."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for split in SPLITS:
        matches = sorted(
            {*folder.rglob(f"qa{task}_*_{split}.txt"), *folder.rglob(f"qa{task}_{split}.txt")}
        )
        if len(matches) > 1:
            names = ", ".join(str(m) for m in matches)
            raise BabiFormatError(
                f"several files for task {task} ({split}): {names} (point task.data at one "
                "layout folder such as en-10k/ or en-valid-10k/)"
            )
        if matches:
            found[split] = matches[0]
    if "train" not in found or "test" not in found:
        raise FileNotFoundError(
            f"no qa{task}_*_train.txt and qa{task}_*_test.txt (en/, en-10k/ names) nor "
            f"qa{task}_train.txt and qa{task}_test.txt (en-valid/, en-valid-10k/ names) under "
            f"{folder} (generate bAbI-style files with python -m fwmrl.tasks.babi_generator FOLDER)"
        )
    return found


def has_babi_files(folder: str | Path) -> bool:
    """Whether ``folder`` holds a bAbI training file of either release naming."""
    folder = Path(folder)
    return folder.is_dir() and any(folder.rglob("qa*_train.txt"))


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
    return pieces_stream(story_pieces(stories, vocab), vocab[EOS], mode)


@dataclasses.dataclass(frozen=True)
class StoryPiece:
    """A story encoded once: its token ids followed by ``<eos>``, the offsets of its answer tokens
    within them, and its task."""

    ids: np.ndarray
    answers: np.ndarray
    task: int


def story_pieces(stories: list[tuple[int, Story]], vocab: dict[str, int]) -> list[StoryPiece]:
    """The :class:`StoryPiece` of every ``(task, story)`` (tokenised once, for reordering)."""
    pieces = []
    for task, story in stories:
        tokens, answers = story_tokens(story)
        ids = np.array([vocab[w] for w in tokens] + [vocab[EOS]], dtype=np.int64)
        pieces.append(StoryPiece(ids, np.array(answers, dtype=np.int64), task))
    return pieces


def pieces_stream(pieces: list[StoryPiece], eos: int, mode: str = "qa") -> Stream:
    """The catbAbI stream (see :func:`catbabi_stream`) of encoded stories in the given order."""
    if mode not in ("qa", "lm"):
        raise ValueError(f"mode must be 'qa' or 'lm', got {mode!r}")
    lengths = np.array([len(p.ids) for p in pieces], dtype=np.int64)
    offsets = 1 + np.cumsum(lengths) - lengths  # each story's first token
    ids = np.concatenate([np.array([eos], dtype=np.int64), *(p.ids for p in pieces)])
    answer_at = np.concatenate(
        [
            np.zeros(0, dtype=np.int64),
            *(o + p.answers for o, p in zip(offsets, pieces, strict=True)),
        ]
    )
    groups_at = np.concatenate(
        [np.zeros(0, dtype=np.int64), *(np.full(len(p.answers), p.task) for p in pieces)]
    )
    n = len(ids) - 1
    score = np.zeros(n, dtype=bool)
    groups = np.full(n, -1, dtype=np.int64)
    pos = answer_at - 1  # predicted from the position before
    score[pos] = True
    groups[pos] = groups_at
    starts = offsets - 1  # the positions that read the <eos> before each story
    return Stream(
        inputs=ids[:-1],
        targets=ids[1:],
        loss_mask=score.copy() if mode == "qa" else np.ones(n, dtype=bool),
        score_mask=score,
        groups=groups,
        boundaries=starts[1:],
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
    """The catbAbI task data from a folder of bAbI files: stories of all ``tasks`` shuffled (per split, with
    ``seed``) into one stream per split; the vocabulary is every token of the three splits (bAbI's
    vocabulary is closed), ``<eos>`` first. ``TaskData.reorder_train(rng)`` builds the training
    stream of the same stories in the order of ``rng.permutation`` (the per-epoch reshuffle) and
    ``TaskData.files`` lists the files read."""
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
    pieces = {s: story_pieces(splits[s], index) for s in SPLITS}
    streams = [pieces_stream(pieces[s], index[EOS], mode) for s in SPLITS]
    train_pieces = pieces["train"]

    def reorder_train(generator: np.random.Generator) -> Stream:
        order = generator.permutation(len(train_pieces))
        return pieces_stream([train_pieces[i] for i in order], index[EOS], mode)

    files = sorted({str(p) for t in tasks for p in find_task_files(folder, t).values()})
    return TaskData(
        "catbabi",
        vocab,
        *streams,
        pad=index[EOS],
        group_names={t: f"qa{t}" for t in tasks},
        reorder_train=reorder_train,
        files=[Path(f) for f in files],
    )
