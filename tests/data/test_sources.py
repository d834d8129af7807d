"""Task sources registered by name: a user's one-file source runs end to end like the built-in ones."""

from __future__ import annotations

import sys

import pytest

from migu.config.schema import ConfigError
from migu.data.sources import available_sources, register_source
from migu.engine.config import run_config_from_dict
from migu.engine.tasks import load_tasks

SOURCE = """
from migu.data.sources import register_source
from migu.data.task import Task

@register_source("colours")
def load_colours(name, data, seed):
    rows = [{"sentence": f"the {c} thing {i}", "label": c} for i in range(6) for c in ("red", "blue")]
    cap = data.max_test or len(rows)
    return Task(name=name, labels=("red", "blue"), train=rows, test=rows[:cap], instruction="Which colour?")
"""


def test_builtin_sources_are_registered():
    assert available_sources()[:4] == ["packaged", "cl_benchmark", "files", "hub"]


def test_a_user_source_from_a_module(tmp_path, monkeypatch):
    (tmp_path / "my_colours.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = run_config_from_dict(
        {"data": {"source": "colours", "module": "my_colours", "tasks": ["a", "b"], "max_test": 4}}
    )
    tasks = load_tasks(cfg.data, seed=0)
    assert [t.name for t in tasks] == ["a", "b"]
    assert all(len(t.test) == 4 and t.labels == ("red", "blue") for t in tasks)
    sys.modules.pop("my_colours", None)


def test_unknown_source_and_bad_module_are_config_errors():
    with pytest.raises(
        ConfigError, match=r"data.source='nope' is not one of: packaged, cl_benchmark, files, hub"
    ):
        run_config_from_dict({"data": {"source": "nope"}})
    with pytest.raises(ConfigError, match=r"data.module='no_such_module_x' cannot be imported"):
        run_config_from_dict({"data": {"source": "x", "module": "no_such_module_x"}})


def test_a_second_source_with_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_source("packaged")(lambda name, data, seed: None)
