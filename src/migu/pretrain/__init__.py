"""Continual pre-training (the paper's DAS setting, order 7): language modelling on one domain corpus
after another, MIGU optional, then a copy of the final model fine-tuned on each domain's end task.

>>> from migu.pretrain import load_pretrain_config, run_pretrain
>>> result = run_pretrain(load_pretrain_config(None, ["domains=[news,tweets]"]))  # doctest: +SKIP
>>> result.rows["CPT+MIGU"]["mean"]  # doctest: +SKIP
{'accuracy': ..., 'macro_f1': ...}

See ``docs/pretraining.md``.
"""

from migu.pretrain.config import PretrainConfig, load_pretrain_config, pretrain_config_from_dict
from migu.pretrain.corpora import PACKAGED_DOMAINS, Domain, load_domains
from migu.pretrain.metrics import accuracy, macro_f1
from migu.pretrain.runner import PretrainResult, resume_pretrain, run_pretrain

__all__ = [
    "PACKAGED_DOMAINS",
    "Domain",
    "PretrainConfig",
    "PretrainResult",
    "accuracy",
    "load_domains",
    "load_pretrain_config",
    "macro_f1",
    "pretrain_config_from_dict",
    "resume_pretrain",
    "run_pretrain",
]
