"""Tests for migu.data.hub: the paper's tasks by Hugging Face dataset name (data.source=hub).

Nothing is downloaded: every load points the task's override at small local files written in
tmp_path in the Hub datasets' row format (their real column names). The checks against the real
CL_Benchmark folder (../shared/data/cl_benchmark) skip where it is absent.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from pathlib import Path

import pytest
from tiny_runs import save_tiny_model, tiny_config

from migu.data.cl_benchmark import CL_BENCHMARK_ENV_VAR, CL_BENCHMARK_TASK_TYPES, default_cl_benchmark_dir
from migu.data.hub import (
    HUB_TASKS,
    PAPER_INSTRUCTIONS,
    TASK_LABELS,
    HubDataError,
    hub_task_spec,
    load_hub_task,
)
from migu.data.task import format_prompt
from migu.engine.config import ConfigError, run_config_from_dict


@pytest.fixture(autouse=True)
def _datasets_cache_in_tmp(tmp_path, monkeypatch):
    """Keep the Arrow cache that datasets writes for local files out of the home folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _copa_rows(n: int) -> list[dict]:
    return [
        {
            "premise": f"The man broke his toe {i}.",
            "choice1": "He dropped a hammer on his foot.",
            "choice2": "He got a hole in his sock.",
            "question": "cause" if i % 2 else "effect",
            "idx": i,
            "label": i % 2,
        }
        for i in range(n)
    ]


def _mnli_rows(per_class: int, prefix: str) -> list[dict]:
    # label ids of nyu-mll/glue mnli: 0 entailment, 1 neutral, 2 contradiction
    return [
        {
            "premise": f"{prefix} premise {label} {i}",
            "hypothesis": f"hypothesis {i}",
            "label": label,
            "idx": i,
        }
        for label in (0, 1, 2)
        for i in range(per_class)
    ]


def _mnli_override(tmp_path: Path, train_per_class: int = 10, test_per_class: int = 2) -> dict:
    return {
        "path": "json",
        "data_files": {
            "train": str(_jsonl(tmp_path / "mnli" / "train.jsonl", _mnli_rows(train_per_class, "train"))),
            "validation_matched": str(
                _jsonl(tmp_path / "mnli" / "dev.jsonl", _mnli_rows(test_per_class, "dev"))
            ),
        },
    }


# ---------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------


def test_table_covers_the_papers_15_tasks_with_complete_label_maps() -> None:
    assert set(HUB_TASKS) == set(CL_BENCHMARK_TASK_TYPES) == set(TASK_LABELS)
    for name, spec in HUB_TASKS.items():
        # every CL_Benchmark label is reachable from exactly one dataset label value
        assert sorted(spec.labels.values()) == sorted(TASK_LABELS[name]), name
        assert spec.label_column in spec.columns()
        assert hub_task_spec(name) == spec
    assert set(PAPER_INSTRUCTIONS) == set(CL_BENCHMARK_TASK_TYPES.values())


@pytest.fixture(scope="module")
def real_root() -> Path:
    root = default_cl_benchmark_dir()
    if not root.is_dir():
        pytest.skip(
            f"the paper's CL_Benchmark data is not at {root} (it lives in ../shared/data/cl_benchmark "
            f"next to the repository, or where ${CL_BENCHMARK_ENV_VAR} points)"
        )
    return root


def test_embedded_labels_and_instructions_equal_the_cl_benchmark_files(real_root: Path) -> None:
    for name in HUB_TASKS:
        assert json.loads((real_root / name / "labels.json").read_text()) == list(TASK_LABELS[name]), name
    config = json.loads((real_root / "instruction_config.json").read_text())
    for task_type, instruction in PAPER_INSTRUCTIONS.items():
        if task_type == "COPA":
            assert task_type not in config and instruction == ""
        else:
            assert config[task_type][0]["instruction"] == instruction, task_type


def _template_regex(template: str) -> re.Pattern[str]:
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(f"(?P<{field}>.*?)")
    return re.compile("".join(parts), re.DOTALL)


def _cl_records(root: Path, name: str, split: str) -> list[dict[str, str]]:
    records = json.loads((root / name / f"{split}.json").read_text(encoding="utf-8"))
    return [r for r in records if r["label"] != "-"]  # MNLI's no-gold-label test records


# agnews: the default source (fancyzhx/ag_news) has title and description joined in one column, so
# only a copy with both columns gives the CL_Benchmark format (tested with an override below).
TEMPLATE_TASKS = sorted(set(HUB_TASKS) - {"agnews"})


