"""Tests for migu.data.cl_benchmark: the O-LoRA CL_Benchmark folder loader.

Error handling and sampling run on small fake folders built in tmp_path. The tests on the real
folder (../shared/data/cl_benchmark, located with default_cl_benchmark_dir) skip where it is absent.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from migu.data import cl_benchmark
from migu.data.cl_benchmark import (
    CL_BENCHMARK_ENV_VAR,
    CL_BENCHMARK_TASK_TYPES,
    OLORA_DATASET_NAMES,
    BenchmarkDataError,
    available_cl_benchmark_tasks,
    default_cl_benchmark_dir,
    load_cl_benchmark_task,
)
from migu.data.task import format_prompt

INSTRUCTIONS = {
    "TC": [
        {"instruction_type": "zero-shot", "instruction": "What is the topic? Choose one from the option.\n"}
    ],
    "SC": [
        {
            "instruction_type": "zero-shot",
            "instruction": "What is the sentiment? Choose one from the option.\n",
        }
    ],
}
# Uneven classes, so that balancing has something to do: a 10, b 6, c 2 training records.
TRAIN_COUNTS = {"a": 10, "b": 6, "c": 2}
TEST_COUNTS = {"a": 4, "b": 4, "c": 1}


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _records(counts: dict[str, int], prefix: str) -> list[dict[str, str]]:
    return [
        {"label": label, "sentence": f"{prefix} {label} {i}"} for label, n in counts.items() for i in range(n)
    ]


def _make_task(root: Path, name: str, labels: list[str], train: list, test: list) -> None:
    _write(root / name / "labels.json", labels)
    _write(root / name / "train.json", train)
    _write(root / name / "test.json", test)


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A small CL_Benchmark folder: dbpedia (TC, 3 uneven classes), sst2 (SC), copa (no instruction)."""
    root = tmp_path / "cl_benchmark"
    _write(root / "instruction_config.json", INSTRUCTIONS)
    _make_task(
        root, "dbpedia", ["a", "b", "c"], _records(TRAIN_COUNTS, "train"), _records(TEST_COUNTS, "test")
    )
    _make_task(
        root,
        "sst2",
        ["Good", "Bad"],
        _records({"Good": 3, "Bad": 3}, "tr"),
        _records({"Good": 1, "Bad": 1}, "te"),
    )
    _make_task(root, "copa", ["A", "B"], _records({"A": 2, "B": 2}, "tr"), _records({"A": 1, "B": 1}, "te"))
    (root / "not_a_task").mkdir()  # no labels.json: not listed
    (root / "README.txt").write_text("x")
    return root


def _labels(records: list[dict[str, str]]) -> Counter:
    return Counter(record["label"] for record in records)


# ---------------------------------------------------------------------------------------------------
# Loading and sampling (fake folder)
# ---------------------------------------------------------------------------------------------------


def test_load_full_task(fake_root: Path) -> None:
    task = load_cl_benchmark_task("dbpedia", fake_root)
    assert task.name == "dbpedia" and task.task_type == "TC"
    assert task.labels == ("a", "b", "c")
    assert task.instruction == INSTRUCTIONS["TC"][0]["instruction"]
    assert str(fake_root / "dbpedia") in task.source
    assert _labels(task.train) == Counter(TRAIN_COUNTS)
    assert _labels(task.test) == Counter(TEST_COUNTS)
    assert sorted(r["sentence"] for r in task.train) == sorted(
        r["sentence"] for r in _records(TRAIN_COUNTS, "train")
    )
    assert all(set(record) == {"sentence", "label"} for record in task.train + task.test)


def test_order_is_seeded_shuffle(fake_root: Path) -> None:
    first = load_cl_benchmark_task("dbpedia", fake_root, seed=0)
    again = load_cl_benchmark_task("dbpedia", fake_root, seed=0)
    other = load_cl_benchmark_task("dbpedia", fake_root, seed=1)
    assert first.train == again.train and first.test == again.test
    assert first.train != other.train  # 18! orders: a collision is practically impossible
    assert first.test == other.test  # the test sample does not depend on the seed
    assert first.train != _records(TRAIN_COUNTS, "train")  # not file order


