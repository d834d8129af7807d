"""Run configuration: defaults, YAML round trip, overrides, variants, and every error's message."""

from pathlib import Path

import pytest
import yaml

import migu
from migu.engine import ConfigError, RunConfig, load_run_config
from migu.engine.config import MiguBlock, TrainConfig, run_config_from_dict


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults():
    cfg = load_run_config()
    assert cfg == RunConfig()
    assert cfg.name is None and cfg.output_dir == "runs" and cfg.seed == 0
    assert cfg.model.name == "all-MiniLM-L6-v2" and cfg.model.family == "auto"
    assert cfg.data.tasks == ["news_outlet", "rotten_tomatoes", "tweet_sentiment"]
    assert cfg.data.max_train == 960 and cfg.data.max_test == 300 and cfg.data.max_train_per_class is None
    assert cfg.train.lr == 5e-5 and cfg.train.scheduler == "constant" and cfg.train.max_grad_norm == 1.0
    assert cfg.eval.metric == "auto" and cfg.eval.before_training
    assert not cfg.migu.enabled and cfg.migu.threshold == 0.7 and cfg.migu.targets == "default"
    assert cfg.variants == {}


def test_yaml_file_round_trip(tmp_path):
    path = _write(
        tmp_path,
        """
name: demo
seed: 3
model: {name: t5-small, family: encoder-decoder, dtype: bfloat16}
data:
  tasks: [a, b]
  max_train: null
train:
  lr: 1e-4          # YAML 1.1 reads this as the string "1e-4"
  epochs: 2         # an int where a float is expected
  scheduler: cosine
  warmup_ratio: 0.1
  mixed_precision: no  # YAML 1.1 reads this as false
migu:
  enabled: true
  targets: [q, v]
  exclude: classifier
variants:
  ft: {migu.enabled: false}
  migu_t05: {migu: {threshold: 0.5}}
""",
    )
    cfg = load_run_config(path)
    assert cfg.name == "demo" and cfg.seed == 3 and cfg.model.dtype == "bfloat16"
    assert cfg.data.tasks == ["a", "b"] and cfg.data.max_train is None
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 2.0 and isinstance(cfg.train.epochs, float)
    assert cfg.train.mixed_precision == "no"
    assert cfg.migu.targets == ["q", "v"] and cfg.migu.exclude == ["classifier"]

    dumped = yaml.safe_dump(cfg.to_dict())
    assert run_config_from_dict(yaml.safe_load(dumped)) == cfg
    again = _write(tmp_path, dumped)
    assert load_run_config(again) == cfg


def test_empty_file_gives_defaults(tmp_path):
    assert load_run_config(_write(tmp_path, "")) == RunConfig()


@pytest.mark.parametrize(
    ("override", "get", "expected"),
    [
        ("train.lr=1e-4", lambda c: c.train.lr, 1e-4),
        ("train.epochs=3", lambda c: c.train.epochs, 3.0),
        ("train.batch_size=8", lambda c: c.train.batch_size, 8),
        ("train.max_grad_norm=null", lambda c: c.train.max_grad_norm, None),
        ("migu.enabled=true", lambda c: c.migu.enabled, True),
        ("data.tasks=[x,y,z]", lambda c: c.data.tasks, ["x", "y", "z"]),
        ("data.tasks=x", lambda c: c.data.tasks, ["x"]),
        ("model.name=google/flan-t5-small", lambda c: c.model.name, "google/flan-t5-small"),
        ("migu.targets=all-linear", lambda c: c.migu.targets, "all-linear"),
        ("migu.targets=[q_proj,v_proj]", lambda c: c.migu.targets, ["q_proj", "v_proj"]),
        ("name=", lambda c: c.name, None),
        ("train={lr: 0.001, batch_size: 4}", lambda c: (c.train.lr, c.train.batch_size), (0.001, 4)),
        ("variants.ft={migu.enabled: false}", lambda c: c.variants, {"ft": {"migu.enabled": False}}),
    ],
)
def test_override_types(override, get, expected):
    assert get(load_run_config(None, [override])) == expected


def test_overrides_apply_after_file_and_keep_other_values(tmp_path):
    path = _write(tmp_path, "train: {lr: 0.01, batch_size: 4}\n")
    cfg = load_run_config(path, ["train.lr=0.02"])
    assert cfg.train.lr == 0.02 and cfg.train.batch_size == 4


