"""Tests for migu.data.task: the Task record and the paper's prompt format."""

from __future__ import annotations

import pytest

from migu.data import packaged
from migu.data.packaged import TextTask
from migu.data.task import TASK_TYPES_WITHOUT_OPTIONS, Task, format_prompt

TC_INSTRUCTION = "What is the topic of the following paragraph? Choose one from the option.\n"


def _task(**overrides) -> Task:
    fields = {
        "name": "dbpedia",
        "labels": ("Company", "Artist", "Film"),
        "train": [{"sentence": "s1", "label": "Company"}],
        "test": [{"sentence": "s2", "label": "Film"}],
        "instruction": TC_INSTRUCTION,
        "task_type": "TC",
    }
    fields.update(overrides)
    return Task(**fields)


def test_prompt_matches_official_format_exactly() -> None:
    # Written out by hand from O-LoRA's src/uie_dataset_lora.py (load_TC_dataset) and
    # src/uie_collator.py (get_instruction with add_task_name / add_dataset_name): note the space
    # before the newline that closes the option line and no space after "Answer:".
    expected = (
        "Task:TC\n"
        "Dataset:dbpedia\n"
        "What is the topic of the following paragraph? Choose one from the option.\n"
        "Option: Company, Artist, Film \n"
        "Title: Foo\nText: Foo Ltd is a firm.\n"
        "Answer:"
    )
    assert format_prompt(_task(), "Title: Foo\nText: Foo Ltd is a firm.") == expected


def test_prompt_adds_missing_newline_after_instruction() -> None:
    task = _task(instruction="Classify the sentiment.", task_type="SC", labels=("negative", "positive"))
    assert format_prompt(task, "great film") == (
        "Task:SC\nDataset:dbpedia\nClassify the sentiment.\nOption: negative, positive \ngreat film\nAnswer:"
    )


def test_prompt_with_empty_instruction_has_no_blank_line() -> None:
    assert (
        format_prompt(_task(instruction=""), "x")
        == "Task:TC\nDataset:dbpedia\nOption: Company, Artist, Film \nx\nAnswer:"
    )


def test_copa_prompt_has_no_option_line() -> None:
    # O-LoRA's load_COPA_dataset: instruction = "{0}" + "\nAnswer:" (no instruction, no options).
    assert "COPA" in TASK_TYPES_WITHOUT_OPTIONS
    task = _task(name="copa", labels=("A", "B"), instruction="", task_type="COPA")
    sentence = 'Which sentence is the cause of "X."? Choose one between A and B.\nA: a\nB: b'
    assert format_prompt(task, sentence) == f"Task:COPA\nDataset:copa\n{sentence}\nAnswer:"


def test_prompt_dataset_name_override_and_verbatim_sentence() -> None:
    task = _task(name="sst2", task_type="SC", labels=("Good", "Bad"))
    prompt = format_prompt(task, "a {0} b {}", dataset_name="SST-2")
    assert prompt.startswith("Task:SC\nDataset:SST-2\n")
    # Braces are kept as they are (the official collator's str.format would choke on them).
    assert prompt.endswith("\na {0} b {}\nAnswer:")


def test_task_defaults_and_label_tuple() -> None:
    task = Task(name="t", labels=["b", "a"], train=[], test=[], instruction="i")
    assert task.labels == ("b", "a") and isinstance(task.labels, tuple)
    assert task.source == "" and task.task_type == "TC"
    with pytest.raises(AttributeError):  # frozen
        task.name = "u"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "name"),
        ({"task_type": ""}, "task_type"),
        ({"labels": ()}, "labels"),
        ({"labels": ("a", "")}, "labels"),
        ({"labels": ("a", "a")}, "duplicate"),
        ({"instruction": None}, "instruction"),
    ],
)
def test_task_rejects_bad_fields(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _task(**overrides)


def test_text_task_is_task_and_packaged_task_types() -> None:
    assert TextTask is Task
    types = {name: spec.task_type for name, spec in packaged._SPECS.items()}
    assert types == {
        "rotten_tomatoes": "SC",
        "tweet_sentiment": "SC",
        "subjectivity": "TC",
        "news_outlet": "TC",
        "health_tweets": "TC",
    }