def test_max_train_per_class(fake_root: Path) -> None:
    task = load_cl_benchmark_task("dbpedia", fake_root, max_train_per_class=3)
    assert _labels(task.train) == Counter({"a": 3, "b": 3, "c": 2})  # c has only 2
    assert _labels(task.test) == Counter(TEST_COUNTS)  # the test split is untouched


def test_max_train_is_class_balanced(fake_root: Path) -> None:
    assert _labels(load_cl_benchmark_task("dbpedia", fake_root, max_train=6).train) == Counter(a=2, b=2, c=2)
    # 9 records: a,b,c | a,b,c | c is out after 2 | a,b | a -> 4, 3, 2 (labels in labels.json order).
    assert _labels(load_cl_benchmark_task("dbpedia", fake_root, max_train=9).train) == Counter(a=4, b=3, c=2)
    # 12 records: round-robin a,b,c | a,b,c | then c is out, a and b share the rest -> 5, 5, 2.
    assert _labels(load_cl_benchmark_task("dbpedia", fake_root, max_train=12).train) == Counter(a=5, b=5, c=2)
    # Both caps: per class first (4, 4, 2), then the total (10 = all of them).
    both = load_cl_benchmark_task("dbpedia", fake_root, max_train_per_class=4, max_train=10)
    assert _labels(both.train) == Counter(a=4, b=4, c=2)
    assert _labels(load_cl_benchmark_task("dbpedia", fake_root, max_test=3).test) == Counter(a=1, b=1, c=1)
    assert load_cl_benchmark_task("dbpedia", fake_root, max_train=0).train == []


def test_test_sample_is_the_same_for_every_seed(fake_root: Path) -> None:
    tasks = [load_cl_benchmark_task("dbpedia", fake_root, max_train=3, max_test=4, seed=s) for s in range(6)]
    assert all(t.test == tasks[0].test for t in tasks)  # same items, same order
    assert len({tuple(r["sentence"] for r in t.train) for t in tasks}) > 1  # training samples differ
    uncapped = [load_cl_benchmark_task("dbpedia", fake_root, seed=s).test for s in (0, 1)]
    assert uncapped[0] == uncapped[1]


def test_seed_changes_the_sample(fake_root: Path) -> None:
    samples = {
        frozenset(
            r["sentence"] for r in load_cl_benchmark_task("dbpedia", fake_root, max_train=3, seed=s).train
        )
        for s in range(10)
    }
    assert len(samples) > 1


@pytest.mark.parametrize("cap", ["max_train", "max_train_per_class", "max_test"])
@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_bad_caps(fake_root: Path, cap: str, value: object) -> None:
    with pytest.raises(ValueError, match=cap):
        load_cl_benchmark_task("dbpedia", fake_root, **{cap: value})


def test_olora_spelling_and_sc_instruction(fake_root: Path) -> None:
    task = load_cl_benchmark_task("SST-2", fake_root)
    assert task.name == "sst2" and task.task_type == "SC"
    assert task.instruction == INSTRUCTIONS["SC"][0]["instruction"]
    assert OLORA_DATASET_NAMES["sst2"] == "SST-2"


def test_copa_has_no_instruction(fake_root: Path) -> None:
    task = load_cl_benchmark_task("copa", fake_root)
    assert task.task_type == "COPA" and task.instruction == ""
    assert format_prompt(task, "Q?\nA: x\nB: y") == "Task:COPA\nDataset:copa\nQ?\nA: x\nB: y\nAnswer:"


def test_user_task_needs_task_type(fake_root: Path) -> None:
    _make_task(fake_root, "mytask", ["x", "y"], _records({"x": 1, "y": 1}, "tr"), _records({"x": 1}, "te"))
    with pytest.raises(ValueError, match="task_type"):
        load_cl_benchmark_task("mytask", fake_root)
    task = load_cl_benchmark_task("mytask", fake_root, task_type="SC")
    assert task.task_type == "SC" and task.instruction == INSTRUCTIONS["SC"][0]["instruction"]


def test_available_tasks(fake_root: Path) -> None:
    assert available_cl_benchmark_tasks(fake_root) == ["copa", "dbpedia", "sst2"]


def test_no_gold_label_records_are_dropped(fake_root: Path) -> None:
    test = _records(TEST_COUNTS, "test") + [{"label": "-", "sentence": "no agreement"}] * 2
    _write(fake_root / "dbpedia" / "test.json", test)
    task = load_cl_benchmark_task("dbpedia", fake_root)
    assert _labels(task.test) == Counter(TEST_COUNTS)
    assert "2 test records without a gold label dropped" in task.source