@pytest.mark.parametrize("name", TEMPLATE_TASKS)
def test_every_cl_benchmark_sentence_has_the_shape_of_the_template(real_root: Path, name: str) -> None:
    pattern = _template_regex(HUB_TASKS[name].template)
    for split in ("train", "test"):
        misfits = [
            r["sentence"][:80]
            for r in _cl_records(real_root, name, split)
            if not pattern.fullmatch(r["sentence"])
        ]
        assert not misfits, (name, split, len(misfits), misfits[:3])


@pytest.mark.parametrize("name", TEMPLATE_TASKS)
def test_real_records_round_trip_through_hub_rows(real_root: Path, name: str, tmp_path: Path) -> None:
    """CL_Benchmark records -> rows in the Hub dataset's columns -> load_hub_task -> the same records,
    and the same prompts as the CL_Benchmark loader gives."""
    from migu.data.cl_benchmark import load_cl_benchmark_task

    spec = HUB_TASKS[name]
    pattern = _template_regex(spec.template)
    value_of = {text: value for value, text in spec.labels.items()}
    files, originals = {}, {}
    for role, split in (("train", spec.train_split), ("test", spec.test_split)):
        records = _cl_records(real_root, name, role)[:6]
        rows = [
            {**pattern.fullmatch(r["sentence"]).groupdict(), spec.label_column: value_of[r["label"]]}
            for r in records
        ]
        files[split] = str(_jsonl(tmp_path / f"{split}.jsonl", rows))
        originals[role] = sorted((r["sentence"], r["label"]) for r in records)
    task = load_hub_task(name, {"data_files": files})
    assert sorted((r["sentence"], r["label"]) for r in task.train) == originals["train"]
    assert sorted((r["sentence"], r["label"]) for r in task.test) == originals["test"]
    twin = load_cl_benchmark_task(name, real_root)
    assert (task.name, task.labels, task.instruction, task.task_type) == (
        twin.name,
        twin.labels,
        twin.instruction,
        twin.task_type,
    )
    sentence = task.train[0]["sentence"]
    assert format_prompt(task, sentence) == format_prompt(twin, sentence)


# ---------------------------------------------------------------------------------------------------
# Loading local copies in the Hub row format
# ---------------------------------------------------------------------------------------------------


def test_copa_from_a_local_folder_gives_the_cl_benchmark_format(tmp_path: Path) -> None:
    folder = tmp_path / "super_glue_copa"
    _jsonl(folder / "train.jsonl", _copa_rows(4))
    _jsonl(folder / "validation.jsonl", _copa_rows(2))
    # relative to base_dir, as data.data_dir makes it
    task = load_hub_task("copa", {"path": "super_glue_copa"}, base_dir=tmp_path)
    assert (task.name, task.labels, task.task_type, task.instruction) == ("copa", ("A", "B"), "COPA", "")
    assert len(task.train) == 4 and len(task.test) == 2
    expected = {
        "sentence": 'Which sentence is the cause of "The man broke his toe 1."? Choose one between A and B.\n'
        "A: He dropped a hammer on his foot.\nB: He got a hole in his sock.",
        "label": "B",
    }
    assert expected in task.train
    assert {"sentence", "label"} == set(task.test[0])
    assert (
        format_prompt(task, expected["sentence"])
        == f"Task:COPA\nDataset:copa\n{expected['sentence']}\nAnswer:"
    )
    assert "super_glue_copa" in task.source and "test=validation" in task.source


