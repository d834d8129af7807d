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

import copy
import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, get_args, get_origin, get_type_hints

import yaml

from migu.core.config import MODE_CHOICES, NORMALIZE_CHOICES, TARGET_PRESETS, MiguConfig
from migu.core.criteria import CRITERIA
from migu.core.mask import KEEP_RULES

__all__ = [
    "ConfigError",
    "RunConfig",
    "ModelConfig",
    "DataConfig",
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
    "SOURCE_CHOICES",
    "SCHEDULER_CHOICES",
    "MIXED_PRECISION_CHOICES",
    "METRIC_CHOICES",
    "LABEL_SPACE_CHOICES",
    "EVAL_ROWS_CHOICES",
]

FAMILY_CHOICES = ("auto", "encoder", "encoder-decoder", "decoder")
DTYPE_CHOICES = ("float32", "bfloat16", "float16")
SOURCE_CHOICES = ("packaged", "cl_benchmark", "files", "hub")
SCHEDULER_CHOICES = ("constant", "linear", "cosine")
MIXED_PRECISION_CHOICES = ("no", "bf16", "fp16")
METRIC_CHOICES = ("auto", "classify", "exact_match", "rank")
#: ``eval.rows``: every entry of the accuracy matrix, or only R[i][i] and the last row
EVAL_ROWS_CHOICES = ("all", "learned-and-final")
#: ``eval.label_space``: see :data:`migu.engine.families.LABEL_SPACES`
LABEL_SPACE_CHOICES = ("all", "options")