def test_edited_file_is_reread(fake_root: Path) -> None:
    path = fake_root / "dbpedia" / "test.json"
    assert len(load_cl_benchmark_task("dbpedia", fake_root).test) == 9
    _write(path, _records({"a": 1}, "new"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new mtime even on coarse clocks
    assert load_cl_benchmark_task("dbpedia", fake_root).test == [{"sentence": "new a 0", "label": "a"}]


# ---------------------------------------------------------------------------------------------------
# Errors (fake folder)
# ---------------------------------------------------------------------------------------------------


def test_missing_root_names_where_it_looked(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(BenchmarkDataError, match=CL_BENCHMARK_ENV_VAR) as info:
        load_cl_benchmark_task("dbpedia", missing)
    assert str(missing) in str(info.value) and "root" in str(info.value)
    with pytest.raises(BenchmarkDataError, match="not found"):
        available_cl_benchmark_tasks(missing)


def test_missing_env_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CL_BENCHMARK_ENV_VAR, str(tmp_path / "typo"))
    with pytest.raises(BenchmarkDataError, match=rf"\${CL_BENCHMARK_ENV_VAR}.*typo"):
        load_cl_benchmark_task("dbpedia")


def test_env_var_is_used(fake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CL_BENCHMARK_ENV_VAR, str(fake_root))
    assert default_cl_benchmark_dir() == fake_root
    assert load_cl_benchmark_task("dbpedia").labels == ("a", "b", "c")


def test_default_dir_candidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CL_BENCHMARK_ENV_VAR, raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    from_cwd = (tmp_path / "shared" / "data" / "cl_benchmark").resolve()
    from_package = (
        Path(cl_benchmark.__file__).resolve().parents[3] / ".." / "shared" / "data" / "cl_benchmark"
    ).resolve()
    # Nothing next to the working directory: the package-relative folder if it exists, else the
    # working-directory candidate.
    assert default_cl_benchmark_dir() == (from_package if from_package.is_dir() else from_cwd)
    from_cwd.mkdir(parents=True)
    assert default_cl_benchmark_dir() == from_cwd  # the working directory comes first


def test_unknown_task_lists_available(fake_root: Path) -> None:
    with pytest.raises(BenchmarkDataError, match="copa, dbpedia, sst2"):
        load_cl_benchmark_task("agnews", fake_root)
    with pytest.raises(BenchmarkDataError, match="plain folder name"):
        load_cl_benchmark_task("../cl_benchmark/dbpedia", fake_root)


@pytest.mark.parametrize("split", ["train", "test", "labels"])
def test_missing_file(fake_root: Path, split: str) -> None:
    path = fake_root / "dbpedia" / f"{split}.json"
    path.unlink()
    with pytest.raises(BenchmarkDataError, match="Missing") as info:
        load_cl_benchmark_task("dbpedia", fake_root)
    assert str(path) in str(info.value)


def test_malformed_json(fake_root: Path) -> None:
    path = fake_root / "dbpedia" / "train.json"
    path.write_text('[{"label": "a", "sentence": ', encoding="utf-8")
    with pytest.raises(BenchmarkDataError, match="not valid JSON") as info:
        load_cl_benchmark_task("dbpedia", fake_root)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"label": "a", "sentence": "x"}, "must hold a list of records"),
        (["just a string"], "record 1: expected an object"),
        ([{"label": "a"}], "no 'sentence'"),
        ([{"sentence": "x"}], "no 'label'"),
        ([{"sentence": "x", "label": 3}], "non-string 'label'"),
        ([{"sentence": "x", "label": "zzz"}], "'zzz' is not in"),
        ([], "no usable records"),
        ([{"sentence": "x", "label": "-"}], "without a gold label"),
    ],
)
def test_bad_split_content(fake_root: Path, content: object, message: str) -> None:
    path = fake_root / "dbpedia" / "test.json"
    _write(path, content)
    with pytest.raises(BenchmarkDataError, match=message) as info:
        load_cl_benchmark_task("dbpedia", fake_root)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("labels", [[], ["a", "a"], "abc", ["a", 1]])