def test_dbpedia_from_parquet_files_and_mnli_label_ids(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split, n in (("train", 3), ("test", 2)):
        table = pa.table(
            {
                "label": list(range(n)),
                "title": [f"Title {i}" for i in range(n)],
                "content": [f" Content {i}." for i in range(n)],  # dbpedia_14's content starts with a space
            }
        )
        pq.write_table(table, tmp_path / f"db_{split}.parquet")
    # data_files without path: the parquet builder from the suffix
    task = load_hub_task(
        "dbpedia", {"data_files": {"train": "db_train.parquet", "test": "db_test.parquet"}}, base_dir=tmp_path
    )
    assert sorted((r["sentence"], r["label"]) for r in task.train) == [
        ("Title: Title 0\nText:  Content 0.\n", "Company"),
        ("Title: Title 1\nText:  Content 1.\n", "Educational Institution"),
        ("Title: Title 2\nText:  Content 2.\n", "Artist"),
    ]
    assert task.instruction == PAPER_INSTRUCTIONS["TC"] and task.task_type == "TC"

    mnli = load_hub_task("mnli", _mnli_override(tmp_path, 1, 1))
    by_premise = {r["sentence"].split("\n")[0]: r["label"] for r in mnli.train}
    assert by_premise == {
        "sentence 1: train premise 0 0": "entailment",
        "sentence 1: train premise 1 0": "neutral",
        "sentence 1: train premise 2 0": "contradiction",
    }
    assert mnli.labels == ("neutral", "entailment", "contradiction")  # labels.json order, not the id order


def test_agnews_copy_with_title_and_description_gets_the_exact_format(tmp_path: Path) -> None:
    """Zhang et al.'s CSV (label 1-4, title, description), with a header row, through template and labels."""
    header = "label,title,description\n"
    (tmp_path / "ag").mkdir()
    (tmp_path / "ag" / "train.csv").write_text(
        header + '3,"Oil up","Prices rose, again."\n4,"New chip","Intel said."\n'
    )
    (tmp_path / "ag" / "test.csv").write_text(header + '1,"Vote","Polls open."\n')
    task = load_hub_task(
        "agnews",
        {
            "path": "ag",
            "template": "Title: {title}\nText: {description}\n",
            "labels": {1: "World", 2: "Sports", 3: "Business", 4: "Science or Technology"},
        },
        base_dir=tmp_path,
    )
    assert sorted((r["sentence"], r["label"]) for r in task.train) == [
        ("Title: New chip\nText: Intel said.\n", "Science or Technology"),
        ("Title: Oil up\nText: Prices rose, again.\n", "Business"),
    ]
    assert task.test == [{"sentence": "Title: Vote\nText: Polls open.\n", "label": "World"}]


def test_caps_sample_per_class_and_are_seeded(tmp_path: Path) -> None:
    override = _mnli_override(tmp_path, train_per_class=10, test_per_class=4)
    full = load_hub_task("mnli", override)
    assert len(full.train) == 30 and len(full.test) == 12
    per_class = load_hub_task("mnli", override, max_train_per_class=2)
    assert Counter(r["label"] for r in per_class.train) == {"neutral": 2, "entailment": 2, "contradiction": 2}
    capped = load_hub_task("mnli", override, max_train=4, max_test=3)
    assert sorted(Counter(r["label"] for r in capped.train).values()) == [1, 1, 2]
    assert Counter(r["label"] for r in capped.test) == {"neutral": 1, "entailment": 1, "contradiction": 1}
    assert load_hub_task("mnli", override, max_train=4, max_test=3) == capped
    other = load_hub_task("mnli", override, max_train=4, max_test=3, seed=1)
    assert other.train != capped.train
    assert other.test == capped.test  # the test sample does not depend on the seed
    with pytest.raises(ValueError, match="max_train"):
        load_hub_task("mnli", override, max_train=-1)


# ---------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------


def test_no_network_names_the_fix(monkeypatch) -> None:
    import datasets

    if not datasets.config.HF_HUB_OFFLINE:
        # Never touch the network in tests: fail the way an unreachable Hub does.
        def unreachable(path, *args, **kwargs):
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)")

        monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(HubDataError, match=r"network is absent.*data\.hub\.copa\.path") as err:
        load_hub_task("copa")
    assert "'aps/super_glue' (config 'copa')" in str(err.value)


def test_missing_folder_column_split_and_bad_labels_are_named(tmp_path: Path) -> None:
    with pytest.raises(HubDataError, match="does not exist"):
        load_hub_task("copa", {"path": str(tmp_path / "nowhere")})
    with pytest.raises(HubDataError, match=r"data file .*train\.jsonl does not exist"):
        load_hub_task(
            "copa", {"data_files": {"train": "train.jsonl", "validation": "v.jsonl"}}, base_dir=tmp_path
        )

    folder = tmp_path / "copa"
    rows = _copa_rows(4)
    no_choice2 = [{k: v for k, v in r.items() if k != "choice2"} for r in rows]
    _jsonl(folder / "train.jsonl", no_choice2)
    _jsonl(folder / "validation.jsonl", no_choice2)
    with pytest.raises(HubDataError, match=r"'copa', train split, row 0: no column 'choice2'"):
        load_hub_task("copa", {"path": str(folder)})
    _jsonl(folder / "validation.jsonl", rows)  # splits with different columns cannot form one dataset
    with pytest.raises(HubDataError, match=r"could not be read: .*column names don't match"):
        load_hub_task("copa", {"path": str(folder)})

    _jsonl(folder / "train.jsonl", [*rows[:3], {**rows[3], "label": 2}])
    with pytest.raises(HubDataError, match=r"train split, row 3: label 2 in column 'label' is out of range"):
        load_hub_task("copa", {"path": str(folder)})

    _jsonl(folder / "train.jsonl", rows)
    _jsonl(folder / "validation.jsonl", [{**rows[0], "label": -1}])
    with pytest.raises(HubDataError, match=r"validation split, row 0: label -1.*without a gold label"):
        load_hub_task("copa", {"path": str(folder)})

    _jsonl(folder / "validation.jsonl", [{**rows[0], "premise": None}])
    with pytest.raises(HubDataError, match=r"validation split, row 0: column 'premise' is empty"):
        load_hub_task("copa", {"path": str(folder)})

    with pytest.raises(HubDataError, match=r"no split 'test'.*data\.hub\.copa\.test_split"):
        load_hub_task("copa", {"path": str(folder), "test_split": "test"})


