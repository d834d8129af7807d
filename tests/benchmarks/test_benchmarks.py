"""The paper's task orders, presets, user task files, and short runs of the named benchmarks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tiny_runs import save_tiny_model

from migu.config.presets import available_presets, load_preset
from migu.data.cl_benchmark import default_cl_benchmark_dir
from migu.data.files import TaskFileError, load_file_task
from migu.data.orders import ORDERS, benchmark_orders, order_tasks
from migu.engine.config import ConfigError, run_config_from_dict
from migu.engine.runner import run

DESIGN = Path(__file__).resolve().parents[3] / "shared" / "DESIGN.md"


def test_orders_equal_the_papers_table_in_design_md():
    if not DESIGN.is_file():
        pytest.skip(f"{DESIGN} (the paper's Table 7 copied by the team) is not here")
    # Lines "1. dbpedia, amazon, yahoo, agnews" ... "7. (DAS, continual pre-training) restaurant, ..."
    table = {}
    for line in DESIGN.read_text().splitlines():
        m = re.match(r"^([1-7])\. (?:\([^)]*\) )?([a-z0-9, ]+)$", line.strip())
        if m:
            table[int(m.group(1))] = tuple(t.strip() for t in m.group(2).split(","))
    assert sorted(table) == list(range(1, 8))
    assert table == ORDERS
    assert benchmark_orders("standard") == (1, 2, 3) and benchmark_orders("long") == (4, 5, 6)
    assert all(len(order_tasks(o)) == 15 for o in (4, 5, 6))


def test_every_preset_is_a_valid_config():
    presets = available_presets()
    assert {"paper-ft-t5", "paper-lora-t5", "cpu-standard-minilm", "cpu-standard-minilm-lora"} <= set(presets)
    for name in presets:
        cfg = run_config_from_dict(load_preset(name))
        if cfg.data.order is not None:
            assert cfg.data.tasks == list(ORDERS[cfg.data.order])
        assert cfg.variants, name
    # The instruction-tuning preset: LoRA against LoRA+MIGU on a decoder, with the COPA probe.
    instruct = run_config_from_dict(load_preset("cpu-instruct-smollm2"))
    assert instruct.method.name == "lora" and set(instruct.variants) == {"LoRA", "LoRA+MIGU"}
    assert "copa" in instruct.eval.general and "copa" not in instruct.data.tasks
    assert instruct.eval.general["copa"]["split"] == "all" and instruct.data.max_test >= 200
    # The generative Standard preset is task-label-free: free generation scored by exact match.
    gen = run_config_from_dict(load_preset("cpu-standard-smollm2"))
    assert (gen.eval.metric, gen.eval.label_space, gen.model.name) == (
        "exact_match",
        "all",
        "SmolLM2-135M-Instruct",
    )
    assert set(gen.variants) == {"FT", "FT+MIGU", "LoRA", "LoRA+MIGU"}
    with pytest.raises(ValueError, match="preset 'nope' is not one of"):
        load_preset("nope")


def test_the_embedded_default_compares_ft_and_migu_over_three_seeds_offline():
    from migu.config.presets import DEFAULT_PRESET
    from migu.data.packaged import PACKAGED_TASKS

    cfg = run_config_from_dict(load_preset(DEFAULT_PRESET))
    assert cfg.seeds == [0, 1, 2] and set(cfg.variants) == {"FT", "FT+MIGU"}
    assert cfg.data.source == "packaged" and set(cfg.data.tasks) <= set(PACKAGED_TASKS)
    assert not cfg.train.keep_checkpoint  # six runs of the main job leave no 260 MB checkpoints


def test_order_config_errors():
    with pytest.raises(ConfigError, match=r"data.order=1 needs data.source=cl_benchmark"):
        run_config_from_dict({"data": {"order": 1}})
    with pytest.raises(ConfigError, match="order 7"):
        run_config_from_dict({"data": {"source": "cl_benchmark", "order": 7}})


def _write(path: Path, records: list[dict], kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "json":
        path.write_text(json.dumps(records))
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        cols = list(records[0])
        path.write_text(
            ",".join(cols) + "\n" + "".join(",".join(str(r[c]) for c in cols) + "\n" for r in records)
        )


@pytest.mark.parametrize("kind", ["json", "jsonl", "csv"])
def test_file_tasks_load_each_format(tmp_path, kind):
    records = [{"text": f"item {i}", "y": "ab"[i % 2]} for i in range(10)]
    _write(tmp_path / f"train.{kind}", records, kind)
    _write(tmp_path / f"test.{kind}", records[:4], kind)
    spec = {"train": f"train.{kind}", "test": f"test.{kind}", "text_column": "text", "label_column": "y"}
    task = load_file_task("mine", spec, base_dir=tmp_path, max_train_per_class=3)
    assert task.labels == ("a", "b")
    assert len(task.train) == 6 and len(task.test) == 4
    assert {r["sentence"] for r in task.test} == {f"item {i}" for i in range(4)}
    capped = [load_file_task("mine", spec, base_dir=tmp_path, max_test=2, seed=s) for s in range(4)]
    assert all(t.test == capped[0].test for t in capped)  # the same test items for every seed


def test_file_tasks_reject_malformed_files_clearly(tmp_path):
    good = [{"sentence": "x", "label": "a"}, {"sentence": "y", "label": "b"}]
    _write(tmp_path / "train.json", good, "json")
    _write(tmp_path / "test.json", [{"sentence": "z", "label": "c"}], "json")
    with pytest.raises(TaskFileError, match=r"label 'c' is not one of the task's labels \['a', 'b'\]"):
        load_file_task("t", {"train": "train.json", "test": "test.json"}, base_dir=tmp_path)
    with pytest.raises(TaskFileError, match="no column 'text'"):
        load_file_task(
            "t", {"train": "train.json", "test": "train.json", "text_column": "text"}, base_dir=tmp_path
        )
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(TaskFileError, match="empty"):
        load_file_task("t", {"train": "train.json", "test": "empty.jsonl"}, base_dir=tmp_path)
    with pytest.raises(TaskFileError, match="task file not found"):
        load_file_task("t", {"train": "nope.json", "test": "train.json"}, base_dir=tmp_path)
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(TaskFileError, match="not valid JSON"):
        load_file_task("t", {"train": "bad.json", "test": "train.json"}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="data.files.t has unknown keys colour"):
        run_config_from_dict(
            {
                "data": {
                    "source": "files",
                    "tasks": ["t"],
                    "files": {"t": {"train": "a", "test": "b", "colour": 1}},
                }
            }
        )


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("bench") / "bert", "bert")


def _short_run(tmp_path, model_dir, data: dict, max_length: int = 64):
    cfg = {
        "name": "b",
        "output_dir": str(tmp_path),
        "model": {"name": str(model_dir), "max_length": max_length},
        "data": data,
        "train": {"batch_size": 4, "max_steps_per_task": 2},
        "eval": {"batch_size": 16},
        "migu": {"enabled": True},
    }
    return run(run_config_from_dict(cfg), show_progress=False)


def test_a_user_defined_sequence_runs_and_a_bad_file_loses_nothing(tmp_path, tiny_bert):
    for task, labels in (("colours", "rb"), ("pets", "cd")):
        recs = [{"sentence": f"{task} {i}", "label": labels[i % 2]} for i in range(12)]
        _write(tmp_path / task / "train.jsonl", recs, "jsonl")
        _write(tmp_path / task / "test.jsonl", recs[:4], "jsonl")
    files = {t: {"train": f"{t}/train.jsonl", "test": f"{t}/test.jsonl"} for t in ("colours", "pets")}
    data = {"source": "files", "tasks": ["colours", "pets"], "files": files, "data_dir": str(tmp_path)}
    result = _short_run(tmp_path / "out", tiny_bert, data)
    assert len(result.matrix) == 3
    before = (result.run_dir / "matrix.json").read_text()
    # A malformed file in another run fails before writing anything, and the first run is intact.
    _write(tmp_path / "pets" / "test.jsonl", [{"sentence": "x", "label": "zebra"}], "jsonl")
    with pytest.raises(TaskFileError, match="zebra"):
        _short_run(tmp_path / "out2", tiny_bert, data)
    assert not (tmp_path / "out2" / "b" / "state.json").exists()
    assert (result.run_dir / "matrix.json").read_text() == before


@pytest.mark.parametrize("order", [1, 4])
def test_benchmark_orders_run_two_tasks_on_real_data(tmp_path, tiny_bert, order):
    root = default_cl_benchmark_dir()
    if not root.is_dir():
        pytest.skip(f"the CL_Benchmark folder is not at {root} (set MIGU_CL_BENCHMARK_DIR)")
    first_two = order_tasks(order)[:2]
    data = {"source": "cl_benchmark", "tasks": first_two, "max_train_per_class": 2, "max_test": 8}
    # dbpedia's 14 options and the long instructions need more than the 64 tokens of the file tasks.
    result = _short_run(tmp_path, tiny_bert, data, max_length=256)
    assert result.tasks == first_two and len(result.matrix) == 3


def test_migu_list_separates_names_from_descriptions_and_marks_cuts(capsys):
    from migu.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    block = out.split("presets (migu run --preset NAME):\n")[1].split("\nmodels")[0].splitlines()
    assert len(block) == len(available_presets())
    for line, (name, about) in zip(block, available_presets().items(), strict=True):
        assert line.startswith(f"  {name}  ") and line.rstrip().endswith(about)
        assert len(about) <= 100 and (about.endswith("…") or len(about) < 100)
