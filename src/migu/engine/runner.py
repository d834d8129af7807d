"""The continual-learning loop: train task after task, evaluate every task after every task, resume.

One run = one model trained on ``data.tasks`` in order. Before training (row 0) and after each task
(row i) every task of the sequence is evaluated, seen or not, giving the accuracy matrix R with
T + 1 rows. Training goes through ``accelerate`` (device placement, mixed precision, gradient
accumulation, DDP under ``torchrun`` or ``accelerate launch``; see docs/distributed.md).

Each task starts with a fresh optimizer state and learning-rate schedule, as the paper's code (one
process per task) does. MIGU, when enabled, masks the gradient before clipping (the official order).

Determinism and resume: the order of the training examples is a pure function of (seed, task,
epoch); the checkpoint holds model, optimizer, scheduler and every RNG state, taken only at
optimizer-step boundaries, where MIGU holds no pending magnitudes. A resumed run therefore ends
with the same weights and results as an uninterrupted one (bit-identical on CPU).

General-ability probes (``eval.general``, decoders only) are scored at the same moments as the
matrix rows, by multiple-choice log-likelihood, and written to ``general.json``; their forgetting
goes to ``metrics.json`` as ``general/<name>/forgetting`` (:mod:`migu.eval.general`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import math
import os
import pickle
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from migu.config.schema import joined_problems
from migu.data.task import Task
from migu.engine.config import ConfigError, RunConfig, load_run_config
from migu.engine.families import FAMILY_METRICS, Family, Item, make_family
from migu.engine.rundir import (
    add_log_file,
    atomic_write_text,
    config_changes,
    environment_info,
    latest_complete,
    lock_run_dir,
    read_json,
    safe_name,
    seed_folder,
    swap_in,
    write_json,
    write_matrix,
)
from migu.engine.steps import batch_plan, make_optimizer, make_scheduler, step_done, train_step
from migu.engine.tasks import load_tasks, test_set_record
from migu.eval.general import general_metrics, load_general_probe
from migu.eval.metrics import summarize
from migu.eval.multiple_choice import multiple_choice_accuracy
from migu.eval.text import answer_kinds, answer_metrics
from migu.methods import Method, MethodContext, make_method
from migu.models.loading import load_model

__all__ = [
    "check_inputs",
    "RunDirExists",
    "RunResult",
    "TrainingDiverged",
    "resume_run",
    "run",
    "run_variants",
]

logger = logging.getLogger("migu")

#: Fewer tokens than this left for a task's text after its instruction and options draws a warning.
MIN_SENTENCE_ROOM = 32


#: Optimizer steps between two training-loss lines in log.txt.
LOSS_LOG_EVERY = 10


class RunDirExists(FileExistsError):
    """The run directory already holds a run."""


class ConfigChanged(ConfigError):
    """``config.yaml`` of a run directory differs from the configuration the run started with."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, permissions); the previous one is intact."""


