"""The paper's 15 tasks loaded by Hugging Face dataset name (``data.source: hub``).

The CL_Benchmark folder (:mod:`migu.data.cl_benchmark`) holds O-LoRA's pre-sampled copies of the
tasks. This module builds the same tasks from their public sources with ``datasets.load_dataset``:
each task maps to a dataset id and config, a train and a test split (SuperGLUE and GLUE keep the
labels of their test splits private, so their ``validation`` split is the test set, as in O-LoRA's
files), a template that turns a row into the CL_Benchmark ``sentence`` (e.g. MNLI's
``"sentence 1: {premise}\\nsentence 2: {hypothesis}"``), and a map from the dataset's label values to
the CL_Benchmark label texts. :data:`HUB_TASKS` is that table.

Every entry can be overridden per task, to use a mirror, a local folder or local files::

    data:
      source: hub
      order: 1                        # or tasks: [...]
      hub:
        copa: {path: /data/super_glue_copa}                     # a folder with train/validation files
        dbpedia: {data_files: {train: db/train.parquet, test: db/test.parquet}}
        agnews: {path: /data/ag_news_csv, template: "Title: {title}\\nText: {description}\\n",
                 labels: {1: World, 2: Sports, 3: Business, 4: Science or Technology}}

The keys (:data:`HUB_OVERRIDE_KEYS`): ``path`` (a Hub id, a local folder, or a builder name such as
``json`` / ``parquet`` / ``csv``), ``name`` (the dataset config), ``data_files`` (a file, a list, or a
mapping split -> file(s); without ``path`` the builder is taken from the file suffix),
``train_split``, ``test_split``, ``template`` (``str.format`` fields are column names; write a literal
brace as ``{{``), ``label_column`` and ``labels`` (label value -> label text; the texts must be the
task's CL_Benchmark labels). Relative local paths are resolved against ``data.data_dir`` (default:
the current directory). Overriding ``path`` or ``data_files`` clears the default ``name``, since a
Hub config name means nothing to a local copy.

The instruction and task type of each task are the paper's (:data:`PAPER_INSTRUCTIONS`,
:data:`~migu.data.cl_benchmark.CL_BENCHMARK_TASK_TYPES`), so a hub task and its CL_Benchmark twin
give the same prompts for the same example. The caps (``max_train``, ``max_train_per_class``,
``max_test``) sample per class as the papers do (:func:`~migu.data.sampling.balanced_sample`); only
the rows kept are formatted, since a full split holds up to 1.4M rows (Yahoo Answers).
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migu.data.cl_benchmark import CL_BENCHMARK_TASK_TYPES
from migu.data.sampling import balanced_sample, check_cap
from migu.data.task import Task, TaskDataError

__all__ = [
    "HUB_OVERRIDE_KEYS",
    "HUB_TASKS",
    "PAPER_INSTRUCTIONS",
    "TASK_LABELS",
    "HubDataError",
    "HubTaskSpec",
    "hub_task_spec",
    "load_hub_task",
]

#: The zero-shot instruction of each task type, verbatim from O-LoRA's
#: ``configs/instruction_config.json`` (the copy in ``../shared/data/cl_benchmark`` is identical;
#: tests compare them when it is present). COPA has none: the official code prompts it without one.
PAPER_INSTRUCTIONS: dict[str, str] = {
    "NLI": 'What is the logical relationship between the "sentence 1" and the "sentence 2"? '
    "Choose one from the option.\n",
    "QQP": 'Whether the "first sentence" and the "second sentence" have the same meaning? '
    "Choose one from the option.\n",
    "SC": "What is the sentiment of the following paragraph? Choose one from the option.\n",
    "TC": "What is the topic of the following paragraph? Choose one from the option.\n",
    "BoolQA": "According to the following passage, is the question true or false? Choose one from the option.\n",
    "MultiRC": "According to the following passage and question, is the candidate answer true or false? "
    "Choose one from the option.\n",
    "WiC": "Given a word and two sentences, whether the word is used with the same sense in both sentence? "
    "Choose one from the option.\n",
    "COPA": "",
}

_SENTIMENT_5 = ("very negative", "negative", "neutral", "positive", "very positive")

#: Each task's label texts in the order of its CL_Benchmark ``labels.json`` (the prompt's option
#: order), so that prompts match the CL_Benchmark ones exactly.
TASK_LABELS: dict[str, tuple[str, ...]] = {
    "dbpedia": (
        "Company", "Educational Institution", "Artist", "Athlete", "Office Holder",
        "Mean of Transportation", "Building", "Natural Place", "Village", "Animal", "Plant", "Album",
        "Film", "Written Work",
    ),
    "amazon": _SENTIMENT_5,
    "yahoo": (
        "Society & Culture", "Science & Mathematics", "Health", "Education & Reference",
        "Computers & Internet", "Sports", "Business & Finance", "Entertainment & Music",
        "Family & Relationships", "Politics & Government",
    ),
    "agnews": ("World", "Sports", "Business", "Science or Technology"),
    "mnli": ("neutral", "entailment", "contradiction"),
    "cb": ("entailment", "contradiction", "neutral"),
    "wic": ("True", "False"),
    "copa": ("A", "B"),
    "qqp": ("False", "True"),
    "boolq": ("True", "False"),
    "rte": ("contradiction", "entailment"),
    "imdb": ("Good", "Bad"),
    "yelp": _SENTIMENT_5,
    "multirc": ("False", "True"),
    "sst2": ("Good", "Bad"),
}  # fmt: skip

#: The keys of one task's entry under ``data.hub``.
HUB_OVERRIDE_KEYS = (
    "path",
    "name",
    "data_files",
    "train_split",
    "test_split",
    "template",
    "label_column",
    "labels",
)

# Suffix -> datasets' packaged builder, for `data_files` given without `path`.
_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}


class HubDataError(TaskDataError):
    """A hub task cannot be loaded or its rows do not fit its definition; the message says the fix."""


@dataclass(frozen=True)
class HubTaskSpec:
    """Where one task's data lives and how a row becomes a CL_Benchmark record.

    Attributes:
        path: First argument of ``datasets.load_dataset``: a Hub id, a local folder, or a builder
            name (``"json"``, ``"parquet"``, ``"csv"``) used with ``data_files``.
        name: The dataset config (e.g. ``"copa"`` of ``aps/super_glue``), or ``None``.
        train_split: The split the training records come from.
        test_split: The split the test records come from (``validation`` where the test split has no
            labels).
        template: ``str.format`` template over the row's columns giving the record's ``sentence``.
        label_column: The column holding the label value.
        labels: Label value -> label text; the texts are exactly the task's CL_Benchmark labels.
        data_files: ``data_files`` of ``datasets.load_dataset`` (a file, a list, or split -> file(s)),
            or ``None``.
    """

    path: str
    name: str | None
    train_split: str
    test_split: str
    template: str
    label_column: str
    labels: Mapping[Any, str]
    data_files: str | Sequence[str] | Mapping[str, Any] | None = None

    def columns(self) -> list[str]:
        """The columns a row needs: the template's fields, then the label column."""
        fields = []
        for _, field, _, _ in string.Formatter().parse(self.template):
            if field is not None:
                # "{idx[paragraph]}" or "{a.b}" read column "idx" / "a".
                root = field.split(".")[0].split("[")[0]
                if root not in fields:
                    fields.append(root)
        return [*fields, self.label_column] if self.label_column not in fields else fields


