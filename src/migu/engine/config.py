"""Run configuration of ``migu run CONFIG [key=value ...]``.

A run is described by nested dataclasses (:class:`RunConfig` and its sections), loaded from a YAML
file or a dict and adjusted with dotted overrides such as ``train.lr=1e-4``. Every value is checked
when a config is built, so a typo fails before any model is loaded, with the dotted key, the value
and what is allowed in the message.

>>> cfg = load_run_config(None, ["train.lr=1e-4", "migu.enabled=true"])
>>> cfg.train.lr, cfg.migu.enabled
(0.0001, True)
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from migu.config.schema import (
    ConfigError,
    Schema,
    Section,
    check_dir_name,
    check_variants,
    coerce,
    load_yaml,
    nonempty,
    parse_overrides,
    type_error,
)
from migu.core.config import CRITERIA, KEEP_RULES, MODE_CHOICES, NORMALIZE_CHOICES, TARGET_PRESETS, MiguConfig
from migu.data.sources import check_hub_entries, get_source
from migu.methods.config import MethodConfig

__all__ = [
    "ConfigError",
    "RunConfig",
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "EvalConfig",
    "MiguBlock",
    "MethodConfig",
    "load_run_config",
    "parse_overrides",
    "run_config_from_dict",
    "load_yaml",
    "FAMILY_CHOICES",
    "DTYPE_CHOICES",
    "SCHEDULER_CHOICES",
    "MIXED_PRECISION_CHOICES",
    "METRIC_CHOICES",
    "LABEL_SPACE_CHOICES",
    "EVAL_ROWS_CHOICES",
]

FAMILY_CHOICES = ("auto", "encoder", "encoder-decoder", "decoder")
DTYPE_CHOICES = ("float32", "bfloat16", "float16")
SCHEDULER_CHOICES = ("constant", "linear", "cosine")
MIXED_PRECISION_CHOICES = ("no", "bf16", "fp16")
METRIC_CHOICES = ("auto", "classify", "exact_match", "rank")
#: ``eval.rows``: every entry of the accuracy matrix, or only R[i][i] and the last row
EVAL_ROWS_CHOICES = ("all", "learned-and-final")
#: ``eval.label_space``: ``all`` = one head over every label of the sequence (task-label-free);
#: ``options`` = restricted to the options written in the input (see :mod:`migu.engine.families`)
LABEL_SPACE_CHOICES = ("all", "options")


@dataclass
class ModelConfig(Section):
    """Which model to train and how long its inputs and outputs are.

    Args:
        name: Packaged model name, Hugging Face hub id, or local path.
        family: ``"auto"`` (read from the model's config), ``"encoder"``, ``"encoder-decoder"`` or
            ``"decoder"``.
        dtype: Weight dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        max_length: Source tokens per example.
        max_target_length: Target tokens per example (generative families).
        max_new_tokens: Greedy decoding length at evaluation.
        gguf_file: GGUF file inside ``name`` to load, if any.
    """

    _prefix: ClassVar[str] = "model"

    name: str = "all-MiniLM-L6-v2"
    family: str = "auto"
    dtype: str = "float32"
    max_length: int = 128
    max_target_length: int = 16
    max_new_tokens: int = 50
    gguf_file: str | None = None

    def _validate(self) -> None:
        nonempty(self._key("name"), self.name)
        self._choice("family", FAMILY_CHOICES)
        self._choice("dtype", DTYPE_CHOICES)
        for name in ("max_length", "max_target_length", "max_new_tokens"):
            self._range(name, 1)
        if self.gguf_file is not None:
            nonempty(self._key("gguf_file"), self.gguf_file)


@dataclass
class DataConfig(Section):
    """The task sequence and how much of each task is used.

    Args:
        source: ``"packaged"`` (offline tasks shipped with migu), ``"cl_benchmark"`` (an O-LoRA
            CL_Benchmark folder), ``"files"`` (your JSON/JSONL/CSV files), ``"hub"`` (the paper's
            tasks by Hugging Face dataset name, :mod:`migu.data.hub`), or a source of your own
            registered by ``module`` (:mod:`migu.data.sources`).
        tasks: Task names in training order; non-empty, no duplicates.
        data_dir: The cl_benchmark folder; ``None`` for the default location. With ``source: files``
            or ``hub``, the folder relative local paths are resolved against.
        max_train: Training examples per task in total (``None``: all).
        max_train_per_class: Training examples per class and task (``None``: no per-class cap).
        max_test: Test examples per task (``None``: all).
        order: The paper's task order 1-6 (with ``source: cl_benchmark`` or ``hub``); replaces ``tasks``.
        files: With ``source: files``, per task name its files and columns (:mod:`migu.data.files`).
        hub: With ``source: hub``, per task name what replaces its default Hugging Face source, e.g.
            ``{copa: {path: /data/copa}}`` (keys: :data:`migu.data.hub.HUB_OVERRIDE_KEYS`).
        task_types: With ``source: cl_benchmark``, per task name its task type (the prompt's
            ``Task:`` field and the key of ``instruction_config.json``), for task folders other than
            the paper's 15, e.g. ``{my_reviews: SC}``.
        module: Import path of a module that registers your own task source
            (:func:`migu.data.sources.register_source`); ``source`` then names it.
    """

    _prefix: ClassVar[str] = "data"

    source: str = "packaged"
    tasks: list[str] = field(default_factory=lambda: ["news_outlet", "rotten_tomatoes", "tweet_sentiment"])
    data_dir: str | None = None
    max_train: int | None = 960
    max_train_per_class: int | None = None
    max_test: int | None = 300
    order: int | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    hub: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_types: dict[str, str] = field(default_factory=dict)
    module: str | None = None

    def _validate(self) -> None:
        if self.module is not None:
            nonempty(self._key("module"), self.module)
        if not isinstance(self.task_types, Mapping):
            raise type_error(self._key("task_types"), self.task_types, "a mapping of task name -> task type")
        for task, kind in self.task_types.items():
            nonempty(f"{self._key('task_types')}.{task}", kind)
        if self.order is not None:
            from migu.data.orders import ORDERS

            if self.order not in ORDERS or self.order == 7:
                raise ConfigError(
                    f"{self._key('order')}={self.order!r}: the task orders are 1-3 (standard) and 4-6 (long) "
                    "of the paper; order 7 (continual pre-training) is not available as a task sequence."
                )
            if self.source not in ("cl_benchmark", "hub"):
                raise ConfigError(f"{self._key('order')}={self.order} needs data.source=cl_benchmark or hub.")
            self.tasks = list(ORDERS[self.order])  # the order defines the sequence
        if not isinstance(self.files, Mapping):
            raise type_error(self._key("files"), self.files, "a mapping of task name -> file entry")
        if not isinstance(self.hub, Mapping):
            raise type_error(self._key("hub"), self.hub, "a mapping of task name -> source entry")
        source = get_source(self.source, self.module)
        if source.check is not None:
            source.check(self)
        if self.hub and self.source != "hub":
            check_hub_entries(self, source_is_hub=False)
        if not self.tasks:
            raise ConfigError(
                f"{self._key('tasks')}=[] is empty: give at least one task, e.g. data.tasks=[a,b]."
            )
        duplicates = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if duplicates:
            raise ConfigError(f"{self._key('tasks')}={self.tasks!r} lists {', '.join(duplicates)} twice.")
        for task in self.tasks:
            nonempty(self._key("tasks"), task)
        if self.data_dir is not None:
            nonempty(self._key("data_dir"), self.data_dir)
        for name in ("max_train", "max_train_per_class", "max_test"):
            self._range(name, 1)


@dataclass
class OptimConfig(Section):
    """The settings of the optimizer step (:mod:`migu.engine.steps`), shared by ``train`` of
    ``migu run`` and the two phases of ``migu pretrain``. Each task (domain) starts a fresh AdamW and
    learning-rate schedule.

    Args:
        epochs: Passes over each task's training set (fractions allowed); ``> 0``.
        batch_size: Examples per forward pass.
        grad_accum_steps: Forward passes per optimizer step.
        lr: Peak learning rate; ``> 0``.
        weight_decay: AdamW weight decay; ``>= 0``.
        scheduler: ``"constant"``, ``"linear"`` or ``"cosine"``, restarted on every task.
        warmup_ratio: Fraction of each task's steps spent warming up, in ``[0, 1)``.
        max_grad_norm: Gradient clipping norm (``None``: no clipping); MIGU masks before clipping.
    """

    epochs: float = 1.0
    batch_size: int = 16
    grad_accum_steps: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.0
    scheduler: str = "constant"
    warmup_ratio: float = 0.0
    max_grad_norm: float | None = 1.0

    def _validate(self) -> None:
        self._range("epochs", 0, strict_low=True)
        for name in ("batch_size", "grad_accum_steps"):
            self._range(name, 1)
        self._range("lr", 0, strict_low=True)
        self._range("weight_decay", 0)
        self._choice("scheduler", SCHEDULER_CHOICES)
        self._range("warmup_ratio", 0, 1)
        self._range("max_grad_norm", 0, strict_low=True)


@dataclass
class TrainConfig(OptimConfig):
    """Optimisation on each task: the fields of :class:`OptimConfig`, and

    Args:
        task_epochs: Per task name, epochs that replace ``epochs`` for that task, e.g.
            ``{dbpedia: 0.5, yahoo: 2}``; names not in ``data.tasks`` are unused, except a near
            miss of one of them, which is an error (a typo).
        max_steps_per_task: Cap on optimizer steps per task (``None``: no cap).
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"``.
        checkpoint_every: Save every this many optimizer steps; ``0``: only at task boundaries.
        keep_checkpoint: Keep ``checkpoint/`` when the run has finished (``false``: remove it then,
            for runs that will not be evaluated again: ``migu eval`` and the report's mask analysis
            need it; a run that stops early keeps it to resume).
        deterministic: Ask torch for deterministic kernels.
    """

    _prefix: ClassVar[str] = "train"

    task_epochs: dict[str, float] = field(default_factory=dict)
    max_steps_per_task: int | None = None
    mixed_precision: str = "no"
    checkpoint_every: int = 0
    keep_checkpoint: bool = True
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.mixed_precision is False:  # YAML 1.1 reads an unquoted `no` as false
            self.mixed_precision = "no"
        super().__post_init__()

    def _validate(self) -> None:
        super()._validate()
        if not isinstance(self.task_epochs, Mapping):
            raise type_error(self._key("task_epochs"), self.task_epochs, "a mapping of task name -> epochs")
        checked = {}
        for task, epochs in self.task_epochs.items():
            key = f"{self._key('task_epochs')}.{task}"
            value = coerce(key, epochs, float)
            if value <= 0:
                raise ConfigError(f"{key}={epochs!r} is out of range: it must be > 0.")
            checked[str(task)] = value
        self.task_epochs = checked
        self._range("max_steps_per_task", 1)
        self._choice("mixed_precision", MIXED_PRECISION_CHOICES)
        self._range("checkpoint_every", 0)


@dataclass
class EvalConfig(Section):
    """Evaluation after each task.

    Args:
        batch_size: Examples per forward pass.
        metric: ``"auto"`` (classify for encoders, exact_match for generative models),
            ``"classify"``, ``"exact_match"`` or ``"rank"``.
        label_space: Which labels an answer is chosen from, in training and at test (encoder head,
            ``rank``): ``"all"`` (every label of the sequence; task-label-free, the analog of the
            paper's generative setting) or ``"options"`` (the options written in the input; rules
            out answering with another task's label, closer to task-incremental learning).
        rows: Which entries of the accuracy matrix are evaluated: ``"all"`` (every task after every
            task) or ``"learned-and-final"`` (after task i only task i, after the last task every
            task: ``2T`` task evaluations instead of ``T(T+1)``). The second gives AA, BWT and
            learning accuracy exactly; FWT, and from T = 3 on forgetting and average incremental
            accuracy, are then not computed (null). For long sequences, where evaluation dominates.
        before_training: Evaluate every task before training (row 0 of the accuracy matrix).
        save_predictions: Write each evaluation's predictions to the run directory.
        general: General-ability probes of a decoder (the paper's forgetting check), probe name ->
            ``{path, format, limit, split}``, scored before training and after every task by
            multiple-choice log-likelihood (:mod:`migu.eval.general`); ``copa`` needs no path.
    """

    _prefix: ClassVar[str] = "eval"

    batch_size: int = 64
    metric: str = "auto"
    label_space: str = "all"
    rows: str = "all"
    before_training: bool = True
    save_predictions: bool = True
    general: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _validate(self) -> None:
        self._range("batch_size", 1)
        self._choice("metric", METRIC_CHOICES)
        self._choice("label_space", LABEL_SPACE_CHOICES)
        self._choice("rows", EVAL_ROWS_CHOICES)
        if not isinstance(self.general, Mapping):
            raise type_error(
                self._key("general"), self.general, "a mapping of probe name -> {path, format, limit}"
            )
        from migu.eval.general import check_general_entry

        try:
            self.general = {
                str(name): {k: v for k, v in check_general_entry(str(name), entry).items() if v is not None}
                for name, entry in self.general.items()
            }
        except ValueError as err:
            raise ConfigError(str(err)) from None


@dataclass
class MiguBlock(Section):
    """MIGU settings of a run; see :class:`migu.MiguConfig` for the meaning of the shared fields.

    Args:
        enabled: Train with MIGU; ``False`` is plain fine-tuning.
        threshold: Fraction of output units masked per layer, in ``[0, 1)``.
        targets: ``"default"``, ``"all-linear"``, a list of layer names, or a regular expression.
        exclude: Layer names removed from the targets.
        normalize: ``"none"`` or ``"token"``.
        ignore_padding: Padded positions do not count in the magnitudes.
        mode: ``"grad"`` or ``"strict"``.
        skip_first_task: No mask on the first task (as the official code).
        criterion: ``"output"`` (MIGU), ``"gradient"``, ``"weight"`` or ``"random"`` (paper Table 11).
        clusters: MIGU + Cluster (paper Appendix E): k-means clusters of output units per layer,
            masked whole (``0``: off).
        cluster_by: ``"weight"`` (weight rows) or ``"magnitude"`` (co-magnitude profiles over 8
            training batches of each task, fitted when the task starts).
        keep_rule: ``"count"`` (exactly ``floor(T * d_out)`` masked) or ``"quantile"`` (official:
            ``m >= torch.quantile(m, T)`` kept).
        mask_bias: Mask bias entries with their weight rows (``false``: official, weight rows only).
        fast_path: Linear layers compute the weight gradient of kept rows only (faster; with
            ``grad_accum_steps > 1`` each micro-batch uses the step's running mask, see
            :mod:`migu.core.fast_path`). Needs ``criterion="output"``.
    """

    _prefix: ClassVar[str] = "migu"

    enabled: bool = False
    threshold: float = 0.7
    targets: str | list[str] = "default"
    exclude: list[str] = field(default_factory=list)
    normalize: str = "none"
    ignore_padding: bool = False
    mode: str = "grad"
    skip_first_task: bool = False
    criterion: str = "output"
    clusters: int = 0
    cluster_by: str = "weight"
    keep_rule: str = "count"
    mask_bias: bool = True
    fast_path: bool = False

    def _validate(self) -> None:
        self._range("threshold", 0, 1)
        key = self._key("targets")
        if isinstance(self.targets, str):
            nonempty(key, self.targets)
            if self.targets not in TARGET_PRESETS:
                try:
                    re.compile(self.targets)
                except re.error as e:
                    raise ConfigError(
                        f"{key}={self.targets!r} is neither one of {', '.join(TARGET_PRESETS)} nor a valid "
                        f"regular expression ({e}); give a list for layer names, e.g. {key}=[q_proj,v_proj]."
                    ) from None
        else:
            if not self.targets:
                raise ConfigError(
                    f"{key}=[] is empty: use one of {', '.join(TARGET_PRESETS)} or layer names."
                )
            for name in self.targets:
                nonempty(key, name)
        for name in self.exclude:
            nonempty(self._key("exclude"), name)
        self._choice("normalize", NORMALIZE_CHOICES)
        self._choice("mode", MODE_CHOICES)
        self._choice("criterion", CRITERIA)
        self._range("clusters", 0)
        self._choice("cluster_by", ("weight", "magnitude"))
        self._choice("keep_rule", KEEP_RULES)
        # The rules between fields (clusters and fast_path need criterion=output, and so on) are
        # MiguConfig's own; it is built here so that they fail now, named by their config keys.
        try:
            self.to_migu_config()
        except ValueError as err:
            message = str(err).replace("MiguConfig(fast_path=True)", f"{self._key('fast_path')}=true")
            raise ConfigError(message.replace("MiguConfig.", f"{self._prefix}.")) from None

    def to_migu_config(self, seed: int = 0) -> MiguConfig:
        """The :class:`migu.MiguConfig` these settings describe (``enabled`` and ``skip_first_task``
        are the engine's business and not part of it).

        Args:
            seed: The run seed: it seeds the ``"random"`` criterion and the k-means of ``clusters``,
                so runs with different seeds draw different random masks.
        """
        return MiguConfig(
            seed=seed,
            threshold=self.threshold,
            targets=self.targets if isinstance(self.targets, str) else tuple(self.targets),
            exclude=tuple(self.exclude),
            normalize=self.normalize,
            ignore_padding=self.ignore_padding,
            mode=self.mode,
            criterion=self.criterion,
            clusters=self.clusters,
            cluster_by=self.cluster_by,
            keep_rule=self.keep_rule,
            mask_bias=self.mask_bias,
            fast_path=self.fast_path,
        )


@dataclass
class RunConfig(Schema):
    """Everything ``migu run`` needs: model, data, training, evaluation, MIGU, and variants.

    Args:
        name: Run name; ``None`` lets the engine derive one.
        output_dir: Folder under which the run directory is created.
        seed: Random seed, ``>= 0``.
        seeds: Run every variant once per seed (sub-folders ``seed=N``) and summarize each variant
            as mean ± std over them, with paired differences; empty: one run with ``seed``.
        model: :class:`ModelConfig` (a mapping is converted).
        data: :class:`DataConfig`.
        train: :class:`TrainConfig`.
        eval: :class:`EvalConfig`.
        migu: :class:`MiguBlock`.
        variants: Variant name -> overrides (dotted keys, e.g. ``{"migu.enabled": True}``); the
            engine runs each variant as its own run. Empty: a single run.

    Raises:
        ConfigError: any field, or any variant's overrides, is invalid.
    """

    name: str | None = None
    output_dir: str = "runs"
    seed: int = 0
    seeds: list[int] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    migu: MiguBlock = field(default_factory=MiguBlock)
    method: MethodConfig = field(default_factory=MethodConfig)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _validate(self) -> None:
        if self.name is not None:
            nonempty("name", self.name)
            check_dir_name("name", self.name)  # the name becomes a directory under output_dir
        nonempty("output_dir", self.output_dir)
        self._range("seed", 0)
        # A name close to a task of the sequence is a typo; any other name belongs to another
        # sequence (a preset's task_epochs after data.tasks=[...] on the command line) and is unused.
        unknown = sorted(set(self.train.task_epochs) - set(self.data.tasks))
        typos = [(n, difflib.get_close_matches(n, self.data.tasks, n=1)) for n in unknown]
        typos = [(n, m[0]) for n, m in typos if m]
        if typos:
            raise ConfigError(
                "train.task_epochs names "
                + ", ".join(f"{n} (did you mean {m}?)" for n, m in typos)
                + f", not in data.tasks; allowed: {', '.join(self.data.tasks)}."
            )
        if self.method.name == "osf" and self.migu.enabled:
            raise ConfigError(
                "method.name=osf with migu.enabled=true: MIGU masks rows of weights and LoRA factors, and OSF "
                "trains SVD factors; the two do not combine yet. Set migu.enabled=false for OSF."
            )
        self.variants = check_variants(self.variants)
        self._check_seeds()
        self._check_variant_configs()

    def _check_seeds(self) -> None:
        if any(s < 0 for s in self.seeds):
            raise ConfigError(f"seeds={self.seeds}: every seed must be >= 0.")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds={self.seeds} repeats a seed: each seed is one run of every variant.")
        if not self.seeds:
            return
        if self.seed != 0:  # seeds decides; a seed given beside it would be silently unused
            raise ConfigError(
                f"seed={self.seed} with seeds={self.seeds}: seeds runs every variant with each of its seeds. "
                f"For seed {self.seed} alone give seeds=[{self.seed}] (or seeds=[] seed={self.seed})."
            )
        for vname, overrides in self.variants.items():
            for key in ("seed", "seeds"):
                if key in overrides:
                    raise ConfigError(
                        f"variants.{vname} sets {key}, and seeds={self.seeds} runs every variant with each "
                        f"seed: drop {key} from the variant, or drop seeds."
                    )


def run_config_from_dict(d: Mapping[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from nested (or dotted) keys; missing keys keep their defaults.

    Raises:
        ConfigError: an unknown key or an invalid value.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"a run config must be a mapping of keys to values, got {type(d).__name__}.")
    return RunConfig.from_dict(d)


def load_run_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), *, base: RunConfig | None = None
) -> RunConfig:
    """Load a YAML run config and apply command-line overrides.

    Args:
        path: YAML file; ``None`` starts from ``base``.
        base: The config the file and overrides apply to (default: ``RunConfig()``).
        overrides: ``"key=value"`` strings with dotted keys; the value is parsed as YAML, e.g.
            ``"train.lr=1e-4"``, ``"data.tasks=[a,b]"``, ``"migu.enabled=true"``.

    Raises:
        ConfigError: a missing file, a YAML syntax error, a malformed override, or an invalid config.
    """
    return RunConfig.load(path, overrides, base=base)
