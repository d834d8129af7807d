"""Builders of the continual pre-training tests: two tiny user domains and a tiny run config.

(A module of its own, not conftest.py: test modules import from it, and several conftest.py files
share the module name ``conftest``.)"""

from __future__ import annotations

import json
from pathlib import Path

#: Two domains, learnable from the text: colour words and animal words.
DOMAINS = {"colors": ["red", "blue"], "animals": ["cat", "dog", "cow"]}


def write_domains(root: Path, n_train: int = 16, n_test: int = 8, n_corpus: int = 24) -> dict[str, dict]:
    """Corpus (.txt) and end-task files (.jsonl) of :data:`DOMAINS` under ``root``; returns the
    ``data.files`` entries. Each corpus also holds every test sentence, which must be filtered out."""
    files = {}
    for name, labels in DOMAINS.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        splits = {}
        for split, n, offset in (("train", n_train, 0), ("test", n_test, 1000)):
            records = [
                {
                    "sentence": f"the {labels[i % len(labels)]} one {offset + i}",
                    "label": labels[i % len(labels)],
                }
                for i in range(n)
            ]
            (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
            splits[split] = records
        corpus = [f"a {labels[i % len(labels)]} thing number {i} is good" for i in range(n_corpus)]
        corpus += [r["sentence"] for r in splits["test"]]  # leaked test texts: must not be pre-trained on
        (d / "corpus.txt").write_text("\n".join(corpus) + "\n")
        files[name] = {
            "corpus": f"{name}/corpus.txt",
            "task": {"train": f"{name}/train.jsonl", "test": f"{name}/test.jsonl", "labels": labels},
        }
    return files


def tiny_pretrain_config(model_dir: Path, domains: tuple[Path, dict], out: Path, **sections) -> dict:
    """A 2-domain, 2-row run of a few steps per domain and end task."""
    data_dir, files = domains
    cfg = {
        "name": "tiny",
        "output_dir": str(out),
        "model": {"name": str(model_dir)},
        "domains": ["colors", "animals"],
        "data": {
            "corpus_size": None,
            "end_train": None,
            "end_test": None,
            "data_dir": str(data_dir),
            "files": files,
        },
        "pretrain": {"batch_size": 4, "max_steps_per_domain": 3, "lr": 1e-3, "block_size": 16},
        "finetune": {"batch_size": 4, "max_steps": 3, "lr": 1e-3, "max_length": 16, "eval_batch_size": 8},
        "migu": {"threshold": 0.5},
        "variants": {"CPT": {"migu.enabled": False}, "CPT+MIGU": {"migu.enabled": True}},
    }
    for section, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(section), dict) and section != "variants":
            cfg[section] = {**cfg[section], **value}
        else:
            cfg[section] = value
    return cfg
