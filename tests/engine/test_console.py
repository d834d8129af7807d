"""What `migu run` prints: which variant runs, the accuracy row after each task, the next command."""

from __future__ import annotations

import json

from tiny_runs import tiny_config

from migu.cli import main


def test_console_tells_the_story(tmp_path, tiny_models_dir, tiny_benchmark, capsys):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    cfg["variants"] = {"FT": {"migu.enabled": False}, "FT+MIGU": {"migu.enabled": True}}
    path = tmp_path / "story.yaml"
    path.write_text(json.dumps(cfg))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "== variant 1/2: FT (" in out and "== variant 2/2: FT+MIGU (" in out
    assert out.index("variant 1/2") < out.index("after task 1/2 agnews: agnews ") < out.index("variant 2/2")
    assert "after task 2/2 sst2: agnews " in out
    assert "measure the machine's load" in out  # sequential step times are labelled as such
    assert f"next: migu report {tmp_path / 'tiny'}" in out
    # Resuming what has finished says so, then prints the results again.
    assert main(["run", "--resume", str(tmp_path / "tiny"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "has finished; nothing to do" in captured.err and "final average accuracy" in captured.out


def test_eval_of_a_variants_folder_names_the_variants(tmp_path, tiny_models_dir, tiny_benchmark, capsys):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    cfg["variants"] = {"FT": {"migu.enabled": False}}
    path = tmp_path / "v.yaml"
    path.write_text(json.dumps(cfg))
    assert main(["run", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "tiny")]) == 2
    assert "holds the runs of variants FT: evaluate one of them" in capsys.readouterr().err
