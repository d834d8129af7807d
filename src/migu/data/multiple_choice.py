"""General multiple-choice benchmarks as scoring requests, to measure forgetting of a decoder.

Each loader turns one benchmark's standard file format into :class:`MCItem` records, formatted as
lm-evaluation-harness (lm-eval) formats its zero-shot tasks, so that
:func:`migu.eval.multiple_choice.multiple_choice_accuracy` gives numbers comparable to published ones:

- HellaSwag (``hellaswag``): the official jsonl (``ctx_a``, ``ctx_b`` or ``ctx``, ``activity_label``,
  ``endings``, ``label``) and the Hugging Face ``Rowan/hellaswag`` columns (same names, ``label`` a
  string). Context ``preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())``, choices
  ``" " + preprocess(ending)``; ``preprocess`` is lm-eval's (strip, ``" [title]"`` -> ``". "``, drop
  ``[...]`` markup, collapse double spaces).
- ARC (``arc``): AllenAI's jsonl (``question: {stem, choices: [{text, label}]}``, ``answerKey``) and
  the flat Hugging Face ``allenai/ai2_arc`` columns (``question``, ``choices: {text: [...], label:
  [...]}``, ``answerKey``). Labels may be letters (A-E) or digits (1-5). Context
  ``"Question: {stem}\\nAnswer:"``, choices ``" {text}"``.
- WinoGrande (``winogrande``): ``sentence`` with one ``_``, ``option1``, ``option2``, ``answer``
  (``"1"``/``"2"``). lm-eval's *partial* scoring: each option is substituted into the sentence up to
  the blank (a different **context** per choice), and the same **continuation** (the rest of the
  sentence after the blank) is scored after each. :class:`MCItem` carries such items with
  ``contexts`` (one per choice) and identical ``choices``.
- COPA (``copa``): SuperGLUE's jsonl / Hugging Face columns (``premise``, ``choice1``, ``choice2``,
  ``question``, ``label``) and the records of the O-LoRA CL_Benchmark copy
  (``{"sentence": 'Which sentence is the effect of "..."? Choose one between A and B.\\nA: ...\\nB:
  ...', "label": "A"}``, see :func:`load_copa`). lm-eval's format: context = the premise without its
  final period + ``" because"`` (cause) or ``" therefore"`` (effect); choices = ``" "`` + the
  alternative with a lower-case first letter.

Files: JSON (a list of records), JSON Lines (``.jsonl``; also a ``.json`` file that does not start
with ``[``, as ``datasets``' ``to_json`` writes), and Parquet (Hugging Face exports; read with
``pyarrow``, which ``datasets`` installs). A malformed file raises :class:`MultipleChoiceFileError`
naming the file, the line (or record/row), the field and what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migu.data.records import read_records

__all__ = [
    "MC_FORMATS",
    "MCItem",
    "MultipleChoiceFileError",
    "detect_format",
    "hellaswag_preprocess",
    "load_copa",
    "load_multiple_choice",
]


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question as log-likelihood requests.

    Choice ``i`` is scored as the log-probability of ``choices[i]`` (the *continuation*) following
    ``contexts[i]`` if ``contexts`` is given, else following ``context``. Continuations carry their
    leading space (lm-eval's target delimiter), e.g. ``" Paris"``.

    Partial scoring (WinoGrande): ``contexts`` holds one context per choice and ``choices`` holds the
    *same* continuation for every choice, so the model is asked which context makes the shared
    ending most likely; ``context`` then keeps the original sentence (with its ``_``) for display.

    Attributes:
        context: The text before every choice (a display copy when ``contexts`` is set).
        choices: The scored continuations, one per choice.
        answer: Index of the correct choice.
        id: A stable identifier (the file's id field, else ``"<file stem>-<index>"``).
        contexts: Per-choice contexts for partial scoring, else ``None``.
    """

    context: str
    choices: tuple[str, ...]
    answer: int
    id: str
    contexts: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.choices) < 2:
            raise ValueError(f"MCItem {self.id!r} needs at least two choices, got {len(self.choices)}.")
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(
                f"MCItem {self.id!r}: answer {self.answer} is not an index into {len(self.choices)} choices."
            )
        if self.contexts is not None and len(self.contexts) != len(self.choices):
            raise ValueError(
                f"MCItem {self.id!r}: {len(self.contexts)} contexts for {len(self.choices)} choices; "
                "partial scoring needs one context per choice."
            )

    @property
    def partial(self) -> bool:
        """Whether the choices differ in their context (WinoGrande) rather than their continuation."""
        return self.contexts is not None

    def requests(self) -> list[tuple[str, str]]:
        """The ``(context, continuation)`` pair to score for each choice, in choice order."""
        if self.contexts is not None:
            return list(zip(self.contexts, self.choices, strict=True))
        return [(self.context, choice) for choice in self.choices]