def test_bad_overrides_fail_before_loading() -> None:
    with pytest.raises(HubDataError, match="not one of the paper's tasks"):
        hub_task_spec("trec")
    with pytest.raises(HubDataError, match="unknown keys split"):
        hub_task_spec("copa", {"split": "x"})
    with pytest.raises(HubDataError, match="label texts"):
        hub_task_spec("copa", {"labels": {0: "choice1", 1: "B"}})
    with pytest.raises(HubDataError, match="not a valid format string"):
        hub_task_spec("copa", {"template": "{premise"})
    with pytest.raises(HubDataError, match="cannot tell the format"):
        hub_task_spec("copa", {"data_files": "copa.txt"})
    with pytest.raises(HubDataError, match="must be a non-empty string"):
        hub_task_spec("copa", {"path": ""})
    # overriding the location clears the Hub config name
    assert hub_task_spec("copa", {"path": "/data/copa"}).name is None
    assert hub_task_spec("copa", {"data_files": ["a.jsonl"]}).path == "json"


def test_config_accepts_hub_source_orders_and_checks_entries() -> None:
    cfg = run_config_from_dict({"data": {"source": "hub", "order": 1, "hub": {"copa": {"path": "/x"}}}})
    assert cfg.data.tasks == ["dbpedia", "amazon", "yahoo", "agnews"]
    again = run_config_from_dict(cfg.to_dict())  # what resume reads back
    assert again.data.hub == {"copa": {"path": "/x"}}
    with pytest.raises(ConfigError, match="not news_outlet"):
        run_config_from_dict({"data": {"source": "hub", "tasks": ["copa", "news_outlet"]}})
    with pytest.raises(ConfigError, match="data.hub.copa has unknown keys"):
        run_config_from_dict({"data": {"source": "hub", "tasks": ["copa"], "hub": {"copa": {"pth": "/x"}}}})
    with pytest.raises(ConfigError, match="not one of the paper's tasks"):
        run_config_from_dict({"data": {"source": "hub", "tasks": ["copa"], "hub": {"cpoa": {"path": "/x"}}}})


# ---------------------------------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------------------------------


def test_engine_run_on_two_local_hub_tasks(tmp_path: Path) -> None:
    from migu.engine.runner import run

    model = save_tiny_model(tmp_path / "bert", "bert")
    folder = tmp_path / "data" / "copa"
    _jsonl(folder / "train.jsonl", _copa_rows(8))
    _jsonl(folder / "validation.jsonl", _copa_rows(4))
    mnli = _mnli_override(tmp_path / "data", train_per_class=3, test_per_class=1)
    data = {
        "source": "hub",
        "data_dir": str(tmp_path / "data"),
        "tasks": ["copa", "mnli"],
        "hub": {"copa": {"path": "copa"}, "mnli": mnli},
        "max_train": None,
        "max_test": None,
    }
    cfg = tiny_config(model, tmp_path / "data", tmp_path / "runs", data=data)
    cfg["train"]["max_steps_per_task"] = 2
    cfg["model"]["max_length"] = 160  # mnli's instruction and 3 options take more than the default 96
    run(run_config_from_dict(cfg), show_progress=False)
    matrix = json.loads((tmp_path / "runs" / "tiny" / "matrix.json").read_text())
    assert matrix["tasks"] == ["copa", "mnli"]
    assert matrix["rows"] == ["before training", "after copa", "after mnli"]
    assert all(0.0 <= a <= 1.0 for row in matrix["matrix"] for a in row)
