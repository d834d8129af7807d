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
    assert "min left at the pace of the variant before ==" in out.split("variant 2/2")[1].splitlines()[0]
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


def test_help_shows_examples_not_a_docstring(capsys):
    import pytest

    for argv in (["--help"], ["run", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and "``" not in out and "The ``migu`` command line" not in out
    main_help_lines = [line for line in out.splitlines() if line.startswith("migu run --preset")]
    assert main_help_lines  # `migu run --help` names a preset example


def test_a_bad_task_and_a_bad_model_are_reported_together_before_any_folder(tmp_path, tiny_benchmark, capsys):
    from tiny_runs import tiny_config

    cfg = tiny_config(tmp_path / "no-such-model", tiny_benchmark, tmp_path)
    cfg["data"]["tasks"] = ["agnews", "nope"]
    cfg["variants"] = {"FT": {"migu.enabled": False}, "FT+MIGU": {"migu.enabled": True}}
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(cfg))
    assert main(["run", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "2 problems with the inputs:" in err
    assert "nope" in err and "Model folder not found" in err and "MIGU_DEBUG" not in err
    assert not (tmp_path / "tiny").exists()  # nothing was created