class MultipleChoiceFileError(ValueError):
    """A benchmark file is missing, unreadable, or a record lacks a field; the message says which."""


#: The formats :func:`load_multiple_choice` reads, with the fields each needs.
MC_FORMATS: dict[str, str] = {
    "hellaswag": (
        'HellaSwag records need "ctx" (or "ctx_a" and "ctx_b"), "endings" (a list of strings) and '
        '"label" (an index into endings; the official test split has no labels: use validation)'
    ),
    "arc": (
        'ARC records need "question" (a string, or {"stem", "choices": [{"text", "label"}]}), '
        '"choices" ({"text": [...], "label": [...]}) unless inside "question", and "answerKey" '
        "(one of the choice labels, A-E or 1-5)"
    ),
    "winogrande": (
        'WinoGrande records need "sentence" (with one "_" blank), "option1", "option2" and '
        '"answer" ("1" or "2"; the test split has no answers)'
    ),
    "copa": (
        'COPA records need "premise", "choice1", "choice2", "question" ("cause" or "effect") and '
        '"label" (0 or 1), or the CL_Benchmark form {"sentence": "Which sentence is the cause|effect '
        'of \\"...\\"? Choose one between A and B.\\nA: ...\\nB: ...", "label": "A" or "B"}'
    ),
}


class _BadRecord(Exception):
    """Raised by the record parsers; the loader adds the file and line."""


# ---------------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------------


def _iter_records(path: Path) -> Iterator[tuple[str, Any]]:
    """``(where, record)`` for each record of a JSON, JSON Lines or Parquet file; ``where`` names
    the line (JSON Lines), record (JSON list) or row (Parquet), counting from 1."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        except ImportError as err:
            raise MultipleChoiceFileError(
                f"{path}: reading Parquet needs pyarrow (installed with datasets): {err}"
            ) from None
        except Exception as err:  # pyarrow raises its own error types for corrupt files
            raise MultipleChoiceFileError(f"{path}: not a readable Parquet file ({err}).") from None
        for number, row in enumerate(rows, 1):
            yield f"row {number}", row
        return
    yield from read_records(path, MultipleChoiceFileError)


# ---------------------------------------------------------------------------------------------------
# Field helpers
# ---------------------------------------------------------------------------------------------------


def _str(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        problem = "missing" if key not in record else f"not a string ({type(value).__name__} {value!r:.60})"
        raise _BadRecord(f"field {key!r} {problem}")
    return value


def _str_list(value: Any, key: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _BadRecord(f"field {key!r} must be a list of strings, found {value!r:.80}")
    return list(value)


def _index(value: Any, key: str, n: int, base: int = 0) -> int:
    """An index given as int or digit string (``base`` 1 for "1"/"2" answers), checked to be in range."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        what = "missing" if value is None else f"{value!r:.40}"
        raise _BadRecord(f"field {key!r} is {what}, expected an integer {base}..{n - 1 + base}")
    if not base <= value < n + base:
        raise _BadRecord(f"field {key!r} is {value}, expected {base}..{n - 1 + base}")
    return value - base


def _record_id(record: Mapping[str, Any], keys: tuple[str, ...], default: str) -> str:
    for key in keys:
        value = record.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) != "":
            return str(value)
    return default


# ---------------------------------------------------------------------------------------------------
# HellaSwag
# ---------------------------------------------------------------------------------------------------


