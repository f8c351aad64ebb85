"""The word-LM loader on the real corpora's layouts, from small fixtures written here with their
format quirks: PTB (``ptb.train.txt`` …: a leading space on every line, ``<unk>`` written by the
corpus, numbers as ``N``, lower case) and WikiText-2 (``wiki.train.tokens`` …: `` `` blank lines
between paragraphs, `` = Heading = `` lines, ``@-@``/``@,@`` split marks, non-ASCII words)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fwmrl.config import load_config
from fwmrl.jobs import train_run
from fwmrl.tasks.lm import EOS, UNK, find_lm_files, lm_data

ROOT = Path(__file__).resolve().parents[2]

PTB_TRAIN = (
    " aer banknote berlitz calloway centrust \n"
    " pierre <unk> N years old will join the board as a nonexecutive director nov. N \n"
    "\n"
    " mr. <unk> is chairman of <unk> n.v. the dutch publishing group \n"
)
PTB_VALID = " the board will <unk> N \n the tv set \n"
PTB_TEST = " no it was n't black monday \n"

WIKI_TRAIN = (
    " \n"
    " = Valkyria Chronicles III = \n"
    " \n"
    " Senjō no Valkyria 3 : Unrecorded Chronicles , is a tactical role @-@ playing video game . \n"
    " \n"
    " = = Gameplay = = \n"
    " \n"
    " The game 's battle system , the <unk> , is carried over . It costs 1 @,@ 000 points . \n"
)
WIKI_VALID = " \n = Homarus gammarus = \n \n Homarus gammarus is a large crustacean . \n"
WIKI_TEST = " \n = Robert Boulter = \n"


def _write(folder: Path, names: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in names.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _words(data, split: str) -> list[str]:
    stream = data.split(split)
    return [data.vocab[i] for i in stream.inputs] + [data.vocab[stream.targets[-1]]]


def test_ptb_layout(tmp_path):
    folder = _write(
        tmp_path / "simple-examples/data",
        {"ptb.train.txt": PTB_TRAIN, "ptb.valid.txt": PTB_VALID, "ptb.test.txt": PTB_TEST},
    )
    data = lm_data(folder)
    assert [p.name for p in data.files] == ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"]
    # 5 + 15 + 0 + 11 words and an <eos> per line (the blank line too)
    assert len(data.train) + 1 == 35 and _words(data, "train").count(EOS) == 4
    assert data.vocab[:4] == [EOS, UNK, "N", "the"]  # N (twice), the (twice), then the rest
    assert len(data.vocab) == 28  # 26 distinct training words besides <unk>, and the 2 specials
    train = _words(data, "train")
    assert train[:6] == ["aer", "banknote", "berlitz", "calloway", "centrust", EOS]
    assert train.count(UNK) == 3 and train.count("N") == 2 and "nov." in train
    assert _words(data, "valid") == ["the", "board", "will", UNK, "N", EOS, "the", UNK, UNK, EOS]
    assert _words(data, "test") == [UNK] * 6 + [EOS]  # no test word is a training word
    assert all(w == w.strip() and w for w in data.vocab)  # leading spaces never make tokens


def test_wikitext_layout(tmp_path):
    folder = _write(
        tmp_path / "wikitext-2",
        {
            "wiki.train.tokens": WIKI_TRAIN,
            "wiki.valid.tokens": WIKI_VALID,
            "wiki.test.tokens": WIKI_TEST,
        },
    )
    data = lm_data(folder)
    train = _words(data, "train")
    # 4 blank lines + heading (4 words) + 17 words + heading (5) + 20 words, an <eos> per line
    assert len(train) == 55 and train.count(EOS) == 8
    assert train[:3] == [EOS, "=", "Valkyria"] and train[7] == EOS  # " " line, then the heading
    assert {"@-@", "@,@", "Senjō", "'s", "The", "the"} <= set(data.vocab)
    # by count: = (6), "," and "." (3), then Chronicles, Valkyria, game, is (2); ties by code point
    assert data.vocab[:5] == [EOS, UNK, "=", ",", "."]
    assert data.vocab[5:9] == ["Chronicles", "Valkyria", "game", "is"]
    assert len(data.vocab) == 35  # 4 + 15 + 1 + 13 new words of the four text lines, 2 specials
    valid = _words(data, "valid")
    assert valid == [EOS, "=", UNK, UNK, "=", EOS, EOS, UNK, UNK, "is", "a", UNK, UNK, ".", EOS]
    assert _words(data, "test") == [EOS, "=", UNK, UNK, "=", EOS]


def test_layout_errors_name_the_folder_and_the_names(tmp_path):
    both = _write(
        tmp_path / "both",
        {f"ptb.{s}.txt": PTB_TRAIN for s in ("train", "valid", "test")}
        | {f"{s}.txt": PTB_TRAIN for s in ("train", "valid", "test")},
    )
    with pytest.raises(ValueError, match="several layouts \\(generated, ptb\\)"):
        find_lm_files(both)
    partial = _write(tmp_path / "partial", {"wiki.train.tokens": WIKI_TRAIN})
    with pytest.raises(
        FileNotFoundError, match="partial holds no complete corpus.*wiki.valid.tokens"
    ):
        lm_data(partial)


def test_training_on_a_ptb_folder_records_it(tmp_path):
    folder = _write(
        tmp_path / "ptb",
        {"ptb.train.txt": PTB_TRAIN * 4, "ptb.valid.txt": PTB_VALID, "ptb.test.txt": PTB_TEST},
    )
    overrides = [
        f"task.data={folder}",
        "task.batch_size=2",
        "task.eval_batch_size=2",
        "task.seq_len=5",
        "task.embedding_size=8",
        "core.hidden_size=8",
        "train.total_steps=4",
        "train.eval_every=2",
        "train.progress=false",
        "train.plot_at_end=false",
        "logging.tensorboard=false",
    ]
    run = tmp_path / "run"
    summary = train_run(load_config(ROOT / "configs/lm_lstm.yaml", overrides), run)
    assert summary["update"] == 4 and summary["eval"]["test"]["perplexity"] > 1
    record = json.loads((run / "data.json").read_text())
    assert record["kind"] == "lm" and record["generated"] is False
    assert [f["name"] for f in record["files"]] == [
        "ptb.train.txt",
        "ptb.valid.txt",
        "ptb.test.txt",
    ]
    assert record["files"][0]["bytes"] == len((PTB_TRAIN * 4).encode())
