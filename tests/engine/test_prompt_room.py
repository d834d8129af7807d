"""A model.max_length that the instruction and options fill stops the run; one that nearly does warns."""

from __future__ import annotations

import logging

import pytest
from tiny_runs import tiny_config

from migu.data.task import format_prompt
from migu.engine.config import ConfigError, run_config_from_dict
from migu.engine.runner import MIN_SENTENCE_ROOM, run
from migu.engine.tasks import load_tasks
from migu.models.loading import load_model


def _fixed_lengths(model_dir, bench) -> dict[str, int]:
    """Tokens of each task's prompt without its sentence (instruction, options, Answer:)."""
    cfg = run_config_from_dict(tiny_config(model_dir, bench, "unused"))
    tok = load_model(str(model_dir), num_labels=5).tokenizer
    return {t.name: len(tok(format_prompt(t, ""))["input_ids"]) for t in load_tasks(cfg.data, seed=0)}


def test_no_room_for_the_text_stops_before_training(tiny_models_dir, tiny_benchmark, tmp_path):
    fixed = _fixed_lengths(tiny_models_dir["bert"], tiny_benchmark)
    longest = max(fixed, key=fixed.get)
    raw = tiny_config(
        tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"model.max_length": fixed[longest]}
    )
    with pytest.raises(
        ConfigError, match=rf"leaves no token for the text of task '{longest}'.*model.max_length"
    ):
        run(run_config_from_dict(raw), show_progress=False)
    assert not (tmp_path / "tiny" / "matrix.json").exists()


def test_little_room_warns_and_runs(tiny_models_dir, tiny_benchmark, tmp_path, caplog):
    fixed = _fixed_lengths(tiny_models_dir["bert"], tiny_benchmark)
    length = fixed["agnews"] + MIN_SENTENCE_ROOM - 1
    raw = tiny_config(
        tiny_models_dir["bert"],
        tiny_benchmark,
        tmp_path,
        **{"model.max_length": length, "train.max_steps_per_task": 1, "data.tasks": ["agnews"]},
    )
    with caplog.at_level(logging.WARNING, logger="migu"):
        result = run(run_config_from_dict(raw), show_progress=False)
    room = length - fixed["agnews"]
    assert f"leaves only {room} tokens for the text of task 'agnews'" in caplog.text
    assert len(result.matrix) == 2