def test_bad_labels_file(fake_root: Path, labels: object) -> None:
    _write(fake_root / "dbpedia" / "labels.json", labels)
    with pytest.raises(BenchmarkDataError, match="labels.json"):
        load_cl_benchmark_task("dbpedia", fake_root)


def test_instruction_config_errors(fake_root: Path) -> None:
    config = fake_root / "instruction_config.json"
    _write(config, {"SC": INSTRUCTIONS["SC"]})
    with pytest.raises(BenchmarkDataError, match="no instruction for task type 'TC'"):
        load_cl_benchmark_task("dbpedia", fake_root)
    _write(config, {"TC": [{"instruction_type": "few-shot", "instruction": "x"}]})
    with pytest.raises(BenchmarkDataError, match="zero-shot"):
        load_cl_benchmark_task("dbpedia", fake_root)
    config.unlink()
    with pytest.raises(BenchmarkDataError, match="instruction_config.json") as info:
        load_cl_benchmark_task("dbpedia", fake_root)
    assert str(config) in str(info.value)


def test_error_is_value_error() -> None:
    assert issubclass(BenchmarkDataError, ValueError)


# ---------------------------------------------------------------------------------------------------
# The real folder
# ---------------------------------------------------------------------------------------------------

# From the folder's PROVENANCE.md; MNLI's test split loses its 131 records labelled "-".
REAL_SIZES = {
    "agnews": (4000, 7600),
    "dbpedia": (2800, 7600),
    "yahoo": (2000, 1918),
    "amazon": (5000, 7600),
    "yelp": (4000, 1000),
    "imdb": (1500, 500),
    "sst2": (2000, 872),
    "mnli": (3000, 7600 - 131),
    "cb": (250, 56),
    "rte": (2000, 277),
    "qqp": (2000, 7600),
    "boolq": (2000, 3270),
    "copa": (400, 100),
    "multirc": (1500, 500),
    "wic": (2000, 638),
}


@pytest.fixture(scope="module")
def real_root() -> Path:
    root = default_cl_benchmark_dir()
    if not root.is_dir():
        pytest.skip(
            f"the paper's CL_Benchmark data is not at {root} (it lives in ../shared/data/cl_benchmark "
            f"next to the repository, or where ${CL_BENCHMARK_ENV_VAR} points)"
        )
    return root


def test_real_folder_has_the_15_tasks(real_root: Path) -> None:
    assert available_cl_benchmark_tasks(real_root) == sorted(CL_BENCHMARK_TASK_TYPES)
    assert set(REAL_SIZES) == set(CL_BENCHMARK_TASK_TYPES) == set(OLORA_DATASET_NAMES)


@pytest.mark.parametrize("name", sorted(REAL_SIZES))
def test_real_task_loads(real_root: Path, name: str) -> None:
    task = load_cl_benchmark_task(name, real_root)
    assert (len(task.train), len(task.test)) == REAL_SIZES[name]
    assert task.task_type == CL_BENCHMARK_TASK_TYPES[name]
    config = json.loads((real_root / "instruction_config.json").read_text(encoding="utf-8"))
    expected = "" if name == "copa" else config[task.task_type][0]["instruction"]
    assert task.instruction == expected
    assert {r["label"] for r in task.train + task.test} <= set(task.labels)
    prompt = format_prompt(task, task.test[0]["sentence"])
    assert prompt.startswith(f"Task:{task.task_type}\nDataset:{name}\n") and prompt.endswith("\nAnswer:")


def test_real_dbpedia_prompt(real_root: Path) -> None:
    task = load_cl_benchmark_task("dbpedia", real_root, max_train_per_class=1000, max_test=14)
    assert _labels(task.train) == Counter({label: 200 for label in task.labels})  # 200 per class on disk
    assert _labels(task.test) == Counter({label: 1 for label in task.labels})
    sentence = task.test[0]["sentence"]
    assert format_prompt(task, sentence) == (
        "Task:TC\nDataset:dbpedia\n"
        "What is the topic of the following paragraph? Choose one from the option.\n"
        "Option: Company, Educational Institution, Artist, Athlete, Office Holder, Mean of Transportation, "
        "Building, Natural Place, Village, Animal, Plant, Album, Film, Written Work \n"
        f"{sentence}\nAnswer:"
    )
