"""A short, real continual-learning demo of the MIGU core, fully offline on a CPU.

The real pretrained all-MiniLM-L6-v2 learns real labelled text tasks one after another (data from
PyPI packages, see ``migu.data.packaged``), once with plain fine-tuning (FT) and once with FT+MIGU.
After each task every task is evaluated, giving an accuracy matrix per method.

One classification head covers the union of all tasks' labels; the input lists the task's options
("Options: negative, positive. <text>") and the prediction is restricted to those options, so the
model never needs a task id. This is a demo of the core, not the engine: no checkpoints, no resume.
"""

from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from migu.core.config import MiguConfig
from migu.core.handle import attach
from migu.data.packaged import TextTask, load_packaged_task
from migu.models.packaged import packaged_model_path

__all__ = ["DemoSettings", "run_demo"]


@dataclass
class DemoSettings:
    """What the demo runs (defaults: about 5 minutes on 2 CPU cores)."""

    tasks: tuple[str, ...] = ("news_outlet", "rotten_tomatoes", "tweet_sentiment")
    steps_per_task: int = 60
    batch_size: int = 16
    max_length: int = 64
    lr: float = 5e-5
    threshold: float = 0.7
    eval_examples: int = 150
    seed: int = 0


def _encode(tokenizer, task: TextTask, records: list[dict], max_length: int) -> dict:
    texts = [f"Options: {', '.join(task.labels)}. {r['sentence']}" for r in records]
    return tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")


def _evaluate(model, tokenizer, task: TextTask, label_ids: dict[str, int], s: DemoSettings) -> float:
    model.eval()
    option_ids = torch.tensor([label_ids[lab] for lab in task.labels])  # (n_options,)
    records = task.test[: s.eval_examples]
    correct = 0
    with torch.no_grad():
        for i in range(0, len(records), 64):
            chunk = records[i : i + 64]
            logits = model(**_encode(tokenizer, task, chunk, s.max_length)).logits  # (B, n_union)
            pred = option_ids[logits[:, option_ids].argmax(-1)]  # restricted to the task's options
            gold = torch.tensor([label_ids[r["label"]] for r in chunk])
            correct += int((pred == gold).sum())
    model.train()
    return correct / len(records)


def _train_sequence(
    base, tokenizer, tasks, label_ids, s: DemoSettings, migu_config: MiguConfig | None, tag: str
):
    model = copy.deepcopy(base)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.0)
    handle = attach(model, migu_config, optimizer=opt) if migu_config is not None else None
    rng = random.Random(s.seed)
    matrix = [[_evaluate(model, tokenizer, t, label_ids, s) for t in tasks]]
    seconds = 0.0
    for task in tasks:
        records = list(task.train)
        rng.shuffle(records)
        bar = tqdm(range(s.steps_per_task), desc=f"{tag}: {task.name}", unit="step", leave=False)
        for step in bar:
            chunk = [records[(step * s.batch_size + j) % len(records)] for j in range(s.batch_size)]
            batch = _encode(tokenizer, task, chunk, s.max_length)
            batch["labels"] = torch.tensor([label_ids[r["label"]] for r in chunk])
            t0 = time.perf_counter()
            loss = model(**batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            seconds += time.perf_counter() - t0
            bar.set_postfix(loss=f"{loss.item():.3f}")
        matrix.append([_evaluate(model, tokenizer, t, label_ids, s) for t in tasks])
    update_fraction = handle.update_fraction if handle is not None else 1.0
    if handle is not None:
        handle.remove()
    return matrix, seconds / (len(tasks) * s.steps_per_task), update_fraction


def _format_matrix(tag: str, tasks, matrix) -> str:
    names = [t.name for t in tasks]
    width = max(len(n) for n in names) + 2
    lines = [f"{tag}: accuracy after each task (rows) on each task (columns)"]
    label_width = max(len("before training"), *(len(f"after {n}") for n in names)) + 1
    lines.append(" " * label_width + "".join(n.rjust(width) for n in names))
    for i, row in enumerate(matrix):
        label = "before training" if i == 0 else f"after {names[i - 1]}"
        lines.append(label.ljust(label_width) + "".join(f"{a:.3f}".rjust(width) for a in row))
    final = matrix[-1]
    avg = sum(final) / len(final)
    bwt = sum(final[i] - matrix[i + 1][i] for i in range(len(tasks) - 1)) / max(1, len(tasks) - 1)
    lines.append(f"final average accuracy {avg:.3f}; backward transfer {bwt:+.3f}")
    return "\n".join(lines)


def run_demo(settings: DemoSettings | None = None) -> dict:
    """Run FT and FT+MIGU on the task sequence and print both accuracy matrices.

    Returns:
        ``{"FT": matrix, "FT+MIGU": matrix}`` with ``T + 1`` rows (row 0: before training).

    Raises:
        migu.data.packaged.PackagedDataMissing / migu.models.packaged.PackagedModelMissing: a
            data or model package is missing (the message gives the pip command).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    s = settings or DemoSettings()
    torch.manual_seed(s.seed)
    tasks = [
        load_packaged_task(
            n, max_train=s.batch_size * s.steps_per_task, max_test=s.eval_examples, seed=s.seed
        )
        for n in s.tasks
    ]
    union = sorted({lab for t in tasks for lab in t.labels})
    label_ids = {lab: i for i, lab in enumerate(union)}
    path = packaged_model_path("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(union))
    print(
        f"all-MiniLM-L6-v2 ({sum(p.numel() for p in base.parameters()) / 1e6:.1f}M params), "
        f"tasks {' -> '.join(s.tasks)}, {s.steps_per_task} steps x batch {s.batch_size} per task, "
        f"union head of {len(union)} labels, MIGU threshold {s.threshold}"
    )
    results = {}
    report = []
    for tag, cfg in (("FT", None), ("FT+MIGU", MiguConfig(threshold=s.threshold))):
        matrix, sec, frac = _train_sequence(base, tokenizer, tasks, label_ids, s, cfg, tag)
        results[tag] = matrix
        report.append(
            _format_matrix(tag, tasks, matrix) + f"\n{sec:.3f} s/step; rows updated per step {frac:.2f}"
        )
    print("\n\n".join(report))
    return results