class TrainingDiverged(RuntimeError):
    """The training loss or the weights became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class RunResult:
    """What a finished run produced.

    Attributes:
        run_dir: The run directory.
        tasks: Task names in training order.
        matrix: Accuracy matrix R, ``len(tasks) + 1`` rows (row 0: before training).
        metrics: :func:`migu.eval.metrics.summarize` of R plus timings.
        variant: The variant of :func:`run_variants` it belongs to (``None``: a single run).
        seed: Its seed when :func:`run_variants` ran ``config.seeds`` (``None`` otherwise).
    """

    run_dir: Path
    tasks: list[str]
    matrix: list[list[float]]
    metrics: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None
    seed: int | None = None


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def _micro_batches(
    n_train: int, cfg: RunConfig, task_index: int, epochs: float, global_batch: int
) -> list[list[int]]:
    """Global micro-batches of example indices for one task (:func:`migu.engine.steps.batch_plan`),
    capped by ``train.max_steps_per_task``; the order is a pure function of (seed, task, epoch)."""
    return batch_plan(
        n_train,
        batch_size=global_batch,
        accum=cfg.train.grad_accum_steps,
        epochs=epochs,
        max_steps=cfg.train.max_steps_per_task,
        epoch_seed=lambda epoch: cfg.seed * 1_000_003 + task_index * 1_009 + epoch,
    )


class _Run:
    """State of one run while it trains (internal; use :func:`run`)."""

    def __init__(
        self, cfg: RunConfig, run_dir: Path, show_progress: bool, labels: list[str] | None = None
    ) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.cfg = cfg
        self.run_dir = run_dir
        launched_world = int(os.environ.get("WORLD_SIZE", "1"))
        self.accelerator = Accelerator(
            # 1: engine.steps.train_step accumulates the micro-batches itself (and divides their loss).
            gradient_accumulation_steps=1,
            mixed_precision=cfg.train.mixed_precision,
            # accelerate takes a torchrun launch on a machine without a GPU for a single process
            # unless told to use the CPU: it then sets up gloo across the launched processes.
            cpu=launched_world > 1 and not torch.cuda.is_available(),
        )
        if launched_world > 1 and self.accelerator.num_processes != launched_world:
            raise RuntimeError(
                f"migu run was launched as {launched_world} processes (WORLD_SIZE) but accelerate set up "
                f"{self.accelerator.num_processes} ({self.accelerator.distributed_type}); they would all "
                "write the same run directory. Launch with `accelerate launch` and a config for this "
                "machine (`accelerate config`), or set ACCELERATE_USE_CPU=true for CPU processes."
            )
        self.is_main = self.accelerator.is_main_process
        self.show_progress = show_progress and self.is_main
        set_seed(cfg.seed, deterministic=cfg.train.deterministic)
        self.tasks: list[Task] = load_tasks(cfg.data, seed=cfg.seed)
        union = sorted({lab for t in self.tasks for lab in t.labels})
        if labels is not None:  # evaluating a trained head: its label set is fixed
            unknown = sorted(set(union) - set(labels))
            if unknown:
                raise ValueError(
                    f"The tasks to evaluate have labels the trained model never had: {unknown}. "
                    "An encoder's head covers only the labels of the tasks it was trained on."
                )
            union = labels
        loaded = load_model(
            cfg.model.name,
            family=cfg.model.family,
            dtype=cfg.model.dtype,
            num_labels=len(union),
            gguf_file=cfg.model.gguf_file,
        )
        self.family: Family = make_family(
            loaded.family,
            loaded.tokenizer,
            max_length=cfg.model.max_length,
            max_target_length=cfg.model.max_target_length,
            labels=union,
            max_new_tokens=cfg.model.max_new_tokens,
            label_space=cfg.eval.label_space,
        )
        self._check_prompt_room()
        metric = cfg.eval.metric
        allowed = FAMILY_METRICS[loaded.family]
        if metric == "auto":
            metric = allowed[0]
        elif metric not in allowed:
            raise ConfigError(
                f"eval.metric={metric!r} does not apply to {cfg.model.name!r}, a {loaded.family} model; "
                f"allowed: 'auto', {', '.join(map(repr, allowed))}."
            )
        self.metric = metric
        self.model_source = loaded.source
        self.tokenizer = loaded.tokenizer
        if cfg.eval.general and loaded.family != "decoder":
            raise ConfigError(
                f"eval.general scores multiple-choice probes by a causal LM's log-likelihood; {cfg.model.name!r} "
                f"is a {loaded.family} model. Remove eval.general or use a decoder-only model."
            )
        # Built-in probes (COPA) come from the CL_Benchmark folder of the run's data where it has one.
        probe_root = cfg.data.data_dir if cfg.data.source == "cl_benchmark" else None
        self.general = {
            name: load_general_probe(name, entry, probe_root) for name, entry in cfg.eval.general.items()
        }
        self.method: Method = make_method(cfg.method, self.tasks, cfg.seed, self.accelerator.num_processes)
        model = self.method.setup(loaded.model)
        model.train()
        self.model = self.accelerator.prepare(model)
        self.optimizer: Any = None
        self.handle: Any = None
        self.scheduler: Any = None
        self.state: dict[str, Any] = {
            "status": "running",
            "task": 0,
            "step": 0,
            "rows": [],
            "train_seconds": 0.0,
            "optimizer_steps": 0,
            "update_fraction_sum": 0.0,
            "masked_steps": 0,
            "general": [],
            "task_losses": [],  # mean training loss of each finished task
            "loss_sum": 0.0,  # this task so far (from its start, resumes included)
            "loss_steps": 0,
            # per finished task: share of MIGU's target rows updated in at least one of its steps
            "task_rows_updated": [],
            # per evaluated row and task: the kinds of answers given (own / other task's / no label)
            "answers": [],
        }
        self._steps_this_process = 0
        # MIGU's keep-masks OR-ed over the steps of the current task (name -> (d_out,) bool), and
        # whether they cover all of its steps (not after a resume mid-task: the union is in memory only).
        self._rows_updated: dict[str, torch.Tensor] = {}
        self._rows_updated_whole_task = True

    def _check_prompt_room(self) -> None:
        """Stop when a task's instruction and options fill ``model.max_length``; warn when they nearly do."""
        for task in self.tasks:
            room = self.family.sentence_room(task)
            if room == 0:
                raise ConfigError(
                    f"model.max_length={self.cfg.model.max_length} leaves no token for the text of task "
                    f"{task.name!r}: its instruction and {len(task.labels)} options fill it. Raise "
                    "model.max_length (e.g. model.max_length=128)."
                )
            if room < MIN_SENTENCE_ROOM:
                logger.warning(
                    "model.max_length=%d leaves only %d tokens for the text of task %r after its instruction "
                    "and options; longer texts lose their end. Consider a larger model.max_length.",
                    self.cfg.model.max_length,
                    room,
                    task.name,
                )

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def _start_task(self, t: int) -> None:
        """Let the method prepare task t, then a fresh AdamW over what it trains, and MIGU on it."""
        acc, cfg = self.accelerator, self.cfg
        self.method.begin_task(t, self.unwrapped)
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        if self.optimizer is not None:
            # accelerate saves every optimizer it prepared; only this task's one is live.
            acc._optimizers = [o for o in acc._optimizers if o is not self.optimizer]
        params = self.method.trainable_parameters(self.unwrapped)
        if not params:
            raise ValueError(f"method.name={cfg.method.name!r} left no trainable parameter for task {t + 1}.")
        optimizer = make_optimizer(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        self.optimizer = acc.prepare_optimizer(optimizer)
        if cfg.migu.enabled:
            from migu.core.handle import attach

            self.handle = attach(self.unwrapped, cfg.migu.to_migu_config(cfg.seed), optimizer=self.optimizer)
            self.handle.enabled = not (cfg.migu.skip_first_task and t == 0)
            if cfg.migu.clusters and cfg.migu.cluster_by == "magnitude":
                self._fit_clusters(t)

    def _fit_clusters(self, t: int, n_batches: int = 8) -> None:
        """Co-magnitude clusters from the first training batches of task t (MIGU + Cluster)."""
        items = self.method.training_items(t) or [(task, r) for task in self.tasks for r in task.train]
        bs = self.cfg.train.batch_size
        batches = [
            {
                k: v.to(self.accelerator.device)
                for k, v in self.family.training_batch(items[i : i + bs]).items()
            }
            for i in range(0, min(len(items), n_batches * bs), bs)
        ]
        for b in batches:
            b.pop("option_mask", None)  # the encoder family's loss input, not a model input
        self.handle.fit_clusters(batches)

    def start(self, resume: bool) -> None:
        """Rebuild the method's structure up to the current task and load the checkpoint (resume)."""
        if resume:
            self.state = _resume_state(self.run_dir)
            self.state["rows"] = [[float("nan") if a is None else a for a in r] for r in self.state["rows"]]
            self.state.setdefault("general", [])
            for key, empty in (
                ("task_losses", []),
                ("loss_sum", 0.0),
                ("loss_steps", 0),
                ("task_rows_updated", [None] * len(self.state.get("task_losses", []))),
                # rows evaluated by a version without the record: unknown, not zero
                ("answers", [[None] * len(self.tasks) for _ in self.state["rows"]]),
            ):
                self.state.setdefault(key, empty)
        current = self.state["task"]
        if current >= len(self.tasks):  # finished: the structure of the last task, nothing to train
            for k in range(len(self.tasks)):
                self.method.begin_task(k, self.unwrapped)
            return
        for k in range(current):
            self.method.begin_task(k, self.unwrapped)
        self._start_task(current)
        if resume:
            self._load_checkpoint()

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self) -> None:
        """Checkpoint and state.json, atomically: a kill at any moment leaves a loadable checkpoint."""
        final = self.run_dir / "checkpoint"
        tmp = self.run_dir / "checkpoint.tmp"
        if self.is_main and tmp.exists():
            shutil.rmtree(tmp)
        self.accelerator.wait_for_everyone()
        try:
            self.accelerator.save_state(str(tmp))
            if self.is_main:
                sched = self.scheduler.state_dict() if self.scheduler is not None else None
                torch.save({"scheduler": sched, "method": self.method.state_dict()}, tmp / "migu_state.pt")
                # The state that matches these weights travels inside the checkpoint: RUN_DIR/state.json
                # is rewritten after the swap, and a kill in between must not pair new weights with
                # the old task counter (the task would be trained twice on resume).
                write_json(tmp / "state.json", _jsonable(self.state))
        except (OSError, RuntimeError) as err:
            # torch.save reports a full disk as "RuntimeError: [enforce fail at inline_container.cc]
            # ... file write failed": say what happened and leave no half-written checkpoint.
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                free = f"{shutil.disk_usage(self.run_dir).free / 2**20:.0f} MiB free on that disk"
            except OSError:
                free = "free space unknown"
            raise CheckpointWriteError(
                getattr(err, "errno", None) or errno.EIO,
                f"could not write the checkpoint in {self.run_dir} ({free}): {str(err).splitlines()[0]}. "
                "The previous checkpoint is kept; free space (or fix the permissions) and resume",
            ) from err
        # accelerate's save_state has no barrier at its end: every rank writes its own RNG file into
        # tmp, so the rename waits until all ranks are done (without it rank 0 moved tmp away while
        # rank 1 was still writing into it).
        self.accelerator.wait_for_everyone()
        if self.is_main:
            swap_in(tmp, final)
            write_json(self.run_dir / "state.json", _jsonable(self.state))
        self.accelerator.wait_for_everyone()

    def _load_checkpoint(self) -> None:
        """Restore model, optimizer, RNG states, scheduler and the method's state."""
        ckpt = latest_complete(self.run_dir / "checkpoint")
        if ckpt is None:
            return  # killed before the first checkpoint: nothing trained yet
        self.accelerator.load_state(str(ckpt))
        # weights_only: tensors and plain containers only. A run directory may come from someone
        # else; a full unpickle would run whatever code a crafted file names.
        try:
            extra = torch.load(ckpt / "migu_state.pt", weights_only=True)
        except pickle.UnpicklingError as err:
            raise RuntimeError(
                f"{ckpt / 'migu_state.pt'} holds more than tensors and plain data, so it was not loaded "
                f"(loading it could run code from the file). Only resume run directories that migu wrote. "
                f"({str(err).splitlines()[0]})"
            ) from None
        self._pending_scheduler_state = extra["scheduler"]
        self.method.load_state_dict(extra["method"])

    # ------------------------------------------------------------------ evaluation
    def evaluate_all(self, row: int, only: int | None = None) -> list[float]:
        """Accuracy on every task's test set (NaN for all but task ``only`` when given); predictions
        written to predictions/row<i>_<task>.jsonl."""
        return self._evaluate_tasks(row, only)[0]

    def _evaluate_tasks(self, row: int, only: int | None = None) -> tuple[list[float], list[dict | None]]:
        """:meth:`evaluate_all`, and per task the kinds of answers given (:func:`answer_kinds`: own
        label, another task's label, no label; None where not evaluated)."""
        from accelerate.utils import gather_object

        model = self.accelerator.unwrap_model(self.model)
        every_label = [label for t in self.tasks for label in t.labels]
        accs: list[float] = []
        kinds: list[dict | None] = []
        label = "before training" if row == 0 else f"after {self.tasks[row - 1].name}"
        for index, task in enumerate(
            tqdm(self.tasks, desc=f"eval {label}", unit="task", disable=not self.show_progress, leave=False)
        ):
            if only is not None and index != only:
                accs.append(float("nan"))  # not evaluated (eval.rows: learned-and-final)
                kinds.append(None)
                continue
            with self.accelerator.split_between_processes(list(task.test)) as part:
                preds = self.family.evaluate(model, task, part, self.metric, self.cfg.eval.batch_size)
            preds = gather_object(preds)
            accs.append(sum(p["correct"] for p in preds) / max(1, len(preds)))
            kinds.append(answer_kinds([p["prediction"] for p in preds], task.labels, every_label))
            if self.is_main and self.cfg.eval.save_predictions:
                lines = [
                    json.dumps({"i": i, "sentence": r["sentence"], **p}, ensure_ascii=False) + "\n"
                    for i, (r, p) in enumerate(zip(task.test, preds, strict=True))
                ]
                name = f"row{row}_{safe_name(task.name)}.jsonl"
                atomic_write_text(self.run_dir / "predictions" / name, "".join(lines))
        return accs, kinds

    def evaluate_general(self, row: int) -> dict[str, dict[str, Any]]:
        """Multiple-choice accuracy on every ``eval.general`` probe; predictions as for the tasks."""
        from accelerate.utils import gather_object

        model = self.accelerator.unwrap_model(self.model)
        out: dict[str, dict[str, Any]] = {}
        for name, items in self.general.items():
            with self.accelerator.split_between_processes(items) as part:
                # A rank can get no item when there are fewer items than processes.
                preds = (
                    multiple_choice_accuracy(
                        model, self.tokenizer, part, self.cfg.eval.batch_size, self.accelerator.device
                    )["predictions"]
                    if part
                    else []
                )
            preds = gather_object(preds)
            n = len(preds)
            out[name] = {
                "acc": sum(p["pred"] == p["answer"] for p in preds) / n,
                "acc_norm": sum(p["pred_norm"] == p["answer"] for p in preds) / n,
                "n": n,
            }
            if self.is_main and self.cfg.eval.save_predictions:
                lines = [json.dumps(p, ensure_ascii=False) + "\n" for p in preds]
                name_file = f"row{row}_general_{safe_name(name)}.jsonl"
                atomic_write_text(self.run_dir / "predictions" / name_file, "".join(lines))
        return out

    def _evaluate_row(self, row: int) -> None:
        """Row ``row`` of the matrix and of the general probes, appended to the state.

        With ``eval.rows: learned-and-final`` a row between the first and the last holds only the task
        just learned (the others NaN, null in matrix.json).
        """
        partial = self.cfg.eval.rows == "learned-and-final" and 0 < row < len(self.tasks)
        accs, kinds = self._evaluate_tasks(row, only=row - 1 if partial else None)
        self.state["rows"].append(accs)
        self.state["answers"].append(kinds)
        if self.general:
            self.state["general"].append(self.evaluate_general(row))
            logger.info(
                "general probes %s: %s",
                "before training" if row == 0 else f"after {self.tasks[row - 1].name}",
                " ".join(f"{k} {v['acc']:.3f}" for k, v in self.state["general"][-1].items()),
            )

    def _write_results(self) -> dict[str, Any]:
        rows = self.state["rows"]
        names = self.task_names
        metrics: dict[str, Any] = {"metric": self.metric}
        if len(rows) >= 2:
            metrics.update(summarize(rows, allow_missing=self.cfg.eval.rows != "all"))
        steps = self.state["optimizer_steps"]
        metrics["optimizer_steps"] = steps
        metrics["train_seconds"] = self.state["train_seconds"]
        metrics["seconds_per_step"] = self.state["train_seconds"] / steps if steps else None
        masked = self.state["masked_steps"]
        metrics["mean_update_fraction"] = self.state["update_fraction_sum"] / masked if masked else 1.0
        metrics["completed_tasks"] = max(0, len(rows) - 1)
        metrics["train_loss"] = list(self.state["task_losses"])  # mean training loss per finished task
        metrics["rows_updated_per_task"] = list(self.state["task_rows_updated"])
        metrics.update(answer_metrics(self.state["answers"]))
        general = self.state["general"]
        if self.general:
            metrics.update(general_metrics(general, list(self.general)))
        if self.is_main:
            if self.general:
                labels = ["before training"] + [f"after {n}" for n in names]
                table = [{"row": label, "results": g} for label, g in zip(labels, general, strict=False)]
                write_json(
                    self.run_dir / "general.json", _jsonable({"probes": list(self.general), "rows": table})
                )
            write_matrix(self.run_dir, names, _jsonable(rows), self.metric)
            write_json(self.run_dir / "metrics.json", _jsonable(metrics))
        return metrics

    # ------------------------------------------------------------------ training
    def train(self) -> RunResult:
        """Run (or continue) the sequence to the end."""
        cfg, acc = self.cfg, self.accelerator
        if not self.state["rows"]:
            if cfg.eval.before_training:
                self._evaluate_row(0)
            else:
                self.state["rows"] = [[float("nan")] * len(self.tasks)]
                self.state["answers"] = [[None] * len(self.tasks)]
                self.state["general"] = [None] if self.general else []
            self._write_results()
        world = acc.num_processes
        global_batch = cfg.train.batch_size * world
        for t in range(self.state["task"], len(self.tasks)):
            task = self.tasks[t]
            items = self.method.training_items(t)
            epochs = cfg.train.task_epochs.get(task.name, cfg.train.epochs)
            plan = _micro_batches(len(items), cfg, t, epochs, global_batch) if items else []
            n_steps = len(plan) // cfg.train.grad_accum_steps
            if n_steps:
                self.scheduler = make_scheduler(
                    cfg.train.scheduler,
                    self.optimizer.optimizer,
                    warmup_ratio=cfg.train.warmup_ratio,
                    steps=n_steps,
                )
                pending = getattr(self, "_pending_scheduler_state", None)
                if pending is not None:
                    self.scheduler.load_state_dict(pending)
                    self._pending_scheduler_state = None
                self._train_task(t, task, items, plan, self.state["step"], n_steps)
            self._check_finite_weights(task)
            steps = self.state["loss_steps"]
            self.state["task_losses"].append(self.state["loss_sum"] / steps if steps else None)
            self.state["task_rows_updated"].append(self._take_rows_updated())
            self.state.update(loss_sum=0.0, loss_steps=0)
            self.method.end_task(t, self.unwrapped, MethodContext(self.family, acc.device))
            if self.handle is not None:
                self.handle.reset()  # forwards of end_task (e.g. EWC's Fisher) are not training
            self._evaluate_row(t + 1)
            self.state.update(task=t + 1, step=0)
            self.scheduler = None
            if t + 1 == len(self.tasks):
                self.state["status"] = "finished"
            else:
                self._start_task(t + 1)  # the boundary checkpoint holds the next task's optimizer
            self._save_checkpoint()
            self._write_results()
            row = " ".join(
                f"{name} {a:.3f}"
                for name, a in zip(self.task_names, self.state["rows"][-1], strict=True)
                if not math.isnan(a)  # eval.rows: learned-and-final leaves the others out
            )
            logger.info("after %s: %s", task.name, row)
            if self.show_progress:
                tqdm.write(f"after task {t + 1}/{len(self.tasks)} {task.name}: {row}")
        metrics = self._write_results()
        if self.is_main:
            write_json(self.run_dir / "state.json", _jsonable(self.state))
            if not cfg.train.keep_checkpoint:  # finished: nothing left to resume
                shutil.rmtree(self.run_dir / "checkpoint", ignore_errors=True)
        return RunResult(self.run_dir, self.task_names, self.state["rows"], metrics)

    def _train_task(
        self, t: int, task: Task, items: list[Item], plan: list[list[int]], start: int, n_steps: int
    ) -> None:
        cfg, acc = self.cfg, self.accelerator
        accum = cfg.train.grad_accum_steps
        rank, bs = acc.process_index, cfg.train.batch_size
        bar = tqdm(
            total=n_steps,
            initial=start,
            desc=f"task {t + 1}/{len(self.tasks)} {task.name}",
            unit="step",
            disable=not self.show_progress,
        )
        self.model.train()
        self._rows_updated = {}
        self._rows_updated_whole_task = start == 0
        t0 = time.perf_counter()

        def loss_of(indices: list[int]) -> torch.Tensor:
            chunk = [items[j] for j in indices[rank * bs : (rank + 1) * bs]]
            batch = {k: v.to(acc.device) for k, v in self.family.training_batch(chunk).items()}
            loss = self.family.loss(self.model, batch)
            penalty = self.method.penalty(self.unwrapped, t)
            return loss if penalty is None else loss + penalty

        def check_loss(mean: float) -> None:  # before the update: a NaN never reaches the weights
            if not math.isfinite(mean):
                bar.close()
                self._diverged(f"the training loss is {mean} at step {step} of task {t + 1} ({task.name})")

        for index in range(start, n_steps):
            step = index + 1  # optimizer steps of this task once this one is taken
            mean_loss, fraction = train_step(
                self.model,
                plan[index * accum : step * accum],
                loss_of,
                self.optimizer,
                self.scheduler,
                accelerator=acc,
                handle=self.handle,
                max_grad_norm=cfg.train.max_grad_norm,
                check_loss=check_loss,
            )
            if fraction is not None:
                self.state["update_fraction_sum"] += fraction
                self.state["masked_steps"] += 1
                for name, keep in self.handle.masks.items():  # keep: (d_out,) bool, this step's rows
                    seen = self._rows_updated.get(name)
                    if seen is None:
                        self._rows_updated[name] = keep.clone()
                    else:
                        seen |= keep  # in place: no new tensor per layer and step
            self.state["optimizer_steps"] += 1
            self._steps_this_process += 1
            now = time.perf_counter()
            self.state["train_seconds"] += now - t0
            t0 = now
            self.state["loss_sum"] += mean_loss
            self.state["loss_steps"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{mean_loss:.3f}")
            if step % LOSS_LOG_EVERY == 0 or step == n_steps:
                logger.info(
                    "task %d/%d %s step %d/%d loss %.4f (mean of this task so far %.4f)",
                    t + 1,
                    len(self.tasks),
                    task.name,
                    step,
                    n_steps,
                    mean_loss,
                    self.state["loss_sum"] / self.state["loss_steps"],
                )
            if step < n_steps and cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
                self.state["step"] = step
                self._save_checkpoint()
                t0 = time.perf_counter()
            step_done(self._steps_this_process)
        bar.close()

    def _take_rows_updated(self) -> float | None:
        """Share of MIGU's target rows that at least one step of the task just trained updated (the
        union of the per-step keep-masks; with T = 0.7 and a fresh random mask each step it nears 1
        within a few steps, with the output magnitude it shows how concentrated the updates are).
        ``None`` without a masked step, or when the task was resumed mid-way."""
        union, self._rows_updated = self._rows_updated, {}
        if not union or not self._rows_updated_whole_task:
            return None
        return sum(int(k.sum()) for k in union.values()) / sum(k.numel() for k in union.values())

    def _check_finite_weights(self, task: Task) -> None:
        """Stop with :class:`TrainingDiverged` when a trained weight holds NaN or inf after ``task``."""
        for name, p in self.unwrapped.named_parameters():
            if p.requires_grad and not bool(torch.isfinite(p).all()):
                self._diverged(f"weight {name} holds NaN or inf after task {task.name}")

    def _diverged(self, what: str) -> None:
        """Mark the run diverged in state.json (the last checkpoint stays as it was) and stop."""
        message = (
            f"training diverged: {what} (train.lr={self.cfg.train.lr}). Nothing after the last checkpoint "
            "is kept. Lower train.lr (or set train.max_grad_norm) and start a new run; the results so "
            "far are in the run directory."
        )
        logger.error(message)
        if self.is_main:
            state_file = self.run_dir / "state.json"
            on_disk = read_json(state_file) if state_file.exists() else _jsonable(self.state)
            on_disk.update(status="diverged", error=message)
            write_json(state_file, on_disk)
        raise TrainingDiverged(message)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()
        self.accelerator.free_memory()


def run(
    config: RunConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    show_progress: bool = True,
    allow_config_change: bool = False,
) -> RunResult:
    """Train and evaluate one run (``config.variants`` is ignored here, see :func:`run_variants`).

    Args:
        config: The run configuration.
        run_dir: Where to write; default ``<output_dir>/<name or "run">``.
        resume: Continue the run in ``run_dir`` from its last checkpoint (a finished run is
            returned as it is).
        show_progress: Progress bars with ETA for training and evaluation.
        allow_config_change: With ``resume``, continue even if ``config.yaml`` was edited since the
            run started (the change is recorded in ``state.json``).

    Returns:
        The :class:`RunResult`.

    Raises:
        RunDirExists: ``run_dir`` already holds a run and ``resume`` is False.
        RunDirLocked: another process is writing ``run_dir``.
        ConfigChanged: ``resume`` with an edited ``config.yaml`` and not ``allow_config_change``.
        TrainingDiverged: a non-finite loss or weight (``state.json`` status ``diverged``).
        OSError: the disk is full or not writable (status ``failed``; resumable once fixed).
        KeyboardInterrupt: Ctrl-C (status ``interrupted``; resumable).
        FileNotFoundError: ``resume`` and ``run_dir`` holds no run.
        ConfigError / ValueError / migu.models.loading.ModelNotFound: bad configuration, data or model.
    """
    run_dir = (
        Path(run_dir) if run_dir is not None else Path(config.output_dir) / safe_name(config.name or "run")
    )
    state_file = run_dir / "state.json"
    if resume:
        if not state_file.exists():
            raise FileNotFoundError(f"No run to resume in {run_dir.resolve()} (no state.json).")
        state = read_json(state_file)
        if state.get("status") == "finished":
            metrics = read_json(run_dir / "metrics.json")
            matrix = read_json(run_dir / "matrix.json")
            rows = [[float("nan") if a is None else a for a in r] for r in matrix["matrix"]]
            return RunResult(run_dir, matrix["tasks"], rows, metrics)
    elif state_file.exists():
        raise RunDirExists(
            f"{run_dir.resolve()} already holds a run. Continue it with `migu run --resume {run_dir}`, "
            "or start a new one under another name (name=...) or output_dir."
        )
    # Read from the launcher's environment (torchrun / accelerate launch set RANK): creating
    # accelerate's PartialState here would fix its process setup before _Run's Accelerator(cpu=...).
    is_main = int(os.environ.get("RANK", "0")) == 0
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _run_in_dir(config, run_dir, resume, show_progress, allow_config_change, is_main)
    except BaseException:
        # A run that failed before it started (unknown task, missing model, ...) leaves no empty
        # run directory behind; what an earlier run wrote is never touched.
        if created and is_main and not state_file.exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _run_in_dir(
    config: RunConfig,
    run_dir: Path,
    resume: bool,
    show_progress: bool,
    allow_config_change: bool,
    is_main: bool,
) -> RunResult:
    with lock_run_dir(run_dir) if is_main else contextlib.nullcontext():
        if resume and is_main:
            _check_config_unchanged(config, run_dir, allow_config_change)
        handler = add_log_file(run_dir, logger)
        try:
            return _run_locked(config, run_dir, resume, show_progress)
        except KeyboardInterrupt:
            _mark_stopped(run_dir, "interrupted", "interrupted by the user (Ctrl-C or SIGINT)")
            raise
        except OSError as err:
            _mark_stopped(run_dir, "failed", f"{type(err).__name__}: {err}")
            raise
        finally:
            shutil.rmtree(run_dir / "checkpoint.tmp", ignore_errors=True)
            logger.removeHandler(handler)
            handler.close()


def _check_config_unchanged(config: RunConfig, run_dir: Path, allow: bool) -> None:
    """Refuse to resume with a config.yaml edited since the run started (unless ``allow``)."""
    state_file = run_dir / "state.json"
    state = read_json(state_file)
    started = state.get("config")
    if started is None:  # a run directory from before the fingerprint
        return
    try:
        # Through today's schema, so that a key added in a later version (with the default that
        # keeps the old behaviour) is not mistaken for an edit of a run started before it existed.
        started = RunConfig.from_dict(started).to_dict()
    except ConfigError:
        pass  # a key since removed: compare as written, the message will name it
    changes = config_changes(started, config.to_dict(), ignore=("name", "output_dir"))
    if not changes:
        return
    if not allow:
        raise ConfigChanged(
            f"{run_dir / 'config.yaml'} differs from the configuration this run started with:\n  "
            + "\n  ".join(changes)
            + "\nResuming would mix two configurations in one run. Undo the edit, start a new run, or "
            "resume anyway with `migu run --resume RUN_DIR --allow-config-change` (state.json records the change)."
        )
    logger.warning("resuming with a changed configuration: %s", "; ".join(changes))
    state.setdefault("config_changes", []).append(
        {"task": state.get("task"), "step": state.get("step"), "changes": changes}
    )
    state["config"] = config.to_dict()
    write_json(state_file, state)


def _resume_state(run_dir: Path) -> dict[str, Any]:
    """The state to resume from: the copy saved inside the latest checkpoint (it matches the
    weights), with the bookkeeping of ``RUN_DIR/state.json`` that is not tied to weights (the
    config fingerprint and the record of config changes). Run directories from before the copy
    existed resume from ``RUN_DIR/state.json``."""
    top = read_json(run_dir / "state.json")
    ckpt = latest_complete(run_dir / "checkpoint")
    if ckpt is None or not (ckpt / "state.json").is_file():
        return top
    state = read_json(ckpt / "state.json")
    for key in ("config", "config_changes"):
        if key in top:
            state[key] = top[key]
    return state


def _mark_stopped(run_dir: Path, status: str, reason: str) -> None:
    """Record in state.json why the run stopped (it stays resumable from its last checkpoint)."""
    logger.error("run stopped (%s): %s", status, reason)
    state_file = run_dir / "state.json"
    try:
        if state_file.exists():
            state = read_json(state_file)
            state.update(status=status, error=reason)
            write_json(state_file, state)
    except OSError:  # the disk that failed the run may refuse this too; the log line above stays
        pass


def _run_locked(config: RunConfig, run_dir: Path, resume: bool, show_progress: bool) -> RunResult:
    state_file = run_dir / "state.json"
    r = None
    try:
        r = _Run(config, run_dir, show_progress)
        if r.is_main and not resume:
            r.state["config"] = config.to_dict()  # what resume compares config.yaml with
            atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
            info = environment_info(
                config.seed, str(r.accelerator.device), r.accelerator.num_processes, r.model_source
            )
            # Which test items each task is scored on (fixed for every seed): equal digests, same items.
            info["test_sets"] = test_set_record(r.tasks)
            write_json(run_dir / "environment.json", info)
            write_json(state_file, r.state)
        r.start(resume)
        if resume:
            logger.info("resuming %s at task %d, step %d", run_dir, r.state["task"] + 1, r.state["step"])
        else:
            logger.info("run %s: tasks %s", run_dir, ", ".join(t.name for t in r.tasks))
        return r.train()
    finally:
        if r is not None:
            r.close()


def resume_run(
    run_dir: str | Path, *, show_progress: bool = True, allow_config_change: bool = False
) -> RunResult:
    """Continue the run in ``run_dir`` with the configuration saved there (see :func:`run`)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise FileNotFoundError(f"No run to resume in {run_dir.resolve()} (no config.yaml).")
    return run(
        load_run_config(run_dir / "config.yaml"),
        run_dir,
        resume=True,
        show_progress=show_progress,
        allow_config_change=allow_config_change,
    )


def check_inputs(config: RunConfig) -> None:
    """Load the tasks and find the model of ``config`` and of each of its variants, before any run
    directory is made, and report every problem at once.

    Raises:
        ConfigError: one or more tasks that do not load or models that are not found; the message
            lists each (as :class:`TaskDataError` and :class:`ModelNotFound` word them).
    """
    from migu.data.task import TaskDataError
    from migu.models.loading import ModelNotFound, load_model_config

    configs = [config] + [config.with_overrides({**o, "variants": {}}) for o in config.variants.values()]
    problems: list[str] = []
    seen: set[str] = set()
    for cfg in configs:
        checks = (
            (repr(cfg.data), lambda c=cfg: load_tasks(c.data, seed=c.seed)),
            (f"model:{cfg.model.name}", lambda c=cfg: load_model_config(c.model.name, c.model.gguf_file)),
        )
        for key, check in checks:
            if key in seen:
                continue
            seen.add(key)
            try:
                check()
            except (TaskDataError, ModelNotFound) as err:
                if str(err) not in problems:
                    problems.append(str(err))
    if problems:
        raise ConfigError(joined_problems(problems, "with the inputs"))


def run_variants(
    config: RunConfig, *, resume: bool = False, show_progress: bool = True, allow_config_change: bool = False
) -> dict[str, RunResult]:
    """Run every variant of ``config`` (or the config itself when it has none), once per seed of
    ``config.seeds`` when it lists any.

    Variant ``v`` is written to ``<output_dir>/<name>/<v>``; with ``seeds``, to
    ``<output_dir>/<name>/seed=<s>/<v>`` (``.../seed=<s>`` without variants), seed by seed, so that
    the first pair of variants is complete early. With ``resume``, finished runs are read back and
    unfinished ones continued.

    Returns:
        Results by variant name (``{name: result}`` for a config without variants; with seeds,
        ``"<variant> seed=<s>"``), in the order they ran. Each result's ``variant`` and ``seed``
        say where it belongs.
    """
    base = Path(config.output_dir) / safe_name(config.name or "run")
    if not resume:
        check_inputs(config)
    if not config.variants and not config.seeds:
        return {config.name or "run": run(config, base, resume=resume, show_progress=show_progress)}
    from accelerate import PartialState

    jobs = _plan_runs(config, base)
    # Only a started run counts: a run that failed before training (bad model path, ...) left no
    # state.json, and fixing the cause and running again must just work.
    taken = not resume and any((job.run_dir / "state.json").exists() for job in jobs)
    PartialState().wait_for_everyone()  # every rank looked before any rank writes
    if taken:
        raise RunDirExists(
            f"{base.resolve()} already holds runs. Continue them with `migu run --resume {base}`, "
            "or start new ones under another name (name=...) or output_dir."
        )
    created = not base.exists()
    base.mkdir(parents=True, exist_ok=True)
    try:
        return _run_jobs(config, base, jobs, resume, show_progress, allow_config_change)
    except BaseException:
        # Nothing started (a bad task or model stops the first variant before it trains): leave
        # no folder behind that holds only the config.
        if created and PartialState().is_main_process and not any(base.rglob("state.json")):
            shutil.rmtree(base, ignore_errors=True)
        raise


@dataclass(frozen=True)
class _Job:
    """One run of :func:`run_variants`: its key in the results, config and directory."""

    key: str
    variant: str | None
    seed: int | None
    config: RunConfig
    run_dir: Path


def _plan_runs(config: RunConfig, base: Path) -> list[_Job]:
    jobs = []
    for seed in config.seeds or [None]:
        cfg = config if seed is None else dataclasses.replace(config, seed=seed, seeds=[])
        folder = base if seed is None else base / seed_folder(seed)
        for name, overrides in (config.variants or {None: {}}).items():
            variant = cfg if name is None else dataclasses.replace(cfg.with_overrides(overrides), variants={})
            key = " ".join(x for x in (name, None if seed is None else f"seed={seed}") if x)
            run_dir = folder if name is None else folder / safe_name(name)
            jobs.append(_Job(key, name, seed, variant, run_dir))
    return jobs


def _run_jobs(
    config: RunConfig,
    base: Path,
    jobs: list[_Job],
    resume: bool,
    show_progress: bool,
    allow_config_change: bool,
) -> dict[str, RunResult]:
    from accelerate import PartialState

    # The config above the runs; with seeds, also one per seed folder (that seed's config with its
    # variants), as a sweep writes at each point: reports find a run's variant there, and
    # `migu run --resume <name>/seed=N` continues one seed.
    configs = {base: config}
    if config.seeds:
        configs.update(
            {
                job.run_dir.parent: dataclasses.replace(config, seed=job.seed, seeds=[])
                for job in jobs
                if config.variants
            }
        )
    if PartialState().is_main_process:
        for folder, cfg in configs.items():
            if not resume or not (folder / "config.yaml").exists():
                folder.mkdir(parents=True, exist_ok=True)
                atomic_write_text(folder / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    results = {}
    n = len(jobs)
    took: list[float] = []  # wall seconds of the runs trained in this call
    for i, job in enumerate(jobs, 1):
        cont = resume and (job.run_dir / "state.json").exists()
        done_before = cont and read_json(job.run_dir / "state.json").get("status") == "finished"
        if show_progress and PartialState().is_main_process:
            what = "variant" if not config.seeds else "run"
            label = job.key if config.seeds else job.variant
            tqdm.write(f"== {what} {i}/{n}: {label} ({job.run_dir}){_eta(took, n - i + 1, what)} ==")
        start = time.perf_counter()
        result = run(
            job.config,
            job.run_dir,
            resume=cont,
            show_progress=show_progress,
            allow_config_change=allow_config_change,
        )
        results[job.key] = dataclasses.replace(result, variant=job.variant, seed=job.seed)
        if not (cont and done_before):  # a finished run read back says nothing of the pace
            took.append(time.perf_counter() - start)
    return results


def _eta(took: list[float], left: int, what: str = "variant") -> str:
    """``", about 12 min left"`` for ``left`` runs at the mean pace of those in ``took``."""
    if not took:
        return ""
    minutes = left * sum(took) / len(took) / 60
    return f", about {minutes:.0f} min left at the pace of the {what}{'s' if len(took) > 1 else ''} before"
