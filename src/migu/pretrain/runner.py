"""Continual pre-training, then end tasks: the paper's DAS setting (order 7), sized for a CPU.

Phase 1: for each row (variant: e.g. ``CPT`` and ``CPT+MIGU``), the model learns the domain
corpora one after the other with its LM objective (causal LM for decoders, masked LM for encoders),
MIGU optional. Each domain starts with a fresh AdamW state and schedule; after each domain the
model is saved (``save_pretrained``) as the row's checkpoint, atomically.

Phase 2: as in the paper, only the *final* model is evaluated: for each row and each domain a fresh
copy of it is fine-tuned on the domain's end task and tested (accuracy, macro-F1). The reference
row ``base`` is the un-pre-trained model fine-tuned the same way, so the table shows what
continual pre-training bought and what MIGU changed.

Run directory ``<output_dir>/<name>/``::

    config.yaml, environment.json, log.txt
    pretrain/<row>/checkpoint/        model + tokenizer after the last finished domain, progress.json
    finetune/<row>/<domain>.json      one end-task result; <domain>.predictions.jsonl beside it
    results.json                      the table (rows x domains: accuracy, macro_f1) and statistics

Resume: a killed run continues with ``resume=True`` (``migu pretrain --resume RUN_DIR``) from each
row's last finished domain, and skips finished end tasks. Every domain and every end task seeds its
own RNGs from the run's seed (:func:`migu.engine.steps.derive_seed`), so a resumed run ends
with the same checkpoints and results as an uninterrupted one (bit-identical on CPU).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from migu.engine.rundir import (
    add_log_file,
    atomic_write_text,
    environment_info,
    latest_complete,
    lock_run_dir,
    portable_path,
    read_json,
    swap_in,
    write_json,
)
from migu.engine.runner import RunDirExists
from migu.engine.steps import (
    batch_plan,
    derive_seed,
    make_optimizer,
    make_scheduler,
    per_step,
    step_done,
    train_step,
)
from migu.models.loading import resolve_model_source
from migu.pretrain.config import BASE_ROW, PretrainConfig, load_pretrain_config
from migu.pretrain.corpora import Domain, load_domains
from migu.pretrain.finetune import finetune_end_task
from migu.pretrain.lm import LMBatcher, tokenize_corpus
from migu.pretrain.models import (
    load_language_model,
    model_family,
    quiet_transformers,
)

__all__ = ["PretrainResult", "resume_pretrain", "run_pretrain"]

logger = logging.getLogger("migu")

_PROGRESS = "progress.json"


@dataclass
class PretrainResult:
    """What a finished run produced (the content of ``results.json``).

    Attributes:
        run_dir: The run directory.
        domains: Domain names in pre-training order.
        rows: Row name -> domain name (and ``"mean"``) -> ``{"accuracy", "macro_f1"}``.
        data: The whole ``results.json`` mapping.
    """

    run_dir: Path
    domains: list[str]
    rows: dict[str, dict[str, dict[str, float]]]
    data: dict[str, Any] = field(default_factory=dict)


def _read_progress(ckpt: Path) -> dict[str, Any]:
    """The progress saved with a checkpoint (``{"domains_done": 0, ...}`` when there is none)."""
    ckpt = latest_complete(ckpt) or ckpt  # checkpoint.old when killed between the renames of a save
    if (ckpt / _PROGRESS).is_file():
        progress = read_json(ckpt / _PROGRESS)
        progress["path"] = str(ckpt)
        return progress
    return {"domains_done": 0, "domains": []}


class _PretrainRun:
    """State of one run (internal; use :func:`run_pretrain`)."""

    def __init__(self, cfg: PretrainConfig, run_dir: Path, show_progress: bool) -> None:
        from accelerate import Accelerator

        self.cfg = cfg
        self.run_dir = run_dir
        self.show_progress = show_progress
        self.accelerator = Accelerator(mixed_precision=cfg.mixed_precision)
        if self.accelerator.num_processes > 1:
            raise RuntimeError(
                "migu pretrain runs in one process (one device); launch it with python, not "
                "torchrun / accelerate launch with several processes."
            )
        self.base_source = resolve_model_source(cfg.model.name)
        self.family = model_family(self.base_source, cfg.model.family, cfg.model.gguf_file)
        self.domains: list[Domain] = load_domains(cfg.domains, cfg.data, cfg.seed)
        self._steps = 0

    # ------------------------------------------------------------------ helpers
    def _tick(self) -> None:
        """Count an optimizer step and tell the :func:`migu.engine.steps.on_step` callbacks."""
        self._steps += 1
        step_done(self._steps)

    def _row_dir(self, row: str) -> Path:
        return self.run_dir / "pretrain" / row

    # ------------------------------------------------------------------ phase 1
    def pretrain_row(self, row: str, rcfg: PretrainConfig) -> list[dict[str, Any]]:
        """Pre-train row ``row`` from its last finished domain to the end; its per-domain stats."""
        ckpt = self._row_dir(row) / "checkpoint"
        progress = _read_progress(ckpt)
        done = progress["domains_done"]
        stats: list[dict[str, Any]] = list(progress["domains"])
        if done >= len(self.domains):
            return stats
        source = progress["path"] if done else self.base_source
        if done:
            logger.info("%s: resuming after domain %d (%s)", row, done, self.domains[done - 1].name)
        else:
            from accelerate.utils import set_seed

            # The parts the checkpoint lacks start random (an encoder's masked-LM head): seeded the
            # same for every row, so CPT and CPT+MIGU start from one model whatever ran before.
            set_seed(derive_seed(self.cfg.seed, "model-init"))
        lm = load_language_model(
            source,
            family=self.family,
            dtype=self.cfg.model.dtype,
            gguf_file=None if done else self.cfg.model.gguf_file,
        )
        model = self.accelerator.prepare_model(lm.model)
        try:
            for d in range(done, len(self.domains)):
                stats.append(self._train_domain(row, rcfg, model, lm.tokenizer, lm.objective, d))
                self._save(row, model, lm.tokenizer, stats)
                logger.info("%s: after %s: %s", row, self.domains[d].name, json.dumps(stats[-1]))
        finally:
            self.accelerator.free_memory()
        return stats

    def _train_domain(
        self, row: str, rcfg: PretrainConfig, model: torch.nn.Module, tokenizer: Any, objective: str, d: int
    ) -> dict[str, Any]:
        from accelerate.utils import set_seed

        acc, p = self.accelerator, rcfg.pretrain
        domain = self.domains[d]
        # Seeded by the domain, not the row: every row sees the same batches and MLM masks.
        seed = derive_seed(self.cfg.seed, "pretrain", d, domain.name)
        set_seed(seed)
        rows = tokenize_corpus(tokenizer, domain.corpus, p.block_size)
        batcher = LMBatcher(tokenizer, objective, mlm_probability=p.mlm_probability, seed=seed)
        micro_batches = batch_plan(
            len(rows),
            batch_size=p.batch_size,
            accum=p.grad_accum_steps,
            epochs=p.epochs,
            max_steps=p.max_steps_per_domain,
            epoch_seed=lambda epoch: seed + epoch,
        )
        plan = per_step(micro_batches, p.grad_accum_steps)
        unwrapped = acc.unwrap_model(model)
        optimizer = make_optimizer(
            [q for q in unwrapped.parameters() if q.requires_grad], lr=p.lr, weight_decay=p.weight_decay
        )
        scheduler = make_scheduler(p.scheduler, optimizer, warmup_ratio=p.warmup_ratio, steps=len(plan))
        optimizer = acc.prepare_optimizer(optimizer)
        handle = None
        if rcfg.migu.enabled:
            from migu.core.handle import attach

            handle = attach(unwrapped, rcfg.migu.to_migu_config(rcfg.seed), optimizer=optimizer)
            handle.enabled = not (rcfg.migu.skip_first_task and d == 0)
        losses: list[float] = []
        fractions: list[float] = []
        t0 = time.perf_counter()
        model.train()
        bar = tqdm(
            plan,
            desc=f"{row}: pre-train {d + 1}/{len(self.domains)} {domain.name}",
            unit="step",
            disable=not self.show_progress,
        )
        try:

            def loss_of(indices: list[int]) -> torch.Tensor:
                batch = {k: v.to(acc.device) for k, v in batcher([rows[i] for i in indices]).items()}
                return model(**batch).loss

            for step in bar:
                loss, fraction = train_step(
                    model,
                    step,
                    loss_of,
                    optimizer,
                    scheduler,
                    accelerator=acc,
                    handle=handle,
                    max_grad_norm=p.max_grad_norm,
                )
                losses.append(loss)
                if fraction is not None:
                    fractions.append(fraction)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                self._tick()
        finally:
            bar.close()
            if handle is not None:
                handle.remove()
            # accelerate keeps every optimizer it prepared; only this domain's one was live.
            acc._optimizers = [o for o in acc._optimizers if o is not optimizer]
        k = max(1, len(losses) // 10)
        return {
            "domain": domain.name,
            "texts": len(rows),
            "steps": len(plan),
            "tokens": sum(len(rows[i]) for s in plan for mb in s for i in mb),
            "loss_first": sum(losses[:k]) / k,  # mean of the first 10% of steps
            "loss_last": sum(losses[-k:]) / k,  # mean of the last 10% of steps
            "loss_mean": sum(losses) / len(losses),
            "seconds": time.perf_counter() - t0,
            "update_fraction": sum(fractions) / len(fractions) if fractions else 1.0,
        }

    def _save(self, row: str, model: torch.nn.Module, tokenizer: Any, stats: list[dict[str, Any]]) -> None:
        """The row's checkpoint after ``len(stats)`` domains: written aside, then swapped in by rename,
        so that a kill at any moment leaves a loadable checkpoint and its matching progress."""
        base = self._row_dir(row)
        final, tmp = base / "checkpoint", base / "checkpoint.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        with quiet_transformers():
            self.accelerator.unwrap_model(model).save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        write_json(tmp / _PROGRESS, {"domains_done": len(stats), "domains": stats})
        swap_in(tmp, final)

    # ------------------------------------------------------------------ phase 2
    def finetune_row(self, row: str, source: str) -> dict[str, dict[str, Any]]:
        """Fine-tune ``source`` on every domain's end task (finished ones are read back)."""
        out: dict[str, dict[str, Any]] = {}
        folder = self.run_dir / "finetune" / row
        for domain in self.domains:
            path = folder / f"{domain.name}.json"
            if path.is_file():
                out[domain.name] = read_json(path)
                continue
            result = finetune_end_task(
                source,
                domain.task,
                self.cfg.finetune,
                base_source=self.base_source,
                seed=self.cfg.seed,
                accelerator=self.accelerator,
                dtype=self.cfg.model.dtype,
                gguf_file=self.cfg.model.gguf_file,
                show_progress=self.show_progress,
                desc=f"{row}: end task {domain.name}",
                on_step=self._tick,
            )
            lines = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in result.predictions)
            atomic_write_text(folder / f"{domain.name}.predictions.jsonl", lines)
            write_json(path, result.summary())  # last: its presence marks the end task as done
            out[domain.name] = result.summary()
            logger.info(
                "%s / %s: accuracy %.4f, macro-F1 %.4f", row, domain.name, result.accuracy, result.macro_f1
            )
        return out

    # ------------------------------------------------------------------ the whole run
    def run(self) -> PretrainResult:
        rows_cfg = self.cfg.rows()
        pretrain_stats = {row: self.pretrain_row(row, rcfg) for row, rcfg in rows_cfg.items()}
        finetuned: dict[str, dict[str, dict[str, Any]]] = {}
        if self.cfg.finetune.baseline:
            finetuned[BASE_ROW] = self.finetune_row(BASE_ROW, self.base_source)
        for row in rows_cfg:
            finetuned[row] = self.finetune_row(row, str(self._row_dir(row) / "checkpoint"))
        table: dict[str, dict[str, dict[str, float]]] = {}
        for row, per in finetuned.items():
            cells = {d: {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"]} for d, r in per.items()}
            n = len(cells)
            cells["mean"] = {
                "accuracy": sum(c["accuracy"] for c in cells.values()) / n,
                "macro_f1": sum(c["macro_f1"] for c in cells.values()) / n,
            }
            table[row] = cells
        data = {
            "name": self.cfg.name,
            "model": self.cfg.model.name,
            "model_source": portable_path(self.base_source),
            "family": self.family,
            "objective": "masked-lm" if self.family == "encoder" else "causal-lm",
            "domains": [d.name for d in self.domains],
            "rows": table,
            "pretrain": pretrain_stats,
            "finetune": finetuned,
            "corpora": {
                d.name: {"texts": len(d.corpus), "excluded_end_task_texts": d.removed, "source": d.source}
                for d in self.domains
            },
            "end_tasks": {
                d.name: {"labels": list(d.task.labels), "train": len(d.task.train), "test": len(d.task.test)}
                for d in self.domains
            },
        }
        write_json(self.run_dir / "results.json", data)
        return PretrainResult(self.run_dir, data["domains"], table, data)


def _result_from_file(run_dir: Path) -> PretrainResult:
    data = read_json(run_dir / "results.json")
    return PretrainResult(run_dir, data["domains"], data["rows"], data)


def run_pretrain(
    config: PretrainConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    show_progress: bool = True,
) -> PretrainResult:
    """Continual pre-training on ``config.domains``, then every row fine-tuned on every end task.

    Args:
        config: The configuration.
        run_dir: Where to write; default ``<output_dir>/<name or "pretrain">``.
        resume: Continue the run in ``run_dir`` (a finished one is read back as it is).
        show_progress: Progress bars.

    Returns:
        The :class:`PretrainResult` (also in ``run_dir/results.json``).

    Raises:
        RunDirExists: ``run_dir`` holds a run and ``resume`` is False.
        FileNotFoundError: ``resume`` and ``run_dir`` holds no run.
        ConfigError / ValueError / ModelNotFound / ImportError: bad configuration, data or model.
    """
    run_dir = Path(run_dir) if run_dir is not None else Path(config.output_dir) / (config.name or "pretrain")
    if resume:
        if not (run_dir / "config.yaml").is_file():
            raise FileNotFoundError(f"No run to resume in {run_dir.resolve()} (no config.yaml).")
        if (run_dir / "results.json").is_file():
            return _result_from_file(run_dir)
    elif (run_dir / "config.yaml").exists():
        raise RunDirExists(
            f"{run_dir.resolve()} already holds a run. Continue it with `migu pretrain --resume {run_dir}`, "
            "or start a new one under another name (name=...) or output_dir."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    with lock_run_dir(run_dir):  # a second process on the same run is refused, as in migu run
        return _run_locked(config, run_dir, resume, show_progress)


def _run_locked(config: PretrainConfig, run_dir: Path, resume: bool, show_progress: bool) -> PretrainResult:
    handler = add_log_file(run_dir, logger)
    try:
        r = _PretrainRun(config, run_dir, show_progress)  # fails on bad data or model before any write
        if not resume:
            info = environment_info(
                config.seed, str(r.accelerator.device), r.accelerator.num_processes, r.base_source
            )
            write_json(run_dir / "environment.json", info)
            # Written last: its presence marks the directory as holding a run.
            atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        logger.info(
            "%s %s: %s (%s), domains %s, rows %s",
            "resuming" if resume else "run",
            run_dir,
            config.model.name,
            r.family,
            " -> ".join(config.domains),
            ", ".join(([BASE_ROW] if config.finetune.baseline else []) + list(config.rows())),
        )
        return r.run()
    finally:
        logger.removeHandler(handler)
        handler.close()


def resume_pretrain(run_dir: str | Path, *, show_progress: bool = True) -> PretrainResult:
    """Continue the run in ``run_dir`` with the configuration saved there.

    Raises:
        FileNotFoundError: ``run_dir`` holds no run.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"No run to resume in {run_dir.resolve()} (no config.yaml).")
    return run_pretrain(
        load_pretrain_config(run_dir / "config.yaml"), run_dir, resume=True, show_progress=show_progress
    )
