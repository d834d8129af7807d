"""The experiment engine behind ``migu run``: run configuration, task sequences, training and evaluation."""

from migu.engine.config import ConfigError, RunConfig, load_run_config

__all__ = ["ConfigError", "RunConfig", "load_run_config"]