def test_with_overrides_and_variants():
    base = run_config_from_dict(
        {"variants": {"ft": {}, "migu": {"migu.enabled": True, "train": {"lr": "2e-5"}}, "plain": None}}
    )
    assert base.variants == {"ft": {}, "migu": {"migu.enabled": True, "train": {"lr": "2e-5"}}, "plain": {}}
    variant = base.with_overrides(base.variants["migu"])
    assert variant.migu.enabled and variant.train.lr == 2e-5 and not base.migu.enabled
    # variants.NAME.KEY adds one override to a variant and keeps the others.
    more = base.with_overrides({"variants.migu.migu.threshold": 0.4})
    assert more.variants["migu"]["migu.threshold"] == 0.4 and more.variants["migu"]["migu.enabled"] is True
    assert base.with_overrides({"variants": {}}).variants == {}


def test_to_migu_config():
    block = MiguBlock(
        threshold=0.5, targets=["q", "v"], exclude=["lm_head"], normalize="token", mode="strict"
    )
    mc = block.to_migu_config()
    assert isinstance(mc, migu.MiguConfig)
    assert (mc.threshold, mc.targets, mc.exclude, mc.normalize, mc.mode) == (
        0.5,
        ("q", "v"),
        ("lm_head",),
        "token",
        "strict",
    )
    assert MiguBlock().to_migu_config().targets == "default"
    assert MiguBlock(criterion="random").to_migu_config(seed=5).seed == 5  # the run seed reaches MIGU
    official = MiguBlock(keep_rule="quantile", mask_bias=False).to_migu_config()
    assert (official.keep_rule, official.mask_bias) == ("quantile", False)
    with pytest.raises(ConfigError, match=r"migu.keep_rule='median' is not one of: count, quantile"):
        MiguBlock(keep_rule="median")
    with pytest.raises(ConfigError, match="migu.fast_path=true needs keep_rule='count' and mask_bias=True"):
        MiguBlock(keep_rule="quantile", fast_path=True)


def test_sections_accept_strings_for_floats_directly():
    assert TrainConfig(lr="3e-4").lr == 3e-4


# --- errors ----------------------------------------------------------------------------------------


