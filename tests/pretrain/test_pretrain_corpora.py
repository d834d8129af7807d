"""Domain corpora never contain end-task test texts (packaged and user domains)."""

import pytest
from pretrain_helpers import write_domains

from migu.data.files import TaskFileError
from migu.pretrain.corpora import PACKAGED_DOMAINS, load_file_domain, load_packaged_domain, read_corpus_file


def _norm(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", sorted(PACKAGED_DOMAINS))
def test_packaged_corpus_excludes_every_end_task_text(name):
    from migu.data.packaged import PackagedDataMissing, load_packaged_task

    try:
        domain = load_packaged_domain(name, corpus_size=300, end_train=50, end_test=40, seed=1)
    except PackagedDataMissing as err:
        pytest.skip(str(err))
    full_test = load_packaged_task(PACKAGED_DOMAINS[name], max_train=0, max_test=None).test
    corpus = {_norm(t) for t in domain.corpus}
    assert len(domain.corpus) == len(corpus) == 300
    assert not corpus & {_norm(r["sentence"]) for r in full_test}  # no test text of the whole split
    assert not corpus & {_norm(r["sentence"]) for r in domain.task.train}  # nor an end-task example
    assert domain.task.name == name and len(domain.task.test) == 40 and len(domain.task.train) == 50
    # Same arguments, same domain.
    again = load_packaged_domain(name, corpus_size=300, end_train=50, end_test=40, seed=1)
    assert again.corpus == domain.corpus


def test_file_domain_drops_leaked_test_texts(tmp_path):
    files = write_domains(tmp_path, n_train=6, n_test=4, n_corpus=10)
    domain = load_file_domain("colors", files["colors"], base_dir=tmp_path)
    assert len(domain.corpus) == 10 and domain.removed == 4
    assert not {_norm(t) for t in domain.corpus} & {_norm(r["sentence"]) for r in domain.task.test}
    capped = load_file_domain("colors", files["colors"], base_dir=tmp_path, corpus_size=3, end_test=2)
    assert len(capped.corpus) == 3 and len(capped.task.test) == 2


def test_corpus_files(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"body": "one"}\n\n{"body": "two"}\n')
    assert read_corpus_file(tmp_path / "c.jsonl", "body") == ["one", "two"]
    (tmp_path / "c.json").write_text('["x", "y"]')
    assert read_corpus_file(tmp_path / "c.json") == ["x", "y"]
    (tmp_path / "c.csv").write_text("text,other\nhello,1\n")
    assert read_corpus_file(tmp_path / "c.csv") == ["hello"]
    with pytest.raises(TaskFileError, match="no column 'text'"):
        read_corpus_file(tmp_path / "c.jsonl")
    with pytest.raises(TaskFileError, match="not found"):
        read_corpus_file(tmp_path / "missing.txt")
    (tmp_path / "c.parquet").write_text("")
    with pytest.raises(TaskFileError, match="unknown corpus file type"):
        read_corpus_file(tmp_path / "c.parquet")