class ConfigError(ValueError):
    """A run configuration is invalid: unknown key, wrong type, value out of range, bad file."""


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error.

    Plain YAML keeps the last of two equal keys, so a second ``train:`` block would silently drop
    the whole first one.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first at line {seen[key].line + 1}); "
                    "YAML would keep only the last one. Merge the two",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """Parse YAML config text safely; a key repeated in one mapping raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


class _Section:
    """Shared checks of the config dataclasses: coerce each field to its annotated type, then validate.

    ``_prefix`` is the section's key in :class:`RunConfig`, so messages name the full dotted key.
    """

    _prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            setattr(self, f.name, _coerce(self._key(f.name), getattr(self, f.name), hints[f.name]))
        self._validate()

    def _validate(self) -> None:
        """Ranges and choices; types are already checked."""

    def _key(self, name: str) -> str:
        return f"{self._prefix}.{name}" if self._prefix else name

    def _choice(self, name: str, choices: Sequence[str]) -> None:
        value = getattr(self, name)
        if value not in choices:
            raise ConfigError(f"{self._key(name)}={value!r} is not one of: {', '.join(choices)}.")

    def _range(
        self, name: str, low: float | None = None, high: float | None = None, *, strict_low: bool = False
    ) -> None:
        """Check ``low <= value < high`` (``low < value`` with ``strict_low``); ``None`` values pass."""
        value = getattr(self, name)
        if value is None:
            return
        too_low = low is not None and (value <= low if strict_low else value < low)
        too_high = high is not None and value >= high
        if too_low or too_high:
            if high is not None:
                allowed = f"in [{low}, {high})"
            else:
                allowed = f"{'>' if strict_low else '>='} {low}"
            raise ConfigError(f"{self._key(name)}={value!r} is out of range: it must be {allowed}.")


@dataclass
class ModelConfig(_Section):
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
        _nonempty(self._key("name"), self.name)
        self._choice("family", FAMILY_CHOICES)
        self._choice("dtype", DTYPE_CHOICES)
        for name in ("max_length", "max_target_length", "max_new_tokens"):
            self._range(name, 1)
        if self.gguf_file is not None:
            _nonempty(self._key("gguf_file"), self.gguf_file)


@dataclass
class DataConfig(_Section):
    """The task sequence and how much of each task is used.

    Args:
        source: ``"packaged"`` (offline tasks shipped with migu), ``"cl_benchmark"`` (an O-LoRA
            CL_Benchmark folder), ``"files"`` (your JSON/JSONL/CSV files) or ``"hub"`` (the paper's
            tasks by Hugging Face dataset name, :mod:`migu.data.hub`).
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

    def _validate(self) -> None:
        self._choice("source", SOURCE_CHOICES)
        if not isinstance(self.task_types, Mapping):
            raise _type_error(self._key("task_types"), self.task_types, "a mapping of task name -> task type")
        for task, kind in self.task_types.items():
            _nonempty(f"{self._key('task_types')}.{task}", kind)
        if self.order is not None:
            from migu.benchmarks.orders import ORDERS

            if self.order not in ORDERS or self.order == 7:
                raise ConfigError(
                    f"{self._key('order')}={self.order!r}: the task orders are 1-3 (standard) and 4-6 (long) "
                    "of the paper; order 7 (continual pre-training) is not available as a task sequence."
                )
            if self.source not in ("cl_benchmark", "hub"):
                raise ConfigError(f"{self._key('order')}={self.order} needs data.source=cl_benchmark or hub.")
            self.tasks = list(ORDERS[self.order])  # the order defines the sequence
        if not isinstance(self.files, Mapping):
            raise _type_error(self._key("files"), self.files, "a mapping of task name -> file entry")
        if self.source == "files":
            from migu.data.files import FILE_SPEC_KEYS

            missing = [t for t in self.tasks if t not in self.files]
            if missing:
                raise ConfigError(
                    f"data.source=files but data.files has no entry for {', '.join(missing)}; "
                    "give each task {train: PATH, test: PATH, ...}."
                )
            for task, spec in self.files.items():
                if not isinstance(spec, Mapping) or "train" not in spec or "test" not in spec:
                    raise ConfigError(f"{self._key('files')}.{task} needs at least `train` and `test` paths.")
                unknown = sorted(set(spec) - set(FILE_SPEC_KEYS))
                if unknown:
                    raise ConfigError(
                        f"{self._key('files')}.{task} has unknown keys {', '.join(unknown)}; "
                        f"allowed: {', '.join(FILE_SPEC_KEYS)}."
                    )
        if not isinstance(self.hub, Mapping):
            raise _type_error(self._key("hub"), self.hub, "a mapping of task name -> source entry")
        if self.source == "hub" or self.hub:
            from migu.data.hub import HUB_TASKS, HubDataError, hub_task_spec

            if self.source == "hub":
                unknown = [t for t in self.tasks if t not in HUB_TASKS]
                if unknown:
                    raise ConfigError(
                        f"data.source=hub knows the paper's tasks {', '.join(HUB_TASKS)}; not "
                        f"{', '.join(unknown)} (use data.source=files for other tasks)."
                    )
            for task, entry in self.hub.items():
                if not isinstance(entry, Mapping):
                    raise _type_error(f"{self._key('hub')}.{task}", entry, "a mapping of keys to values")
                try:
                    hub_task_spec(task, entry)
                except HubDataError as err:
                    raise ConfigError(str(err)) from None
        if not self.tasks:
            raise ConfigError(
                f"{self._key('tasks')}=[] is empty: give at least one task, e.g. data.tasks=[a,b]."
            )
        duplicates = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if duplicates:
            raise ConfigError(f"{self._key('tasks')}={self.tasks!r} lists {', '.join(duplicates)} twice.")
        for task in self.tasks:
            _nonempty(self._key("tasks"), task)
        if self.data_dir is not None:
            _nonempty(self._key("data_dir"), self.data_dir)
        for name in ("max_train", "max_train_per_class", "max_test"):
            self._range(name, 1)


