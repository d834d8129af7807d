"""The task-label-free protocol (``eval.label_space``), fixed test sets, and the run seed reaching MIGU."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_runs import tiny_config
from transformers import AutoModelForCausalLM

from migu.engine.config import ConfigError, run_config_from_dict
from migu.engine.families import make_family
from migu.engine.runner import run
from migu.engine.tasks import load_tasks
from migu.models.loading import load_model


def _encoder(tiny_models_dir, tiny_benchmark, tmp_path, label_space):
    cfg = run_config_from_dict(tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path))
    tasks = load_tasks(cfg.data, seed=0)
    union = sorted({lab for t in tasks for lab in t.labels})  # blue, cat, cow, dog, red
    loaded = load_model(str(tiny_models_dir["bert"]), num_labels=len(union))
    family = make_family(
        "encoder",
        loaded.tokenizer,
        max_length=96,
        max_target_length=8,
        labels=union,
        max_new_tokens=4,
        label_space=label_space,
    )
    return tasks, union, family, loaded.model.eval()


@pytest.mark.parametrize("label_space", ["all", "options"])
def test_encoder_answers_from_the_label_space(label_space, tiny_models_dir, tiny_benchmark, tmp_path):
    tasks, union, family, model = _encoder(tiny_models_dir, tiny_benchmark, tmp_path, label_space)
    agnews = tasks[0]  # options red, blue
    # A head that prefers "cat" (a label of the other task) for every input, then "red".
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(
            torch.tensor([0.0 if lab not in ("cat", "red") else 1.0 for lab in union])
        )
        model.classifier.bias[union.index("cat")] = 5.0
    preds = family.predict(model, agnews, agnews.test[:4], "classify")
    assert preds == (["cat"] * 4 if label_space == "all" else ["red"] * 4)


@pytest.mark.parametrize("label_space", ["all", "options"])
def test_encoder_loss_ranges_over_the_label_space(label_space, tiny_models_dir, tiny_benchmark, tmp_path):
    tasks, union, family, model = _encoder(tiny_models_dir, tiny_benchmark, tmp_path, label_space)
    items = [(tasks[0], tasks[0].train[0]), (tasks[1], tasks[1].train[0])]
    batch = family.training_batch(items)
    loss = family.loss(model, batch)
    # Reference: cross-entropy over the chosen columns only (no -inf masks), label index re-mapped.
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "option_mask")}
    logits = model(**inputs).logits.double()  # (2, n_union)
    terms = []
    for row, (task, record) in zip(logits, items, strict=True):
        cols = [union.index(lab) for lab in (union if label_space == "all" else task.labels)]
        target = cols.index(union.index(record["label"]))
        terms.append(-row[cols].log_softmax(-1)[target])
    torch.testing.assert_close(loss.double(), torch.stack(terms).mean(), atol=1e-6, rtol=0)


def test_rank_over_every_label_of_the_sequence(tiny_models_dir, tiny_benchmark, tmp_path):
    cfg = run_config_from_dict(tiny_config(tiny_models_dir["llama"], tiny_benchmark, tmp_path))
    tasks = load_tasks(cfg.data, seed=0)
    union = sorted({lab for t in tasks for lab in t.labels})
    loaded = load_model(str(tiny_models_dir["llama"]))
    model = AutoModelForCausalLM.from_pretrained(tiny_models_dir["llama"]).eval()
    kw = dict(max_length=96, max_target_length=8, labels=union, max_new_tokens=4)
    every = make_family("decoder", loaded.tokenizer, label_space="all", **kw)
    options = make_family("decoder", loaded.tokenizer, label_space="options", **kw)
    task, records = tasks[0], tasks[0].test[:3]
    all_scores = every._option_logprobs(model, task, records)  # (3, 5)
    opt_scores = options._option_logprobs(model, task, records)  # (3, 2)
    assert all_scores.shape == (3, len(union)) and opt_scores.shape == (3, len(task.labels))
    # The same label gets the same score whichever set it is ranked in.
    for j, lab in enumerate(task.labels):
        torch.testing.assert_close(opt_scores[:, j], all_scores[:, union.index(lab)], atol=1e-5, rtol=0)
    assert every.predict(model, task, records, "rank") == [union[i] for i in all_scores.argmax(-1).tolist()]


def test_label_space_is_checked_and_defaults_to_task_label_free(tiny_models_dir, tiny_benchmark, tmp_path):
    base = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    assert run_config_from_dict(base).eval.label_space == "all"
    with pytest.raises(ConfigError, match=r"eval.label_space='tasks' is not one of: all, options"):
        run_config_from_dict({**base, "eval": {"label_space": "tasks"}})


def test_seeds_share_test_items_and_the_run_seed_reaches_migu(
    tiny_models_dir, tiny_benchmark, tmp_path, monkeypatch
):
    import migu.core.handle as handle_module

    seen = []
    real_attach = handle_module.attach

    def recording_attach(model, config, **kwargs):
        seen.append(config.seed)
        return real_attach(model, config, **kwargs)

    monkeypatch.setattr(handle_module, "attach", recording_attach)
    digests = []
    for seed in (3, 4):
        base = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path / str(seed))
        base["data"] = {**base["data"], "max_train": 6, "max_test": 4}
        base["migu"] = {**base["migu"], "criterion": "random"}
        result = run(run_config_from_dict({**base, "seed": seed}), show_progress=False)
        env = json.loads((result.run_dir / "environment.json").read_text())
        assert set(env["test_sets"]) == {"agnews", "sst2"}
        assert all(entry["n"] == 4 for entry in env["test_sets"].values())
        assert {t: e["labels"] for t, e in env["test_sets"].items()} == {"agnews": 2, "sst2": 3}
        digests.append(env["test_sets"])
    assert digests[0] == digests[1]
    assert seen == [3, 3, 4, 4]  # one attach per task, each with its run's seed


def test_learned_and_final_rows_give_the_exact_aa_bwt_and_learning_accuracy(
    tiny_models_dir, tiny_benchmark, tmp_path
):
    import math

    base = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    full = run(run_config_from_dict({**base, "name": "full"}), show_progress=False)
    cheap_cfg = {**base, "name": "cheap", "eval": {**base["eval"], "rows": "learned-and-final"}}
    cheap = run(run_config_from_dict(cheap_cfg), show_progress=False)
    # Same seed, same training: the entries that were evaluated equal the full matrix's, the others are NaN.
    assert cheap.matrix[0] == full.matrix[0] and cheap.matrix[2] == full.matrix[2]
    assert cheap.matrix[1][0] == full.matrix[1][0] and math.isnan(cheap.matrix[1][1])
    for key in ("final_average_accuracy", "backward_transfer", "learning_accuracy"):
        assert cheap.metrics[key] == pytest.approx(full.metrics[key]), key
    on_disk = json.loads((cheap.run_dir / "metrics.json").read_text())
    assert on_disk["forward_transfer"] is None  # needs R[1][sst2], not evaluated
    # With T = 2, forgetting and average incremental accuracy need only R[1][1] and the last row.
    assert cheap.metrics["forgetting"] == pytest.approx(full.metrics["forgetting"])
    assert json.loads((cheap.run_dir / "matrix.json").read_text())["matrix"][1][1] is None
    assert sorted(p.name for p in (cheap.run_dir / "predictions").iterdir()) == [
        "row0_agnews.jsonl",
        "row0_sst2.jsonl",
        "row1_agnews.jsonl",
        "row2_agnews.jsonl",
        "row2_sst2.jsonl",
    ]


def test_own_cl_benchmark_folders_load_with_task_types(tiny_models_dir, tiny_benchmark, tmp_path, capsys):
    import shutil

    from migu.cli import main

    root = tmp_path / "mine"
    shutil.copytree(tiny_benchmark, root)
    shutil.copytree(root / "sst2", root / "animals")  # a task name outside the paper's 15
    base = tiny_config(tiny_models_dir["bert"], root, tmp_path)
    base["data"] = {**base["data"], "tasks": ["agnews", "animals"]}
    (tmp_path / "c.yaml").write_text(json.dumps(base))
    assert main(["run", str(tmp_path / "c.yaml"), "--no-progress"]) == 1
    assert "data.task_types.animals=<type>" in capsys.readouterr().err
    base["data"]["task_types"] = {"animals": "SC"}
    result = run(run_config_from_dict({**base, "name": "typed"}), show_progress=False)
    assert result.tasks == ["agnews", "animals"]