def hellaswag_preprocess(text: str) -> str:
    """lm-eval's HellaSwag text cleaning: strip, ``" [title]"`` -> ``". "``, drop ``[...]``, ``"  "`` -> ``" "``.

    The brackets are artifacts of the WikiHow part of HellaSwag (``[header]``, ``[step]``, ...).
    """
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(record: Mapping[str, Any], default_id: str) -> MCItem:
    if "endings" not in record:
        raise _BadRecord("field 'endings' missing")
    endings = _str_list(record["endings"], "endings")
    if "ctx_a" in record and "ctx_b" in record:
        # lm-eval capitalizes ctx_b (str.capitalize also lower-cases the rest, as there).
        ctx = _str(record, "ctx_a") + " " + _str(record, "ctx_b").capitalize()
    elif "ctx" in record:
        ctx = _str(record, "ctx")
    else:
        raise _BadRecord("fields 'ctx' (or 'ctx_a' and 'ctx_b') missing")
    activity = record.get("activity_label")
    query = f"{activity}: {ctx}" if isinstance(activity, str) and activity else ctx
    label = record.get("label")
    if label is None or label == "":
        raise _BadRecord("field 'label' missing or empty (unlabelled test split?)")
    answer = _index(label, "label", len(endings))
    return MCItem(
        context=hellaswag_preprocess(query),
        choices=tuple(" " + hellaswag_preprocess(ending) for ending in endings),
        answer=answer,
        id=_record_id(record, ("ind", "id"), default_id),
    )


# ---------------------------------------------------------------------------------------------------
# ARC
# ---------------------------------------------------------------------------------------------------

_LETTERS = "ABCDEFGH"


def _arc(record: Mapping[str, Any], default_id: str) -> MCItem:
    question = record.get("question")
    if isinstance(question, Mapping):  # AllenAI jsonl: {"stem", "choices": [{"text", "label"}]}
        stem = _str(question, "stem")
        raw = question.get("choices")
        if not isinstance(raw, list) or not all(isinstance(c, Mapping) for c in raw):
            raise _BadRecord('field \'question.choices\' must be a list of {"text", "label"} objects')
        texts = [_str(c, "text") for c in raw]
        labels = [str(c.get("label", "")) for c in raw]
    elif isinstance(question, str):  # Hugging Face allenai/ai2_arc: flat columns
        stem = question
        raw = record.get("choices")
        if not isinstance(raw, Mapping):
            problem = "missing" if raw is None else f"not an object ({raw!r:.60})"
            raise _BadRecord(f'field \'choices\' {problem}, expected {{"text": [...], "label": [...]}}')
        texts = _str_list(raw.get("text"), "choices.text")
        labels = [str(v) for v in _str_list(raw.get("label"), "choices.label")]
        if len(labels) != len(texts):
            raise _BadRecord(f"'choices' has {len(texts)} texts but {len(labels)} labels")
    else:
        problem = "missing" if question is None else f"neither a string nor an object ({question!r:.60})"
        raise _BadRecord(f"field 'question' {problem}")
    key = str(_str(record, "answerKey")).strip()
    if key in labels:
        answer = labels.index(key)
    elif key.isdigit() and 1 <= int(key) <= len(_LETTERS) and _LETTERS[int(key) - 1] in labels:
        answer = labels.index(_LETTERS[int(key) - 1])  # digit key, letter labels
    elif key in _LETTERS and str(_LETTERS.index(key) + 1) in labels:
        answer = labels.index(str(_LETTERS.index(key) + 1))  # letter key, digit labels
    else:
        raise _BadRecord(f"field 'answerKey' is {key!r}, not one of the choice labels {labels}")
    return MCItem(
        context=f"Question: {stem}\nAnswer:",
        choices=tuple(f" {text}" for text in texts),
        answer=answer,
        id=_record_id(record, ("id",), default_id),
    )


# ---------------------------------------------------------------------------------------------------
# WinoGrande
# ---------------------------------------------------------------------------------------------------


