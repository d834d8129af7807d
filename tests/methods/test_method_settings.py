"""A method's own settings (``method.settings``): declared beside the method, checked with the config."""

from __future__ import annotations

import sys

import pytest

from migu.config.schema import ConfigError
from migu.engine.config import run_config_from_dict
from migu.methods import make_method

MODULE = """
from dataclasses import dataclass

from migu.config import Section
from migu.methods import Method, register


@register("decay_test")
class Decay(Method):
    @dataclass
    class Settings(Section):
        _prefix = "method.settings"
        strength: float = 1e-4
        layers: int = 2

        def _validate(self):
            self._range("strength", 0)
"""


@pytest.fixture
def decay_module(tmp_path, monkeypatch):
    (tmp_path / "decay_method.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "decay_method"
    sys.modules.pop("decay_method", None)


def _cfg(module, **settings):
    return run_config_from_dict({"method": {"name": "decay_test", "module": module, "settings": settings}})


def test_settings_reach_the_method(decay_module):
    cfg = _cfg(decay_module, strength=0.5)
    method = make_method(cfg.method, tasks=[], seed=0)
    assert (method.settings.strength, method.settings.layers) == (0.5, 2)
    assert make_method(_cfg(decay_module).method, tasks=[], seed=0).settings.strength == 1e-4


def test_settings_are_checked_when_the_config_is_built(decay_module):
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'method.settings.strenght'. Did you mean 'method.settings.strength'",
    ):
        _cfg(decay_module, strenght=0.5)
    with pytest.raises(ConfigError, match=r"method.settings.strength=-1.0 is out of range"):
        _cfg(decay_module, strength=-1)
    with pytest.raises(ConfigError, match=r"method.settings.layers='two' must be an integer"):
        _cfg(decay_module, layers="two")
    # Overrides on the command line reach them too.
    cfg = run_config_from_dict({"method": {"name": "decay_test", "module": decay_module}})
    assert cfg.with_overrides({"method.settings.strength": 0.25}).method.settings == {"strength": 0.25}


def test_a_method_without_settings_refuses_them():
    with pytest.raises(ConfigError, match=r"method.settings: method 'ewc' declares no settings of its own"):
        run_config_from_dict({"method": {"name": "ewc", "settings": {"lambda": 3}}})
    assert (
        make_method(run_config_from_dict({"method": {"name": "ewc"}}).method, tasks=[], seed=0).settings
        is None
    )


def test_a_module_that_does_not_import_is_a_config_error():
    with pytest.raises(ConfigError, match=r"method.module='no_such_method_mod' cannot be imported"):
        run_config_from_dict({"method": {"name": "x", "module": "no_such_method_mod"}})