def _nli(path: str, name: str, test_split: str, labels: Mapping[int, str]) -> HubTaskSpec:
    return HubTaskSpec(
        path, name, "train", test_split, "sentence 1: {premise}\nsentence 2: {hypothesis}", "label", labels
    )


_BINARY_FALSE_TRUE = {0: "False", 1: "True"}

#: Task name -> its default source. Label values are those of the datasets' ``ClassLabel`` features;
#: where a dataset's label names differ from the CL_Benchmark texts the map says which is which (RTE's
#: ``not_entailment`` is CL_Benchmark's ``contradiction``; SST-2/IMDB ``negative``/``positive`` are
#: ``Bad``/``Good``; QQP ``duplicate`` is ``True``; COPA's ``choice1``/``choice2`` are ``A``/``B``).
HUB_TASKS: dict[str, HubTaskSpec] = {
    # Zhang et al. (2015) topic and sentiment sets, the sources of the MbPA++/LAMOL/O-LoRA copies.
    "dbpedia": HubTaskSpec(
        "fancyzhx/dbpedia_14", None, "train", "test", "Title: {title}\nText: {content}\n", "label",
        dict(enumerate(TASK_LABELS["dbpedia"])),
    ),
    # fancyzhx/ag_news joins title and description into one `text` column, so the CL_Benchmark's
    # "Title: ...\nText: ...\n" cannot be rebuilt from it; a copy with both columns can use
    # template "Title: {title}\nText: {description}\n".
    "agnews": HubTaskSpec(
        "fancyzhx/ag_news", None, "train", "test", "Text: {text}\n", "label",
        dict(enumerate(TASK_LABELS["agnews"])),
    ),
    # The CL_Benchmark yahoo was rebuilt from LFPT5's splits: question title, content and best answer
    # joined by single spaces.
    "yahoo": HubTaskSpec(
        "community-datasets/yahoo_answers_topics", None, "train", "test",
        "{question_title} {question_content} {best_answer}", "topic", dict(enumerate(TASK_LABELS["yahoo"])),
    ),
    # The CL_Benchmark amazon is Zhang et al.'s Amazon Review Full (1-5 stars, title and text), which
    # has no official Hub copy; amazon_reviews_multi (en) has the same fields and star scale.
    "amazon": HubTaskSpec(
        "amazon_reviews_multi", "en", "train", "test", "Title: {review_title}\nText: {review_body}\n", "stars",
        {stars: text for stars, text in zip(range(1, 6), _SENTIMENT_5, strict=True)},
    ),
    "yelp": HubTaskSpec(
        "Yelp/yelp_review_full", None, "train", "test", "Text: {text}\n", "label", dict(enumerate(_SENTIMENT_5)),
    ),
    "imdb": HubTaskSpec("stanfordnlp/imdb", None, "train", "test", "{text}", "label", {0: "Bad", 1: "Good"}),
    "sst2": HubTaskSpec(
        "nyu-mll/glue", "sst2", "train", "validation", "Text: {sentence}", "label", {0: "Bad", 1: "Good"}
    ),
    "mnli": _nli("nyu-mll/glue", "mnli", "validation_matched", {0: "entailment", 1: "neutral", 2: "contradiction"}),
    "cb": _nli("aps/super_glue", "cb", "validation", {0: "entailment", 1: "contradiction", 2: "neutral"}),
    "rte": _nli("aps/super_glue", "rte", "validation", {0: "entailment", 1: "contradiction"}),
    "qqp": HubTaskSpec(
        "nyu-mll/glue", "qqp", "train", "validation", "first sentence: {question1}\nsecond sentence: {question2}",
        "label", _BINARY_FALSE_TRUE,
    ),
    "boolq": HubTaskSpec(
        "aps/super_glue", "boolq", "train", "validation", "question: {question}\npassage: {passage}", "label",
        _BINARY_FALSE_TRUE,
    ),
    "multirc": HubTaskSpec(
        "aps/super_glue", "multirc", "train", "validation",
        "paragraph: {paragraph}\nquestion: {question}\ncandidate answer: {answer}", "label", _BINARY_FALSE_TRUE,
    ),
    "wic": HubTaskSpec(
        "aps/super_glue", "wic", "train", "validation", "word: {word}\n{sentence1}\n{sentence2}", "label",
        _BINARY_FALSE_TRUE,
    ),
    "copa": HubTaskSpec(
        "aps/super_glue", "copa", "train", "validation",
        'Which sentence is the {question} of "{premise}"? Choose one between A and B.\nA: {choice1}\nB: {choice2}',
        "label", {0: "A", 1: "B"},
    ),
}  # fmt: skip


