"""Tiny model folders, a tiny CL_Benchmark folder and run configs for end-to-end runs (no downloads)."""

from __future__ import annotations

import json
import string
from pathlib import Path

import tiny_models  # noqa: F401  (sets offline mode and 2 threads)

# A word-piece vocabulary small enough for tiny models and large enough to spell any ASCII text.
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CHARS = list(string.ascii_lowercase + string.digits + string.punctuation)
_WORDS = ["task", "dataset", "answer", "option", "good", "bad", "red", "blue", "green", "cat", "dog"]
VOCAB = _SPECIALS + _CHARS + ["##" + c for c in string.ascii_lowercase + string.digits] + _WORDS


def _tokenizer(folder: Path):
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    # [SEP] doubles as EOS so that generative families have an end-of-answer token.
    return BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True, eos_token="[SEP]", bos_token="[CLS]")


def _model(family: str, tok, dropout: float):
    from transformers import (
        BertConfig,
        BertModel,
        LlamaConfig,
        LlamaForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    v = len(VOCAB)
    if family == "bert":
        cfg = BertConfig(
            vocab_size=v,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=48,
            max_position_embeddings=256,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            pad_token_id=tok.pad_token_id,
        )
        return BertModel(cfg)  # no head: the engine adds the union-label classification head
    if family == "t5":
        cfg = T5Config(
            vocab_size=v,
            d_model=32,
            d_kv=8,
            d_ff=48,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.pad_token_id,
            dropout_rate=dropout,
        )
        return T5ForConditionalGeneration(cfg)
    cfg = LlamaConfig(
        vocab_size=v,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        attention_dropout=dropout,
    )
    return LlamaForCausalLM(cfg)


def save_tiny_model(folder: Path, family: str, dropout: float = 0.0, seed: int = 0) -> Path:
    """A random tiny ``family`` model ("bert", "t5" or "llama") with a tokenizer, saved to ``folder``."""
    import torch

    torch.manual_seed(seed)
    tok = _tokenizer(folder)
    model = _model(family, tok, dropout)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write_tiny_benchmark(root: Path, n_train: int = 24, n_test: int = 8) -> Path:
    """Two tasks in the CL_Benchmark layout, learnable from the text: colour words and animal words.

    They use real task names (agnews: TC, sst2: SC) because those fix the prompt's task type.
    """
    tasks = {
        "agnews": ("TC", ["red", "blue"]),
        "sst2": ("SC", ["cat", "dog", "cow"]),
    }
    for name, (_, labels) in tasks.items():
        d = root / name
        d.mkdir(parents=True)
        (d / "labels.json").write_text(json.dumps(labels))
        for split, n in (("train", n_train), ("test", n_test)):
            records = [
                {"sentence": f"the {labels[i % len(labels)]} one {i}", "label": labels[i % len(labels)]}
                for i in range(n)
            ]
            (d / f"{split}.json").write_text(json.dumps(records))
    instructions = {
        t: [{"instruction_type": "zero-shot", "instruction": f"Which {t}? Choose one from the option.\n"}]
        for t in ("TC", "SC")
    }
    (root / "instruction_config.json").write_text(json.dumps(instructions))
    return root


def tiny_config(model_dir: Path, data_dir: Path, out: Path, **overrides) -> dict:
    """A run config mapping for a 2-task run of a few steps."""
    cfg = {
        "name": "tiny",
        "output_dir": str(out),
        "model": {"name": str(model_dir), "max_length": 96, "max_new_tokens": 4},
        "data": {
            "source": "cl_benchmark",
            "data_dir": str(data_dir),
            "tasks": ["agnews", "sst2"],
            "max_train": None,
            "max_test": None,
        },
        "train": {"batch_size": 4, "max_steps_per_task": 3, "lr": 1e-3, "checkpoint_every": 1},
        "eval": {"batch_size": 8},
        "migu": {"enabled": True, "threshold": 0.5},
    }
    for key, value in overrides.items():
        section, _, field = key.partition(".")
        if field:
            cfg[section][field] = value
        else:
            cfg[section] = value
    return cfg


def run_killed(cfg: dict, folder: Path, after_steps: int) -> Path:
    """Run ``cfg`` (named "killed") in a subprocess that SIGKILLs itself after ``after_steps`` optimizer
    steps, like an out-of-memory kill; returns the run directory left behind."""
    import os
    import subprocess
    import sys

    import yaml

    path = folder / "killed.yaml"
    path.write_text(yaml.safe_dump({**cfg, "name": "killed"}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    script = Path(__file__).with_name("killed_process.py")
    proc = subprocess.run(
        [sys.executable, str(script), str(after_steps), "run", str(path), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    return folder / "killed"