def _error(overrides=(), path=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_run_config(path, overrides)
    return str(info.value)


def test_unknown_key_suggests_closest():
    msg = _error(["trian.lr=1e-4"])
    assert "'trian.lr'" in msg and "Did you mean 'train.lr'?" in msg
    assert "'migu.threshold'" in _error(["migu.treshold=0.5"])
    assert "Known keys here: name, output_dir" in _error(["zzz=1"])
    assert "'train.lr' is a value" in _error(["train.lr.x=1"])


def test_unknown_key_in_file(tmp_path):
    msg = _error(path=_write(tmp_path, "train:\n  batchsize: 8\n"))
    assert str(tmp_path) in msg and "'train.batchsize'" in msg and "'train.batch_size'" in msg


@pytest.mark.parametrize(
    ("override", "parts"),
    [
        ("train.scheduler=cosin", ["train.scheduler", "'cosin'", "constant, linear, cosine"]),
        ("model.family=gpt", ["model.family", "'gpt'", "auto, encoder, encoder-decoder, decoder"]),
        ("model.dtype=fp32", ["model.dtype", "float32, bfloat16, float16"]),
        ("data.source=kaggle", ["data.source", "packaged, cl_benchmark, files, hub"]),
        ("train.mixed_precision=fp8", ["train.mixed_precision", "no, bf16, fp16"]),
        ("eval.metric=f1", ["eval.metric", "auto, classify, exact_match, rank"]),
        ("migu.mode=hard", ["migu.mode", "grad, strict"]),
        ("migu.normalize=l2", ["migu.normalize", "none, token"]),
    ],
)
def test_enum_errors(override, parts):
    msg = _error([override])
    assert "not one of" in msg
    for part in parts:
        assert part in msg


@pytest.mark.parametrize(
    ("override", "parts"),
    [
        ("train.batch_size=x", ["train.batch_size", "'x'", "an integer"]),
        ("seed=1.5", ["seed", "1.5", "an integer"]),
        ("train.lr=fast", ["train.lr", "'fast'", "a number"]),
        ("train.lr=true", ["train.lr", "True", "a number"]),
        ("train.epochs=.inf", ["train.epochs", "finite"]),
        ("migu.enabled=1", ["migu.enabled", "true or false"]),
        ("model.name=[a]", ["model.name", "a string"]),
        ("data.tasks=[a,1]", ["data.tasks", "a list of strings"]),
        ("data.tasks=a,b", ["data.tasks", "[a,b]"]),
        ("train=5", ["train", "a mapping"]),
    ],
)
def test_type_errors(override, parts):
    msg = _error([override])
    for part in parts:
        assert part in msg


@pytest.mark.parametrize(
    ("override", "parts"),
    [
        ("migu.threshold=1", ["migu.threshold=1.0", "in [0, 1)"]),
        ("migu.threshold=-0.1", ["migu.threshold", "in [0, 1)"]),
        ("train.lr=0", ["train.lr=0.0", "> 0"]),
        ("train.epochs=0", ["train.epochs", "> 0"]),
        ("train.batch_size=0", ["train.batch_size=0", ">= 1"]),
        ("eval.batch_size=0", ["eval.batch_size", ">= 1"]),
        ("train.warmup_ratio=1", ["train.warmup_ratio", "in [0, 1)"]),
        ("train.max_grad_norm=0", ["train.max_grad_norm", "> 0"]),
        ("train.checkpoint_every=-1", ["train.checkpoint_every", ">= 0"]),
        ("data.max_train=0", ["data.max_train", ">= 1"]),
        ("seed=-1", ["seed", ">= 0"]),
        ("data.tasks=[]", ["data.tasks", "empty"]),
        ("data.tasks=[a,b,a]", ["data.tasks", "a twice"]),
        ("migu.targets=[]", ["migu.targets", "empty"]),
        ("migu.targets=(", ["migu.targets", "regular expression"]),
        ("name=a/b", ["name", "path separators"]),
        ("model.name=''", ["model.name", "non-empty"]),
    ],
)
def test_range_and_content_errors(override, parts):
    msg = _error([override])
    for part in parts:
        assert part in msg


def test_variant_errors():
    msg = _error(["variants.bad={migu.threshold: 2}"])
    assert msg.startswith("variants.bad: ") and "migu.threshold" in msg and "in [0, 1)" in msg
    msg = _error(["variants.bad={migu.tresh: 0.5}"])
    assert "variants.bad" in msg and "'migu.threshold'" in msg
    msg = _error(["variants.bad={variants.x: {}}"])
    assert "variants.bad" in msg and "may not set 'variants'" in msg
    assert "a mapping of overrides" in _error(["variants.bad=5"])
    with pytest.raises(ConfigError, match="variants.bad"):
        run_config_from_dict({"variants": {"bad": {"variants": {}}}})


def test_override_without_equals():
    msg = _error(["train.lr"])
    assert "'train.lr'" in msg and "key=value" in msg and "train.lr=1e-4" in msg
    assert "key=value" in _error(["=3"])


def test_override_value_bad_yaml():
    msg = _error(["data.tasks=[a,b"])
    assert "data.tasks=[a,b" in msg and "not valid YAML" in msg


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert _error(path=missing) == f"config file not found: {missing.resolve()}"
    # A relative path is reported absolute.
    assert str(Path("nope-relative.yaml").resolve()) in _error(path="nope-relative.yaml")


def test_yaml_syntax_error_has_line(tmp_path):
    path = _write(tmp_path, "train:\n  lr: 1e-4\n  batch_size: [8\nseed: 1\n")
    msg = _error(path=path)
    assert str(path) in msg and "invalid YAML" in msg and "line 4" in msg


def test_file_not_a_mapping(tmp_path):
    assert "mapping" in _error(path=_write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="mapping"):
        run_config_from_dict(["a"])  # type: ignore[arg-type]


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {lr: -1, batsh_size: 4}\nmigu: {threshold: 0.5}\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(path, ["trian.epochs=2", "migu.mode=hard", "seed=1"])
    message = str(err.value)
    assert message.startswith("4 problems in the configuration:")
    assert f"{path.resolve()}: train.lr=-1.0 is out of range" in message
    assert "unknown config key 'train.batsh_size'. Did you mean 'train.batch_size'?" in message
    assert "unknown config key 'trian.epochs'" in message and "migu.mode='hard' is not one of" in message
    assert "seed" not in message  # a good override is not a problem
    # Variants too: every bad variant is named.
    with pytest.raises(ConfigError, match=r"2 problems(.|\n)*variants\.A: (.|\n)*variants\.B: "):
        run_config_from_dict({"variants": {"A": {"train.lr": 0}, "B": {"migu.threshold": 3}, "C": {}}})
    # One problem reads as before: no list.
    with pytest.raises(ConfigError, match=r"^unknown config key 'trian.lr'"):
        load_run_config(None, ["trian.lr=1"])
