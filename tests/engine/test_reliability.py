"""Faults a careful user meets: a crafted checkpoint, divergence, the training loss on record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_runs import run_killed, tiny_config

from migu.cli import main
from migu.engine.config import run_config_from_dict
from migu.engine.runner import TrainingDiverged, resume_run, run


class _Payload:
    """Unpickling this creates a file: what a crafted run directory could do on resume."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.slow
def test_crafted_pickle_in_a_run_directory_is_refused_not_executed(tmp_path, tiny_models_dir, tiny_benchmark):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"train.checkpoint_every": 2})
    run_dir = run_killed(cfg, tmp_path, after_steps=3)  # a checkpoint of task 1 at step 2, then killed
    marker = tmp_path / "code_ran"
    torch.save({"scheduler": _Payload(marker), "method": {}}, run_dir / "checkpoint" / "migu_state.pt")
    with pytest.raises(RuntimeError, match="holds more than tensors and plain data"):
        resume_run(run_dir, show_progress=False)
    assert not marker.exists()


def test_a_huge_learning_rate_stops_the_run_as_diverged(tmp_path, tiny_models_dir, tiny_benchmark, capsys):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"train.lr": 1e30})
    cfg["train"]["max_grad_norm"] = None  # nothing between the step and the weights
    with pytest.raises(TrainingDiverged, match="training diverged"):
        run(run_config_from_dict(cfg), show_progress=False)
    run_dir = tmp_path / "tiny"
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "diverged" and "train.lr=1e+30" in state["error"]
    assert "training diverged" in (run_dir / "log.txt").read_text()
    # The last good checkpoint stays: the one taken after step 1 of the first task.
    assert (run_dir / "checkpoint" / "model.safetensors").is_file()
    # The command line says it in one line and exits non-zero.
    (tmp_path / "again.yaml").write_text(json.dumps({**cfg, "name": "again"}))
    assert main(["run", str(tmp_path / "again.yaml"), "--no-progress"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("migu run: training diverged") and "Traceback" not in err


def test_training_loss_is_logged_and_kept_per_task(tmp_path, tiny_models_dir, tiny_benchmark):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    result = run(run_config_from_dict(cfg), show_progress=False)
    losses = result.metrics["train_loss"]
    assert len(losses) == 2 and all(isinstance(x, float) and 0.0 < x < 10.0 for x in losses)
    log = (result.run_dir / "log.txt").read_text()
    assert "task 1/2 agnews step 3/3 loss" in log and "task 2/2 sst2 step 3/3 loss" in log
    assert json.loads((result.run_dir / "metrics.json").read_text())["train_loss"] == losses


def test_a_second_process_on_the_same_run_directory_is_refused(
    tmp_path, tiny_models_dir, tiny_benchmark, capsys
):
    from migu.engine.rundir import RunDirLocked, lock_run_dir

    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    run_dir = tmp_path / "tiny"
    run_dir.mkdir()
    # The lock is an OS lock on an open file: a second open file description (as another process
    # would have) cannot take it while the first holds it.
    with lock_run_dir(run_dir):
        with pytest.raises(RunDirLocked, match=r"being written by another migu process \(pid \d+\)"):
            run(run_config_from_dict(cfg), show_progress=False)
        (tmp_path / "c.yaml").write_text(json.dumps(cfg))
        assert main(["run", str(tmp_path / "c.yaml"), "--no-progress"]) == 2
        assert "another migu process" in capsys.readouterr().err
    assert not (run_dir / "state.json").exists()  # nothing was started
    run(run_config_from_dict(cfg), show_progress=False)  # released: the run goes ahead


@pytest.mark.slow
def test_resume_refuses_an_edited_config_unless_asked(tmp_path, tiny_models_dir, tiny_benchmark, capsys):
    import yaml

    from migu.engine.runner import ConfigChanged

    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"train.checkpoint_every": 2})
    run_dir = run_killed(cfg, tmp_path, after_steps=3)  # SIGKILL: the lock must not outlive the process
    edited = yaml.safe_load((run_dir / "config.yaml").read_text())
    edited["train"]["lr"] = 0.5
    (run_dir / "config.yaml").write_text(yaml.safe_dump(edited))
    with pytest.raises(ConfigChanged, match=r"train.lr: 0.001 -> 0.5"):
        resume_run(run_dir, show_progress=False)
    assert main(["run", "--resume", str(run_dir), "--no-progress"]) == 2
    assert "--allow-config-change" in capsys.readouterr().err
    result = resume_run(run_dir, show_progress=False, allow_config_change=True)
    state = json.loads((result.run_dir / "state.json").read_text())
    assert state["status"] == "finished"
    assert state["config_changes"] == [{"task": 0, "step": 2, "changes": ["train.lr: 0.001 -> 0.5"]}]


def test_a_run_started_before_a_new_config_key_still_resumes(tmp_path, tiny_models_dir, tiny_benchmark):
    # A later version adds a key (with the default that keeps the old behaviour): the run's saved
    # config lacks it, and that is not an edit.
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"train.checkpoint_every": 2})
    run_dir = run_killed(cfg, tmp_path, after_steps=3)
    state = json.loads((run_dir / "state.json").read_text())
    del state["config"]["train"]["keep_checkpoint"]  # as written by a version without the key
    (run_dir / "state.json").write_text(json.dumps(state))
    assert resume_run(run_dir, show_progress=False).run_dir == run_dir