def _label_key(value: Any) -> str:
    # YAML gives `labels: {1: World}` int keys, a CSV column may hold "1": compare the text forms.
    return str(value)


def hub_task_spec(name: str, overrides: Mapping[str, Any] | None = None) -> HubTaskSpec:
    """The source of hub task ``name``: its :data:`HUB_TASKS` entry with ``overrides`` applied.

    Args:
        name: One of the paper's 15 task names (the keys of :data:`HUB_TASKS`).
        overrides: The task's entry under ``data.hub`` (keys: :data:`HUB_OVERRIDE_KEYS`), or ``None``.

    Returns:
        The checked spec.

    Raises:
        HubDataError: An unknown task or key, a value of the wrong type, a template that is not a valid
            format string, or ``labels`` whose texts are not the task's CL_Benchmark labels.
    """
    if name not in HUB_TASKS:
        raise HubDataError(
            f"{name!r} is not one of the paper's tasks that data.source=hub knows: {', '.join(HUB_TASKS)}."
        )
    overrides = dict(overrides or {})
    where = f"data.hub.{name}"
    unknown = sorted(set(overrides) - set(HUB_OVERRIDE_KEYS))
    if unknown:
        raise HubDataError(
            f"{where} has unknown keys {', '.join(unknown)}; allowed: {', '.join(HUB_OVERRIDE_KEYS)}."
        )
    for key in ("path", "train_split", "test_split", "template", "label_column"):
        if key in overrides and (not isinstance(overrides[key], str) or not overrides[key]):
            raise HubDataError(f"{where}.{key}={overrides[key]!r} must be a non-empty string.")
    if overrides.get("name") is not None and not isinstance(overrides["name"], str):
        raise HubDataError(f"{where}.name={overrides['name']!r} must be a string (a dataset config) or null.")
    data_files = overrides.get("data_files")
    if data_files is not None and not _valid_data_files(data_files):
        raise HubDataError(
            f"{where}.data_files={data_files!r} must be a file path, a list of paths, or a mapping "
            "split -> path(s)."
        )
    if data_files is not None and "path" not in overrides:
        # data_files alone: datasets' packaged builder for their format, from the file suffix.
        suffix = Path(_first_file(data_files)).suffix.lower()
        if suffix not in _BUILDERS:
            raise HubDataError(
                f"{where}.data_files: cannot tell the format of {_first_file(data_files)!r}; use "
                f"{', '.join(sorted(_BUILDERS))} files or set {where}.path to a builder (json, parquet, csv)."
            )
        overrides["path"] = _BUILDERS[suffix]
    if ("path" in overrides or "data_files" in overrides) and "name" not in overrides:
        overrides["name"] = None  # the Hub config name means nothing to another copy
    if "labels" in overrides:
        overrides["labels"] = _checked_labels(name, overrides["labels"])
    spec = dataclasses.replace(HUB_TASKS[name], **overrides)
    try:
        spec.columns()
        spec.template.format_map(_AnyRow())
    except (ValueError, IndexError, KeyError, AttributeError) as err:
        raise HubDataError(
            f"{where}.template={spec.template!r} is not a valid format string ({err}); fields are column "
            "names in braces, e.g. 'Title: {title}\\nText: {content}\\n', and a literal brace is written {{ or }}."
        ) from None
    return spec


