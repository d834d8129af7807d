"""Bad rows in your own task files are errors that name the file and the row, never data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migu.data.files import TaskFileError, load_file_task

GOOD_CSV = 'sentence,label\nthe red one,red\n"blue, with a comma",blue\n'


def _load(tmp_path: Path, train_name: str, train_bytes: bytes, **spec):
    (tmp_path / train_name).write_bytes(train_bytes)
    (tmp_path / "test.csv").write_text(GOOD_CSV)
    return load_file_task("mine", {"train": train_name, "test": "test.csv", **spec}, base_dir=tmp_path)


def test_good_csv_with_a_quoted_comma_loads(tmp_path):
    task = _load(tmp_path, "train.csv", GOOD_CSV.encode())
    assert task.labels == ("blue", "red")
    assert sorted(r["sentence"] for r in task.train) == ["blue, with a comma", "the red one"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "train.csv",
            "sentence,label\na,red\nb\nc,blue\n",
            r"train.csv, line 3: 1 fields where the header has 2",
        ),
        ("train.csv", "sentence,label\na,red,extra\n", r"line 2: 3 fields where the header has 2"),
        (
            "train.csv",
            'sentence,label\na,red\n"never closed,blue\nc,red\nd,blue\n',
            r"line 3: .*never closed",
        ),
        ("train.csv", "sentence,label\na,\n", r"line 2: 'label' is empty"),
        (
            "train.json",
            json.dumps([{"sentence": "a", "label": "red"}, {"sentence": "b", "label": None}]),
            r"train.json, record 2: 'label' is null",
        ),
        ("train.json", json.dumps([{"sentence": None, "label": "red"}]), r"record 1: 'sentence' is null"),
        ("train.json", json.dumps([{"sentence": ["a"], "label": "red"}]), r"record 1: 'sentence' is a list"),
        (
            "train.jsonl",
            "\n".join([json.dumps({"sentence": f"s{i}", "label": "red"}) for i in range(15)])
            + '\n{"sentence": "cut',
            r"train.jsonl, line 16: not valid JSON",
        ),
    ],
)
def test_bad_rows_name_the_file_and_the_row(tmp_path, name, content, message):
    with pytest.raises(TaskFileError, match=message):
        _load(tmp_path, name, content.encode())


def test_label_outside_the_declared_set(tmp_path):
    with pytest.raises(TaskFileError, match=r"line 3: label 'green' is not one of the task's labels"):
        _load(tmp_path, "train.csv", b"sentence,label\na,red\nb,green\n", labels=["red", "blue"])


def test_non_utf8_bytes_name_the_file_line_and_fix(tmp_path):
    latin1 = "sentence,label\ncaf\u00e9,red\n".encode("latin-1")
    with pytest.raises(TaskFileError, match=r"train.csv, line 2: byte 0xe9 .* is not UTF-8.*iconv"):
        _load(tmp_path, "train.csv", latin1)


def test_a_utf8_byte_order_mark_is_not_part_of_the_header(tmp_path):
    task = _load(tmp_path, "train.csv", "\ufeff".encode() + GOOD_CSV.encode())
    assert len(task.train) == 2