@pytest.mark.slow
def test_full_disk_at_a_checkpoint_fails_clearly_and_resumes(
    tmp_path, tiny_models_dir, tiny_benchmark, monkeypatch
):
    import errno

    from migu.engine.runner import CheckpointWriteError

    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"train.checkpoint_every": 2})
    clean = run(run_config_from_dict({**cfg, "name": "clean"}), show_progress=False)
    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:  # the first checkpoint (model via safetensors; optimizer, rng, migu_state) fits
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(
        CheckpointWriteError, match=r"could not write the checkpoint .* No space left on device"
    ):
        run(run_config_from_dict(cfg), show_progress=False)
    run_dir = tmp_path / "tiny"
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "failed" and "No space left" in state["error"]
    assert not (run_dir / "checkpoint.tmp").exists()  # no half-written checkpoint left behind
    assert (run_dir / "checkpoint" / "migu_state.pt").is_file()  # the previous one is intact
    assert "run stopped (failed)" in (run_dir / "log.txt").read_text()
    monkeypatch.setattr(torch, "save", real_save)  # space freed
    resumed = resume_run(run_dir, show_progress=False)
    assert resumed.matrix == clean.matrix


@pytest.mark.slow
def test_sigint_marks_the_run_interrupted_with_one_line_and_exit_130(
    tmp_path, tiny_models_dir, tiny_benchmark
):
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    # 120,000 steps a task: the run cannot end on its own between the log check and the signal (a
    # shorter run once finished in that window on a loaded CI machine and exited 0).
    cfg["train"].update(max_steps_per_task=None, epochs=20000.0, checkpoint_every=0)
    path = tmp_path / "long.yaml"
    path.write_text(json.dumps({**cfg, "name": "long"}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def default_sigint() -> None:
        # The child must start with Ctrl-C live, as from a terminal: a shell starts background jobs
        # with SIGINT ignored, and both an ignored disposition and a blocked mask survive exec.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    proc = subprocess.Popen(
        [sys.executable, "-m", "migu.cli", "run", str(path), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    log = tmp_path / "long" / "log.txt"

    def training() -> bool:
        return log.is_file() and "step 10/" in log.read_text()

    deadline = time.time() + 240
    while time.time() < deadline and not training():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it was interrupted"
    # Interrupt only a run that is training: a signal sent before the first steps would test
    # start-up, not migu's Ctrl-C handling, and a timeout here should say which of the two hung.
    if not training():
        proc.kill()
        raise AssertionError("the run did not reach step 10 within 240 s (machine overloaded?)")
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("SIGINT did not stop the run within 120 s") from None
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    state = json.loads((tmp_path / "long" / "state.json").read_text())
    assert state["status"] == "interrupted"


def test_a_yaml_key_given_twice_is_an_error(tmp_path):
    from migu.engine.config import ConfigError, load_run_config

    path = tmp_path / "twice.yaml"
    path.write_text("train: {lr: 1.0e-4}\nseed: 1\ntrain: {epochs: 2}\n")
    with pytest.raises(ConfigError, match=r"line 3.*key 'train' appears twice .*first at line 1"):
        load_run_config(path)


def test_an_override_after_a_flag_is_taken(tmp_path, capsys):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\n")
    assert main(["run", str(path), "--print-config", "train.lr=0.5"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["lr"] == 0.5
    with pytest.raises(SystemExit):
        main(["run", str(path), "--print-config", "--no-such-flag"])


def test_a_run_that_fails_before_it_starts_leaves_no_directory(tmp_path, tiny_models_dir, tiny_benchmark):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    cfg["data"] = {**cfg["data"], "tasks": ["agnews", "no_such_task"]}
    with pytest.raises(ValueError, match="no_such_task"):
        run(run_config_from_dict(cfg), show_progress=False)
    assert not (tmp_path / "tiny").exists()


def test_missing_data_folder_names_the_config_key(tmp_path, tiny_models_dir):
    cfg = tiny_config(tiny_models_dir["bert"], tmp_path / "nowhere", tmp_path)
    with pytest.raises(ValueError, match=r"data.data_dir=<folder>"):
        run(run_config_from_dict(cfg), show_progress=False)


def test_the_report_lists_a_diverged_run_with_its_reason(tmp_path, tiny_models_dir, tiny_benchmark):
    from migu.report.collect import load_runs

    ok = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"name": "ok"})
    run(run_config_from_dict(ok), show_progress=False)
    bad = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"name": "bad", "train.lr": 1e30})
    bad["train"]["max_grad_norm"] = None
    with pytest.raises(TrainingDiverged):
        run(run_config_from_dict(bad), show_progress=False)
    runs, left_out = load_runs([tmp_path])
    assert [r.run_dir.name for r in runs] == ["ok"]
    assert len(left_out) == 1 and left_out[0][0].name == "bad"
    assert "status 'diverged'" in left_out[0][1] and "training diverged" in left_out[0][1]


def test_a_read_only_output_folder_gives_one_line_and_no_directory(
    tmp_path, tiny_models_dir, tiny_benchmark, monkeypatch, capsys
):
    import errno

    import migu.engine.runner as runner

    # The tests run as root, for whom chmod does not make a folder read-only: inject the error
    # the first write would get on a read-only file system.
    def read_only(path, text):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(runner, "atomic_write_text", read_only)
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    assert main(["run", str(tmp_path / "c.yaml"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("migu run: [Errno 30] Read-only file system") and "Traceback" not in err
    assert err.count("\n") == 1
    assert not (tmp_path / "tiny").exists()


def test_unknown_task_and_preset_exit_2_without_a_traceback_hint(tmp_path, capsys):
    assert main(["run", "data.tasks=[no_such_task]", f"output_dir={tmp_path}", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Unknown packaged task 'no_such_task'" in err and "MIGU_DEBUG" not in err
    assert main(["run", "--preset", "nope", f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "preset 'nope' is not one of" in err and "MIGU_DEBUG" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written