class _AnyRow(dict):
    """A row where every column exists, to check a template's syntax before any data is read."""

    def __missing__(self, key: str) -> _AnyRow:
        return _AnyRow()

    def __getattr__(self, key: str) -> _AnyRow:
        return _AnyRow()

    def __format__(self, spec: str) -> str:
        return ""


def _valid_data_files(value: Any) -> bool:
    def paths(v: Any) -> bool:
        if isinstance(v, str):
            return bool(v)
        return isinstance(v, list | tuple) and bool(v) and all(isinstance(p, str) and p for p in v)

    if isinstance(value, Mapping):
        return bool(value) and all(isinstance(k, str) and paths(v) for k, v in value.items())
    return paths(value)


def _checked_labels(name: str, labels: Any) -> dict[Any, str]:
    expected = set(TASK_LABELS[name])
    if (
        not isinstance(labels, Mapping)
        or not labels
        or not all(isinstance(text, str) for text in labels.values())
        or set(labels.values()) - expected
    ):
        raise HubDataError(
            f"data.hub.{name}.labels={labels!r} must map label values to the task's label texts "
            f"({', '.join(map(repr, TASK_LABELS[name]))})."
        )
    return dict(labels)


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------


def _resolve(path: str, base: Path) -> Path | None:
    """``path`` as an existing local file or folder (relative to ``base``), else ``None``."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    return candidate if candidate.exists() else None


def _resolved_data_files(data_files: Any, base: Path) -> Any:
    def one(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else base / q)

    if isinstance(data_files, str):
        return one(data_files)
    if isinstance(data_files, Mapping):
        return {split: _resolved_data_files(v, base) for split, v in data_files.items()}
    return [one(p) for p in data_files]


def _all_files(data_files: Any) -> list[str]:
    if isinstance(data_files, str):
        return [data_files]
    if isinstance(data_files, Mapping):
        return [f for value in data_files.values() for f in _all_files(value)]
    return list(data_files)


def _first_file(data_files: Any) -> str:
    return _all_files(data_files)[0]


def _load_split(task: str, spec: HubTaskSpec, split: str, base: Path) -> Any:
    """``datasets.load_dataset`` for one split, with its failures turned into HubDataError."""
    import datasets  # a heavy import, only needed when a hub task is loaded

    fix = (
        f"set data.hub.{task}.path to a local folder (or data_files to local json/jsonl/parquet/csv files) "
        f"holding the columns {', '.join(spec.columns())}"
    )
    path = spec.path
    kwargs: dict[str, Any] = {}
    if spec.data_files is not None:
        kwargs["data_files"] = _resolved_data_files(spec.data_files, base)
        for file in _all_files(kwargs["data_files"]):
            if not any(c in file for c in "*?[") and not Path(file).is_file():  # globs are datasets' to match
                raise HubDataError(f"hub task {task!r}: data file {file} does not exist; {fix}.")
    local = _resolve(path, base)
    if local is not None:
        path = str(local)
    elif Path(path).expanduser().is_absolute():
        raise HubDataError(f"hub task {task!r}: local path {path} does not exist; {fix}.")
    described = f"{path!r}" + (f" (config {spec.name!r})" if spec.name else "")
    try:
        return datasets.load_dataset(path, spec.name, split=split, **kwargs)
    except ConnectionError as err:
        # Offline: HF_HUB_OFFLINE=1 raises at once, an unreachable network after retries.
        raise HubDataError(
            f"hub task {task!r}: cannot reach {described} on the Hugging Face Hub: the network is absent "
            f"or offline mode is on ({err}). To run without a network, {fix}. If {path!r} was meant as a "
            f"local folder, it was not found under {base}."
        ) from None
    except FileNotFoundError as err:
        raise HubDataError(
            f"hub task {task!r}: dataset {described} not found ({err}). Check the id, or {fix}."
        ) from None
    except datasets.exceptions.DatasetGenerationError as err:
        # e.g. a folder whose split files have different columns: the cause says which.
        cause = " ".join(str(err.__cause__ or err).split())
        raise HubDataError(
            f"hub task {task!r}: the files of {described} could not be read: {cause}"
        ) from None
    except ValueError as err:
        message = str(err)
        if "split" in message.lower():
            key = "train_split" if split == spec.train_split else "test_split"
            raise HubDataError(
                f"hub task {task!r}: {described} has no split {split!r} ({message}); set data.hub.{task}.{key}."
            ) from None
        if "config" in message.lower():
            raise HubDataError(
                f"hub task {task!r}: {described}: {message}; set data.hub.{task}.name (null for none)."
            ) from None
        raise HubDataError(f"hub task {task!r}: loading {described} failed: {message}") from None


def _pools(task: str, spec: HubTaskSpec, dataset: Any, split: str) -> dict[str, list[str]]:
    """Row indices (as strings) per label text, in row order, after checking columns and labels."""
    columns = list(dataset.column_names)
    for column in spec.columns():
        if column not in columns:
            raise HubDataError(
                f"hub task {task!r}, {split} split, row 0: no column {column!r} (the rows have "
                f"{', '.join(map(repr, columns))}). Set data.hub.{task}.template / label_column to the "
                f"columns of this copy, or point data.hub.{task}.path at a copy with the expected columns."
            )
    if len(dataset) == 0:
        raise HubDataError(f"hub task {task!r}: the {split} split has no rows; a task needs both splits.")
    by_key = {_label_key(value): text for value, text in spec.labels.items()}
    pools: dict[str, list[str]] = {}
    for index, value in enumerate(dataset[spec.label_column]):
        text = by_key.get(_label_key(value))
        if text is None:
            hint = (
                " GLUE and SuperGLUE mark rows without a gold label with -1 (their test splits): use a "
                f"labelled split (data.hub.{task}.test_split)."
                if value in (-1, None)
                else f" Map it with data.hub.{task}.labels."
            )
            raise HubDataError(
                f"hub task {task!r}, {split} split, row {index}: label {value!r} in column "
                f"{spec.label_column!r} is out of range (known: {', '.join(map(repr, spec.labels))}).{hint}"
            )
        pools.setdefault(text, []).append(str(index))
    return pools


def _sentence(task: str, spec: HubTaskSpec, dataset: Any, split: str, index: int) -> str:
    row = dataset[index]
    for column in spec.columns():
        if row.get(column) is None:
            raise HubDataError(
                f"hub task {task!r}, {split} split, row {index}: column {column!r} is empty (null); "
                "fix or drop the row."
            )
    return spec.template.format_map(row)


def load_hub_task(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    base_dir: str | Path | None = None,
    max_train: int | None = None,
    max_train_per_class: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
) -> Task:
    """Load one of the paper's tasks with ``datasets.load_dataset`` (see the module docstring).

    Args:
        name: Task name, one of :data:`HUB_TASKS` (e.g. ``"copa"``).
        overrides: The task's entry under ``data.hub`` (keys: :data:`HUB_OVERRIDE_KEYS`), or ``None``
            for the default source.
        base_dir: Folder that relative local paths are resolved against (default: the current one).
        max_train: Keep at most this many training records, class-balanced (``None``: all).
        max_train_per_class: Keep at most this many training records per label (``None``: all).
        max_test: Keep at most this many test records, class-balanced (``None``: all).
        seed: Seed of the sampling and of the record order.

    Returns:
        The task: CL_Benchmark label texts and order, the paper's instruction and task type, records
        ``{"sentence": str, "label": str}`` in a seeded order.

    Raises:
        HubDataError: A bad override; the dataset cannot be reached (no network: the message says how
            to point ``data.hub.<task>.path`` at local files) or found; a missing split or column; a
            label value outside the task's map (the message names task, split, row and column).
        ValueError: A cap that is negative or not an int.
    """
    for value, arg in (
        (max_train, "max_train"),
        (max_train_per_class, "max_train_per_class"),
        (max_test, "max_test"),
    ):
        check_cap(value, arg)
    spec = hub_task_spec(name, overrides)
    base = Path(base_dir).expanduser() if base_dir is not None else Path.cwd()
    labels = TASK_LABELS[name]
    records: dict[str, list[dict[str, str]]] = {}
    for role, split, per_class, total in (
        ("train", spec.train_split, max_train_per_class, max_train),
        ("test", spec.test_split, None, max_test),
    ):
        dataset = _load_split(name, spec, split, base)
        # Sample row indices first and format only the rows kept (full splits reach 1.4M rows).
        # String seeds are hashed with SHA-512 by `random`: stable across processes and PYTHONHASHSEED.
        chosen = balanced_sample(
            _pools(name, spec, dataset, split),
            labels,
            per_class=per_class,
            total=total,
            # The test draw does not depend on the seed: every run is scored on the same items.
            rng=random.Random(
                f"migu.hub:{name}:{seed}:{role}" if role == "train" else f"migu.hub:{name}:test"
            ),
        )
        records[role] = [
            {"sentence": _sentence(name, spec, dataset, split, int(r["sentence"])), "label": r["label"]}
            for r in chosen
        ]
    task_type = CL_BENCHMARK_TASK_TYPES[name]
    config = f", config {spec.name}" if spec.name else ""
    files = f", data_files {spec.data_files}" if spec.data_files is not None else ""
    return Task(
        name=name,
        labels=labels,
        train=records["train"],
        test=records["test"],
        instruction=PAPER_INSTRUCTIONS[task_type],
        source=f"datasets.load_dataset({spec.path}{config}{files}): train={spec.train_split}, test={spec.test_split}",
        task_type=task_type,
    )