def _winogrande(record: Mapping[str, Any], default_id: str) -> MCItem:
    sentence = _str(record, "sentence")
    if "_" not in sentence:
        raise _BadRecord(f"field 'sentence' has no '_' blank: {sentence!r:.80}")
    options = (_str(record, "option1"), _str(record, "option2"))
    answer = record.get("answer")
    if answer is None or answer == "":
        raise _BadRecord("field 'answer' missing or empty (unlabelled test split?)")
    # lm-eval (preprocess_winogrande.py): the blank is the first "_"; the continuation is the rest
    # of the sentence, stripped, after the target delimiter " ".
    blank = sentence.index("_")
    continuation = " " + sentence[blank + 1 :].strip()
    return MCItem(
        context=sentence,
        choices=(continuation, continuation),
        answer=_index(answer, "answer", 2, base=1),
        id=_record_id(record, ("qID", "id"), default_id),
        contexts=tuple(sentence[:blank] + option for option in options),
    )


# ---------------------------------------------------------------------------------------------------
# COPA
# ---------------------------------------------------------------------------------------------------

# The O-LoRA CL_Benchmark COPA sentence (all 500 records of the shared copy have this form).
_CL_COPA = re.compile(
    r'Which sentence is the (cause|effect) of "(.*)"\? Choose one between A and B\.\nA: (.*)\nB: (.*)',
    re.DOTALL,
)
_COPA_CONNECTORS = {"cause": "because", "effect": "therefore"}


def _copa_item(
    premise: str, question: str, alternatives: tuple[str, str], answer: int, item_id: str
) -> MCItem:
    """lm-eval's COPA (super_glue/copa/utils.py): ``premise[:-1] + " because|therefore"``, choices
    with a lower-case first letter after a space."""
    premise = premise.strip()
    if premise and premise[-1] in ".!?":  # lm-eval drops the last character (always a period)
        premise = premise[:-1]
    return MCItem(
        context=f"{premise} {_COPA_CONNECTORS[question]}",
        choices=tuple(" " + alt[:1].lower() + alt[1:] for alt in alternatives),
        answer=answer,
        id=item_id,
    )


def _copa(record: Mapping[str, Any], default_id: str) -> MCItem:
    if "premise" in record:  # SuperGLUE jsonl / Hugging Face super_glue columns
        question = _str(record, "question")
        if question not in _COPA_CONNECTORS:
            raise _BadRecord(f"field 'question' is {question!r}, expected 'cause' or 'effect'")
        return _copa_item(
            _str(record, "premise"),
            question,
            (_str(record, "choice1"), _str(record, "choice2")),
            _index(record.get("label"), "label", 2),
            _record_id(record, ("idx", "id"), default_id),
        )
    sentence = _str(record, "sentence")
    match = _CL_COPA.fullmatch(sentence.strip())
    if match is None:
        raise _BadRecord(f"field 'sentence' is not a CL_Benchmark COPA question: {sentence!r:.80}")
    label = _str(record, "label")
    if label not in ("A", "B"):
        raise _BadRecord(f"field 'label' is {label!r}, expected 'A' or 'B'")
    question, premise, first, second = match.groups()
    return _copa_item(premise, question, (first.strip(), second.strip()), "AB".index(label), default_id)


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------

_PARSERS: dict[str, Callable[[Mapping[str, Any], str], MCItem]] = {
    "hellaswag": _hellaswag,
    "arc": _arc,
    "winogrande": _winogrande,
    "copa": _copa,
}


def detect_format(record: Mapping[str, Any]) -> str | None:
    """The benchmark format a record's fields belong to (a key of :data:`MC_FORMATS`), or ``None``."""
    if "endings" in record:
        return "hellaswag"
    if "answerKey" in record or ("question" in record and "choices" in record):
        return "arc"
    if "option1" in record and "option2" in record:
        return "winogrande"
    if "premise" in record and "choice1" in record:
        return "copa"
    sentence = record.get("sentence")
    if isinstance(sentence, str) and _CL_COPA.fullmatch(sentence.strip()):
        return "copa"
    return None


