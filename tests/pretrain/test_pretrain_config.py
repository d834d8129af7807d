"""The pretrain config: defaults, overrides, rows, and clear errors for bad values."""

import pytest
import yaml

from migu.engine.config import ConfigError
from migu.pretrain.cli import main_pretrain
from migu.pretrain.config import load_pretrain_config, pretrain_config_from_dict


def test_defaults_and_rows():
    cfg = load_pretrain_config(None, ["domains=[news,tweets]", "migu.threshold=0.5"])
    assert cfg.domains == ["news", "tweets"]
    rows = cfg.rows()
    assert list(rows) == ["CPT", "CPT+MIGU"]
    assert not rows["CPT"].migu.enabled and rows["CPT+MIGU"].migu.enabled
    assert rows["CPT+MIGU"].migu.threshold == 0.5
    single = cfg.with_overrides({"variants": {}, "migu.enabled": True})
    assert list(single.rows()) == ["CPT+MIGU"]
    # The resolved config round-trips through YAML.
    again = pretrain_config_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())))
    assert again == cfg


def test_preset_loads():
    cfg = load_pretrain_config(preset="cpu-minilm-mlm")
    assert cfg.model.name == "all-MiniLM-L6-v2" and cfg.model.family == "encoder"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pretrain.lrr": 1e-4}, "unknown config key 'pretrain.lrr'. Did you mean 'pretrain.lr'"),
        ({"pretrain.lr": -1}, r"pretrain.lr=-1.0 is out of range: it must be > 0"),
        ({"pretrain.mlm_probability": 1.5}, r"pretrain.mlm_probability=1.5 is out of range"),
        ({"pretrain.block_size": "long"}, "pretrain.block_size='long' must be an integer"),
        ({"finetune.scheduler": "step"}, "finetune.scheduler='step' is not one of: constant, linear, cosine"),
        ({"model.family": "encoder-decoder"}, "span corruption is not implemented"),
        ({"migu.threshold": 1.0}, r"migu.threshold=1.0 is out of range: it must be in \[0, 1\)"),
        ({"domains": []}, "domains=\\[\\] is empty"),
        ({"domains": ["news", "news"]}, "lists news twice"),
        ({"domains": ["law"]}, "'law' is neither a packaged domain"),
        ({"data.corpus_size": 0}, "data.corpus_size=0 is out of range"),
        ({"data.files": {"law": {"corpus": "c.txt"}}}, r"data.files.law.task must give the end task's files"),
        (
            {"data.files": {"law": {"corpus": "c.txt", "task": {"train": "a", "test": "b"}, "x": 1}}},
            "unknown keys x",
        ),
        ({"variants": {"base": {}}}, "'base' is the reference row"),
        ({"variants": {"A": {"finetune.lr": 1.0}}}, "key 'finetune.lr' cannot vary between rows"),
        ({"variants": {"A": {"migu.threshold": 2}}}, "variants.A: migu.threshold=2.0"),
        ({"mixed_precision": "fp8"}, "mixed_precision='fp8' is not one of"),
        ({"name": "a/b"}, "must not contain path separators"),
    ],
)
def test_bad_values_name_key_value_and_choices(overrides, message):
    with pytest.raises(ConfigError, match=message):
        pretrain_config_from_dict(overrides)


def test_bad_file_and_cli_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain: {lr: [1, 2}\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_pretrain_config(bad)
    assert main_pretrain(["pretrain.batch_size=0"]) == 2
    assert "pretrain.batch_size=0 is out of range" in capsys.readouterr().err
    assert main_pretrain([str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
