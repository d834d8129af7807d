"""End to end: 2 domains on a tiny Llama (causal LM) and a tiny BERT (masked LM), two rows plus the
base row; kill-and-resume ends with the same checkpoints and results as an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from pretrain_helpers import tiny_pretrain_config
from safetensors.torch import load_file

from migu.engine.runner import RunDirExists
from migu.pretrain.config import pretrain_config_from_dict
from migu.pretrain.runner import resume_pretrain, run_pretrain
from migu.pretrain.summary import format_results

ROWS = ["base", "CPT", "CPT+MIGU"]


def _weights(run_dir: Path, row: str) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "pretrain" / row / "checkpoint" / "model.safetensors")


@pytest.mark.parametrize("family", ["llama", "bert"])
def test_two_domains_then_end_tasks(family, pretrain_models, tiny_domains, tmp_path):
    cfg = pretrain_config_from_dict(tiny_pretrain_config(pretrain_models[family], tiny_domains, tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_pretrain(cfg, show_progress=False)
    d = tmp_path / "tiny"
    assert result.run_dir == d
    random_head = [w for w in caught if "start random" in str(w.message)]
    assert bool(random_head) == (family == "bert")  # the tiny BERT folder has no MLM head
    data = json.loads((d / "results.json").read_text())
    assert data["objective"] == ("masked-lm" if family == "bert" else "causal-lm")
    assert data["domains"] == ["colors", "animals"] and list(data["rows"]) == ROWS
    for row in ROWS:
        for domain in ("colors", "animals", "mean"):
            cell = data["rows"][row][domain]
            assert 0.0 <= cell["accuracy"] <= 1.0 and 0.0 <= cell["macro_f1"] <= 1.0
    for row in ("CPT", "CPT+MIGU"):
        stats = data["pretrain"][row]
        assert [s["domain"] for s in stats] == ["colors", "animals"] and all(s["steps"] == 3 for s in stats)
        assert (d / "pretrain" / row / "checkpoint" / "model.safetensors").is_file()
        assert not (d / "pretrain" / row / "checkpoint.tmp").exists()
        progress = json.loads((d / "pretrain" / row / "checkpoint" / "progress.json").read_text())
        assert progress["domains_done"] == 2
    assert data["pretrain"]["CPT"][0]["update_fraction"] == 1.0
    assert data["pretrain"]["CPT+MIGU"][0]["update_fraction"] < 0.6  # T = 0.5 on the masked layers
    # The corpora lost their leaked test sentences; the end tasks are complete.
    assert data["corpora"]["colors"] == {
        "texts": 24,
        "excluded_end_task_texts": 8,  # the 8 test sentences the corpus file leaked
        "source": str(tiny_domains[0] / "colors" / "corpus.txt"),
    }
    preds = (d / "finetune" / "CPT+MIGU" / "animals.predictions.jsonl").read_text().splitlines()
    assert len(preds) == 8 and {"sentence", "label", "prediction"} <= set(json.loads(preds[0]))
    # MIGU changed the pre-trained weights.
    w_ft, w_migu = _weights(d, "CPT"), _weights(d, "CPT+MIGU")
    assert any(not torch.equal(w_ft[k], w_migu[k]) for k in w_ft)
    table = format_results(data, result.run_dir)
    assert "CPT+MIGU" in table and "colors" in table
    assert table.splitlines()[-1] == f"run directory: {d}"
    assert "run directory" not in format_results(data)  # results.json alone does not know it
    with pytest.raises(RunDirExists, match="--resume"):
        run_pretrain(cfg, show_progress=False)
    assert resume_pretrain(d, show_progress=False).rows == result.rows  # finished: read back


def _run_killed(cfg: dict, folder: Path, after_steps: int) -> Path:
    path = folder / "killed.yaml"
    path.write_text(yaml.safe_dump({**cfg, "name": "killed"}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    script = Path(__file__).parents[1] / "killed_process.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(after_steps), "pretrain", str(path), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    return folder / "killed"


@pytest.mark.slow
def test_killed_run_resumes_from_last_finished_domain(pretrain_models, tiny_domains, tmp_path):
    cfg = tiny_pretrain_config(pretrain_models["llama"], tiny_domains, tmp_path, migu={"mode": "strict"})
    full = run_pretrain(pretrain_config_from_dict({**cfg, "name": "full"}), show_progress=False)

    # Steps 1-6: CPT (2 domains x 3); 7-9: CPT+MIGU's first domain; killed at step 11, in its second.
    run_dir = _run_killed(cfg, tmp_path, after_steps=11)
    assert not (run_dir / "results.json").exists()
    progress = json.loads((run_dir / "pretrain" / "CPT+MIGU" / "checkpoint" / "progress.json").read_text())
    assert progress["domains_done"] == 1
    cpt_mtime = (run_dir / "pretrain" / "CPT" / "checkpoint" / "model.safetensors").stat().st_mtime_ns

    resumed = resume_pretrain(run_dir, show_progress=False)
    assert "CPT+MIGU: resuming after domain 1 (colors)" in (run_dir / "log.txt").read_text()
    # The finished row was not trained again.
    assert (run_dir / "pretrain" / "CPT" / "checkpoint" / "model.safetensors").stat().st_mtime_ns == cpt_mtime
    assert resumed.rows == full.rows
    for row in ("CPT", "CPT+MIGU"):
        a, b = _weights(full.run_dir, row), _weights(run_dir, row)
        assert a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), (row, name)
        for domain in ("colors", "animals"):
            name = f"{domain}.predictions.jsonl"
            assert (run_dir / "finetune" / row / name).read_text() == (
                full.run_dir / "finetune" / row / name
            ).read_text()


def test_a_second_process_on_a_pretrain_run_is_refused(pretrain_models, tiny_domains, tmp_path):
    from migu.engine.rundir import RunDirLocked, lock_run_dir

    cfg = pretrain_config_from_dict(tiny_pretrain_config(pretrain_models["llama"], tiny_domains, tmp_path))
    run_dir = tmp_path / "locked"
    run_dir.mkdir()
    with lock_run_dir(run_dir):  # another process writing this run
        with pytest.raises(RunDirLocked, match="another migu process"):
            run_pretrain(cfg, run_dir, show_progress=False)
    assert not (run_dir / "config.yaml").exists()  # nothing was started


def test_every_row_starts_from_the_same_model_whatever_ran_before(pretrain_models, tiny_domains, tmp_path):
    # The tiny BERT has no masked-LM head: it starts random. Its start must come from the run's
    # seed, not from the global random state the process happens to be in (which differs for the
    # first row and the next ones, and between a fresh and a resumed process).
    base = tiny_pretrain_config(pretrain_models["bert"], tiny_domains, tmp_path, variants={})
    base["finetune"] = {**base["finetune"], "baseline": False}
    weights = []
    for i, noise in enumerate((1, 2)):
        torch.manual_seed(noise)  # what earlier work in the process left behind
        torch.rand(noise)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "its masked-LM head starts random"
            result = run_pretrain(pretrain_config_from_dict({**base, "name": f"r{i}"}), show_progress=False)
        weights.append(load_file(result.run_dir / "pretrain" / "CPT" / "checkpoint" / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