def load_multiple_choice(path: str | Path, format: str = "auto", limit: int | None = None) -> list[MCItem]:
    """Read a multiple-choice benchmark file into :class:`MCItem` records, formatted as lm-eval.

    Args:
        path: A JSON, JSON Lines or Parquet file of HellaSwag, ARC, WinoGrande or COPA records.
        format: ``"auto"`` (from the first record's fields) or a key of :data:`MC_FORMATS`.
        limit: Read only the first ``limit`` records (``None``: all).

    Returns:
        The items, in file order.

    Raises:
        MultipleChoiceFileError: missing or unreadable file, a record that is not an object or lacks
            a field, a format that cannot be told from the fields, or an empty file. The message
            names the file, the line and the field, and what the format expects.
        ValueError: unknown ``format`` or a negative ``limit``.
    """
    if format != "auto" and format not in _PARSERS:
        raise ValueError(f"format={format!r}: allowed values are 'auto', {', '.join(map(repr, _PARSERS))}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit={limit!r}: expected None or an integer >= 0.")
    path = Path(path).expanduser()
    if path.is_dir():
        raise MultipleChoiceFileError(
            f"{path} is a folder; give one file (e.g. a validation .jsonl). For the CL_Benchmark COPA "
            "folder use load_copa(split=...)."
        )
    if not path.is_file():
        raise MultipleChoiceFileError(f"Benchmark file not found: {path.resolve()}")
    items: list[MCItem] = []
    chosen = None if format == "auto" else format
    for where, record in _iter_records(path):
        if limit is not None and len(items) >= limit:
            break
        if not isinstance(record, Mapping):
            raise MultipleChoiceFileError(
                f"{path}, {where}: expected a JSON object (one question), found "
                f"{type(record).__name__} {record!r:.60}."
            )
        if chosen is None:
            chosen = detect_format(record)
            if chosen is None:
                raise MultipleChoiceFileError(
                    f"{path}, {where}: cannot tell the benchmark format from the fields {sorted(record)}. "
                    f"Pass format= one of {', '.join(_PARSERS)}. "
                    + " ".join(f"{v}." for v in MC_FORMATS.values())
                )
        try:
            items.append(_PARSERS[chosen](record, f"{path.stem}-{len(items)}"))
        except (_BadRecord, ValueError) as err:
            raise MultipleChoiceFileError(f"{path}, {where}: {err}. {MC_FORMATS[chosen]}.") from None
    if not items and limit != 0:
        raise MultipleChoiceFileError(f"{path} holds no records.")
    return items


def load_copa(root: str | Path | None = None, split: str = "test", limit: int | None = None) -> list[MCItem]:
    """COPA from a CL_Benchmark folder (``<root>/copa/<split>.json``) as lm-eval-style items.

    This is the general benchmark that exists offline here: the shared copy holds 400 train and 100
    test questions. Note that COPA is also one of the paper's 15 continual-learning tasks (orders
    4-6): as a forgetting probe it is only held out for sequences that do not train on it.

    Args:
        root: The CL_Benchmark folder; ``None`` uses ``$MIGU_CL_BENCHMARK_DIR`` or
            ``../shared/data/cl_benchmark`` (:func:`migu.data.cl_benchmark.default_cl_benchmark_dir`).
        split: ``"test"``, ``"train"`` or ``"all"`` (the test questions, then the train ones: 500 in
            the shared copy, for a probe of a model that never trains on COPA; a smaller binomial error
            than the 100 test questions alone).
        limit: Read only the first ``limit`` questions (of the whole, with ``"all"``).

    Returns:
        The items; ids are ``copa-<split>-<index>`` (``copa-test-...`` then ``copa-train-...`` with ``"all"``).

    Raises:
        MultipleChoiceFileError: the folder or file is missing or malformed.
    """
    from migu.data.cl_benchmark import CL_BENCHMARK_ENV_VAR, default_cl_benchmark_dir

    if split == "all":
        items = load_copa(root, "test", limit) + load_copa(root, "train", limit)
        return items[:limit] if limit is not None else items
    base = Path(root).expanduser() if root is not None else default_cl_benchmark_dir()
    path = base / "copa" / f"{split}.json"
    if not path.is_file():
        raise MultipleChoiceFileError(
            f"COPA {split} split not found: {path}. Point root= or ${CL_BENCHMARK_ENV_VAR} at the "
            "CL_Benchmark folder holding copa/{train,test}.json."
        )
    items = load_multiple_choice(path, format="copa", limit=limit)
    # The file has no ids; name them by split and position so that predictions can be traced.
    return [
        MCItem(item.context, item.choices, item.answer, f"copa-{split}-{index}", item.contexts)
        for index, item in enumerate(items)
    ]
