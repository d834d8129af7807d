"""The experiment engine behind ``migu run`` and ``migu sweep``: run configuration, task sequences,
training and evaluation, run directories, sweeps over a grid of configurations."""

from migu.engine.config import ConfigError, RunConfig, load_run_config

__all__ = ["ConfigError", "RunConfig", "load_run_config"]