@dataclass
class TrainConfig(_Section):
    """Optimisation on each task.

    Args:
        epochs: Passes over each task's training set (fractions allowed); ``> 0``.
        task_epochs: Per task name, epochs that replace ``epochs`` for that task, e.g.
            ``{dbpedia: 0.5, yahoo: 2}``; every name must be one of ``data.tasks``.
        max_steps_per_task: Cap on optimizer steps per task (``None``: no cap).
        batch_size: Examples per forward pass.
        grad_accum_steps: Forward passes per optimizer step.
        lr: Peak learning rate; ``> 0``.
        weight_decay: AdamW weight decay; ``>= 0``.
        scheduler: ``"constant"``, ``"linear"`` or ``"cosine"``, restarted on every task.
        warmup_ratio: Fraction of each task's steps spent warming up, in ``[0, 1)``.
        max_grad_norm: Gradient clipping norm (``None``: no clipping).
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"``.
        checkpoint_every: Save every this many optimizer steps; ``0``: only at task boundaries.
        deterministic: Ask torch for deterministic kernels.
    """

    _prefix: ClassVar[str] = "train"

    epochs: float = 1.0
    task_epochs: dict[str, float] = field(default_factory=dict)
    max_steps_per_task: int | None = None
    batch_size: int = 16
    grad_accum_steps: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.0
    scheduler: str = "constant"
    warmup_ratio: float = 0.0
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"
    checkpoint_every: int = 0
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.mixed_precision is False:  # YAML 1.1 reads an unquoted `no` as false
            self.mixed_precision = "no"
        super().__post_init__()

    def _validate(self) -> None:
        self._range("epochs", 0, strict_low=True)
        if not isinstance(self.task_epochs, Mapping):
            raise _type_error(self._key("task_epochs"), self.task_epochs, "a mapping of task name -> epochs")
        checked = {}
        for task, epochs in self.task_epochs.items():
            key = f"{self._key('task_epochs')}.{task}"
            value = _coerce(key, epochs, float)
            if value <= 0:
                raise ConfigError(f"{key}={epochs!r} is out of range: it must be > 0.")
            checked[str(task)] = value
        self.task_epochs = checked
        for name in ("max_steps_per_task", "batch_size", "grad_accum_steps"):
            self._range(name, 1)
        self._range("lr", 0, strict_low=True)
        self._range("weight_decay", 0)
        self._choice("scheduler", SCHEDULER_CHOICES)
        self._range("warmup_ratio", 0, 1)
        self._range("max_grad_norm", 0, strict_low=True)
        self._choice("mixed_precision", MIXED_PRECISION_CHOICES)
        self._range("checkpoint_every", 0)


