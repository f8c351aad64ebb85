"""bAbI v1.2 files (written here in the release's format), the catbAbI stream and the generator."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fwmrl.tasks.babi import (
    EOS,
    BabiFormatError,
    catbabi_data,
    catbabi_stream,
    find_task_files,
    parse_babi,
    read_babi_file,
    story_tokens,
)
from fwmrl.tasks.babi_generator import TASK_NAMES, generate_babi, generate_story

QA1 = (
    "1 Mary moved to the bathroom.\n"
    "2 John went to the hallway.\n"
    "3 Where is Mary? \tbathroom\t1\n"
    "4 Daniel went back to the hallway.\n"
    "5 Sandra moved to the garden.\n"
    "6 Where is Daniel? \thallway\t4\n"
    "1 Sandra travelled to the office.\n"
    "2 Where is Sandra? \toffice\t1\n"
)
QA19 = "1 The kitchen is north of the hallway.\n2 How do you go from the hallway to the kitchen?\tn,w\t1\n"


def test_parse_release_format(tmp_path):
    path = tmp_path / "qa1_single-supporting-fact_train.txt"
    path.write_text(QA1)
    stories = read_babi_file(path)
    assert [len(s) for s in stories] == [6, 2]
    q = stories[0][2]
    assert q.is_question and q.text == "Where is Mary?" and q.answer == "bathroom"
    assert q.supporting == (1,)
    assert not stories[0][0].is_question and stories[0][0].text == "Mary moved to the bathroom."
    tokens, answers = story_tokens(stories[0])
    assert tokens[:10] == [
        "mary",
        "moved",
        "to",
        "the",
        "bathroom",
        ".",
        "john",
        "went",
        "to",
        "the",
    ]
    assert [tokens[i] for i in answers] == ["bathroom", "hallway"]
    assert tokens[answers[0] - 1] == "?"
    # a multi-word answer of task 19 stays one token
    tokens, answers = story_tokens(parse_babi(QA19)[0])
    assert tokens[answers[0]] == "n,w"


@pytest.mark.parametrize(
    "text, message",
    [
        ("Mary moved.\n", "must start with its number"),
        ("1 Mary moved.\n3 John moved.\n", "does not follow"),
        ("1 Where is Mary?\t\t1\n", "question line"),
        ("1 Where is Mary?\tkitchen\tx\n", "supporting facts"),
    ],
)
def test_format_errors_name_the_line(text, message):
    with pytest.raises(BabiFormatError, match=message):
        parse_babi(text, source="f.txt")


def test_catbabi_stream_qa_and_lm_modes():
    stories = parse_babi(QA1)
    vocab_words = sorted({w for s in stories for w in story_tokens(s)[0]})
    index = {w: i for i, w in enumerate([EOS, *vocab_words])}
    inv = {i: w for w, i in index.items()}
    qa = catbabi_stream([(1, stories[0]), (7, stories[1])], index, mode="qa")
    words = [inv[int(i)] for i in qa.inputs] + [inv[int(qa.targets[-1])]]
    assert words[0] == EOS and words[-1] == EOS and words.count(EOS) == 3
    assert " ".join(words[1:8]) == "mary moved to the bathroom . john"
    # targets are the next token; answers are predicted from the '?' position
    assert (qa.targets[:-1] == qa.inputs[1:]).all()
    scored = np.flatnonzero(qa.score_mask)
    assert [inv[int(qa.inputs[i])] for i in scored] == ["?", "?", "?"]
    assert [inv[int(qa.targets[i])] for i in scored] == ["bathroom", "hallway", "office"]
    assert qa.groups[scored].tolist() == [1, 1, 7]
    assert (qa.loss_mask == qa.score_mask).all()
    # the second story starts where the <eos> between the stories is read
    assert inv[int(qa.inputs[qa.boundaries[0]])] == EOS
    lm = catbabi_stream([(1, stories[0]), (7, stories[1])], index, mode="lm")
    assert lm.loss_mask.all() and (lm.score_mask == qa.score_mask).all()


def test_generator_writes_release_names_and_format(tmp_path):
    paths = generate_babi(tmp_path, tasks=[1, 2, 3, 6, 7], n_train=20, n_test=5, seed=3)
    names = sorted(p.name for p in paths)
    assert "qa1_single-supporting-fact_train.txt" in names
    assert "qa7_counting_test.txt" in names and len(names) == 10
    line = re.compile(r"^\d+ [A-Z][^\t]*[.?]( \t[a-z,]+\t[\d ]*)?$")
    for path in paths:
        text = path.read_text()
        assert all(line.match(x) for x in text.splitlines()), path
        assert len(read_babi_file(path)) == (20 if "train" in path.name else 5)
    assert set(TASK_NAMES) == {1, 2, 3, 6, 7}
    assert find_task_files(tmp_path, 6)["test"].name == "qa6_yes-no-questions_test.txt"


def _replay_places(lines: list[str]) -> dict[str, str]:
    places = {}
    for text in lines:
        m = re.match(
            r"(\w+) (?:moved|went|journeyed|travelled|went back) (?:to|back to) the (\w+)\.", text
        )
        if m:
            places[m.group(1)] = m.group(2)
    return places


def test_generated_answers_follow_from_the_story():
    rng = np.random.default_rng(0)
    for _ in range(20):
        lines = generate_story(1, rng)
        for i, text in enumerate(lines):
            if "?" in text:
                person = re.match(r"Where is (\w+)\?", text).group(1)
                answer, support = text.split("\t")[1:]
                assert _replay_places(lines[:i])[person] == answer
                assert answer in lines[int(support) - 1]
        lines = generate_story(6, rng)
        for i, text in enumerate(lines):
            if "?" in text:
                person, place = re.match(r"Is (\w+) in the (\w+)\?", text).groups()
                expected = "yes" if _replay_places(lines[:i])[person] == place else "no"
                assert text.split("\t")[1] == expected


def test_catbabi_data_from_a_folder(tmp_path):
    generate_babi(tmp_path / "babi", tasks=[1, 7], n_train=30, n_test=10)
    data = catbabi_data(tmp_path / "babi", [1, 7], mode="qa", valid_fraction=0.2, seed=1)
    assert data.vocab[0] == EOS and data.group_names == {1: "qa1", 7: "qa7"}
    assert set(np.unique(data.test.groups[data.test.score_mask])) == {1, 7}
    n_answers = {s: int(data.split(s).score_mask.sum()) for s in ("train", "valid", "test")}
    assert n_answers == {"train": 2 * 24 * 5, "valid": 2 * 6 * 5, "test": 2 * 10 * 5}
    with pytest.raises(FileNotFoundError, match="qa2_"):
        catbabi_data(tmp_path / "babi", [2])