@dataclass
class EvalConfig(_Section):
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
            raise _type_error(
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
class MiguBlock(_Section):
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
            _nonempty(key, self.targets)
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
                _nonempty(key, name)
        for name in self.exclude:
            _nonempty(self._key("exclude"), name)
        self._choice("normalize", NORMALIZE_CHOICES)
        self._choice("mode", MODE_CHOICES)
        self._choice("criterion", CRITERIA)
        self._range("clusters", 0)
        self._choice("cluster_by", ("weight", "magnitude"))
        if self.clusters and self.criterion != "output":
            raise ConfigError(
                f"{self._key('clusters')}={self.clusters} needs {self._key('criterion')}='output'."
            )
        self._choice("keep_rule", KEEP_RULES)
        if self.fast_path and (self.keep_rule != "count" or not self.mask_bias):
            raise ConfigError(
                f"{self._key('fast_path')}=true needs {self._key('keep_rule')}=count and "
                f"{self._key('mask_bias')}=true (the official choice runs on the dense path)."
            )
        if self.clusters and self.keep_rule != "count":
            raise ConfigError(
                f"{self._key('clusters')}={self.clusters} needs {self._key('keep_rule')}=count."
            )
        if self.fast_path and self.criterion != "output":
            raise ConfigError(
                f"{self._key('fast_path')}=true needs {self._key('criterion')}='output' (the mask must be known "
                f"after the forward); set {self._key('fast_path')}=false for criterion={self.criterion!r}."
            )

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
class MethodConfig(_Section):
    """The continual-learning method of a run (see :mod:`migu.methods`); MIGU combines with any.

    Args:
        name: ``ft``, ``lora``, ``inclora``, ``olora``, ``osf``, ``ewc``, ``mtl``, ``ft_per_task``, or a
            method registered by ``module``. Replay: set ``replay_fraction`` (FTReplay =
            ``ft`` + replay, LoRAReplay = ``lora`` + replay; the paper keeps 2% of each task).
        module: Import path of a module that registers your own method (``migu.methods.register``).
        lora_r: LoRA rank (paper: 8).
        lora_alpha: LoRA alpha (paper: 32).
        lora_dropout: LoRA dropout (paper: 0.05).
        lora_targets: Layer names LoRA (and OSF) adapts; ``None``: PEFT's default for the architecture.
        olora_lambda1: Weight of O-LoRA's orthogonality loss ``sum |A_old A_new^T|``.
        olora_lambda2: Weight of O-LoRA's L2 term on the new adapter (O-LoRA: sum of the L2 norms).
        olora_task_lambda1: Per task name, a ``lambda1`` replacing ``olora_lambda1`` while that task
            trains (O-LoRA's long-sequence scripts set one per task).
        replay_fraction: Share of each finished task's training set kept for replay, in ``[0, 1]``.
        ewc_lambda: Weight of the EWC penalty ``lambda/2 sum_k sum_i F_ki (theta_i - theta*_ki)^2``.
        ewc_samples: Training examples per task used to estimate the diagonal Fisher.
    """

    _prefix: ClassVar[str] = "method"

    name: str = "ft"
    module: str | None = None
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = None
    olora_lambda1: float = 0.5
    olora_lambda2: float = 0.0
    olora_task_lambda1: dict[str, float] = field(default_factory=dict)
    replay_fraction: float = 0.0
    ewc_lambda: float = 100.0
    ewc_samples: int = 64

    def _validate(self) -> None:
        _nonempty(self._key("name"), self.name)
        if self.module is None:
            from migu.methods import available_methods

            if self.name not in available_methods():
                raise ConfigError(
                    f"{self._key('name')}={self.name!r} is not one of: {', '.join(available_methods())} "
                    "(or set method.module to the module that registers it)."
                )
        self._range("lora_r", 1)
        self._range("lora_alpha", 1)
        self._range("lora_dropout", 0, 1)
        for name in ("olora_lambda1", "olora_lambda2", "ewc_lambda"):
            self._range(name, 0)
        if not 0.0 <= self.replay_fraction <= 1.0:
            raise ConfigError(
                f"{self._key('replay_fraction')}={self.replay_fraction!r} is out of range: it must be in [0, 1]."
            )
        self._range("ewc_samples", 1)
        if not isinstance(self.olora_task_lambda1, Mapping):
            raise _type_error(
                self._key("olora_task_lambda1"), self.olora_task_lambda1, "a mapping of task -> lambda1"
            )
        checked = {}
        for task, value in self.olora_task_lambda1.items():
            key = f"{self._key('olora_task_lambda1')}.{task}"
            number = _coerce(key, value, float)
            if number < 0:
                raise ConfigError(f"{key}={value!r} is out of range: it must be >= 0.")
            checked[str(task)] = number
        self.olora_task_lambda1 = checked


@dataclass
class RunConfig(_Section):
    """Everything ``migu run`` needs: model, data, training, evaluation, MIGU, and variants.

    Args:
        name: Run name; ``None`` lets the engine derive one.
        output_dir: Folder under which the run directory is created.
        seed: Random seed, ``>= 0``.
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
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    migu: MiguBlock = field(default_factory=MiguBlock)
    method: MethodConfig = field(default_factory=MethodConfig)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _validate(self) -> None:
        if self.name is not None:
            _nonempty("name", self.name)
            # The name becomes a directory under output_dir.
            if "/" in self.name or "\\" in self.name or self.name in (".", ".."):
                raise ConfigError(f"name={self.name!r} must not contain path separators or be '.'/'..'.")
        _nonempty("output_dir", self.output_dir)
        self._range("seed", 0)
        unknown = sorted(set(self.train.task_epochs) - set(self.data.tasks))
        if unknown:
            raise ConfigError(
                f"train.task_epochs names {', '.join(unknown)}, not in data.tasks; allowed: {', '.join(self.data.tasks)}."
            )
        if self.method.name == "osf" and self.migu.enabled:
            raise ConfigError(
                "method.name=osf with migu.enabled=true: MIGU masks rows of weights and LoRA factors, and OSF "
                "trains SVD factors; the two do not combine yet. Set migu.enabled=false for OSF."
            )
        self.variants = _check_variants(self.variants)
        # Apply each variant now, so a bad override fails before the first run rather than midway.
        base = self.to_dict()
        base["variants"] = {}
        for vname, overrides in self.variants.items():
            try:
                RunConfig(**_merged(base, overrides))
            except ConfigError as e:
                raise ConfigError(f"variants.{vname}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dicts, lists, str, numbers, bools, None) that round-trips through
        :func:`run_config_from_dict` and ``yaml.safe_dump``."""
        return asdict(self)

    def with_overrides(self, overrides: Mapping[str, Any]) -> RunConfig:
        """A new config with dotted-key overrides applied; this one is unchanged.

        Args:
            overrides: Dotted key -> value, e.g. ``{"train.lr": 1e-4, "migu.enabled": True}``. A mapping
                given for a section (``{"train": {"lr": 1e-4}}``) is merged into it; ``variants.NAME``
                sets one variant's overrides and ``variants.NAME.KEY`` one override of it.

        Raises:
            ConfigError: an unknown key or an invalid value.
        """
        return RunConfig(**_merged(self.to_dict(), overrides))


def run_config_from_dict(d: Mapping[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from nested (or dotted) keys; missing keys keep their defaults.

    Raises:
        ConfigError: an unknown key or an invalid value.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"a run config must be a mapping of keys to values, got {type(d).__name__}.")
    return RunConfig().with_overrides(d)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Parse ``"key=value"`` strings (the value as YAML) into a dotted-key mapping.

    Raises:
        ConfigError: an item without ``=`` or with a value that is not valid YAML.
    """
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value, e.g. train.lr=1e-4.")
        try:
            parsed[key] = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({e}).") from None
    return parsed


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
    data: Any = {}
    file = None
    if path is not None:
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise ConfigError(f"config file not found: {file}")
        try:
            data = load_yaml(file.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown line"
            problem = getattr(e, "problem", None) or str(e)
            raise ConfigError(f"invalid YAML in {file} at {where}: {problem}") from None
        if data is None:  # an empty file means all defaults
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{file} must hold a mapping of keys to values, got {type(data).__name__}.")
    parsed = parse_overrides(overrides)
    try:
        config = (base or RunConfig()).with_overrides(data)
    except ConfigError as e:
        if file is None:
            raise
        raise ConfigError(f"{file}: {e}") from None
    return config.with_overrides(parsed) if parsed else config


# --- helpers ---------------------------------------------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _all_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema, for "did you mean" suggestions."""
    keys = []
    for f in fields(cls):
        key = f"{prefix}{f.name}"
        keys.append(key)
        sub = _hints(cls)[f.name]
        if is_dataclass(sub):
            keys.extend(_all_keys(sub, key + "."))
    return keys


def _unknown(key: str, section: Any, root: type | None = None) -> ConfigError:
    """Error for an unknown dotted ``key`` found in dataclass ``section``: the closest key of the
    schema ``root`` (default :class:`RunConfig`), else the section's keys."""
    close = difflib.get_close_matches(key, _all_keys(RunConfig if root is None else root), n=1)
    if close:
        hint = f"Did you mean {close[0]!r}?"
    else:
        hint = f"Known keys here: {', '.join(f.name for f in fields(section))}."
    return ConfigError(f"unknown config key {key!r}. {hint}")


def _nonempty(key: str, value: str) -> None:
    if not value.strip():
        raise ConfigError(f"{key}={value!r} must be a non-empty string.")


def _type_error(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{key}={value!r} must be {expected}, got {type(value).__name__}.")


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` (the few forms the schema uses) and normalize it."""
    args = get_args(tp)
    if type(None) in args:
        if value is None:
            return None
        rest = tuple(a for a in args if a is not type(None))
        tp = rest[0] if len(rest) == 1 else tp
        args = get_args(tp)
    if is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _type_error(key, value, "a mapping of keys to values")
        for k in value:
            if k not in {f.name for f in fields(tp)}:
                raise _unknown(f"{key}.{k}", tp)
        return tp(**value)
    if tp is bool:
        if not isinstance(value, bool):
            raise _type_error(key, value, "true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, value, "an integer")
        return value
    if tp is float:
        number = value
        # YAML 1.1 reads "1e-4" (no dot) as a string, so numeric strings are accepted.
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise _type_error(key, value, "a number") from None
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _type_error(key, value, "a number")
        if not math.isfinite(number):
            raise ConfigError(f"{key}={value!r} must be a finite number.")
        return float(number)
    if tp is str:
        if not isinstance(value, str):
            raise _type_error(key, value, "a string")
        return value
    if get_origin(tp) is list or list[str] in args:
        if isinstance(value, str):
            if get_origin(tp) is not list:  # str | list[str]: a string is a value of its own
                return value
            if "," in value:  # "data.tasks=a,b" parses as one string
                raise ConfigError(f"{key}={value!r}: write a list in brackets, e.g. {key}=[a,b].")
            return [value]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise _type_error(key, value, "a list of strings")
        return list(value)
    return value  # dict[str, Any] (variants) is checked by _check_variants


def _check_variants(variants: Any) -> dict[str, dict[str, Any]]:
    if variants is None:
        return {}
    if not isinstance(variants, Mapping):
        raise _type_error("variants", variants, "a mapping of variant name -> overrides")
    checked: dict[str, dict[str, Any]] = {}
    for name, overrides in variants.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"variant name {name!r} must be a non-empty string.")
        key = f"variants.{name}"
        if overrides is None:  # "baseline:" with nothing under it: the base config as is
            overrides = {}
        if not isinstance(overrides, Mapping):
            raise _type_error(key, overrides, "a mapping of overrides, e.g. {migu.enabled: true}")
        for k in overrides:
            if not isinstance(k, str):
                raise ConfigError(f"{key}: override key {k!r} must be a string.")
            if k == "variants" or k.startswith("variants."):
                raise ConfigError(f"{key}: a variant may not set 'variants' (got key {k!r}).")
        checked[name] = copy.deepcopy(dict(overrides))
    return checked


def _merged(tree: dict[str, Any], overrides: Mapping[str, Any], root: type | None = None) -> dict[str, Any]:
    """A copy of the plain config ``tree`` (of the dataclass ``root``, default :class:`RunConfig`)
    with dotted ``overrides`` set in it."""
    if not isinstance(overrides, Mapping):
        raise ConfigError(
            f"overrides must be a mapping of dotted keys to values, got {type(overrides).__name__}."
        )
    tree = copy.deepcopy(tree)
    for key, value in overrides.items():
        _set(tree, str(key), value, root)
    return tree


def _set(tree: dict[str, Any], key: str, value: Any, root: type | None = None) -> None:
    """Set dotted ``key`` in ``tree``, walking the schema of ``root`` (default :class:`RunConfig`)
    so that unknown keys fail with their full name."""
    root = RunConfig if root is None else root
    parts = key.split(".")
    cls: Any = root
    node = tree
    for i, part in enumerate(parts):
        if part not in {f.name for f in fields(cls)}:
            raise _unknown(key, cls, root)
        here = ".".join(parts[: i + 1])
        sub = _hints(cls)[part]
        if cls is root and part == "variants" and i < len(parts) - 1:
            # variants.NAME sets a variant's overrides; variants.NAME.KEY one override of it.
            variants = node["variants"] if isinstance(node["variants"], dict) else {}
            name, rest = parts[i + 1], ".".join(parts[i + 2 :])
            if not rest:
                variants[name] = value
            else:
                current = variants.get(name)
                variants[name] = {**(current if isinstance(current, Mapping) else {}), rest: value}
            node["variants"] = variants
            return
        if i == len(parts) - 1:
            if is_dataclass(sub) and isinstance(value, Mapping):
                for k, v in value.items():  # a section given as a mapping is merged, not replaced
                    _set(tree, f"{here}.{k}", v, root)
            else:
                node[part] = value
            return
        if get_origin(sub) is dict:
            # A mapping field (eval.general, train.task_epochs, data.files): the rest of the key
            # walks into it, e.g. eval.general.copa.limit=50; validation happens when it is built.
            mapping = node[part] = dict(node[part]) if isinstance(node[part], Mapping) else {}
            for name in parts[i + 1 : -1]:
                mapping[name] = dict(mapping[name]) if isinstance(mapping.get(name), Mapping) else {}
                mapping = mapping[name]
            mapping[parts[-1]] = value
            return
        if not is_dataclass(sub):
            raise ConfigError(f"{here!r} is a value, not a section, so {key!r} is not a config key.")
        if not isinstance(node[part], dict):  # replaced by a non-mapping earlier in the same overrides
            raise _type_error(here, node[part], "a mapping of keys to values")
        node, cls = node[part], sub
